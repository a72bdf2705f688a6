package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
)

// CopyOptions tune Copy. The zero value copies with the walk's defaults,
// skipping what the destination holds.
type CopyOptions struct {
	// WalkOptions say how the source graph is walked; its Concurrency
	// also bounds the transfers in flight.
	WalkOptions
	// Overwrite pushes content the destination already holds. By default
	// a destination that is an Exister is asked first and what it holds is
	// skipped (a manifest it holds is skipped, its children still copied).
	Overwrite bool
	// MountFrom, when the destination is a Mounter, names the repositories
	// it may mount a blob from before its bytes are sent.
	MountFrom func(desc ocispec.Descriptor) []string
	// KeepGoing reports every failed transfer instead of stopping at the
	// first: blobs go on, and every manifest whose children all arrived is
	// still pushed (a re-run then has less to do). The error joins them all.
	KeepGoing bool
	// Progress receives PhaseBlobs and PhaseManifests events: the totals
	// once the graph is known, then started, active, done or skipped per
	// item (the digest).
	Progress progress.Func
	// OmitTotals leaves the totals out of the progress events, for a caller
	// that announces its own (a resumed copy counting what it kept).
	OmitTotals bool
}

// CopyStats counts what a copy did.
type CopyStats struct {
	// Blobs and Manifests pushed, and their bytes.
	Blobs, Manifests int64
	Bytes            int64
	// Skipped: held by the destination already; SkippedBytes their size.
	Skipped      int64
	SkippedBytes int64
	// Mounted: blobs the destination took from another repository.
	Mounted int64
}

// Copy puts the graph below roots from src into dst: every blob (with
// bounded concurrency, each digest once, in the order the walk met them),
// then every manifest and index, children before parents, byte for byte.
// What dst already holds is skipped; blobs are mounted where dst can. Each
// byte is verified as it streams by dst's Push; a manifest is verified when
// it is read. A root that is not a manifest (by media type) is copied as a
// blob, so a list of blob descriptors is copied as it is.
//
// Without KeepGoing the first failure cancels the rest and is returned.
func Copy(ctx context.Context, src Fetcher, dst Pusher, roots []ocispec.Descriptor, o CopyOptions) (CopyStats, error) {
	o.WalkOptions = o.withDefaults()
	var (
		mu        sync.Mutex
		blobs     []ocispec.Descriptor
		manifests = map[digest.Digest]Node{}
		order     []digest.Digest
	)
	err := Walk(ctx, src, roots, o.WalkOptions, func(_ context.Context, n Node) error {
		mu.Lock()
		defer mu.Unlock()
		if n.IsManifest() {
			manifests[n.Desc.Digest] = n
			order = append(order, n.Desc.Digest)
		} else {
			blobs = append(blobs, n.Desc)
		}
		return nil
	})
	if err != nil {
		return CopyStats{}, err
	}
	c := &copier{src: src, dst: dst, o: o}
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	if !o.OmitTotals {
		o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateTotal, Total: total, Count: len(blobs)})
	}
	failed := c.blobs(ctx, blobs)
	if len(c.errs) > 0 && !o.KeepGoing {
		return c.stats, c.errs[0]
	}
	if !o.OmitTotals && len(manifests) > 0 {
		o.Progress.Emit(progress.Event{Phase: progress.PhaseManifests, State: progress.StateTotal, Count: len(manifests)})
	}
	c.manifests(ctx, manifests, order, failed)
	if len(c.errs) > 0 {
		if !o.KeepGoing {
			return c.stats, c.errs[0]
		}
		return c.stats, errdefs.JoinDistinct(c.errs) // one line per distinct cause
	}
	return c.stats, nil
}

type copier struct {
	src   Fetcher
	dst   Pusher
	o     CopyOptions
	stats CopyStats
	mu    sync.Mutex
	errs  []error
}

func (c *copier) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

// blobs copies every blob and returns the digests that failed.
func (c *copier) blobs(ctx context.Context, descs []ocispec.Descriptor) map[digest.Digest]bool {
	failed := map[digest.Digest]bool{}
	var fmu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.o.Concurrency)
	for _, d := range descs {
		g.Go(func() error {
			if err := c.blob(gctx, d); err != nil {
				fmu.Lock()
				failed[d.Digest] = true
				fmu.Unlock()
				err = fmt.Errorf("blob %s: %w", d.Digest, err)
				if !c.o.KeepGoing {
					return err // cancels the others
				}
				c.fail(err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		c.fail(err)
	}
	return failed
}

func (c *copier) blob(ctx context.Context, d ocispec.Descriptor) error {
	if skip, err := c.held(ctx, d); err != nil || skip {
		return err
	}
	if m, ok := c.dst.(Mounter); ok && c.o.MountFrom != nil {
		for _, from := range c.o.MountFrom(d) {
			err := m.Mount(ctx, d, from)
			if err == nil {
				atomic.AddInt64(&c.stats.Mounted, 1)
				c.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateSkipped, Item: d.Digest.String(), Bytes: d.Size})
				return nil
			}
			if !errors.Is(err, ErrUnsupported) {
				return fmt.Errorf("mount from %s: %w", from, err)
			}
		}
	}
	rc, err := c.src.Fetch(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	item := d.Digest.String()
	c.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateStarted, Item: item, Bytes: d.Size})
	var r io.Reader = rc
	if c.o.Progress != nil {
		// An attempt the destination starts over (it seeks back) reports
		// only bytes beyond those reported before.
		r = (&progress.Item{F: c.o.Progress, Phase: progress.PhaseBlobs, Name: item}).Reader(rc)
	}
	if err := c.dst.Push(ctx, d, r); err != nil {
		return err
	}
	atomic.AddInt64(&c.stats.Blobs, 1)
	atomic.AddInt64(&c.stats.Bytes, d.Size)
	c.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone, Item: item, Bytes: d.Size})
	return nil
}

// held reports whether the copy skips d because dst holds it.
func (c *copier) held(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	e, ok := c.dst.(Exister)
	if c.o.Overwrite || !ok {
		return false, nil
	}
	has, err := e.Exists(ctx, d)
	if err != nil {
		return false, fmt.Errorf("asking the destination for %s: %w", d.Digest, err)
	}
	if has {
		atomic.AddInt64(&c.stats.Skipped, 1)
		atomic.AddInt64(&c.stats.SkippedBytes, d.Size)
		phase := progress.PhaseBlobs
		if layout.IsManifestOrIndex(d.MediaType) {
			phase = progress.PhaseManifests
		}
		c.o.Progress.Emit(progress.Event{Phase: phase, State: progress.StateSkipped, Item: d.Digest.String(), Bytes: d.Size})
	}
	return has, nil
}

// manifests pushes every manifest once all its children are in place,
// level by level from the leaves. A manifest with a failed child is not
// tried; it counts as failed in turn.
func (c *copier) manifests(ctx context.Context, nodes map[digest.Digest]Node, order []digest.Digest, failed map[digest.Digest]bool) {
	children := make(map[digest.Digest][]ocispec.Descriptor, len(nodes))
	for d, n := range nodes {
		children[d] = n.Children
	}
	heights := Heights(children)
	maxH := 0
	for _, h := range heights {
		maxH = max(maxH, h)
	}
	var fmu sync.Mutex // guards failed: this level's pushes record into it
	for h := 0; h <= maxH; h++ {
		if ctx.Err() != nil {
			c.fail(ctx.Err())
			return
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.o.Concurrency)
		for _, d := range order {
			if heights[d] != h {
				continue
			}
			n := nodes[d]
			fmu.Lock()
			blocked := false
			for _, ch := range n.Children {
				blocked = blocked || failed[ch.Digest]
			}
			if blocked {
				failed[d] = true
			}
			fmu.Unlock()
			if blocked {
				continue
			}
			g.Go(func() error {
				if err := c.manifest(gctx, n); err != nil {
					fmu.Lock()
					failed[d] = true
					fmu.Unlock()
					err = fmt.Errorf("manifest %s: %w", d, err)
					if !c.o.KeepGoing {
						return err
					}
					c.fail(err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *copier) manifest(ctx context.Context, n Node) error {
	if skip, err := c.held(ctx, n.Desc); err != nil || skip {
		return err
	}
	if err := c.dst.Push(ctx, n.Desc, bytes.NewReader(n.Raw)); err != nil {
		return err
	}
	atomic.AddInt64(&c.stats.Manifests, 1)
	atomic.AddInt64(&c.stats.Bytes, n.Desc.Size)
	c.o.Progress.Emit(progress.Event{Phase: progress.PhaseManifests, State: progress.StateDone, Item: n.Desc.Digest.String(), Bytes: n.Desc.Size})
	return nil
}

// Heights returns, for each manifest of a graph (the children of each,
// by digest), 0 when none of its children is a manifest of the graph, else
// 1 + the highest such child: pushing by ascending height puts children
// before parents.
func Heights(nodes map[digest.Digest][]ocispec.Descriptor) map[digest.Digest]int {
	h := map[digest.Digest]int{}
	var height func(d digest.Digest, depth int) int
	height = func(d digest.Digest, depth int) int {
		if v, ok := h[d]; ok {
			return v
		}
		kids, ok := nodes[d]
		if !ok || depth > len(nodes) {
			return -1 // not a manifest of the graph (or a cycle, which digests cannot form)
		}
		v := 0
		for _, ch := range kids {
			if ch.Digest == d {
				continue
			}
			v = max(v, height(ch.Digest, depth+1)+1)
		}
		h[d] = v
		return v
	}
	for d := range nodes {
		height(d, 0)
	}
	return h
}
