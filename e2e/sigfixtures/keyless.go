package sigfixtures

import (
	"encoding/json"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/testsigstore"
)

// KeylessSignature is a cosign signature of subject made keyless (a
// certificate for identity from issuer, logged in the test Sigstore's
// Rekor) in cosign's legacy layout: the signature, certificate, chain,
// Rekor bundle and RFC 3161 timestamp as annotations of the payload layer,
// under the tag scheme or as a referrer.
func KeylessSignature(ss *testsigstore.Sigstore, identity, issuer, ref string, subject ocispec.Descriptor, tag bool) (Artifact, error) {
	payload := SimpleSigningPayload(ref, subject.Digest)
	ann, err := ss.Legacy(identity, issuer, payload, time.Now().Add(5*time.Minute))
	if err != nil {
		return Artifact{}, err
	}
	return signatureObject(payload, ann, subject, tag), nil
}

// KeylessAttestation is an in-toto attestation of subject made keyless and
// attached as cosign's new bundle format does: an OCI 1.1 referrer whose
// one layer is a Sigstore bundle (v0.3) holding the DSSE envelope.
func KeylessAttestation(ss *testsigstore.Sigstore, identity, issuer, ref string, subject ocispec.Descriptor, predicateType string, predicate any) (Artifact, error) {
	st, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"predicateType": predicateType,
		"subject":       []any{map[string]any{"name": ref, "digest": map[string]string{"sha256": subject.Digest.Encoded()}}},
		"predicate":     predicate,
	})
	if err != nil {
		return Artifact{}, err
	}
	b, err := ss.Bundle(identity, issuer, st)
	if err != nil {
		return Artifact{}, err
	}
	const mt = "application/vnd.dev.sigstore.bundle.v0.3+json"
	s := subject
	s.Annotations = nil
	return Artifact{ArtifactType: mt, ConfigMediaType: ocispec.MediaTypeEmptyJSON, Config: []byte("{}"),
		Layers:  []Layer{{MediaType: mt, Data: b, Annotations: map[string]string{"dev.sigstore.bundle.predicateType": predicateType}}},
		Subject: &s, Annotations: map[string]string{ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339),
			"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": predicateType}}, nil
}
