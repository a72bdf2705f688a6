// Package testsigstore makes keyless Sigstore evidence for tests: a
// Fulcio CA, a Rekor log and a timestamping authority from sigstore-go's
// own test Sigstore (pkg/testing/ca), the trusted root that names them,
// and cosign's two ways of attaching a signature to an image.
package testsigstore

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"
)

// Sigstore is a private Sigstore instance living in memory.
type Sigstore struct {
	vs *ca.VirtualSigstore
}

// New starts one.
func New() (*Sigstore, error) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		return nil, err
	}
	return &Sigstore{vs: vs}, nil
}

// TrustedRoot is the instance's trusted_root.json. With ct it also lists
// the CT log, whose timestamps (SCTs) this instance's certificates lack.
func (s *Sigstore) TrustedRoot(ct bool) ([]byte, error) {
	var ctlogs map[string]*root.TransparencyLog
	if ct {
		ctlogs = rawIDs(s.vs.CTLogs())
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, s.vs.FulcioCertificateAuthorities(), ctlogs, s.vs.TimestampingAuthorities(), rawIDs(s.vs.RekorLogs()))
	if err != nil {
		return nil, err
	}
	return tr.MarshalJSON()
}

// rawIDs gives each log its raw key ID: the test instance keeps the hex
// form there, which a trusted root written to JSON would hex-encode again.
func rawIDs(logs map[string]*root.TransparencyLog) map[string]*root.TransparencyLog {
	for id, l := range logs {
		if raw, err := hex.DecodeString(id); err == nil {
			l.ID = raw
		}
	}
	return logs
}

// Legacy signs payload (a cosign simple-signing payload) keyless as
// identity from issuer, logged at time at, and returns the annotations
// cosign's legacy layout puts on the payload layer: the signature, the
// certificate and its chain, the Rekor bundle and the RFC 3161 timestamp.
func (s *Sigstore) Legacy(identity, issuer string, payload []byte, at time.Time) (map[string]string, error) {
	te, err := s.vs.SignAtTime(identity, issuer, payload, at)
	if err != nil {
		return nil, err
	}
	sc, vc, entries, ts, err := parts(te)
	if err != nil {
		return nil, err
	}
	if len(entries) != 1 {
		return nil, fmt.Errorf("%d tlog entries, want 1", len(entries))
	}
	// The entry keeps its signed entry timestamp to itself; the log signs
	// the same payload again (ECDSA: another signature, equally valid).
	tle := entries[0].TransparencyLogEntry()
	rp := tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.GetCanonicalizedBody()),
		IntegratedTime: tle.GetIntegratedTime(),
		LogIndex:       tle.GetLogIndex(),
		LogID:          hex.EncodeToString(tle.GetLogId().GetKeyId()),
	}
	set, err := s.vs.RekorSignPayload(rp)
	if err != nil {
		return nil, err
	}
	rb, err := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": rp})
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, errors.New("no RFC 3161 timestamp")
	}
	tsJSON, err := json.Marshal(map[string][]byte{"SignedRFC3161Timestamp": ts[0]})
	if err != nil {
		return nil, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority).Intermediates[0].Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.vs.FulcioCertificateAuthorities()[0].(*root.FulcioCertificateAuthority).Root.Raw})...)
	return map[string]string{
		"dev.cosignproject.cosign/signature":   base64.StdEncoding.EncodeToString(sc.Signature()),
		"dev.sigstore.cosign/certificate":      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vc.Certificate().Raw})),
		"dev.sigstore.cosign/chain":            string(chain),
		"dev.sigstore.cosign/bundle":           string(rb),
		"dev.sigstore.cosign/rfc3161timestamp": string(tsJSON),
	}, nil
}

// parts takes a test entity apart.
func parts(te *ca.TestEntity) (verify.SignatureContent, verify.VerificationContent, []*tlog.Entry, [][]byte, error) {
	sc, err := te.SignatureContent()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	vc, err := te.VerificationContent()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	entries, err := te.TlogEntries()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ts, err := te.Timestamps()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return sc, vc, entries, ts, nil
}

// Bundle attests statement (an in-toto statement) keyless as identity
// from issuer and returns the Sigstore bundle (v0.3, with an inclusion
// proof) that cosign attaches as an OCI referrer.
func (s *Sigstore) Bundle(identity, issuer string, statement []byte) ([]byte, error) {
	te, err := s.vs.AttestAtTime(identity, issuer, statement, time.Now().Add(5*time.Minute), true)
	if err != nil {
		return nil, err
	}
	sc, vc, entries, ts, err := parts(te)
	if err != nil {
		return nil, err
	}
	env := sc.EnvelopeContent().RawEnvelope()
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, err
	}
	pe := &protodsse.Envelope{PayloadType: env.PayloadType, Payload: payload}
	for _, sg := range env.Signatures {
		raw, err := base64.StdEncoding.DecodeString(sg.Sig)
		if err != nil {
			return nil, err
		}
		pe.Signatures = append(pe.Signatures, &protodsse.Signature{Keyid: sg.KeyID, Sig: raw})
	}
	mt, err := sgbundle.MediaTypeString("0.3")
	if err != nil {
		return nil, err
	}
	pb := &protobundle.Bundle{
		MediaType: mt,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: pe},
	}
	for _, e := range entries {
		tle := e.TransparencyLogEntry()
		if tle.KindVersion == nil { // the test log leaves it out; it is in the body
			var kv struct {
				Kind       string `json:"kind"`
				APIVersion string `json:"apiVersion"`
			}
			if err := json.Unmarshal(tle.GetCanonicalizedBody(), &kv); err != nil {
				return nil, err
			}
			tle.KindVersion = &protorekor.KindVersion{Kind: kv.Kind, Version: kv.APIVersion}
		}
		pb.VerificationMaterial.TlogEntries = append(pb.VerificationMaterial.TlogEntries, tle)
	}
	if len(ts) > 0 {
		pb.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{}
		for _, t := range ts {
			pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps = append(pb.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps,
				&protocommon.RFC3161SignedTimestamp{SignedTimestamp: t})
		}
	}
	return protojson.Marshal(pb)
}
