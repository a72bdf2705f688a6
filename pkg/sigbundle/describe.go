package sigbundle

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
)

// Description is what a signing artifact says about itself, read without
// any key or trust anchor: nothing in it is verified (Verify does that).
type Description struct {
	// Format is as in ArtifactReport ("" when nothing is recognised).
	Format string `json:"format,omitempty"`
	// Keyless is true for a signature made with a certificate; Identity
	// and Issuer are what the certificate claims.
	Keyless  bool   `json:"keyless,omitempty"`
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// Logged is true when a transparency log entry travels with it.
	Logged        bool   `json:"logged,omitempty"`
	PredicateType string `json:"predicateType,omitempty"`
	// TUFURL and TrustedRootSHA256 describe Sigstore trust material.
	TUFURL            string `json:"tufURL,omitempty"`
	TrustedRootSHA256 string `json:"trustedRootSHA256,omitempty"`
}

// Describe reads one signing artifact (its manifest and small layers) and
// says what it claims. Nothing is verified; unreadable parts are left out.
func Describe(ctx context.Context, st content.Fetcher, a ocispec.Descriptor, maxMetadata int64) Description {
	raw, err := content.ReadAll(ctx, st, a, maxMetadata)
	if err != nil {
		return Description{}
	}
	var m manifest
	if json.Unmarshal(raw, &m) != nil {
		return Description{}
	}
	return describe(&m, func(l ocispec.Descriptor) []byte {
		b, err := content.ReadAll(ctx, st, l, maxMetadata)
		if err != nil {
			return nil
		}
		return b
	})
}

// describe says what an artifact manifest claims, reading its layers with
// read (nil: not available).
func describe(m *manifest, read func(ocispec.Descriptor) []byte) Description {
	var d Description
	if artifactTypeOf(m) == ArtifactTypeSigstoreTrust {
		d.Format, d.TUFURL = "sigstore-trust", m.Annotations[AnnotationTUFURL]
		for _, l := range m.Layers {
			if l.MediaType == MediaTypeSigstoreTrustedRoot {
				if b := read(l); b != nil {
					sum := sha256.Sum256(b)
					d.TrustedRootSHA256 = hex.EncodeToString(sum[:])
				}
			}
		}
		return d
	}
	for _, l := range m.Layers {
		switch {
		case l.MediaType == MediaTypeCosignSimpleSigning, l.MediaType == MediaTypeDSSE:
			d.Format = "cosign"
			if l.MediaType == MediaTypeDSSE {
				d.Format = "cosign-attestation"
				if b := read(l); b != nil {
					var env struct {
						Payload string `json:"payload"`
					}
					if json.Unmarshal(b, &env) == nil {
						body, _ := base64.StdEncoding.DecodeString(env.Payload)
						d.PredicateType = predicateTypeOf(body)
					}
				}
			}
			d.Logged = l.Annotations[AnnotationCosignBundle] != ""
			if c := l.Annotations[AnnotationCosignCertificate]; c != "" {
				if ders, err := pemCertificates(c); err == nil {
					d.describeCert(ders[0])
				}
			}
		case strings.HasPrefix(l.MediaType, MediaTypeSigstoreBundlePrefix):
			d.Format = "cosign"
			b := read(l)
			if b == nil {
				continue
			}
			sb, err := sigstoreBundle(b)
			if err != nil {
				continue
			}
			d.Logged = sb.logIndex != nil
			if env := sb.pb.GetDsseEnvelope(); env != nil {
				d.PredicateType = predicateTypeOf(env.GetPayload())
				if d.PredicateType != PredicateCosignSign {
					d.Format = "cosign-attestation"
				}
			}
			vm := sb.pb.GetVerificationMaterial()
			if c := vm.GetCertificate(); c != nil {
				d.describeCert(c.GetRawBytes())
			} else if ch := vm.GetX509CertificateChain(); ch != nil && len(ch.GetCertificates()) > 0 {
				d.describeCert(ch.GetCertificates()[0].GetRawBytes())
			}
		}
	}
	return d
}

func (d *Description) describeCert(der []byte) {
	d.Keyless = true
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return
	}
	if s, err := certificate.SummarizeCertificate(c); err == nil {
		d.Identity, d.Issuer = s.SubjectAlternativeName, s.Issuer
	}
}

func predicateTypeOf(statement []byte) string {
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	_ = json.Unmarshal(statement, &st)
	return st.PredicateType
}
