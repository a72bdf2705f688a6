package sigbundle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

func TestSentinelsAreVerificationErrors(t *testing.T) {
	t.Parallel()
	for _, e := range []error{ErrBinding, ErrSignature, ErrTrustData, ErrTrustAnchor, ErrTargetMismatch, ErrExpired, ErrInToto, ErrInspections, ErrUnsigned} {
		if !errors.Is(e, ErrVerification) {
			t.Errorf("%v does not match ErrVerification", e)
		}
		wrapped := &Error{Kind: "notary", GUN: "r/x", Err: wrapf(e, "detail")}
		if !errors.Is(wrapped, e) || !errors.Is(wrapped, ErrVerification) || !strings.Contains(wrapped.Error(), "GUN r/x") {
			t.Errorf("%v: wrapped as %v", e, wrapped)
		}
	}
	if errors.Is(ErrNotFound, ErrVerification) {
		t.Error("ErrNotFound is not a verification failure")
	}
}

func TestCosignTags(t *testing.T) {
	t.Parallel()
	d := digest.FromString("x")
	for _, s := range []string{".sig", ".att", ".sbom"} {
		got, ok := SubjectFromCosignTag(CosignTag(d, s))
		if !ok || got != d {
			t.Errorf("%s: %v %v", s, got, ok)
		}
	}
	for _, bad := range []string{"sha256-abc.sig", "latest", "sha256-" + d.Encoded(), "md5-" + d.Encoded() + ".sig"} {
		if _, ok := SubjectFromCosignTag(bad); ok {
			t.Errorf("%q parsed as a cosign tag", bad)
		}
	}
}

func TestParsePin(t *testing.T) {
	t.Parallel()
	gun, id, err := ParsePin("registry:5000/org/app=" + strings.Repeat("a", 64))
	if err != nil || gun != "registry:5000/org/app" || id != strings.Repeat("a", 64) {
		t.Fatalf("%q %q %v", gun, id, err)
	}
	for _, bad := range []string{"", "gun", "=id", "gun="} {
		if _, _, err := ParsePin(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := makeOptions(WithNotaryPin("g", "not-hex")); err == nil {
		t.Error("a non-hex key ID was accepted")
	}
}

func TestRoleFor(t *testing.T) {
	t.Parallel()
	for at, want := range map[string]string{
		ArtifactTypeNotation:                            layout.RoleSignature,
		ArtifactTypeCosignSignature:                     layout.RoleSignature,
		"application/vnd.dev.sigstore.bundle.v0.3+json": layout.RoleSignature,
		"application/spdx+json":                         layout.RoleSBOM,
		"application/vnd.cyclonedx+json":                layout.RoleSBOM,
		"application/vnd.in-toto+json":                  layout.RoleAttestation,
		ArtifactTypeNotary:                              layout.RoleTrust,
		"application/vnd.example.thing":                 RoleReferrer,
	} {
		if got := roleFor(at, nil); got != want {
			t.Errorf("%s: %s, want %s", at, got, want)
		}
	}
	// A Sigstore bundle of an attestation says so (any case of its type).
	for pt, want := range map[string]string{"https://slsa.dev/provenance/v1": layout.RoleAttestation, PredicateCosignSign: layout.RoleSignature, "": layout.RoleSignature} {
		if got := roleFor("application/vnd.dev.sigstore.Bundle.v0.3+json", map[string]string{AnnotationSigstoreBundlePredicate: pt}); got != want {
			t.Errorf("sigstore bundle of %q: %s, want %s", pt, got, want)
		}
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t *testing.T, k *ecdsa.PrivateKey, msg []byte) string {
	t.Helper()
	h := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func TestCosignBindingAndSignature(t *testing.T) {
	t.Parallel()
	subject := digest.FromString("image")
	payload := []byte(`{"critical":{"identity":{"docker-reference":"old.example/app"},"image":{"docker-manifest-digest":"` + subject.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	if claim, err := checkSimpleSigning(payload, subject); err != nil || claim != "old.example/app" {
		t.Fatal(claim, err)
	}
	if _, err := checkSimpleSigning(payload, digest.FromString("other")); !errors.Is(err, ErrBinding) {
		t.Fatalf("another subject: %v", err)
	}
	k, other := newKey(t), newKey(t)
	sig := sign(t, k, payload)
	if !keyedVerifies(t, &k.PublicKey, legacySignature(t, payload, sig)) ||
		keyedVerifies(t, &other.PublicKey, legacySignature(t, payload, sig)) ||
		keyedVerifies(t, &k.PublicKey, legacySignature(t, append(payload, ' '), sig)) {
		t.Fatal("ECDSA verification is wrong")
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pub, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil || !keyedVerifies(t, pub, legacySignature(t, payload, sig)) {
		t.Fatalf("parsed key: %v", err)
	}
}

// legacySignature is cosign's legacy layout of a keyed signature.
func legacySignature(t *testing.T, payload []byte, sig string) *signedThing {
	t.Helper()
	ms, err := messageSignature(payload, sig)
	if err != nil {
		t.Fatal(err)
	}
	st, err := legacyBundle(nil, ms)
	if err != nil {
		t.Fatal(err)
	}
	st.artifact = payload
	return st
}

// keyedVerifies reports whether sigstore-go verifies st with key.
func keyedVerifies(t *testing.T, key crypto.PublicKey, st *signedThing) bool {
	t.Helper()
	o, err := makeOptions(WithCosignKey("k", key))
	if err != nil {
		t.Fatal(err)
	}
	return o.verifySigned(st).verified
}

func TestDSSE(t *testing.T) {
	t.Parallel()
	subject := digest.FromString("image")
	k := newKey(t)
	body := []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"x","subject":[{"name":"a","digest":{"sha256":"` + subject.Encoded() + `"}}],"predicate":{}}`)
	pt := "application/vnd.in-toto+json"
	sig := sign(t, k, dsse.PAE(pt, body))
	env, _ := json.Marshal(map[string]any{"payloadType": pt, "payload": base64.StdEncoding.EncodeToString(body), "signatures": []any{map[string]string{"sig": sig}}})
	pe, err := dsseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	if pred, err := checkStatement(pe.GetPayloadType(), pe.GetPayload(), subject); err != nil || pred != "x" {
		t.Fatalf("DSSE: %q %v", pred, err)
	}
	if _, err := checkStatement(pe.GetPayloadType(), pe.GetPayload(), digest.FromString("other")); !errors.Is(err, ErrBinding) {
		t.Fatalf("another subject: %v", err)
	}
	attestation := func(env []byte, subject digest.Digest) *signedThing {
		pe, err := dsseEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		st, err := legacyBundle(nil, pe)
		if err != nil {
			t.Fatal(err)
		}
		st.digest = subject
		return st
	}
	if !keyedVerifies(t, &k.PublicKey, attestation(env, subject)) {
		t.Fatal("a good attestation does not verify")
	}
	if keyedVerifies(t, &newKey(t).PublicKey, attestation(env, subject)) {
		t.Fatal("an attestation verifies with another key")
	}
	if keyedVerifies(t, &k.PublicKey, attestation(env, digest.FromString("other"))) {
		t.Fatal("sigstore-go accepted an attestation about another subject")
	}
	forged, _ := json.Marshal(map[string]any{"payloadType": pt, "payload": base64.StdEncoding.EncodeToString(append(body, ' ')), "signatures": []any{map[string]string{"sig": sig}}})
	if keyedVerifies(t, &k.PublicKey, attestation(forged, subject)) {
		t.Fatal("a tampered statement verifies")
	}
}

func TestNotationBinding(t *testing.T) {
	t.Parallel()
	subject := digest.FromString("image")
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"targetArtifact":{"mediaType":"m","digest":"` + subject.String() + `","size":3}}`))
	env := []byte(`{"payload":"` + payload + `","protected":"e30","signature":"AA"}`)
	if err := checkNotationJWS(env, subject); err != nil {
		t.Fatal(err)
	}
	if err := checkNotationJWS(env, digest.FromString("x")); !errors.Is(err, ErrBinding) {
		t.Fatalf("another subject: %v", err)
	}
}

// memStore is a content.Fetcher over a map; Verify verifies what it reads.
type memStore map[digest.Digest][]byte

func (m memStore) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := m[d.Digest]
	if !ok {
		return nil, errors.New("not found")
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m memStore) put(b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	m[d] = b
	return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
}

// TestVerifyReferrers exercises Verify on an in-memory store: a cosign
// referrer bound to the bundle index, the key policy, and artifacts whose
// subject is not carried.
func TestVerifyReferrers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := memStore{}
	index := st.put([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`))
	index.MediaType = ocispec.MediaTypeImageIndex
	k := newKey(t)
	payload := []byte(`{"critical":{"image":{"docker-manifest-digest":"` + index.Digest.String() + `"}}}`)
	pl := st.put(payload)
	pl.MediaType = MediaTypeCosignSimpleSigning
	pl.Annotations = map[string]string{AnnotationCosignSignature: sign(t, k, payload)}
	cfg := st.put([]byte("{}"))
	cfg.MediaType = ArtifactTypeCosignSignature
	sub := index
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactTypeCosignSignature, Config: cfg, Layers: []ocispec.Descriptor{pl}, Subject: &sub})
	art := st.put(m)
	art.MediaType = ocispec.MediaTypeImageManifest
	art.Annotations = map[string]string{layout.AnnotationRole: layout.RoleSignature, layout.AnnotationSubject: index.Digest.String(), AnnotationVia: ViaReferrers}
	c := Carried{BundleJSON: []byte("{}"), Index: index, Manifests: map[digest.Digest]string{index.Digest: "bundle index"}, Artifacts: []ocispec.Descriptor{art}}

	rep, err := Verify(ctx, st, c)
	if err != nil || rep.Signed || !rep.Artifacts[0].Bound || rep.Artifacts[0].Verified {
		t.Fatalf("without keys: %v %+v", err, rep)
	}
	if rep, err = Verify(ctx, st, c, WithCosignKey("k", &k.PublicKey), WithRequireSignatures(true)); err != nil || !rep.Signed {
		t.Fatalf("with the key: %v %+v", err, rep)
	}
	if _, err = Verify(ctx, st, c, WithCosignKey("other", &newKey(t).PublicKey)); !errors.Is(err, ErrSignature) {
		t.Fatalf("with another key: %v", err)
	}
	// A policy's key authority is met by that key, not by a key that has
	// its file name: the signature verified with --cosign-key k, the policy
	// names another key in a file also called k.
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(&newKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := ParsePolicy([]byte("spec: {images: [{glob: 'registry.example/**'}], authorities: [{key: {path: k}}]}"), dir)
	if err != nil {
		t.Fatal(err)
	}
	pc := c
	pc.Subjects = []PolicySubject{{Reference: "registry.example/app:1", Digest: index.Digest}}
	if _, err = Verify(ctx, st, pc, WithCosignKey("k", &k.PublicKey), WithPolicy(pol...)); !errors.Is(err, ErrPolicy) {
		t.Fatalf("a policy key's namesake verified the signature: %v", err)
	}
	der, err = x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if pol, err = ParsePolicy([]byte("spec: {images: [{glob: 'registry.example/**'}], authorities: [{key: {path: k}}]}"), dir); err != nil {
		t.Fatal(err)
	}
	if _, err = Verify(ctx, st, pc, WithPolicy(pol...)); err != nil {
		t.Fatalf("the policy's own key: %v", err)
	}
	if _, err = Verify(ctx, st, c, WithRequireSignatures(true)); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("required without keys: %v", err)
	}
	// The subject must be carried.
	c.Manifests = map[digest.Digest]string{}
	if _, err = Verify(ctx, st, c); !errors.Is(err, ErrBinding) || !strings.Contains(err.Error(), "not a manifest this bundle carries") {
		t.Fatalf("uncarried subject: %v", err)
	}
	// index.json may not claim another subject than the manifest's.
	c.Manifests = map[digest.Digest]string{index.Digest: "bundle index"}
	c.Artifacts[0].Annotations[layout.AnnotationSubject] = digest.FromString("x").String()
	if _, err = Verify(ctx, st, c); !errors.Is(err, ErrBinding) {
		t.Fatalf("mismatched annotation: %v", err)
	}
}
