package content

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Defaults of a walk.
const (
	DefaultConcurrency      = 6
	DefaultMaxDepth         = 16
	DefaultMaxManifestBytes = 8 << 20
)

// ErrSkip, returned by WalkOptions.PreVisit, leaves a descriptor out of the
// walk: it is not fetched, visited or descended into.
// It never leaves Walk; anywhere else it is a misuse of the API.
var ErrSkip = errdefs.New("skip this descriptor", errdefs.ErrUsage)

// Node is what a walk visits: a manifest or index with its checked bytes
// and children, or a blob (Raw and Children nil).
type Node struct {
	// Desc is the descriptor the node was reached by (a root as given,
	// or a child as its parent lists it), with the media type filled in
	// from the content when the descriptor had none.
	Desc ocispec.Descriptor
	// Raw holds a manifest's or index's bytes, verified against Desc.
	Raw []byte
	// Children are the descriptors the manifest or index refers to:
	// a manifest's config and layers, or an index's manifests.
	Children []ocispec.Descriptor
	// Depth is 0 for a root.
	Depth int
	// Parent is the digest the node was first reached from ("" for a root).
	Parent digest.Digest
}

// IsManifest reports whether the node is a manifest or index.
func (n Node) IsManifest() bool { return n.Raw != nil }

// WalkOptions tune Walk. The zero value walks with the defaults.
type WalkOptions struct {
	// Concurrency bounds the manifests fetched at once (DefaultConcurrency).
	// With 1 the walk is depth-first in the order children are listed.
	Concurrency int
	// MaxDepth bounds nesting below a root (DefaultMaxDepth); deeper
	// nesting fails with ErrTooDeep.
	MaxDepth int
	// MaxManifestBytes bounds each manifest or index read
	// (DefaultMaxManifestBytes); a larger one fails with ErrTooLarge.
	MaxManifestBytes int64
	// Successors lists a manifest's children; the default is
	// layout.Children (a manifest's config and layers, an index's manifests).
	Successors func(mediaType string, raw []byte) ([]ocispec.Descriptor, error)
	// PreVisit, if set, is called for each descriptor before it is fetched
	// or visited, once per digest. Returning ErrSkip leaves it out;
	// another error fails the walk (unless OnError forgives it).
	PreVisit func(ctx context.Context, desc ocispec.Descriptor, depth int) error
	// OnError, if set, decides what a failure to fetch, check or parse a
	// manifest does: returning nil skips that manifest's subtree and the
	// walk goes on (an audit collects problems this way); returning an
	// error fails the walk. The default fails the walk.
	OnError func(desc ocispec.Descriptor, err error) error
}

// ChildrenByContent is a WalkOptions.Successors that reads a manifest's
// children by the media type its content declares, and by the
// descriptor's only when the content declares none: for walks that report
// a descriptor which misnames its content instead of failing on it.
func ChildrenByContent(mt string, raw []byte) ([]ocispec.Descriptor, error) {
	if actual := layout.MediaTypeOf(raw); actual != "" {
		mt = actual
	}
	return layout.Children(mt, raw)
}

func (o WalkOptions) withDefaults() WalkOptions {
	if o.Concurrency < 1 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxDepth < 1 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxManifestBytes < 1 {
		o.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if o.Successors == nil {
		o.Successors = layout.Children
	}
	return o
}

// Walk visits every descriptor reachable from roots in f, each digest
// once. Manifests and indexes (told by media type; a root without one is
// taken to be one) are fetched, size-capped and verified before they are
// visited; blobs are visited without being read. A root whose media type
// is empty gets the one its content declares.
//
// visit may be called from several goroutines at once; the first error it
// returns stops the walk and is returned. Parents are visited before their
// children; with Concurrency 1 the order is depth-first.
func Walk(ctx context.Context, f Fetcher, roots []ocispec.Descriptor, o WalkOptions, visit func(ctx context.Context, n Node) error) error {
	o = o.withDefaults()
	w := &walker{f: f, o: o, visit: visit, seen: map[digest.Digest]int64{}}
	w.cond = sync.NewCond(&w.mu)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := len(roots) - 1; i >= 0; i-- {
		if err := w.schedule(task{desc: roots[i], root: true}); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() { w.work(ctx, cancel) })
	}
	wg.Wait()
	if w.err != nil {
		return w.err
	}
	return ctx.Err()
}

type task struct {
	desc   ocispec.Descriptor
	depth  int
	parent digest.Digest
	root   bool
}

type walker struct {
	f     Fetcher
	o     WalkOptions
	visit func(context.Context, Node) error

	mu      sync.Mutex
	cond    *sync.Cond
	stack   []task                  // LIFO: with one worker the walk is depth-first
	pending int                     // scheduled and not finished
	seen    map[digest.Digest]int64 // the size each digest was first described with
	err     error
}

// schedule queues t unless its digest was queued before. Every descriptor
// of a digest must give it the same size: a second one that disagrees is an
// error, though that descriptor is not visited. The caller holds no lock.
func (w *walker) schedule(t task) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if size, ok := w.seen[t.desc.Digest]; ok {
		if size >= 0 && t.desc.Size >= 0 && size != t.desc.Size {
			return fmt.Errorf("%w: %s is described as %d bytes and as %d bytes", errdefs.ErrSizeMismatch, t.desc.Digest, size, t.desc.Size)
		}
		return nil
	}
	w.seen[t.desc.Digest] = t.desc.Size
	w.stack = append(w.stack, t)
	w.pending++
	w.cond.Signal()
	return nil
}

func (w *walker) work(ctx context.Context, cancel context.CancelFunc) {
	for {
		w.mu.Lock()
		for len(w.stack) == 0 && w.pending > 0 && w.err == nil {
			w.cond.Wait()
		}
		if w.err != nil || w.pending == 0 {
			w.cond.Broadcast()
			w.mu.Unlock()
			return
		}
		t := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		w.mu.Unlock()

		err := w.do(ctx, t)

		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
			cancel()
		}
		w.pending--
		if w.pending == 0 || w.err != nil {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
}

func (w *walker) do(ctx context.Context, t task) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := t.desc
	if w.o.PreVisit != nil {
		if err := w.o.PreVisit(ctx, d, t.depth); err != nil {
			if errors.Is(err, ErrSkip) {
				return nil
			}
			return err
		}
	}
	if (!t.root || d.MediaType != "") && !layout.IsManifestOrIndex(d.MediaType) {
		return w.visit(ctx, Node{Desc: d, Depth: t.depth, Parent: t.parent})
	}
	n, err := w.read(ctx, t)
	if err != nil {
		if w.o.OnError != nil {
			return w.o.OnError(d, err)
		}
		return err
	}
	if err := w.visit(ctx, n); err != nil {
		return err
	}
	for _, c := range slices.Backward(n.Children) {
		if err := w.schedule(task{desc: c, depth: t.depth + 1, parent: d.Digest}); err != nil {
			return fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
	}
	return nil
}

// read fetches, caps, verifies and parses one manifest or index.
func (w *walker) read(ctx context.Context, t task) (Node, error) {
	d := t.desc
	if t.depth > w.o.MaxDepth {
		return Node{}, fmt.Errorf("%w: %s is nested %d deep, limit %d", ErrTooDeep, d.Digest, t.depth, w.o.MaxDepth)
	}
	raw, err := ReadAll(ctx, w.f, d, w.o.MaxManifestBytes)
	if err != nil {
		return Node{}, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if d.MediaType == "" {
		d.MediaType = layout.DetectMediaType(raw)
	}
	if d.Size < 0 {
		d.Size = int64(len(raw))
	}
	children, err := w.o.Successors(d.MediaType, raw)
	if err != nil {
		if !errors.Is(err, ErrInvalidManifest) {
			err = fmt.Errorf("%w: %w", ErrInvalidManifest, err)
		}
		return Node{}, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	return Node{Desc: d, Raw: raw, Children: children, Depth: t.depth, Parent: t.parent}, nil
}
