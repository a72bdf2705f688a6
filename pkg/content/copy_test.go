package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/content/contenttest"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
)

func fixtureStore(t *testing.T) (*content.Memory, contenttest.Graph) {
	t.Helper()
	g := contenttest.Fixture()
	m := content.NewMemory()
	for _, b := range g.All {
		if err := m.Push(context.Background(), b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	return m, g
}

func TestWalkVisitsEachDigestOnceDepthFirst(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	var visited []digest.Digest
	err := content.Walk(context.Background(), src, []ocispec.Descriptor{g.Index.Desc, g.Manifests[2].Desc}, content.WalkOptions{Concurrency: 1},
		func(_ context.Context, n content.Node) error {
			visited = append(visited, n.Desc.Digest)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(visited) != len(g.All) {
		t.Fatalf("visited %d nodes, want %d", len(visited), len(g.All))
	}
	// Depth first: index, first image, its config and shared layer, ...
	want := []digest.Digest{g.Index.Desc.Digest, g.Manifests[0].Desc.Digest, g.Configs[0].Desc.Digest, g.Layers[0].Desc.Digest, g.Manifests[1].Desc.Digest}
	if !slices.Equal(visited[:len(want)], want) {
		t.Errorf("visit order starts %v, want %v", visited[:len(want)], want)
	}
}

func TestWalkRootWithoutMediaType(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	root := ocispec.Descriptor{Digest: g.Index.Desc.Digest, Size: -1}
	var got ocispec.Descriptor
	err := content.Walk(context.Background(), src, []ocispec.Descriptor{root}, content.WalkOptions{}, func(_ context.Context, n content.Node) error {
		if n.Depth == 0 {
			got = n.Desc
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.MediaType != ocispec.MediaTypeImageIndex || got.Size != g.Index.Desc.Size {
		t.Errorf("root filled in as %q, %d bytes; want the index's type and size", got.MediaType, got.Size)
	}
}

// tamper is a fetcher that changes the content of one digest.
type tamper struct {
	content.Fetcher
	bad digest.Digest
}

func (f tamper) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := f.Fetcher.Fetch(ctx, d)
	if err != nil || d.Digest != f.bad {
		return rc, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	b[len(b)/2] ^= 1
	return io.NopCloser(bytes.NewReader(b)), nil
}

func TestWalkRefusesBadManifests(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	ctx := context.Background()
	nop := func(context.Context, content.Node) error { return nil }
	roots := []ocispec.Descriptor{g.Index.Desc}

	err := content.Walk(ctx, tamper{src, g.Manifests[1].Desc.Digest}, roots, content.WalkOptions{}, nop)
	if !errors.Is(err, errdefs.ErrDigestMismatch) || !strings.Contains(err.Error(), g.Manifests[1].Desc.Digest.String()) {
		t.Errorf("tampered manifest: %v, want a digest mismatch naming it", err)
	}
	err = content.Walk(ctx, src, roots, content.WalkOptions{MaxManifestBytes: 100}, nop)
	if !errors.Is(err, content.ErrTooLarge) || !errors.Is(err, errdefs.ErrInvalidInput) {
		t.Errorf("manifest over the cap: %v, want ErrTooLarge", err)
	}
	err = content.Walk(ctx, src, roots, content.WalkOptions{MaxDepth: 0 + 1, Successors: func(string, []byte) ([]ocispec.Descriptor, error) {
		return nil, nil
	}}, nop)
	if err != nil {
		t.Errorf("depth 1 without children: %v", err)
	}
	// A chain of indexes deeper than the limit.
	m := content.NewMemory()
	prev := g.Manifests[0].Desc
	for _, b := range g.All {
		m.Push(ctx, b.Desc, bytes.NewReader(b.Data))
	}
	for i := range 5 {
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{prev}, Annotations: map[string]string{"n": fmt.Sprint(i)}}
		idx.SchemaVersion = 2
		raw, _ := json.Marshal(idx)
		b := contenttest.NewBlob(ocispec.MediaTypeImageIndex, raw)
		m.Push(ctx, b.Desc, bytes.NewReader(raw))
		prev = b.Desc
	}
	err = content.Walk(ctx, m, []ocispec.Descriptor{prev}, content.WalkOptions{MaxDepth: 3}, nop)
	if !errors.Is(err, content.ErrTooDeep) {
		t.Errorf("nesting over the limit: %v, want ErrTooDeep", err)
	}
}

func TestWalkPreVisitAndOnError(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	ctx := context.Background()
	var mu sync.Mutex
	var seen []digest.Digest
	var forgiven []error
	err := content.Walk(ctx, tamper{src, g.Manifests[0].Desc.Digest}, []ocispec.Descriptor{g.Index.Desc}, content.WalkOptions{
		PreVisit: func(_ context.Context, d ocispec.Descriptor, _ int) error {
			if d.Digest == g.Layers[1].Desc.Digest {
				return content.ErrSkip
			}
			return nil
		},
		OnError: func(_ ocispec.Descriptor, err error) error {
			mu.Lock()
			defer mu.Unlock()
			forgiven = append(forgiven, err)
			return nil
		},
	}, func(_ context.Context, n content.Node) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, n.Desc.Digest)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(forgiven) != 1 || !errors.Is(forgiven[0], errdefs.ErrDigestMismatch) {
		t.Errorf("OnError saw %v, want the one digest mismatch", forgiven)
	}
	if slices.Contains(seen, g.Layers[1].Desc.Digest) || slices.Contains(seen, g.Manifests[0].Desc.Digest) {
		t.Errorf("visited a skipped or failed node: %v", seen)
	}
	if !slices.Contains(seen, g.Layers[0].Desc.Digest) {
		t.Errorf("the shared layer, reachable from the good image, was not visited")
	}
}

func TestWalkVisitErrorStops(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	boom := errors.New("boom")
	var calls atomic.Int64
	err := content.Walk(context.Background(), src, []ocispec.Descriptor{g.Index.Desc}, content.WalkOptions{Concurrency: 1}, func(context.Context, content.Node) error {
		calls.Add(1)
		return boom
	})
	if !errors.Is(err, boom) || calls.Load() != 1 {
		t.Errorf("Walk = %v after %d visits, want boom after 1", err, calls.Load())
	}
}

// recorder is a Memory that records the order of pushes and can refuse one
// digest, or mount.
type recorder struct {
	*content.Memory
	mu      sync.Mutex
	pushed  []digest.Digest
	refuse  digest.Digest
	mounts  map[digest.Digest]string
	inPush  atomic.Int64
	maxPush atomic.Int64
}

func (r *recorder) Push(ctx context.Context, d ocispec.Descriptor, rd io.Reader) error {
	n := r.inPush.Add(1)
	defer r.inPush.Add(-1)
	for {
		m := r.maxPush.Load()
		if n <= m || r.maxPush.CompareAndSwap(m, n) {
			break
		}
	}
	if d.Digest == r.refuse {
		return errors.New("refused")
	}
	if err := r.Memory.Push(ctx, d, rd); err != nil {
		return err
	}
	r.mu.Lock()
	r.pushed = append(r.pushed, d.Digest)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Mount(ctx context.Context, d ocispec.Descriptor, from string) error {
	if from != "elsewhere" {
		return content.ErrUnsupported
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mounts == nil {
		r.mounts = map[digest.Digest]string{}
	}
	r.mounts[d.Digest] = from
	return nil
}

func TestCopyChildrenBeforeParents(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	dst := &recorder{Memory: content.NewMemory()}
	var events atomic.Int64
	stats, err := content.Copy(context.Background(), src, dst, []ocispec.Descriptor{g.Index.Desc, g.Manifests[2].Desc},
		content.CopyOptions{WalkOptions: content.WalkOptions{Concurrency: 3}, Progress: func(progress.Event) { events.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[digest.Digest]int{}
	for i, d := range dst.pushed {
		pos[d] = i
	}
	for _, m := range append(g.Manifests, g.Index) {
		var man struct {
			Config    ocispec.Descriptor
			Layers    []ocispec.Descriptor
			Manifests []ocispec.Descriptor
		}
		json.Unmarshal(m.Data, &man)
		for _, c := range append(append(man.Layers, man.Manifests...), man.Config) {
			if c.Digest == "" {
				continue
			}
			if pos[c.Digest] > pos[m.Desc.Digest] {
				t.Errorf("%s pushed before its child %s", m.Desc.Digest, c.Digest)
			}
		}
	}
	if stats.Manifests != 4 || stats.Blobs != int64(len(g.All)-4) || stats.Skipped != 0 {
		t.Errorf("stats %+v", stats)
	}
	if dst.maxPush.Load() > 3 {
		t.Errorf("%d pushes at once, concurrency is 3", dst.maxPush.Load())
	}
	if events.Load() == 0 {
		t.Errorf("no progress events")
	}
}

func TestCopySkipsHeldAndMounts(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	ctx := context.Background()
	dst := &recorder{Memory: content.NewMemory()}
	held := g.Layers[0]
	dst.Memory.Push(ctx, held.Desc, bytes.NewReader(held.Data))
	stats, err := content.Copy(ctx, src, dst, []ocispec.Descriptor{g.Index.Desc}, content.CopyOptions{
		MountFrom: func(d ocispec.Descriptor) []string {
			if d.Digest == g.Layers[1].Desc.Digest {
				return []string{"declines", "elsewhere"}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Skipped != 1 || stats.SkippedBytes != held.Desc.Size {
		t.Errorf("skipped %d (%d bytes), want the held layer", stats.Skipped, stats.SkippedBytes)
	}
	if stats.Mounted != 1 || dst.mounts[g.Layers[1].Desc.Digest] != "elsewhere" {
		t.Errorf("mounted %d: %v", stats.Mounted, dst.mounts)
	}
	if slices.Contains(dst.pushed, held.Desc.Digest) {
		t.Errorf("the held layer was pushed again")
	}
}

func TestCopyFailures(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	ctx := context.Background()
	roots := []ocispec.Descriptor{g.Index.Desc}
	own := g.Layers[1].Desc.Digest // only the second image has it

	dst := &recorder{Memory: content.NewMemory(), refuse: own}
	_, err := content.Copy(ctx, src, dst, roots, content.CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), own.String()) {
		t.Fatalf("Copy with a refused blob: %v, want an error naming it", err)
	}
	for _, m := range append(g.Manifests, g.Index) {
		if slices.Contains(dst.pushed, m.Desc.Digest) {
			t.Errorf("without KeepGoing, manifest %s was pushed after a blob failed", m.Desc.Digest)
		}
	}

	dst = &recorder{Memory: content.NewMemory(), refuse: own}
	stats, err := content.Copy(ctx, src, dst, roots, content.CopyOptions{KeepGoing: true})
	if err == nil {
		t.Fatal("KeepGoing copy with a refused blob: no error")
	}
	if !slices.Contains(dst.pushed, g.Manifests[0].Desc.Digest) {
		t.Errorf("KeepGoing: the first image, whose children all arrived, was not pushed")
	}
	if slices.Contains(dst.pushed, g.Manifests[1].Desc.Digest) || slices.Contains(dst.pushed, g.Index.Desc.Digest) {
		t.Errorf("KeepGoing: a manifest above the failed blob was pushed")
	}
	if stats.Blobs != int64(len(g.Layers)-2+len(g.Configs)-1) {
		t.Logf("stats %+v", stats)
	}

	// Tampered content in the source is refused by the destination.
	dst = &recorder{Memory: content.NewMemory()}
	_, err = content.Copy(ctx, tamper{src, g.Layers[0].Desc.Digest}, dst, roots, content.CopyOptions{})
	if !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Errorf("tampered blob: %v, want a digest mismatch", err)
	}
	if has, _ := dst.Exists(ctx, g.Layers[0].Desc); has {
		t.Errorf("the tampered blob was stored")
	}
}

func TestCopyBlobRoots(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	dst := content.NewMemory()
	var roots []ocispec.Descriptor
	for _, b := range g.Layers {
		roots = append(roots, b.Desc)
	}
	stats, err := content.Copy(context.Background(), src, dst, roots, content.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Blobs != int64(len(g.Layers)) || dst.Len() != len(g.Layers) {
		t.Errorf("copied %+v into %d, want the %d layers", stats, dst.Len(), len(g.Layers))
	}
}

// TestWalkRefusesDisagreeingSizes: a digest is visited once, but every
// descriptor of it must give it the same size.
func TestWalkRefusesDisagreeingSizes(t *testing.T) {
	t.Parallel()
	src, g := fixtureStore(t)
	ctx := context.Background()
	layer := g.Layers[0].Desc
	short := layer
	short.Size--
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: g.Configs[0].Desc, Layers: []ocispec.Descriptor{layer, short}}
	m.SchemaVersion = 2
	raw, _ := json.Marshal(m)
	b := contenttest.NewBlob(ocispec.MediaTypeImageManifest, raw)
	src.Push(ctx, b.Desc, bytes.NewReader(raw))
	err := content.Walk(ctx, src, []ocispec.Descriptor{b.Desc}, content.WalkOptions{}, func(context.Context, content.Node) error { return nil })
	if !errors.Is(err, errdefs.ErrSizeMismatch) || !strings.Contains(err.Error(), "described as") {
		t.Errorf("Walk = %v, want a size mismatch", err)
	}
}
