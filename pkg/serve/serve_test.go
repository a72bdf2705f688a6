package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
)

type fixture struct {
	a    *testarchive.Archive
	s    *serve.Server
	url  string
	host string
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T) *fixture {
	t.Helper()
	a, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	s, err := serve.Open(t.Context(), a.Path, serve.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &fixture{a: a, s: s, url: ts.URL, host: strings.TrimPrefix(ts.URL, "http://"), logs: logs}
}

func (f *fixture) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(f.host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func get(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// go-containerregistry pulls the bundle by tag and every image by its
// original repository and tag, every platform and layer, digests intact.
// Served names what a client pulls: every name resolves at the server to
// the digest it stands for, the images in bundle.json order.
func TestServedNamesResolve(t *testing.T) {
	f := start(t)
	sv := f.s.Served(f.host)
	resolves := func(ref, want string) {
		t.Helper()
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Get(r, remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest.String() != want {
			t.Fatalf("%s resolves to %s, want %s", ref, d.Digest, want)
		}
	}
	resolves(sv.Reference, f.a.Index.Digest.String())
	resolves(sv.DigestReference, f.a.Index.Digest.String())
	if len(sv.Images) != len(f.a.Images) {
		t.Fatalf("%d images served, want %d", len(sv.Images), len(f.a.Images))
	}
	for i, img := range sv.Images {
		if img.Reference != f.a.Images[i].Ref || img.Role != f.a.Images[i].Role || img.Digest != f.a.Images[i].Digest.String() {
			t.Fatalf("image %d served as %+v, want %+v", i, img, f.a.Images[i])
		}
		resolves(img.Served, img.Digest)
	}
}

func TestPullWithGoContainerregistry(t *testing.T) {
	f := start(t)
	if f.s.BundleRepository() != "bundles/app" || f.s.BundleTag() != "1.0.0" {
		t.Fatalf("bundle served at %s:%s", f.s.BundleRepository(), f.s.BundleTag())
	}
	desc, err := remote.Get(f.ref(t, "bundles/app:1.0.0"), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != f.a.Index.Digest.String() || string(desc.MediaType) != ocispec.MediaTypeImageIndex {
		t.Fatalf("bundle tag resolves to %s (%s), want %s", desc.Digest, desc.MediaType, f.a.Index.Digest)
	}
	for _, img := range f.a.Images {
		served := f.s.Images()
		var repo, tag string
		for _, si := range served {
			if si.Reference == img.Ref {
				repo, tag = si.Repository, si.Tag
			}
		}
		ref := f.ref(t, repo+":"+tag)
		d, err := remote.Get(ref, remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest.String() != img.Digest.String() {
			t.Fatalf("%s resolves to %s, want %s", ref, d.Digest, img.Digest)
		}
		var images []v1.Image
		if d.MediaType.IsIndex() {
			idx, err := d.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range im.Manifests {
				i, err := idx.Image(m.Digest)
				if err != nil {
					t.Fatal(err)
				}
				images = append(images, i)
			}
		} else {
			i, err := d.Image()
			if err != nil {
				t.Fatal(err)
			}
			images = append(images, i)
		}
		for _, i := range images {
			layers, err := i.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				rc, err := l.Compressed() // verified by ggcr against the digest
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					t.Fatalf("%s layer: %v", ref, err)
				}
				rc.Close()
			}
		}
	}
	if !strings.Contains(f.logs.String(), "level=DEBUG msg=request method=GET path=/v2/bundles/app/manifests/1.0.0") {
		t.Fatalf("requests not logged at debug level:\n%s", f.logs.String())
	}
}

func TestManifestHeaders(t *testing.T) {
	f := start(t)
	web := f.a.Images[1]
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, ref := range []string{"1.0", web.Digest.String()} {
			resp, body := get(t, method, f.url+"/v2/library/web/manifests/"+ref)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: %s", method, ref, resp.Status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
				t.Fatalf("Content-Type %q", ct)
			}
			if dcd := resp.Header.Get("Docker-Content-Digest"); dcd != web.Digest.String() {
				t.Fatalf("Docker-Content-Digest %q, want %s", dcd, web.Digest)
			}
			if resp.ContentLength != web.Size {
				t.Fatalf("Content-Length %d, want %d", resp.ContentLength, web.Size)
			}
			if method == http.MethodGet && digest.FromBytes(body) != web.Digest {
				t.Fatalf("GET body hashes to %s", digest.FromBytes(body))
			}
			if method == http.MethodHead && len(body) != 0 {
				t.Fatalf("HEAD returned %d bytes", len(body))
			}
		}
	}
	// Any manifest of the archive is readable through any known repository.
	resp, _ := get(t, http.MethodGet, f.url+"/v2/bundles/app/manifests/"+web.Digest.String())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cross-repository manifest: %s", resp.Status)
	}
}

func TestBlobsAndRanges(t *testing.T) {
	f := start(t)
	layer := f.a.SharedLayer
	raw, err := layout.Open(t.Context(), f.a.Path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := raw.Section(layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(sec)
	raw.Close()

	u := f.url + "/v2/app/installer/blobs/" + layer.Digest.String()
	resp, body := get(t, http.MethodGet, u)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.Header.Get("Docker-Content-Digest") != layer.Digest.String() {
		t.Fatalf("GET blob: %s, %d bytes, digest header %q", resp.Status, len(body), resp.Header.Get("Docker-Content-Digest"))
	}
	resp, body = get(t, http.MethodHead, u)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != layer.Size || len(body) != 0 || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("HEAD blob: %s, length %d", resp.Status, resp.ContentLength)
	}
	for _, tc := range []struct {
		rng        string
		start, end int64 // inclusive
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=1000-4095", 1000, 4095},
		{"bytes=-100", layer.Size - 100, layer.Size - 1},
		{"bytes=262000-", 262000, layer.Size - 1},
	} {
		resp, body := get(t, http.MethodGet, u, "Range", tc.rng)
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("%s: %s", tc.rng, resp.Status)
		}
		if !bytes.Equal(body, want[tc.start:tc.end+1]) {
			t.Fatalf("%s: got %d bytes, want %d", tc.rng, len(body), tc.end-tc.start+1)
		}
	}
	resp, _ = get(t, http.MethodGet, u, "Range", "bytes=999999999-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable range: %s", resp.Status)
	}
	// A manifest is a blob too.
	resp, body = get(t, http.MethodGet, f.url+"/v2/app/installer/blobs/"+f.a.Images[0].Digest.String())
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != f.a.Images[0].Digest {
		t.Fatalf("manifest as blob: %s", resp.Status)
	}
}

func TestTagsCatalogAndErrors(t *testing.T) {
	f := start(t)
	var tags struct {
		Name string
		Tags []string
	}
	resp, body := get(t, http.MethodGet, f.url+"/v2/bundles/app/tags/list")
	if err := json.Unmarshal(body, &tags); err != nil || resp.StatusCode != 200 {
		t.Fatalf("tags: %s %v", resp.Status, err)
	}
	if tags.Name != "bundles/app" || strings.Join(tags.Tags, ",") != "1.0.0" {
		t.Fatalf("tags %+v", tags)
	}
	var cat struct{ Repositories []string }
	resp, body = get(t, http.MethodGet, f.url+"/v2/_catalog?n=2")
	json.Unmarshal(body, &cat)
	if strings.Join(cat.Repositories, ",") != "app/installer,bundles/app" || !strings.Contains(resp.Header.Get("Link"), "last=bundles%2Fapp") {
		t.Fatalf("catalog page 1: %v, Link %q", cat.Repositories, resp.Header.Get("Link"))
	}
	_, body = get(t, http.MethodGet, f.url+"/v2/_catalog?n=2&last=bundles/app")
	json.Unmarshal(body, &cat)
	if strings.Join(cat.Repositories, ",") != "library/web" {
		t.Fatalf("catalog page 2: %v", cat.Repositories)
	}

	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/nope/manifests/1.0", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/library/web/manifests/2.0", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/library/web/manifests/sha256:" + strings.Repeat("0", 64), 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/library/web/blobs/sha256:" + strings.Repeat("0", 64), 404, "BLOB_UNKNOWN"},
		{"GET", "/v2/library/web/blobs/sha256:nothex", 400, "DIGEST_INVALID"},
		{"POST", "/v2/library/web/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PUT", "/v2/library/web/manifests/1.0", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/library/web/manifests/" + f.a.Images[1].Digest.String(), 405, "UNSUPPORTED"},
		{"GET", "/v2/library/web/tags/list?n=x", 400, "PAGINATION_NUMBER_INVALID"},
	} {
		resp, body := get(t, tc.method, f.url+tc.path)
		var e struct{ Errors []struct{ Code string } }
		json.Unmarshal(body, &e)
		if resp.StatusCode != tc.status || len(e.Errors) != 1 || e.Errors[0].Code != tc.code {
			t.Errorf("%s %s: %s %s, want %d %s", tc.method, tc.path, resp.Status, body, tc.status, tc.code)
		}
	}
	resp, body = get(t, http.MethodGet, f.url+"/v2/")
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" || string(body) != "{}" {
		t.Fatalf("/v2/: %s %q", resp.Status, body)
	}
}

func TestReferrers(t *testing.T) {
	f := start(t)
	web := f.a.Images[1]
	dref, err := name.NewDigest(f.host+"/library/web@"+web.Digest.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(dref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != f.a.Signature.Digest.String() ||
		im.Manifests[0].ArtifactType != testarchive.SignatureType || im.Manifests[0].Annotations["org.example.signer"] != "fixture" {
		t.Fatalf("referrers of web: %+v", im.Manifests)
	}
	for _, tc := range []struct {
		filter string
		n      int
	}{{testarchive.SignatureType, 1}, {"application/other", 0}} {
		resp, body := get(t, http.MethodGet, f.url+"/v2/library/web/referrers/"+web.Digest.String()+"?artifactType="+tc.filter)
		var got ocispec.Index
		json.Unmarshal(body, &got)
		if resp.Header.Get("Content-Type") != ocispec.MediaTypeImageIndex || resp.Header.Get("OCI-Filters-Applied") != "artifactType" || len(got.Manifests) != tc.n {
			t.Fatalf("filter %s: %s %s", tc.filter, resp.Header, body)
		}
	}
	_, body := get(t, http.MethodGet, f.url+"/v2/library/web/referrers/"+f.a.Images[0].Digest.String())
	if !strings.Contains(string(body), `"manifests":[]`) {
		t.Fatalf("no referrers must be an empty list: %s", body)
	}
}

// An archive whose blob does not match its digest is refused at startup,
// with an error naming the blob.
func TestCorruptArchiveRefused(t *testing.T) {
	a, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	flip(t, a.Path, a.SharedLayer.Digest)
	_, err = serve.Open(t.Context(), a.Path)
	if !errors.Is(err, serve.ErrVerification) || !strings.Contains(err.Error(), a.SharedLayer.Digest.String()) {
		t.Fatalf("want a verification error naming %s, got %v", a.SharedLayer.Digest, err)
	}
}

// A blob changed after startup is never delivered whole: the connection
// is cut before the body completes.
func TestChangedAfterStartup(t *testing.T) {
	f := start(t)
	flip(t, f.a.Path, f.a.SharedLayer.Digest)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/v2/library/web/blobs/"+f.a.SharedLayer.Digest.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return // cut before the headers: fine
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= f.a.SharedLayer.Size {
		t.Fatalf("read %d of %d bytes of a changed blob without error (%v)", n, f.a.SharedLayer.Size, err)
	}
	if !strings.Contains(f.logs.String(), "blob changed since it was verified at startup") {
		t.Fatalf("the mismatch was not logged:\n%s", f.logs.String())
	}
}

func flip(t *testing.T, path string, d digest.Digest) {
	t.Helper()
	a, err := layout.Open(t.Context(), path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := a.Section(d)
	if err != nil {
		t.Fatal(err)
	}
	_, off, size := sec.Outer()
	a.Close()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := []byte{0}
	fh.ReadAt(b, off+size/2)
	b[0] ^= 0xff
	if _, err := fh.WriteAt(b, off+size/2); err != nil {
		t.Fatal(err)
	}
}

// Serve stops when its context is cancelled.
func TestServeStopsOnCancel(t *testing.T) {
	a, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := serve.Open(t.Context(), a.Path, serve.WithShutdownTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	resp, _ := get(t, http.MethodGet, "http://"+ln.Addr().String()+"/v2/")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting connections")
	}
	m := s.Mapping("127.0.0.1:5000")
	if m[testarchive.WebRef] != "127.0.0.1:5000/bundles/app@"+a.Images[1].Digest.String() {
		t.Fatalf("mapping %v", m)
	}
}
