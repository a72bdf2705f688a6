package sigfixtures

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Repo is where artifacts are pushed: a repository and the remote options
// (transport, auth) to reach it.
type Repo struct {
	Name    name.Repository
	Options []remote.Option
}

// Layer is one artifact layer.
type Layer struct {
	MediaType   string
	Data        []byte
	Annotations map[string]string
}

// Artifact describes an OCI manifest to push.
type Artifact struct {
	// ArtifactType is set as artifactType; ConfigMediaType (default: the
	// artifact type) and Config (default "{}") make the config.
	ArtifactType    string
	ConfigMediaType string
	Config          []byte
	Layers          []Layer
	// Subject makes it an OCI 1.1 referrer (the registry's referrers list
	// or the fallback tag is updated by go-containerregistry).
	Subject     *ocispec.Descriptor
	Annotations map[string]string
	// Tag, when set, pushes it under that tag (cosign's tag scheme).
	Tag string
}

// Push uploads the artifact's blobs and manifest and returns its
// descriptor.
func Push(ctx context.Context, r Repo, a Artifact) (ocispec.Descriptor, error) {
	opts := append(append([]remote.Option{}, r.Options...), remote.WithContext(ctx))
	cfg := a.Config
	if cfg == nil {
		cfg = []byte("{}")
	}
	cmt := a.ConfigMediaType
	if cmt == "" {
		cmt = a.ArtifactType
	}
	upload := func(b []byte, mt string) (ocispec.Descriptor, error) {
		if err := remote.WriteLayer(r.Name, static.NewLayer(b, types.MediaType(mt)), opts...); err != nil {
			return ocispec.Descriptor{}, err
		}
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}, nil
	}
	cd, err := upload(cfg, cmt)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: a.ArtifactType, Config: cd, Subject: a.Subject, Annotations: a.Annotations, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range a.Layers {
		d, err := upload(l.Data, l.MediaType)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer: %w", err)
		}
		d.Annotations = l.Annotations
		m.Layers = append(m.Layers, d)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	var ref name.Reference = r.Name.Digest(d.Digest.String())
	if a.Tag != "" {
		ref = r.Name.Tag(a.Tag)
	}
	if err := remote.Put(ref, rawManifest{raw}, opts...); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", ref, err)
	}
	return d, nil
}

type rawManifest struct{ raw []byte }

// RawManifest and MediaType make a remote.Taggable.
func (m rawManifest) RawManifest() ([]byte, error) { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

// Key is an ECDSA P-256 signing key, as `cosign generate-key-pair` makes.
type Key struct {
	Private *ecdsa.PrivateKey
	// PublicPEM is the PKIX public key ("PUBLIC KEY"), like cosign.pub.
	PublicPEM []byte
}

// NewKey generates a key.
func NewKey() (*Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Key{Private: k, PublicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}, nil
}

// WritePublic writes the public key to path.
func (k *Key) WritePublic(path string) error { return os.WriteFile(path, k.PublicPEM, 0o644) }

// Sign returns the base64 ASN.1 ECDSA signature of sha256(msg), the form
// of cosign's dev.cosignproject.cosign/signature annotation.
func (k *Key) Sign(msg []byte) (string, error) {
	h := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, k.Private, h[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// SimpleSigningPayload is the payload cosign signs for an image.
func SimpleSigningPayload(ref string, d digest.Digest) []byte {
	p := map[string]any{
		"critical": map[string]any{
			"identity": map[string]any{"docker-reference": ref},
			"image":    map[string]any{"docker-manifest-digest": d.String()},
			"type":     "cosign container image signature",
		},
		"optional": nil,
	}
	b, _ := json.Marshal(p)
	return b
}

// CosignSignature is a cosign signature object of subject (reference ref),
// for the tag scheme (tag = true: "sha256-<hex>.sig") or as an OCI 1.1
// referrer (tag = false, like --registry-referrers-mode=oci-1-1).
func CosignSignature(k *Key, ref string, subject ocispec.Descriptor, tag bool) (Artifact, error) {
	payload := SimpleSigningPayload(ref, subject.Digest)
	sig, err := k.Sign(payload)
	if err != nil {
		return Artifact{}, err
	}
	return signatureObject(payload, map[string]string{"dev.cosignproject.cosign/signature": sig}, subject, tag), nil
}

// signatureObject is cosign's signature object for a payload layer with
// its annotations.
func signatureObject(payload []byte, ann map[string]string, subject ocispec.Descriptor, tag bool) Artifact {
	l := Layer{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Data: payload, Annotations: ann}
	if tag {
		cfg := fmt.Appendf(nil, `{"architecture":"","config":{},"created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["%s"]}}`, digest.FromBytes(payload))
		return Artifact{ConfigMediaType: ocispec.MediaTypeImageConfig, Config: cfg, Layers: []Layer{l},
			Tag: subject.Digest.Algorithm().String() + "-" + subject.Digest.Encoded() + ".sig"}
	}
	s := subject
	s.Annotations = nil
	return Artifact{ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", Layers: []Layer{l}, Subject: &s,
		Annotations: map[string]string{ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339)}}
}

// CosignAttestation is a cosign attestation object (tag scheme, ".att"):
// a DSSE envelope of an in-toto statement about subject.
func CosignAttestation(k *Key, ref string, subject ocispec.Descriptor, predicateType string, predicate any) (Artifact, error) {
	st := map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": predicateType,
		"subject":       []any{map[string]any{"name": ref, "digest": map[string]string{"sha256": subject.Digest.Encoded()}}},
		"predicate":     predicate,
	}
	body, err := json.Marshal(st)
	if err != nil {
		return Artifact{}, err
	}
	pt := "application/vnd.in-toto+json"
	sig, err := k.Sign(fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(pt), pt, len(body), body))
	if err != nil {
		return Artifact{}, err
	}
	env, _ := json.Marshal(map[string]any{"payloadType": pt, "payload": base64.StdEncoding.EncodeToString(body),
		"signatures": []any{map[string]string{"keyid": "", "sig": sig}}})
	return Artifact{ConfigMediaType: ocispec.MediaTypeImageConfig, Config: []byte(`{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`),
		Layers: []Layer{{MediaType: "application/vnd.dsse.envelope.v1+json", Data: env, Annotations: map[string]string{"predicateType": predicateType}}},
		Tag:    subject.Digest.Algorithm().String() + "-" + subject.Digest.Encoded() + ".att"}, nil
}

// NotationSignature is a notation-format signature of subject: a JWS
// envelope (ES256, self-signed certificate in x5c) whose payload names the
// subject as targetArtifact.
func NotationSignature(k *Key, subject ocispec.Descriptor) (Artifact, error) {
	cert, err := NotationCert(k)
	if err != nil {
		return Artifact{}, err
	}
	return NotationSignatureWithCert(k, cert, subject)
}

// NotationCert is a self-signed code-signing certificate for k (DER), as
// `notation cert generate-test` makes: it is its own trust-store entry.
func NotationCert(k *Key) ([]byte, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cnab-airgap e2e notation signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.Private.PublicKey, k.Private)
}

// NotationSignatureWithCert is NotationSignature with the given signing
// certificate (DER) in the envelope's x5c.
func NotationSignatureWithCert(k *Key, cert []byte, subject ocispec.Descriptor) (Artifact, error) {
	target := map[string]any{"targetArtifact": map[string]any{"mediaType": subject.MediaType, "digest": subject.Digest, "size": subject.Size}}
	payload, _ := json.Marshal(target)
	protected, _ := json.Marshal(map[string]any{"alg": "ES256", "cty": "application/vnd.cncf.notary.payload.v1+json",
		"crit": []string{"io.cncf.notary.signingScheme"}, "io.cncf.notary.signingScheme": "notary.x509",
		"io.cncf.notary.signingTime": time.Now().UTC().Format(time.RFC3339)})
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(protected) + "." + enc.EncodeToString(payload)
	h := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, k.Private, h[:])
	if err != nil {
		return Artifact{}, err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	env, _ := json.Marshal(map[string]any{"payload": enc.EncodeToString(payload), "protected": enc.EncodeToString(protected),
		"header": map[string]any{"x5c": [][]byte{cert}, "io.cncf.notary.signingAgent": "cnab-airgap-e2e"}, "signature": enc.EncodeToString(sig)})
	thumb := sha256.Sum256(cert)
	sub := subject
	sub.Annotations = nil
	return Artifact{ArtifactType: "application/vnd.cncf.notary.signature", Layers: []Layer{{MediaType: "application/jose+json", Data: env}},
		Subject: &sub, Annotations: map[string]string{"io.cncf.notary.x509chain.thumbprint#S256": `["` + hex.EncodeToString(thumb[:]) + `"]`}}, nil
}

// SBOM is an SPDX document attached to subject as an OCI 1.1 referrer.
func SBOM(subject ocispec.Descriptor, pkgName string) Artifact {
	doc, _ := json.Marshal(map[string]any{"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
		"name": pkgName, "documentNamespace": "https://cnab-airgap.example/spdx/" + subject.Digest.Encoded(),
		"packages": []any{map[string]any{"name": pkgName, "SPDXID": "SPDXRef-Package", "downloadLocation": "NOASSERTION"}}})
	sub := subject
	sub.Annotations = nil
	return Artifact{ArtifactType: "application/spdx+json", Layers: []Layer{{MediaType: "application/spdx+json", Data: doc}}, Subject: &sub,
		Annotations: map[string]string{"org.opencontainers.image.description": "SBOM of " + pkgName}}
}

// Verify is a helper for tests: does k verify a signature over msg?
func (k *Key) Verify(msg []byte, sigB64 string) bool {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return false
	}
	h := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(&k.Private.PublicKey, h[:], sig)
}
