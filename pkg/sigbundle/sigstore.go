package sigbundle

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Every cosign signature and attestation is verified by sigstore-go: a
// Sigstore bundle (OCI referrer) as it is, and cosign's legacy layout (a
// layer plus annotations) after it is rewritten into the bundle it stands
// for. Nothing here checks a signature itself.

// Annotations of cosign's legacy layout that carry keyless evidence.
const (
	AnnotationCosignCertificate = "dev.sigstore.cosign/certificate"
	AnnotationCosignChain       = "dev.sigstore.cosign/chain"
	AnnotationCosignBundle      = "dev.sigstore.cosign/bundle"
	AnnotationCosignTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"
	// PredicateCosignSign is the predicate type of the in-toto statement
	// cosign signs when it writes a Sigstore bundle for an image signature.
	PredicateCosignSign = "https://sigstore.dev/cosign/sign/v1"
	// AnnotationSigstoreBundlePredicate is the manifest annotation cosign
	// writes on a Sigstore bundle referrer: the predicate type inside.
	AnnotationSigstoreBundlePredicate = "dev.sigstore.bundle.predicateType"
)

// Signer is who made a signature, as sigstore-go verified it.
type Signer struct {
	// Key names the public key that verified a keyed signature.
	Key string `json:"key,omitempty"`
	// Identity and Issuer are a keyless certificate's subject alternative
	// name and OIDC issuer.
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// LogIndex and IntegratedTime come from the transparency log entry.
	LogIndex       *int64    `json:"logIndex,omitempty"`
	IntegratedTime time.Time `json:"integratedTime,omitzero"`
	// Timestamps lists the verified observer times (log, RFC 3161).
	Timestamps []time.Time `json:"timestamps,omitempty"`
}

// Identity is a keyless signer an operator accepts: a certificate subject
// (exact, or a regular expression anchored by the caller) from an OIDC
// issuer (exact or regular expression). These are cosign's
// --certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp).
type Identity struct {
	Subject, SubjectRegexp string
	Issuer, IssuerRegexp   string
}

func (id Identity) String() string {
	s, i := id.Subject, id.Issuer
	if s == "" {
		s = "~" + id.SubjectRegexp
	}
	if i == "" {
		i = "~" + id.IssuerRegexp
	}
	return s + " from " + i
}

func (id Identity) compile() (verify.CertificateIdentity, error) {
	if (id.Subject == "") == (id.SubjectRegexp == "") {
		return verify.CertificateIdentity{}, errors.New("give exactly one of the certificate identity and its regular expression")
	}
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return verify.CertificateIdentity{}, errors.New("give exactly one of the OIDC issuer and its regular expression")
	}
	for _, re := range []string{id.SubjectRegexp, id.IssuerRegexp} {
		if _, err := regexp.Compile(re); err != nil {
			return verify.CertificateIdentity{}, fmt.Errorf("regular expression %q: %w", re, err)
		}
	}
	return verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegexp, id.Subject, id.SubjectRegexp)
}

// ParseTrustedRoot parses a Sigstore trusted root (trusted_root.json, as
// the Sigstore TUF repository publishes it and `cosign trusted-root
// create` writes it).
func ParseTrustedRoot(raw []byte) (*root.TrustedRoot, error) {
	tr, err := root.NewTrustedRootFromJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("sigstore trusted root: %w", err)
	}
	return tr, nil
}

// signedThing is one carried signature or attestation in sigstore-go's
// terms, and what its signature must be over.
type signedThing struct {
	pb *protobundle.Bundle
	// artifact is the signed bytes (a cosign payload) or nil; digest is
	// the subject digest an in-toto statement must name.
	artifact []byte
	digest   digest.Digest
	keyless  bool
	logIndex *int64
}

// legacyBundle rewrites cosign's legacy layout (a payload or envelope
// layer with its annotations) into a Sigstore bundle v0.1, the form whose
// rules (an inclusion promise for every log entry, any certificate chain)
// match what cosign writes there.
func legacyBundle(ann map[string]string, content any) (*signedThing, error) {
	vm := &protobundle.VerificationMaterial{}
	st := &signedThing{}
	if c := ann[AnnotationCosignCertificate]; c != "" {
		certs, err := pemCertificates(c + "\n" + ann[AnnotationCosignChain])
		if err != nil {
			return nil, fmt.Errorf("certificate annotation: %w", err)
		}
		chain := &protocommon.X509CertificateChain{}
		for _, der := range certs {
			chain.Certificates = append(chain.Certificates, &protocommon.X509Certificate{RawBytes: der})
		}
		vm.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: chain}
		st.keyless = true
	} else {
		vm.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{}}
	}
	if b := ann[AnnotationCosignBundle]; b != "" {
		tle, err := rekorBundleEntry(b)
		if err != nil {
			return nil, fmt.Errorf("rekor bundle annotation: %w", err)
		}
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
		st.logIndex = &tle.LogIndex
	}
	if t := ann[AnnotationCosignTimestamp]; t != "" {
		var ts struct {
			SignedRFC3161Timestamp []byte
		}
		if err := json.Unmarshal([]byte(t), &ts); err != nil {
			return nil, fmt.Errorf("RFC 3161 timestamp annotation is not cosign's JSON form: %w", err)
		}
		if len(ts.SignedRFC3161Timestamp) == 0 {
			return nil, errors.New("RFC 3161 timestamp annotation holds no timestamp")
		}
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts.SignedRFC3161Timestamp}}}
	}
	mt, _ := sgbundle.MediaTypeString("0.1")
	st.pb = &protobundle.Bundle{MediaType: mt, VerificationMaterial: vm}
	switch c := content.(type) {
	case *protocommon.MessageSignature:
		st.pb.Content = &protobundle.Bundle_MessageSignature{MessageSignature: c}
	case *protodsse.Envelope:
		st.pb.Content = &protobundle.Bundle_DsseEnvelope{DsseEnvelope: c}
	}
	return st, nil
}

// messageSignature is cosign's legacy image signature: the base64
// signature annotation over the simple-signing payload.
func messageSignature(payload []byte, sigB64 string) (*protocommon.MessageSignature, error) {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("the %s annotation is not a base64 signature", AnnotationCosignSignature)
	}
	sum := sha256.Sum256(payload)
	return &protocommon.MessageSignature{
		MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: sum[:]},
		Signature:     sig,
	}, nil
}

// dsseEnvelope converts a DSSE envelope's JSON to its protobuf form.
func dsseEnvelope(raw []byte) (*protodsse.Envelope, error) {
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     []byte `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   []byte `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("DSSE envelope: %w", err)
	}
	out := &protodsse.Envelope{PayloadType: env.PayloadType, Payload: env.Payload}
	for _, s := range env.Signatures {
		out.Signatures = append(out.Signatures, &protodsse.Signature{Keyid: s.KeyID, Sig: s.Sig})
	}
	return out, nil
}

// rekorBundleEntry converts cosign's Rekor bundle annotation (a signed
// entry timestamp over the entry's body, time, index and log ID) into a
// transparency log entry.
func rekorBundleEntry(raw string) (*protorekor.TransparencyLogEntry, error) {
	var rb struct {
		SignedEntryTimestamp []byte
		Payload              struct {
			Body           string `json:"body"`
			IntegratedTime int64  `json:"integratedTime"`
			LogIndex       int64  `json:"logIndex"`
			LogID          string `json:"logID"`
		}
	}
	if err := json.Unmarshal([]byte(raw), &rb); err != nil {
		return nil, err
	}
	body, err := base64.StdEncoding.DecodeString(rb.Payload.Body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil {
		return nil, fmt.Errorf("logID: %w", err)
	}
	var kv struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(body, &kv); err != nil {
		return nil, fmt.Errorf("body is not a Rekor entry: %w", err)
	}
	if kv.Kind == "" {
		return nil, errors.New("body is not a Rekor entry: no kind")
	}
	return &protorekor.TransparencyLogEntry{
		LogIndex:          rb.Payload.LogIndex,
		LogId:             &protocommon.LogId{KeyId: logID},
		KindVersion:       &protorekor.KindVersion{Kind: kv.Kind, Version: kv.APIVersion},
		IntegratedTime:    rb.Payload.IntegratedTime,
		InclusionPromise:  &protorekor.InclusionPromise{SignedEntryTimestamp: rb.SignedEntryTimestamp},
		CanonicalizedBody: body,
	}, nil
}

// sigstoreBundle reads a Sigstore bundle (an OCI referrer's layer).
func sigstoreBundle(raw []byte) (*signedThing, error) {
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("sigstore bundle: %w", err)
	}
	st := &signedThing{pb: b.Bundle}
	vc, err := b.VerificationContent()
	if err != nil {
		return nil, fmt.Errorf("sigstore bundle: %w", err)
	}
	st.keyless = vc.Certificate() != nil
	if es := b.GetVerificationMaterial().GetTlogEntries(); len(es) > 0 {
		i := es[0].GetLogIndex()
		st.logIndex = &i
	}
	return st, nil
}

func pemCertificates(s string) ([][]byte, error) {
	var out [][]byte
	rest := []byte(s)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a certificate", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, err
		}
		out = append(out, blk.Bytes)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// keyVerifiers returns the sigstore verifiers of a cosign public key:
// RSA keys sign with PKCS #1 v1.5 or PSS, so both are tried.
func keyVerifiers(key crypto.PublicKey) ([]signature.Verifier, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		v1, err := signature.LoadRSAPKCS1v15Verifier(k, crypto.SHA256)
		if err != nil {
			return nil, err
		}
		v2, err := signature.LoadRSAPSSVerifier(k, crypto.SHA256, nil)
		if err != nil {
			return nil, err
		}
		return []signature.Verifier{v1, v2}, nil
	case *ecdsa.PublicKey, ed25519.PublicKey:
		v, err := signature.LoadVerifier(k, crypto.SHA256)
		if err != nil {
			return nil, err
		}
		return []signature.Verifier{v}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// sigstoreOutcome is the result of verifying one signedThing.
type sigstoreOutcome struct {
	verified bool
	keys     []string
	pubs     []crypto.PublicKey // the keys that verified a keyed signature
	signer   *Signer
	note     string
}

// verifySigned checks st with every cosign key (keyed signatures) or
// against the trusted root and the accepted identities (keyless).
func (o *options) verifySigned(st *signedThing) sigstoreOutcome {
	entity, err := sgbundle.NewBundle(st.pb)
	if err != nil {
		return sigstoreOutcome{note: "not a valid Sigstore bundle: " + err.Error()}
	}
	// An artifact option reads its artifact once: one per verification.
	artifact := func() verify.ArtifactPolicyOption {
		return verify.WithArtifact(bytes.NewReader(st.artifact))
	}
	if st.artifact == nil {
		raw, err := hex.DecodeString(st.digest.Encoded())
		if err != nil || st.digest.Algorithm() != digest.SHA256 {
			return sigstoreOutcome{note: "the subject digest is not sha256"}
		}
		artifact = func() verify.ArtifactPolicyOption { return verify.WithArtifactDigest("sha256", raw) }
	}
	if st.keyless {
		return o.verifyKeyless(entity, artifact, st)
	}
	return o.verifyKeyed(entity, artifact, st)
}

func (o *options) verifyKeyless(entity *sgbundle.Bundle, artifact func() verify.ArtifactPolicyOption, st *signedThing) sigstoreOutcome {
	if o.trustedRoot == nil {
		return sigstoreOutcome{note: "keyless: not verified (no Sigstore trusted root: --trusted-root, or one carried in the archive)"}
	}
	vopts := []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1)}
	if len(o.trustedRoot.CTLogs()) > 0 {
		vopts = append(vopts, verify.WithSignedCertificateTimestamps(1))
	}
	v, err := verify.NewVerifier(o.trustedRoot, vopts...)
	if err != nil {
		return sigstoreOutcome{note: "keyless: " + err.Error()}
	}
	ids := slices.Concat(o.identities, o.policyIdentities)
	popts := []verify.PolicyOption{verify.WithoutIdentitiesUnsafe()}
	if len(ids) > 0 {
		popts = nil
		for _, id := range ids {
			popts = append(popts, verify.WithCertificateIdentity(id))
		}
	}
	res, err := v.Verify(entity, verify.NewPolicy(artifact(), popts...))
	if err != nil {
		return sigstoreOutcome{note: "keyless: not verified: " + err.Error()}
	}
	out := sigstoreOutcome{signer: signerOf(res, st)}
	if len(ids) == 0 {
		out.note = "keyless: certificate chain, log entry and signature verified; the signer is not checked (no --certificate-identity or policy), so it does not count"
		return out
	}
	out.verified = true
	out.keys = []string{out.signer.Identity}
	return out
}

func (o *options) verifyKeyed(entity *sgbundle.Bundle, artifact func() verify.ArtifactPolicyOption, st *signedThing) sigstoreOutcome {
	keys := slices.Concat(o.cosignKeys, o.policyKeys)
	if len(keys) == 0 {
		return sigstoreOutcome{note: "keyed: not verified (no --cosign-key or policy key)"}
	}
	out := sigstoreOutcome{}
	var why []string
	for _, k := range keys {
		vs, err := keyVerifiers(k.key)
		if err != nil {
			why = append(why, k.name+": "+err.Error())
			continue
		}
		for _, sv := range vs {
			keyMat := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
				return root.NewExpiringKey(sv, time.Time{}, time.Time{}), nil
			})
			var tm root.TrustedMaterial = keyMat
			vopts := []verify.VerifierOption{verify.WithNoObserverTimestamps()}
			if st.logIndex != nil && o.trustedRoot != nil {
				// A logged signature: its log entry must verify too.
				tm = root.TrustedMaterialCollection{o.trustedRoot, keyMat}
				vopts = []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1)}
			}
			v, err := verify.NewVerifier(tm, vopts...)
			if err != nil {
				why = append(why, k.name+": "+err.Error())
				continue
			}
			res, err := v.Verify(entity, verify.NewPolicy(artifact(), verify.WithKey()))
			if err != nil {
				why = append(why, k.name+": "+err.Error())
				continue
			}
			out.verified = true
			if !slices.Contains(out.keys, k.name) {
				out.keys = append(out.keys, k.name)
			}
			out.pubs = append(out.pubs, k.key)
			if out.signer == nil {
				out.signer = signerOf(res, st)
				out.signer.Key = k.name
			}
			break
		}
	}
	if !out.verified {
		out.note = "not verified: " + strings.Join(slices.Compact(why), "; ")
	}
	return out
}

func signerOf(res *verify.VerificationResult, st *signedThing) *Signer {
	s := &Signer{LogIndex: st.logIndex}
	if res.Signature != nil && res.Signature.Certificate != nil {
		s.Identity = res.Signature.Certificate.SubjectAlternativeName
		s.Issuer = res.Signature.Certificate.Issuer
	}
	for _, t := range res.VerifiedTimestamps {
		if t.Type == "CurrentTime" {
			continue // not an observer: keyed signatures without a log
		}
		if t.Type == "Tlog" && s.IntegratedTime.IsZero() {
			s.IntegratedTime = t.Timestamp.UTC()
		}
		s.Timestamps = append(s.Timestamps, t.Timestamp.UTC())
	}
	return s
}
