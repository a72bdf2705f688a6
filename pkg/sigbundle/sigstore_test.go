package sigbundle

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/testsigstore"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

const (
	testIdentity = "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v2.3.0"
	testIssuer   = "https://token.actions.githubusercontent.com"
)

// keylessFixture is a bundle index signed keyless in cosign's legacy
// layout, with an SLSA provenance attestation attached as a Sigstore
// bundle referrer, by a private Sigstore (sigstore-go's test instance).
type keylessFixture struct {
	st      memStore
	c       Carried
	root    []byte // trusted_root.json
	rootCT  []byte // the same with a CT log listed
	payload []byte
	sigAnn  map[string]string
	stmt    []byte
}

func newKeylessFixture(t *testing.T) *keylessFixture {
	t.Helper()
	ss, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	f := &keylessFixture{st: memStore{}}
	if f.root, err = ss.TrustedRoot(false); err != nil {
		t.Fatal(err)
	}
	if f.rootCT, err = ss.TrustedRoot(true); err != nil {
		t.Fatal(err)
	}
	index := f.st.put([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`))
	index.MediaType = ocispec.MediaTypeImageIndex
	f.payload = []byte(`{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"` + index.Digest.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	if f.sigAnn, err = ss.Legacy(testIdentity, testIssuer, f.payload, time.Now().Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.stmt = []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"shop","digest":{"sha256":"` + index.Digest.Encoded() + `"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://example.com/build"}}}`)
	bundleJSON, err := ss.Bundle(testIdentity, testIssuer, f.stmt)
	if err != nil {
		t.Fatal(err)
	}
	f.c = Carried{BundleJSON: []byte("{}"), Index: index, Manifests: map[digest.Digest]string{index.Digest: "bundle index"}}
	f.c.Artifacts = []ocispec.Descriptor{
		f.referrer(index, ArtifactTypeCosignSignature, MediaTypeCosignSimpleSigning, f.payload, f.sigAnn),
		f.referrer(index, ArtifactTypeSigstoreBundle, ArtifactTypeSigstoreBundle, bundleJSON, nil),
	}
	return f
}

// referrer stores a one-layer referrer of subject and returns its
// index.json entry.
func (f *keylessFixture) referrer(subject ocispec.Descriptor, artifactType, layerType string, layer []byte, ann map[string]string) ocispec.Descriptor {
	l := f.st.put(layer)
	l.MediaType, l.Annotations = layerType, maps.Clone(ann)
	cfg := f.st.put([]byte("{}"))
	cfg.MediaType = ocispec.MediaTypeEmptyJSON
	sub := subject
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType, Config: cfg, Layers: []ocispec.Descriptor{l}, Subject: &sub})
	a := f.st.put(m)
	a.MediaType = ocispec.MediaTypeImageManifest
	a.Annotations = map[string]string{layout.AnnotationRole: roleFor(artifactType, nil), layout.AnnotationSubject: subject.Digest.String(), AnnotationVia: ViaReferrers}
	return a
}

// replaceSignature swaps the legacy signature's layer annotations.
func (f *keylessFixture) replaceSignature(ann map[string]string) {
	f.c.Artifacts[0] = f.referrer(f.c.Index, ArtifactTypeCosignSignature, MediaTypeCosignSimpleSigning, f.payload, ann)
}

// TestKeyless verifies keyless signatures and attestations offline
// against a trusted root, with the signer's identity as the policy, and
// refuses each way they can be wrong.
func TestKeyless(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newKeylessFixture(t)
	id := Identity{Subject: testIdentity, Issuer: testIssuer}

	rep, err := Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), WithIdentity(id), WithRequireSignatures(true))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Signed || len(rep.Artifacts) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, a := range rep.Artifacts {
		if !a.Verified || a.Signer == nil || a.Signer.Identity != testIdentity || a.Signer.Issuer != testIssuer || a.Signer.LogIndex == nil || len(a.Signer.Timestamps) == 0 {
			t.Errorf("%s %s: %+v signer %+v", a.Format, a.Digest, a, a.Signer)
		}
	}
	// The legacy signature's log entry has a signed entry timestamp, so its
	// integrated time is verified.
	byType := map[string]ArtifactReport{}
	for _, a := range rep.Artifacts {
		byType[a.ArtifactType] = a
	}
	if a := byType[ArtifactTypeCosignSignature]; a.Format != "cosign" || a.Signer == nil || a.Signer.IntegratedTime.IsZero() {
		t.Errorf("legacy signature reported as %s, signer %+v", a.Format, a.Signer)
	}
	if a := byType[ArtifactTypeSigstoreBundle]; a.Format != "cosign-attestation" || a.PredicateType != "https://slsa.dev/provenance/v1" {
		t.Errorf("attestation reported as %s %q", a.Format, a.PredicateType)
	}
	// A regular expression identity, as cosign's --certificate-identity-regexp.
	if _, err := Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), WithIdentity(Identity{SubjectRegexp: `^https://github\.com/acme/`, Issuer: testIssuer})); err != nil {
		t.Fatalf("identity regexp: %v", err)
	}

	// Without an identity the signatures verify but do not count.
	rep, err = Verify(ctx, f.st, f.c, WithTrustedRoot(f.root))
	if err != nil || rep.Signed {
		t.Fatalf("no identity: %v %+v", err, rep)
	}
	for _, a := range rep.Artifacts {
		if a.Verified || a.Signer == nil || a.Signer.Identity != testIdentity || !strings.Contains(a.Note, "signer is not checked") {
			t.Fatalf("no identity: %+v", a)
		}
	}
	if _, err := Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), WithRequireSignatures(true)); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("required, no identity: %v", err)
	}

	refused := []struct {
		name string
		opts func(f *keylessFixture) []Option
		edit func(f *keylessFixture)
		want error
		msg  string
	}{
		{"wrong identity", func(f *keylessFixture) []Option {
			return []Option{WithTrustedRoot(f.root), WithIdentity(Identity{Subject: "https://github.com/evil/shop/.github/workflows/release.yml@refs/tags/v2.3.0", Issuer: testIssuer})}
		}, nil, ErrSignature, "certificate"},
		{"wrong issuer", func(f *keylessFixture) []Option {
			return []Option{WithTrustedRoot(f.root), WithIdentity(Identity{Subject: testIdentity, Issuer: "https://accounts.google.com"})}
		}, nil, ErrSignature, "issuer"},
		{"no trusted root", func(*keylessFixture) []Option { return []Option{WithIdentity(id)} }, nil, ErrSignature, "no Sigstore trusted root"},
		{"CT log without SCT", func(f *keylessFixture) []Option { return []Option{WithTrustedRoot(f.rootCT), WithIdentity(id)} }, nil, ErrSignature, "SCT"},
		{"logged outside the certificate's validity", nil, func(f *keylessFixture) {
			// The log (valid from an hour ago) took it half an hour before
			// the certificate (valid from now for ten minutes) began.
			ss, _ := testsigstore.New()
			root, _ := ss.TrustedRoot(false)
			f.root = root
			f.c.Artifacts = f.c.Artifacts[:1]
			ann, err := ss.Legacy(testIdentity, testIssuer, f.payload, time.Now().Add(-30*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			f.replaceSignature(ann)
		}, ErrSignature, "certificate"},
		{"forged inclusion promise", nil, func(f *keylessFixture) {
			ann := maps.Clone(f.sigAnn)
			var rb map[string]any
			_ = json.Unmarshal([]byte(ann[AnnotationCosignBundle]), &rb)
			rb["Payload"].(map[string]any)["logIndex"] = 4242
			b, _ := json.Marshal(rb)
			ann[AnnotationCosignBundle] = string(b)
			f.replaceSignature(ann)
		}, ErrSignature, "log"},
		{"no log entry", nil, func(f *keylessFixture) {
			ann := maps.Clone(f.sigAnn)
			delete(ann, AnnotationCosignBundle)
			f.replaceSignature(ann)
		}, ErrSignature, "transparency log"},
		{"tampered payload", nil, func(f *keylessFixture) {
			f.payload = []byte(strings.Replace(string(f.payload), `"optional":null`, `"optional":{"x":"y"}`, 1))
			f.replaceSignature(f.sigAnn)
		}, ErrSignature, "signature"},
		{"attestation about another image", nil, func(f *keylessFixture) {
			ss, _ := testsigstore.New()
			root, _ := ss.TrustedRoot(false)
			f.root = root
			ann, _ := ss.Legacy(testIdentity, testIssuer, f.payload, time.Now().Add(5*time.Minute))
			f.replaceSignature(ann)
			other := strings.Replace(string(f.stmt), f.c.Index.Digest.Encoded(), digest.FromString("other").Encoded(), 1)
			b, _ := ss.Bundle(testIdentity, testIssuer, []byte(other))
			f.c.Artifacts[1] = f.referrer(f.c.Index, ArtifactTypeSigstoreBundle, ArtifactTypeSigstoreBundle, b, nil)
		}, ErrBinding, "statement is about"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			g := newKeylessFixture(t)
			if tc.edit != nil {
				tc.edit(g)
			}
			opts := []Option{WithTrustedRoot(g.root), WithIdentity(id)}
			if tc.opts != nil {
				opts = tc.opts(g)
			}
			_, err := Verify(ctx, g.st, g.c, opts...)
			t.Log(err)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v naming %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestIdentityUsage(t *testing.T) {
	t.Parallel()
	for _, id := range []Identity{
		{Subject: "a"},
		{Subject: "a", SubjectRegexp: "b", Issuer: "i"},
		{SubjectRegexp: "(", Issuer: "i"},
		{Subject: "a", IssuerRegexp: "["},
	} {
		if _, err := makeOptions(WithIdentity(id)); err == nil {
			t.Errorf("%+v accepted", id)
		}
	}
	if _, err := makeOptions(WithTrustedRoot([]byte(`{"mediaType":"x"}`))); err == nil {
		t.Error("a trusted root of another media type was accepted")
	}
}

// withTUF fetches f's trusted root through a TUF repository on loopback
// (one root rotation) and carries it as the archive would.
func (f *keylessFixture) withTUF(t *testing.T, expires time.Duration) *testsigstore.TUF {
	t.Helper()
	repo, err := testsigstore.NewTUF(f.root, expires)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = repo.Close() })
	if err := repo.RotateRoot(); err != nil {
		t.Fatal(err)
	}
	col, err := CollectSigstoreTrust(context.Background(), SigstoreRequest{URL: repo.URL, Root: repo.Root(), Subjects: []ocispec.Descriptor{f.c.Index}})
	if err != nil {
		t.Fatal(err)
	}
	if col.Sigstore == nil || col.Sigstore.Source != "tuf" || len(col.Roots) != 1 || !col.Sigstore.ValidAtExport {
		t.Fatalf("collected %+v", col.Sigstore)
	}
	for _, b := range col.Blobs {
		f.st[b.Digest] = b.Data
	}
	f.c.Artifacts = append(f.c.Artifacts, col.Roots[0])
	return repo
}

// m0Layers returns the layers of f's trust artifact (the last one).
func m0Layers(t *testing.T, f *keylessFixture) []ocispec.Descriptor {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(f.st[f.c.Artifacts[len(f.c.Artifacts)-1].Digest], &m); err != nil {
		t.Fatal(err)
	}
	return m.Layers
}

// TestSigstoreTUF carries the trusted root with its TUF chain and checks it
// offline against the pinned TUF root: the chain, expiry (now, or at export
// with --allow-expired), rollback against the trust state, and a trusted
// root that is not the signed target.
func TestSigstoreTUF(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	id := WithIdentity(Identity{Subject: testIdentity, Issuer: testIssuer})

	f := newKeylessFixture(t)
	repo := f.withTUF(t, 24*time.Hour)
	rep, err := Verify(ctx, f.st, f.c, WithSigstoreTUFRoot(repo.Root()), id, WithRequireSignatures(true))
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Sigstore
	if s == nil || s.Anchor != "pin" || !s.Used || s.Source != "tuf" || s.URL != repo.URL || len(s.Roles) != 4 || s.Roles[0].Name != "root" || s.Roles[0].Version != 2 {
		t.Fatalf("sigstore trust: %+v", s)
	}

	// The same archive, and the operator's own trusted root: that one is used.
	if rep, err := Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), id); err != nil || rep.Sigstore.Anchor != "operator" || rep.Sigstore.Used {
		t.Fatalf("operator's root: %v %+v", err, rep.Sigstore)
	}
	// No pin for a repository other than public-good: not used, so keyless
	// signatures cannot verify.
	if _, err := Verify(ctx, f.st, f.c, id); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "no Sigstore trusted root") {
		t.Fatalf("unpinned: %v", err)
	}
	// Pinned to another repository's root.
	other, err := testsigstore.NewTUF(f.root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_ = other.Close()
	if _, err := Verify(ctx, f.st, f.c, WithSigstoreTUFRoot(other.Root()), id); !errors.Is(err, ErrTrustData) {
		t.Fatalf("another pinned root: %v", err)
	}
	// Expired by the time of the import, unless --allow-expired.
	later := WithClock(func() time.Time { return time.Now().Add(48 * time.Hour) })
	if _, err := Verify(ctx, f.st, f.c, WithSigstoreTUFRoot(repo.Root()), id, later); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	// (The keyless certificate is checked at its logged time, not now.)
	if rep, err := Verify(ctx, f.st, f.c, WithSigstoreTUFRoot(repo.Root()), id, later, WithAllowExpired(true)); err != nil || len(rep.Warnings) == 0 || !strings.Contains(strings.Join(rep.Warnings, "\n"), "accepted expired") {
		t.Fatalf("expired, allowed: %v %+v", err, rep)
	}
	// Rollback: the trust state remembers a newer timestamp.
	pinned := digest.FromBytes(repo.Root()).String()
	if rep.Sigstore.PinnedRoot != pinned {
		t.Fatalf("pinned root reported as %q, want %s", rep.Sigstore.PinnedRoot, pinned)
	}
	state := &TrustState{Version: 1, GUNs: map[string]*GUNState{}, TUF: map[string]*GUNState{pinned: {Roles: map[string]int{"timestamp": 7}}}}
	if _, err := Verify(ctx, f.st, f.c, WithSigstoreTUFRoot(repo.Root()), id, WithTrustState(state)); !errors.Is(err, ErrRollback) {
		t.Fatalf("rollback: %v", err)
	}
	// The URL the archive names is not signed: another spelling of it (a
	// trailing slash) does not escape the state.
	renamed := newKeylessFixture(t)
	rrepo := renamed.withTUF(t, 24*time.Hour)
	rlast := len(renamed.c.Artifacts) - 1
	var rm ocispec.Manifest
	if err := json.Unmarshal(renamed.st[renamed.c.Artifacts[rlast].Digest], &rm); err != nil {
		t.Fatal(err)
	}
	rm.Annotations[AnnotationTUFURL] += "/"
	rraw, _ := json.Marshal(rm)
	rd := renamed.st.put(rraw)
	renamed.c.Artifacts[rlast].Digest, renamed.c.Artifacts[rlast].Size = rd.Digest, rd.Size
	rstate := &TrustState{Version: 1, GUNs: map[string]*GUNState{}, TUF: map[string]*GUNState{digest.FromBytes(rrepo.Root()).String(): {Roles: map[string]int{"timestamp": 7}}}}
	if _, err := Verify(ctx, renamed.st, renamed.c, WithSigstoreTUFRoot(rrepo.Root()), id, WithTrustState(rstate)); !errors.Is(err, ErrRollback) {
		t.Fatalf("rollback with the URL spelled otherwise: %v", err)
	}
	// Recording raises the state to what was accepted.
	state = &TrustState{Version: 1, GUNs: map[string]*GUNState{}}
	state.Record(rep, time.Unix(0, 0))
	if got := state.TUF[pinned]; got == nil || got.Roles["root"] != 2 || got.Roles["timestamp"] != 1 {
		t.Fatalf("recorded %+v", got)
	}

	// A carried trusted root that is not the target the TUF metadata signs.
	g := newKeylessFixture(t)
	grepo := g.withTUF(t, time.Hour)
	last := len(g.c.Artifacts) - 1
	var m ocispec.Manifest
	if err := json.Unmarshal(g.st[g.c.Artifacts[last].Digest], &m); err != nil {
		t.Fatal(err)
	}
	forged := g.st.put(f.root)
	forged.MediaType, forged.Annotations = m.Layers[0].MediaType, m.Layers[0].Annotations
	m.Layers[0] = forged
	raw, _ := json.Marshal(m)
	d := g.st.put(raw)
	g.c.Artifacts[last].Digest, g.c.Artifacts[last].Size = d.Digest, d.Size
	if _, err := Verify(ctx, g.st, g.c, WithSigstoreTUFRoot(grepo.Root()), id); !errors.Is(err, ErrTrustData) || !strings.Contains(err.Error(), "not the trusted_root.json target") {
		t.Fatalf("forged trusted root: %v", err)
	}

	// Several subjects (the bundles of one archive): one fetch, one
	// artifact about each, every layer blob shared.
	two, err := CollectSigstoreTrust(ctx, SigstoreRequest{URL: repo.URL, Root: repo.Root(),
		Subjects: []ocispec.Descriptor{f.c.Index, {MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("another bundle"), Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(two.Roots) != 2 || two.Roots[0].Annotations[layout.AnnotationSubject] == two.Roots[1].Annotations[layout.AnnotationSubject] {
		t.Fatalf("two subjects: roots %+v", two.Roots)
	}
	unique := map[digest.Digest]bool{}
	for _, l := range m0Layers(t, f) {
		unique[l.Digest] = true
	}
	if want := len(unique) + 1 + 2; len(two.Blobs) != want { // layers and config once, two manifests
		t.Fatalf("two subjects: %d blobs, want %d", len(two.Blobs), want)
	}

	// A carried TUF file missing (timestamp.json left out): the data's
	// fault, not a download that failed.
	h := newKeylessFixture(t)
	hrepo := h.withTUF(t, time.Hour)
	last = len(h.c.Artifacts) - 1
	m = ocispec.Manifest{}
	if err := json.Unmarshal(h.st[h.c.Artifacts[last].Digest], &m); err != nil {
		t.Fatal(err)
	}
	m.Layers = slices.DeleteFunc(m.Layers, func(l ocispec.Descriptor) bool { return l.Annotations[AnnotationTUFPath] == "timestamp.json" })
	raw, _ = json.Marshal(m)
	d = h.st.put(raw)
	h.c.Artifacts[last].Digest, h.c.Artifacts[last].Size = d.Digest, d.Size
	if _, err := Verify(ctx, h.st, h.c, WithSigstoreTUFRoot(hrepo.Root()), id); !errors.Is(err, ErrTrustData) {
		t.Fatalf("timestamp.json not carried: %v", err)
	}
}

// TestPolicy evaluates ClusterImagePolicy documents against the keyless
// fixture: a keyless authority with a required predicate type, a missing
// predicate type, a wrong signer, a glob that does not match, and the
// documents that are refused.
func TestPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newKeylessFixture(t)
	f.c.Subjects = []PolicySubject{{Reference: "registry.example.com/shop/bundle:2.3.0", Digest: f.c.Index.Digest}}
	doc := func(glob, subject, predicate string) []*Policy {
		t.Helper()
		ps, err := ParsePolicy([]byte(`apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: shop
spec:
  images:
  - glob: "`+glob+`"
  authorities:
  - name: release
    keyless:
      identities:
      - issuer: `+testIssuer+`
        subjectRegExp: "`+subject+`"
    attestations:
    - name: provenance
      predicateType: `+predicate+`
`), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	rep, err := Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), WithPolicy(doc("registry.example.com/shop/**", "^https://github.com/acme/", "slsaprovenance1")...))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Policy) != 1 || len(rep.Policy[0].Violations) != 0 || rep.Policy[0].Satisfied[0] != "shop/release" {
		t.Fatalf("policy result %+v", rep.Policy)
	}
	_, err = Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), WithPolicy(doc("registry.example.com/shop/*", "^https://github.com/acme/", "spdxjson")...))
	if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "no verified attestation https://spdx.dev/Document") {
		t.Fatalf("missing predicate type: %v", err)
	}
	_, err = Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), WithPolicy(doc("registry.example.com/**", "^https://github.com/evil/", "slsaprovenance1")...))
	if !errors.Is(err, ErrPolicy) || !errors.Is(err, errdefs.ErrVerification) {
		t.Fatalf("wrong signer: %v", err)
	}
	rep, err = Verify(ctx, f.st, f.c, WithTrustedRoot(f.root), WithPolicy(doc("other.example.com/**", "^https://github.com/evil/", "spdx")...))
	if err != nil || len(rep.Policy) != 0 {
		t.Fatalf("a policy that matches nothing: %v %+v", err, rep.Policy)
	}

	for _, bad := range []string{
		"kind: ImagePolicy\nspec: {images: [{glob: x}], authorities: [{keyless: {identities: [{issuer: i, subject: s}]}}]}",
		"spec: {images: [{glob: x}], authorities: [{keyless: {identities: [{issuer: i, subject: s}]}, key: {data: x}}]}",
		"spec: {images: [{glob: x}], authorities: [{keyless: {identities: [{issuer: i, subject: s}]}, attestations: [{name: p, predicateType: x, policy: {type: cue}}]}]}",
		"spec: {images: [{glob: x}], authorities: [{keyless: {url: https://fulcio.example, identities: [{issuer: i, subject: s}]}}]}",
		"spec: {images: [], authorities: []}",
		"spec: {images: [{glob: x}], authorities: [{key: {path: missing.pub}}]}",
		"",
	} {
		if _, err := ParsePolicy([]byte(bad), t.TempDir()); !errors.Is(err, errdefs.ErrUsage) {
			t.Errorf("policy %q: %v", bad, err)
		}
	}
}

// Collection.Keyless counts the keyless signatures and attestations a
// collection holds (export warns when they travel without trust material):
// the legacy signature with its certificate and the Sigstore bundle.
func TestCollectionKeyless(t *testing.T) {
	t.Parallel()
	f := newKeylessFixture(t)
	col := &Collection{Roots: f.c.Artifacts}
	for d, b := range f.st {
		col.Blobs = append(col.Blobs, Blob{Digest: d, Size: int64(len(b)), Data: b})
	}
	if n := col.Keyless(); n != 2 {
		t.Fatalf("Keyless() = %d, want 2", n)
	}
	col.Roots = col.Roots[:0]
	if n := col.Keyless(); n != 0 {
		t.Fatalf("Keyless() of nothing = %d", n)
	}
}
