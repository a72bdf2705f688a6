// Package contenttest is the conformance suite every content store of
// cnab-airgap passes: the memory store, the archive (one file and split
// into volumes), the archive writer and a registry repository. A store
// from another module can run it too.
package contenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// Blob is content with its descriptor.
type Blob struct {
	Desc ocispec.Descriptor
	Data []byte
}

// NewBlob describes data with media type mt.
func NewBlob(mt string, data []byte) Blob {
	return Blob{Desc: ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}, Data: data}
}

// Graph is the suite's fixture: an image index over two image manifests
// sharing a layer, and an artifact manifest whose subject is the first
// image (a signature, say).
type Graph struct {
	Layers    []Blob
	Configs   []Blob
	Manifests []Blob // the two images, then the artifact
	Index     Blob
	// All lists every content once, children before parents.
	All []Blob
}

// Fixture returns the suite's graph; its content is the same on every call.
func Fixture() Graph {
	var g Graph
	shared := NewBlob(ocispec.MediaTypeImageLayerGzip, bytes.Repeat([]byte("shared layer "), 5000))
	own := NewBlob(ocispec.MediaTypeImageLayer, []byte("a layer only the second image has"))
	empty := NewBlob(ocispec.MediaTypeImageLayer, []byte{})
	g.Layers = []Blob{shared, own, empty}
	manifest := func(cfg Blob, layers []Blob, subject *ocispec.Descriptor, at string) Blob {
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg.Desc, Subject: subject, ArtifactType: at}
		m.SchemaVersion = 2
		for _, l := range layers {
			m.Layers = append(m.Layers, l.Desc)
		}
		raw, _ := json.Marshal(m)
		return NewBlob(ocispec.MediaTypeImageManifest, raw)
	}
	for i, layers := range [][]Blob{{shared}, {shared, own, empty}} {
		cfg := NewBlob(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","n":`+string(rune('0'+i))+`}`))
		g.Configs = append(g.Configs, cfg)
		g.Manifests = append(g.Manifests, manifest(cfg, layers, nil, ""))
	}
	sigCfg := NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	g.Configs = append(g.Configs, sigCfg)
	subject := g.Manifests[0].Desc
	g.Manifests = append(g.Manifests, manifest(sigCfg, []Blob{NewBlob("application/vnd.example.signature", []byte("signature"))}, &subject, "application/vnd.example.signature"))
	g.Layers = append(g.Layers, NewBlob("application/vnd.example.signature", []byte("signature")))
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for i, m := range g.Manifests[:2] {
		d := m.Desc
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: []string{"amd64", "arm64"}[i]}
		idx.Manifests = append(idx.Manifests, d)
	}
	raw, _ := json.Marshal(idx)
	g.Index = NewBlob(ocispec.MediaTypeImageIndex, raw)
	g.All = append(append(append(append([]Blob{}, g.Layers...), g.Configs...), g.Manifests...), g.Index)
	return g
}

// Suite says how to make the store under test.
type Suite struct {
	// New returns a store that holds held from the start. A store that
	// is written to in a planned order (the archive writer) is also told
	// planned, the content tests may push; others ignore it. The store
	// implements content.Fetcher, content.Pusher or both, with
	// content.Exister; the optional interfaces are tested when present.
	New func(t *testing.T, held, planned []Blob) any
	// ReadBack, for a store that can be written but not read, returns a
	// fetcher over what was pushed (the archive writer commits and opens).
	ReadBack func(t *testing.T, store any) content.Fetcher
}

// Run runs the conformance suite.
func Run(t *testing.T, s Suite) {
	g := Fixture()
	ctx := context.Background()
	probe := s.New(t, nil, nil)
	_, readable := probe.(content.Fetcher)
	_, writable := probe.(content.Pusher)
	if c, ok := probe.(io.Closer); ok {
		c.Close()
	}
	if !readable && !writable {
		t.Fatalf("the store %T is neither a content.Fetcher nor a content.Pusher", probe)
	}
	if readable {
		t.Run("Fetch", func(t *testing.T) { testFetch(ctx, t, s, g) })
		t.Run("FetchConcurrent", func(t *testing.T) { testFetchConcurrent(ctx, t, s, g) })
		t.Run("CopyOut", func(t *testing.T) { testCopyOut(ctx, t, s, g) })
	}
	if writable {
		t.Run("Push", func(t *testing.T) { testPush(ctx, t, s, g) })
		t.Run("PushRefusesBadContent", func(t *testing.T) { testPushBad(ctx, t, s, g) })
		t.Run("CopyIn", func(t *testing.T) { testCopyIn(ctx, t, s, g) })
	}
	if _, ok := probe.(content.Tagger); ok {
		t.Run("TagResolve", func(t *testing.T) { testTag(ctx, t, s, g) })
	}
	if _, ok := probe.(content.ReferrerLister); ok {
		t.Run("Referrers", func(t *testing.T) { testReferrers(ctx, t, s, g) })
	}
}

func closeStore(t *testing.T, st any) {
	if c, ok := st.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
}

func newStore(t *testing.T, s Suite, held, planned []Blob) any {
	t.Helper()
	st := s.New(t, held, planned)
	closeStore(t, st)
	return st
}

func fetchAll(ctx context.Context, t *testing.T, f content.Fetcher, b Blob) []byte {
	t.Helper()
	rc, err := content.Open(ctx, f, b.Desc)
	if err != nil {
		t.Fatalf("Fetch %s (%s): %v", b.Desc.Digest, b.Desc.MediaType, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", b.Desc.Digest, err)
	}
	return got
}

func missing() Blob {
	return NewBlob(ocispec.MediaTypeImageLayer, []byte("content no store of the suite holds"))
}

func testFetch(ctx context.Context, t *testing.T, s Suite, g Graph) {
	st := newStore(t, s, g.All, nil)
	f := st.(content.Fetcher)
	for _, b := range g.All {
		if got := fetchAll(ctx, t, f, b); !bytes.Equal(got, b.Data) {
			t.Errorf("Fetch %s: got %d bytes that differ from the %d held", b.Desc.Digest, len(got), len(b.Data))
		}
	}
	m := missing()
	if rc, err := f.Fetch(ctx, m.Desc); err == nil {
		rc.Close()
		t.Errorf("Fetch of content not held: no error")
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Fetch of content not held: %v, want an error wrapping errdefs.ErrNotFound", err)
	}
	if e, ok := st.(content.Exister); ok {
		for _, b := range g.All {
			if has, err := e.Exists(ctx, b.Desc); err != nil || !has {
				t.Errorf("Exists %s = %v, %v; want true", b.Desc.Digest, has, err)
			}
		}
		if has, err := e.Exists(ctx, m.Desc); err != nil || has {
			t.Errorf("Exists of content not held = %v, %v; want false", has, err)
		}
	}
}

func testFetchConcurrent(ctx context.Context, t *testing.T, s Suite, g Graph) {
	st := newStore(t, s, g.All, nil)
	f := st.(content.Fetcher)
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(g.All))
	for range 8 {
		for _, b := range g.All {
			wg.Go(func() {
				rc, err := content.Open(ctx, f, b.Desc)
				if err != nil {
					errs <- err
					return
				}
				defer rc.Close()
				if _, err := io.Copy(io.Discard, rc); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent fetch: %v", err)
	}
}

// testCopyOut copies the whole graph from the store into memory.
func testCopyOut(ctx context.Context, t *testing.T, s Suite, g Graph) {
	st := newStore(t, s, g.All, nil)
	dst := content.NewMemory()
	stats, err := content.Copy(ctx, st.(content.Fetcher), dst, []ocispec.Descriptor{g.Index.Desc, g.Manifests[2].Desc}, content.CopyOptions{})
	if err != nil {
		t.Fatalf("Copy out of the store: %v", err)
	}
	if dst.Len() != len(g.All) || stats.Blobs+stats.Manifests != int64(len(g.All)) {
		t.Errorf("Copy out: %d contents arrived (stats %+v), want %d", dst.Len(), stats, len(g.All))
	}
}

// checkReadBack reads every content of g back from st (or what ReadBack
// gives for it) and compares it with what was written by how.
func checkReadBack(ctx context.Context, t *testing.T, s Suite, st any, g Graph, how string) {
	t.Helper()
	f := readBack(t, s, st)
	if f == nil {
		return
	}
	for _, b := range g.All {
		if got := fetchAll(ctx, t, f, b); !bytes.Equal(got, b.Data) {
			t.Errorf("read back %s after %s: differs from what was written", b.Desc.Digest, how)
		}
	}
}

func readBack(t *testing.T, s Suite, st any) content.Fetcher {
	if f, ok := st.(content.Fetcher); ok {
		return f
	}
	if s.ReadBack == nil {
		return nil
	}
	return s.ReadBack(t, st)
}

func testPush(ctx context.Context, t *testing.T, s Suite, g Graph) {
	st := newStore(t, s, nil, g.All)
	p := st.(content.Pusher)
	e, hasExists := st.(content.Exister)
	for _, b := range g.All {
		if hasExists {
			if has, err := e.Exists(ctx, b.Desc); err != nil || has {
				t.Fatalf("Exists %s before Push = %v, %v; want false", b.Desc.Digest, has, err)
			}
		}
		if err := p.Push(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatalf("Push %s (%s): %v", b.Desc.Digest, b.Desc.MediaType, err)
		}
		if hasExists {
			if has, err := e.Exists(ctx, b.Desc); err != nil || !has {
				t.Fatalf("Exists %s after Push = %v, %v; want true", b.Desc.Digest, has, err)
			}
		}
	}
	// Pushing what is held again is not an error.
	if err := p.Push(ctx, g.Layers[0].Desc, bytes.NewReader(g.Layers[0].Data)); err != nil {
		t.Errorf("Push of content already held: %v", err)
	}
	checkReadBack(ctx, t, s, st, g, "Push")
}

func testPushBad(ctx context.Context, t *testing.T, s Suite, g Graph) {
	layer := g.Layers[0]
	st := newStore(t, s, nil, g.All)
	p := st.(content.Pusher)
	tampered := bytes.Clone(layer.Data)
	tampered[len(tampered)/2] ^= 1
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"tampered", tampered, errdefs.ErrDigestMismatch},
		{"truncated", layer.Data[:len(layer.Data)-1], errdefs.ErrSizeMismatch},
		{"longer", append(bytes.Clone(layer.Data), 'x'), errdefs.ErrSizeMismatch},
	}
	for _, c := range cases {
		err := p.Push(ctx, layer.Desc, bytes.NewReader(c.data))
		if err == nil {
			t.Fatalf("Push of %s content: no error", c.name)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("Push of %s content: %v, want an error wrapping %v", c.name, err, c.want)
		}
		if e, ok := st.(content.Exister); ok {
			if has, err := e.Exists(ctx, layer.Desc); err != nil || has {
				t.Errorf("after the refused push of %s content, Exists = %v, %v; want false", c.name, has, err)
			}
		}
	}
	// A manifest that does not match is refused too.
	m := g.Manifests[0]
	if err := p.Push(ctx, m.Desc, bytes.NewReader(append(bytes.Clone(m.Data[:len(m.Data)-1]), ' '))); !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Errorf("Push of a tampered manifest: %v, want an error wrapping errdefs.ErrDigestMismatch", err)
	}
	// And the right content is still accepted after the refusals.
	if err := p.Push(ctx, layer.Desc, bytes.NewReader(layer.Data)); err != nil {
		t.Errorf("Push of the right content after refusals: %v", err)
	}
}

// testCopyIn copies the whole graph from memory into the store, twice:
// the second copy finds everything held and moves nothing.
func testCopyIn(ctx context.Context, t *testing.T, s Suite, g Graph) {
	st := newStore(t, s, nil, g.All)
	src := content.NewMemory()
	for _, b := range g.All {
		if err := src.Push(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	roots := []ocispec.Descriptor{g.Index.Desc, g.Manifests[2].Desc}
	stats, err := content.Copy(ctx, src, st.(content.Pusher), roots, content.CopyOptions{})
	if err != nil {
		t.Fatalf("Copy into the store: %v", err)
	}
	if got := stats.Blobs + stats.Manifests; got != int64(len(g.All)) {
		t.Errorf("Copy into the store moved %d contents (%+v), want %d", got, stats, len(g.All))
	}
	if _, ok := st.(content.Exister); ok {
		again, err := content.Copy(ctx, src, st.(content.Pusher), roots, content.CopyOptions{})
		if err != nil {
			t.Fatalf("second Copy: %v", err)
		}
		if again.Blobs+again.Manifests != 0 || again.Skipped != int64(len(g.All)) {
			t.Errorf("second Copy: %+v, want every content skipped", again)
		}
	}
	checkReadBack(ctx, t, s, st, g, "Copy")
}

func testTag(ctx context.Context, t *testing.T, s Suite, g Graph) {
	st := newStore(t, s, g.All, g.All)
	tg := st.(content.Tagger)
	if err := tg.Tag(ctx, g.Index.Desc, "v1"); err != nil {
		t.Fatalf("Tag: %v", err)
	}
	if r, ok := st.(content.Resolver); ok {
		d, err := r.Resolve(ctx, "v1")
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if d.Digest != g.Index.Desc.Digest || d.Size != g.Index.Desc.Size {
			t.Errorf("Resolve v1 = %s (%d bytes), want %s (%d)", d.Digest, d.Size, g.Index.Desc.Digest, g.Index.Desc.Size)
		}
		if _, err := r.Resolve(ctx, "no-such-tag"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Resolve of an unknown tag: %v, want an error wrapping errdefs.ErrNotFound", err)
		}
	}
}

func testReferrers(ctx context.Context, t *testing.T, s Suite, g Graph) {
	st := newStore(t, s, g.All, g.All)
	rl := st.(content.ReferrerLister)
	got, err := rl.Referrers(ctx, g.Manifests[0].Desc, "")
	if err != nil {
		t.Fatalf("Referrers: %v", err)
	}
	if len(got) != 1 || got[0].Digest != g.Manifests[2].Desc.Digest {
		t.Fatalf("Referrers of the first image = %v, want the artifact %s", got, g.Manifests[2].Desc.Digest)
	}
	if got[0].ArtifactType != "application/vnd.example.signature" {
		t.Errorf("referrer artifact type %q", got[0].ArtifactType)
	}
	if got, err := rl.Referrers(ctx, g.Manifests[0].Desc, "application/vnd.example.other"); err != nil || len(got) != 0 {
		t.Errorf("Referrers filtered by another type = %v, %v; want none", got, err)
	}
	if got, err := rl.Referrers(ctx, g.Manifests[1].Desc, ""); err != nil || len(got) != 0 {
		t.Errorf("Referrers of the second image = %v, %v; want none", got, err)
	}
}
