package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnabio/cnab-to-oci/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func startRegistry(t *testing.T, opts ...RegistryOption) *Registry {
	t.Helper()
	r, err := StartRegistry(context.Background(), opts...)
	if err != nil {
		t.Fatalf("StartRegistry: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkSampleBundle pushes the sample bundle into reg, pulls it back with
// cnab-to-oci and checks what is stored.
func checkSampleBundle(t *testing.T, reg *Registry) *PushedBundle {
	t.Helper()
	ctx := testContext(t)
	reg.ResetCounts()
	pb, err := SampleBundle(ctx, reg, SampleOptions{})
	if err != nil {
		t.Fatalf("SampleBundle: %v", err)
	}
	c := reg.Counts()
	t.Logf("counts after SampleBundle: %+v", c)
	if c.BlobUploadsCompleted == 0 || c.BlobUploadStarts == 0 || c.ManifestPuts == 0 {
		t.Errorf("push not counted: %+v", c)
	}
	// Distinct layer bytes: base 1 MiB + installer + 2×web + 2×db + worker.
	if min := DefaultSampleBaseLayerSize + 6*DefaultSampleLayerSize; c.BlobUploadBytes < min {
		t.Errorf("BlobUploadBytes = %d, want >= %d", c.BlobUploadBytes, min)
	}

	if want := reg.Ref("bundles/sample-app:0.1.0"); pb.Ref != want {
		t.Errorf("Ref = %q, want %q", pb.Ref, want)
	}
	if pb.Bundle.Name != "sample-app" || pb.Bundle.Version != "0.1.0" || pb.Bundle.SchemaVersion != "v1.2.0" {
		t.Errorf("unexpected bundle metadata: %s %s %s", pb.Bundle.Name, pb.Bundle.Version, pb.Bundle.SchemaVersion)
	}
	if pb.BundleJSONDigest != digest.FromBytes(pb.BundleJSON) {
		t.Errorf("BundleJSONDigest mismatch")
	}
	if canon, err := pb.Bundle.Marshal(); err != nil || !bytes.Equal(canon, pb.BundleJSON) {
		t.Errorf("stored bundle.json is not the canonical form of the bundle (err %v)", err)
	}
	if len(pb.Images) != 4 {
		t.Fatalf("Images = %+v", pb.Images)
	}
	wantMT := map[string]string{
		Invocation: ocispec.MediaTypeImageManifest,
		"web":      ocispec.MediaTypeImageIndex,
		"db":       string(types.DockerManifestSchema2),
		"worker":   ocispec.MediaTypeImageManifest,
	}
	for _, im := range pb.Images {
		if im.MediaType != wantMT[im.Name] {
			t.Errorf("%s: media type %q, want %q", im.Name, im.MediaType, wantMT[im.Name])
		}
		if im.ContentDigest != im.IndexDigest || im.ContentDigest == "" {
			t.Errorf("%s: contentDigest %s, index digest %s", im.Name, im.ContentDigest, im.IndexDigest)
		}
		if !strings.HasPrefix(im.Image, reg.Host+"/") || !strings.Contains(im.Image, ":") {
			t.Errorf("%s: image %q is not a tag reference on the registry", im.Name, im.Image)
		}
		// The source image is unchanged and matches bundle.json.
		d, err := reg.Describe(ctx, im.Image)
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != im.ContentDigest || uint64(d.Size) != im.Size {
			t.Errorf("%s: registry says %s/%d, bundle says %s/%d", im.Name, d.Digest, d.Size, im.ContentDigest, im.Size)
		}
		// cnab-to-oci copied it into the bundle repository.
		rd, err := reg.Describe(ctx, im.Relocated)
		if err != nil {
			t.Fatalf("%s: relocated copy: %v", im.Name, err)
		}
		if rd.Digest != im.ContentDigest {
			t.Errorf("%s: relocated digest %s", im.Name, rd.Digest)
		}
	}

	// Pull it back the way users do.
	named, err := reference.ParseNormalizedNamed(pb.Ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, reloc, dgst, err := remotes.Pull(ctx, named, NewResolver(reg))
	if err != nil {
		t.Fatalf("remotes.Pull: %v", err)
	}
	if dgst != pb.Digest {
		t.Errorf("pulled digest %s, pushed %s", dgst, pb.Digest)
	}
	if b, _ := pulled.Marshal(); !bytes.Equal(b, pb.BundleJSON) {
		t.Errorf("pulled bundle differs:\n%s\n%s", b, pb.BundleJSON)
	}
	if len(reloc) != 4 {
		t.Errorf("relocation map %v", reloc)
	}
	for img, dst := range pb.RelocationMap {
		if got := reloc[img]; got != dst && reg.Ref(got) != dst {
			t.Errorf("relocation of %s: pulled %s, pushed %s", img, got, dst)
		}
	}

	repos, err := reg.Repositories(ctx)
	if err != nil {
		t.Fatalf("Repositories: %v", err)
	}
	for _, want := range []string{"bundles/sample-app", "library/web", "library/db", "library/worker", "cnab/sample-app-installer"} {
		if !slices.Contains(repos, want) {
			t.Errorf("catalog %v lacks %s", repos, want)
		}
	}
	tags, err := reg.Tags(ctx, "bundles/sample-app")
	if err != nil || !slices.Contains(tags, "0.1.0") {
		t.Errorf("Tags = %v, %v", tags, err)
	}
	return pb
}

func TestPlainRegistrySampleBundle(t *testing.T) {
	reg := startRegistry(t)
	if !strings.HasPrefix(reg.Host, "127.0.0.1:") || reg.URL() != "http://"+reg.Host {
		t.Fatalf("Host %q URL %q", reg.Host, reg.URL())
	}
	pb := checkSampleBundle(t, reg)

	t.Logf("bundle index %s (%s), config manifest %s, config media type %s",
		pb.Digest, pb.IndexMediaType, pb.ConfigManifestMediaType, pb.ConfigMediaType)
	if pb.IndexMediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index media type %s", pb.IndexMediaType)
	}

	// The same seed gives the same image digests in another registry.
	other := startRegistry(t)
	pb2, err := SampleBundle(testContext(t), other, SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pb.Images {
		if pb.Images[i].ContentDigest != pb2.Images[i].ContentDigest {
			t.Errorf("%s: digest %s vs %s", pb.Images[i].Name, pb.Images[i].ContentDigest, pb2.Images[i].ContentDigest)
		}
	}

	// Index structure: web is a 2-platform index whose children share a
	// layer with each other, the invocation image and worker.
	ctx := testContext(t)
	web, _ := pb.Image("web")
	wref, _ := reg.Reference(web.Relocated)
	idx, err := remote.Index(wref, append(reg.RemoteOptions(), remote.WithContext(ctx))...)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("web index: %+v", im.Manifests)
	}
	layerSets := map[string][]v1.Hash{}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layerSets[d.Platform.Architecture] = manifestLayers(t, img)
	}
	for _, n := range []string{Invocation, "worker"} {
		bi, _ := pb.Image(n)
		r, _ := reg.Reference(bi.Relocated)
		img, err := remote.Image(r, append(reg.RemoteOptions(), remote.WithContext(ctx))...)
		if err != nil {
			t.Fatal(err)
		}
		layerSets[n] = manifestLayers(t, img)
	}
	for k, ls := range layerSets {
		if len(ls) != 2 || ls[0] != layerSets["amd64"][0] {
			t.Errorf("%s does not share the base layer: %v", k, ls)
		}
		if k != "amd64" && ls[1] == layerSets["amd64"][1] {
			t.Errorf("%s top layer equals amd64's", k)
		}
	}
}

func manifestLayers(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// checkRefused checks that anonymous and wrong-password requests to reg are
// refused.
func checkRefused(t *testing.T, reg *Registry) {
	t.Helper()
	ctx := testContext(t)
	for _, path := range []string{"/v2/", "/v2/_catalog", "/v2/bundles/sample-app/tags/list"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, reg.URL()+path, nil)
		resp, err := reg.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %s", path, resp.Status)
		}
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("anonymous GET %s: no challenge", path)
		}
	}
	wrongAuth := &authn.Basic{Username: reg.Username, Password: "not-the-password"}
	regName, _ := name.NewRegistry(reg.Host, reg.NameOptions()...)
	if _, err := remote.Catalog(ctx, regName, remote.WithTransport(reg.Transport()), remote.WithAuth(wrongAuth)); err == nil {
		t.Errorf("catalog with a wrong password succeeded")
	}
	client := reg.Client()
	wrongResolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(
		docker.WithClient(client),
		docker.WithPlainHTTP(func(string) (bool, error) { return !reg.TLS, nil }),
		docker.WithAuthorizer(docker.NewDockerAuthorizer(
			docker.WithAuthClient(client),
			docker.WithAuthCreds(func(string) (string, string, error) { return wrongAuth.Username, wrongAuth.Password, nil }),
		)),
	)})
	if _, _, _, err := remotes.Pull(ctx, mustNamed(t, reg.Ref("bundles/sample-app:0.1.0")), wrongResolver); err == nil {
		t.Errorf("cnab-to-oci pull with a wrong password succeeded")
	}
	// Without credentials at all.
	if _, _, _, err := remotes.Pull(ctx, mustNamed(t, reg.Ref("bundles/sample-app:0.1.0")), docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithClient(client), docker.WithPlainHTTP(func(string) (bool, error) { return !reg.TLS, nil })),
	})); err == nil {
		t.Errorf("anonymous cnab-to-oci pull succeeded")
	}
}

func mustNamed(t *testing.T, s string) reference.Named {
	t.Helper()
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTLSBasicAuthRegistry(t *testing.T) {
	reg := startRegistry(t, WithTLS(), WithBasicAuth("alice", "s3cret"))
	if reg.URL() != "https://"+reg.Host || reg.CAFile == "" || len(reg.CACertPEM) == 0 || reg.CertPool == nil {
		t.Fatalf("TLS fields not set: %+v", reg)
	}
	checkSampleBundle(t, reg)
	checkRefused(t, reg)

	// Plain HTTP to the TLS port does not work.
	resp, err := http.Get("http://" + reg.Host + "/v2/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP accepted by TLS registry")
		}
	}
	// A client that does not trust the CA is refused.
	if _, err := http.Get(reg.URL() + "/v2/"); err == nil {
		t.Errorf("TLS registry accepted by a client without its CA")
	}
}

func TestTokenAuthRegistry(t *testing.T) {
	reg := startRegistry(t, WithTokenAuth("bob", "hunter2"))
	if reg.TokenRealm == "" || reg.Auth != AuthToken {
		t.Fatalf("token fields not set")
	}
	checkSampleBundle(t, reg)
	if c := reg.Counts(); c.TokensIssued == 0 {
		t.Errorf("no token issued: %+v", c)
	}
	checkRefused(t, reg)

	// The token server refuses wrong credentials.
	req, _ := http.NewRequest(http.MethodGet, reg.TokenRealm+"?service="+url.QueryEscape(reg.TokenService)+"&scope=registry:catalog:*", nil)
	req.SetBasicAuth("bob", "wrong")
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token with wrong password: %s", resp.Status)
	}
	// A token for one repository does not open another.
	req.SetBasicAuth("bob", "hunter2")
	req.URL.RawQuery = url.Values{"service": {reg.TokenService}, "scope": {"repository:library/db:pull"}}.Encode()
	resp, err = reg.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	for path, want := range map[string]int{"/v2/library/db/tags/list": 200, "/v2/library/web/tags/list": 401} {
		req, _ := http.NewRequest(http.MethodGet, reg.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := reg.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s with a library/db token: %s, want %d", path, resp.Status, want)
		}
	}
}

func TestTLSTokenAuthRegistry(t *testing.T) {
	reg := startRegistry(t, WithTLS(), WithTokenAuth("carol", "pw"))
	if !strings.HasPrefix(reg.TokenRealm, "https://127.0.0.1:") {
		t.Fatalf("token realm %q", reg.TokenRealm)
	}
	checkSampleBundle(t, reg)
	checkRefused(t, reg)
}

func TestWrongDigestBundle(t *testing.T) {
	reg := startRegistry(t)
	ctx := testContext(t)
	pb, err := SampleBundle(ctx, reg, SampleOptions{WrongDigestImage: "db"})
	if err != nil {
		t.Fatalf("SampleBundle: %v", err)
	}
	db, _ := pb.Image("db")
	if db.ContentDigest != WrongDigest || db.IndexDigest == WrongDigest {
		t.Fatalf("db: %+v", db)
	}
	actual, err := reg.Describe(ctx, db.Image)
	if err != nil || actual.Digest != db.IndexDigest {
		t.Fatalf("db index digest %s, registry %v %v", db.IndexDigest, actual, err)
	}
	for _, im := range pb.Images {
		if im.Name != "db" && im.ContentDigest != im.IndexDigest {
			t.Errorf("%s tampered too", im.Name)
		}
	}
	// cnab-to-oci still pulls it: the bundle's claim is wrong, not its form.
	pulled, _, dgst, err := remotes.Pull(ctx, mustNamed(t, pb.Ref), NewResolver(reg))
	if err != nil {
		t.Fatalf("remotes.Pull: %v", err)
	}
	if dgst != pb.Digest || pulled.Images["db"].Digest != WrongDigest.String() {
		t.Errorf("pulled %s with db digest %s", dgst, pulled.Images["db"].Digest)
	}
	// The valid bundle is kept alongside.
	valid, err := ReadBundle(ctx, reg, "bundles/sample-app:0.1.0-valid")
	if err != nil {
		t.Fatal(err)
	}
	if vdb, _ := valid.Image("db"); vdb.ContentDigest != db.IndexDigest {
		t.Errorf("valid bundle db digest %s", vdb.ContentDigest)
	}
	// The bundle-file variant.
	b, err := BundleJSONWithWrongDigest(valid.BundleJSON, Invocation)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(WrongDigest.String())) || bytes.Contains(valid.BundleJSON, []byte(WrongDigest.String())) {
		t.Errorf("BundleJSONWithWrongDigest did not change the invocation digest")
	}
	if _, err := BundleJSONWithWrongDigest(valid.BundleJSON, "nope"); err == nil {
		t.Errorf("unknown image accepted")
	}
}

func TestLayerDeterministicAndStreamed(t *testing.T) {
	const size = 3<<20 + 17
	l1, err := NewLayer(42, "x", size, FormatOCI)
	if err != nil {
		t.Fatal(err)
	}
	sumCache.Clear() // force a second full computation
	l2, _ := NewLayer(42, "x", size, FormatOCI)
	l3, _ := NewLayer(42, "y", size, FormatOCI)
	l4, _ := NewLayer(43, "x", size, FormatOCI)
	d1, _ := l1.Digest()
	d2, _ := l2.Digest()
	d3, _ := l3.Digest()
	d4, _ := l4.Digest()
	if d1 != d2 || d1 == d3 || d1 == d4 {
		t.Fatalf("digests %v %v %v %v", d1, d2, d3, d4)
	}
	rc, _ := l1.Compressed()
	h, n, err := v1.SHA256(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := l1.Size(); h != d1 || n != s {
		t.Errorf("stream %v/%d, layer says %v/%d", h, n, d1, s)
	}
	if s, _ := l1.Size(); s < size {
		t.Errorf("compressed size %d < content size: content is compressible?", s)
	}
	rc, _ = l1.Uncompressed()
	h, _, _ = v1.SHA256(rc)
	rc.Close()
	if diff, _ := l1.DiffID(); h != diff {
		t.Errorf("diffID %v, stream %v", diff, h)
	}
	// Closing early does not leak or block.
	rc, _ = l1.Compressed()
	_, _ = io.CopyN(io.Discard, rc, 10)
	rc.Close()

	mt, _ := l1.MediaType()
	dl, _ := NewLayer(42, "x", size, FormatDocker)
	dmt, _ := dl.MediaType()
	if mt != types.OCILayer || dmt != types.DockerLayer {
		t.Errorf("media types %s %s", mt, dmt)
	}
}

func TestMiddlewareAndHook(t *testing.T) {
	var hooked, rejected atomic.Int64
	reg := startRegistry(t,
		WithRequestHook(func(*http.Request) { hooked.Add(1) }),
		WithMiddleware(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/v2/blocked/") {
					rejected.Add(1)
					http.Error(w, "injected fault", http.StatusServiceUnavailable)
					return
				}
				next.ServeHTTP(w, r)
			})
		}))
	ctx := testContext(t)
	img, err := NewImage(ImageSpec{Name: "tiny", Layers: []LayerSpec{{Label: "a", Size: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.PushImage(ctx, "open/img:1", img); err != nil {
		t.Fatal(err)
	}
	c := reg.Counts()
	if c.BlobUploadsCompleted != 2 || c.ManifestPuts != 1 { // layer + config
		t.Errorf("counts %+v", c)
	}
	reg.ResetCounts()
	if c := reg.Counts(); c != (Counts{}) {
		t.Errorf("ResetCounts left %+v", c)
	}
	// Fail fast: no retries on the injected 503.
	opts := append(reg.RemoteOptions(), remote.WithContext(ctx), remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	ref, _ := reg.Reference("blocked/img:1")
	if err := remote.Write(ref, img, opts...); err == nil {
		t.Errorf("push through the fault injector succeeded")
	}
	if rejected.Load() == 0 || hooked.Load() == 0 {
		t.Errorf("middleware %d, hook %d", rejected.Load(), hooked.Load())
	}
	if c := reg.Counts(); c.BlobUploadStarts != 0 {
		t.Errorf("rejected requests counted: %+v", c)
	}
}

func TestDockerConfigAndClose(t *testing.T) {
	reg, err := StartRegistry(context.Background(), WithBasicAuth("u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, err := reg.WriteDockerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string }
	}
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Auths[reg.Host].Auth != "dTpw" {
		t.Errorf("docker config %s: %v", b, err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := http.Get(reg.URL() + "/v2/"); err == nil {
		t.Errorf("registry still serving after Close")
	}
	if lookupRegistry(reg.Host) != nil {
		t.Errorf("closed registry still registered")
	}
}

func TestInMemoryStorage(t *testing.T) {
	reg := startRegistry(t, WithInMemoryStorage())
	ctx := testContext(t)
	img, err := NewImage(ImageSpec{Name: "mem", Format: FormatDocker, Layers: []LayerSpec{{Label: "a", Size: 64 << 10}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := reg.PushImage(ctx, "mem/img:1", img)
	if err != nil {
		t.Fatal(err)
	}
	if p.MediaType != string(types.DockerManifestSchema2) || p.Ref != reg.Host+"/mem/img:1" {
		t.Errorf("pushed %+v", p)
	}
	if want, _ := img.Digest(); p.Digest.String() != want.String() {
		t.Errorf("digest %s, want %s", p.Digest, want)
	}
}

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogging(t *testing.T) {
	var logs syncBuffer
	quiet := startRegistry(t)
	loud := startRegistry(t, WithLogging(&logs))
	for _, r := range []*Registry{quiet, loud} {
		resp, err := r.Client().Get(r.URL() + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if !strings.Contains(logs.String(), "response completed") {
		t.Errorf("no registry log captured: %q", logs.String())
	}
	if err := loud.Close(); err != nil {
		t.Fatal(err)
	}
	n := len(logs.String())
	resp, err := quiet.Client().Get(quiet.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(logs.String()) != n {
		t.Errorf("logs still written after the logging registry closed")
	}
}
