package layout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/internal/fsutil"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

// FetchFunc returns the content of a blob. The writer verifies size and
// digest while it copies, so FetchFunc may return the raw network body.
type FetchFunc func(ctx context.Context, b Blob) (io.ReadCloser, error)

// PartialSuffix is appended to an archive's name while it is being written.
const PartialSuffix = ".partial"

// FileWriter writes a planned archive into a staging file next to its final
// path. Blobs may be written in any order and concurrently; each is written
// once, at its offset, and hashed once as it streams. Commit renames the
// staging file to its final name only when every blob is present.
type FileWriter struct {
	plan    *Plan
	path    string
	partial string
	f       *os.File
	mu      sync.Mutex
	done    []chan struct{} // closed when entry i's data is on disk
	written []bool
	resumed int64 // bytes found already complete when resuming
	hashed  chan hashResult
	cancel  context.CancelFunc
	wmu     sync.Mutex    // one pwrite at a time: the kernel serializes them anyway, spinning
	flush   chan [2]int64 // hashed ranges, from hashInOrder to flushBehind
	flushed chan struct{} // closed when flushBehind has returned
}

// flushChunk is how much hashed data is handed to the writeback at once.
const flushChunk = 16 << 20

type hashResult struct {
	d   digest.Digest
	err error
}

// CreateOptions controls Create.
type CreateOptions struct {
	// Resume reuses an existing staging file whose layout matches the plan:
	// every blob already in it is re-verified and kept, the rest is fetched.
	Resume bool
}

// Create prepares path+PartialSuffix at the archive's final size with every
// header and in-memory file in place. The caller then writes each blob of
// Plan.Blobs with WriteBlob (or Fill) and calls Commit or Abort.
func Create(path string, p *Plan, o CreateOptions) (*FileWriter, error) {
	w := &FileWriter{plan: p, path: path, partial: path + PartialSuffix}
	w.done = make([]chan struct{}, len(p.entries))
	w.written = make([]bool, len(p.entries))
	for i := range w.done {
		w.done[i] = make(chan struct{})
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	var err error
	reuse := false
	if o.Resume {
		if st, serr := os.Stat(w.partial); serr == nil && st.Size() == p.size {
			w.f, err = os.OpenFile(w.partial, os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			reuse = w.headersMatch()
			if !reuse {
				w.f.Close()
			}
		}
	}
	if !reuse {
		w.f, err = os.OpenFile(w.partial, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		if err := w.f.Truncate(p.size); err != nil {
			w.Abort()
			return nil, err
		}
	}
	for i, e := range p.entries {
		if !reuse {
			if _, err := w.f.WriteAt(e.header, e.HeaderOffset); err != nil {
				w.Abort()
				return nil, err
			}
		}
		if e.inline != nil {
			if !reuse {
				if _, err := w.f.WriteAt(e.inline, e.DataOffset); err != nil {
					w.Abort()
					return nil, err
				}
			}
			w.markDone(i)
		} else if reuse && w.verifyExisting(e) {
			w.resumed += e.Size
			w.markDone(i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.hashed = make(chan hashResult, 1)
	w.flush = make(chan [2]int64, 4)
	w.flushed = make(chan struct{})
	go w.hashInOrder(ctx)
	go w.flushBehind()
	return w, nil
}

// headersMatch reports whether the existing staging file has exactly the
// plan's headers and in-memory files, i.e. was written for the same plan.
func (w *FileWriter) headersMatch() bool {
	for _, e := range w.plan.entries {
		buf := make([]byte, len(e.header))
		if _, err := w.f.ReadAt(buf, e.HeaderOffset); err != nil || !bytes.Equal(buf, e.header) {
			return false
		}
		if e.inline != nil {
			buf := make([]byte, len(e.inline))
			if _, err := w.f.ReadAt(buf, e.DataOffset); err != nil || !bytes.Equal(buf, e.inline) {
				return false
			}
		}
	}
	return true
}

func (w *FileWriter) verifyExisting(e Entry) bool {
	vr, err := verify.NewReader(io.NewSectionReader(w.f, e.DataOffset, e.Size), e.Digest, e.Size)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, vr)
	return err == nil
}

// Resumed returns how many blob bytes were kept from a previous run.
func (w *FileWriter) Resumed() int64 { return w.resumed }

// Pending returns the blobs that still have to be written, in archive order.
func (w *FileWriter) Pending() []Blob {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Blob
	for i, e := range w.plan.entries {
		if !w.written[i] {
			out = append(out, Blob{Digest: e.Digest, Size: e.Size})
		}
	}
	return out
}

func (w *FileWriter) markDone(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.written[i] {
		w.written[i] = true
		close(w.done[i])
	}
}

// WriteBlob copies r into the blob's place in the archive, checking size and
// digest while it streams. On a mismatch nothing is marked written and the
// blob may be written again.
func (w *FileWriter) WriteBlob(ctx context.Context, d digest.Digest, r io.Reader) error {
	i, ok := w.plan.blobs[d]
	if !ok {
		return fmt.Errorf("blob %s: %w: not in the plan", d, ErrInvalidArchive)
	}
	e := w.plan.entries[i]
	w.mu.Lock()
	already := w.written[i]
	w.mu.Unlock()
	if already {
		return nil
	}
	vr, err := verify.NewReader(r, d, e.Size)
	if err != nil {
		return err
	}
	ow := io.NewOffsetWriter(lockedWriterAt{w}, e.DataOffset)
	if _, err := copyCtx(ctx, ow, vr); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	w.markDone(i)
	return nil
}

// Fill fetches every pending blob with up to jobs concurrent fetches and
// writes it at its offset. The first failure cancels the others.
func (w *FileWriter) Fill(ctx context.Context, jobs int, fetch FetchFunc) error {
	if jobs < 1 {
		jobs = 1
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, b := range w.Pending() {
		g.Go(func() error {
			rc, err := fetch(gctx, b)
			if err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			defer rc.Close()
			return w.WriteBlob(gctx, b.Digest, rc)
		})
	}
	return g.Wait()
}

// hashInOrder computes the sha256 of the whole archive, reading each region
// back as soon as everything before its end is on disk. It runs while blobs
// are still being fetched, so the digest is ready when the last blob lands.
func (w *FileWriter) hashInOrder(ctx context.Context) {
	defer close(w.flush)
	h := sha256.New()
	var pos, sent int64
	for i, e := range w.plan.entries {
		select {
		case <-w.done[i]:
		case <-ctx.Done():
			w.hashed <- hashResult{err: ctx.Err()}
			return
		}
		end := e.DataOffset + e.Size
		if _, err := copyCtx(ctx, h, io.NewSectionReader(w.f, pos, end-pos)); err != nil {
			w.hashed <- hashResult{err: err}
			return
		}
		pos = end
		if pos-sent >= flushChunk {
			select {
			case w.flush <- [2]int64{sent, pos}:
				sent = pos
			case <-ctx.Done():
				w.hashed <- hashResult{err: ctx.Err()}
				return
			}
		}
	}
	if _, err := io.Copy(h, io.NewSectionReader(w.f, pos, w.plan.size-pos)); err != nil {
		w.hashed <- hashResult{err: err}
		return
	}
	w.hashed <- hashResult{d: digest.NewDigest(digest.SHA256, h)}
}

// flushBehind writes back each range hashInOrder is done with and drops it
// from the page cache once it is on disk, one range behind: the archive is
// not read again, the disk works while blobs are still being fetched, and
// the page cache holds a bounded window of the archive instead of all of
// it (reused pages are also cheaper than new ones). The range still being
// written back is left to Commit's fsync.
func (w *FileWriter) flushBehind() {
	defer close(w.flushed)
	var prev [2]int64
	for r := range w.flush {
		startWriteback(w.f, r[0], r[1]-r[0])
		if prev[1] > prev[0] {
			finishWriteback(w.f, prev[0], prev[1]-prev[0])
		}
		prev = r
	}
}

// lockedWriterAt serializes the writer's pwrites (see FileWriter.wmu).
type lockedWriterAt struct{ w *FileWriter }

func (l lockedWriterAt) WriteAt(p []byte, off int64) (int, error) {
	l.w.wmu.Lock()
	defer l.w.wmu.Unlock()
	return l.w.f.WriteAt(p, off)
}

// Commit checks that every blob was written, syncs the staging file, renames
// it to the final path and returns the archive's sha256 digest.
func (w *FileWriter) Commit() (digest.Digest, error) {
	if missing := w.Pending(); len(missing) > 0 {
		return "", fmt.Errorf("%w: %d blobs not written, first %s", ErrIncomplete, len(missing), missing[0].Digest)
	}
	res := <-w.hashed
	if res.err != nil {
		return "", res.err
	}
	<-w.flushed
	if err := w.f.Sync(); err != nil {
		return "", err
	}
	if err := w.f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(w.partial, w.path); err != nil {
		return "", err
	}
	fsutil.SyncDir(filepath.Dir(w.path))
	w.cancel()
	return res.d, nil
}

// Close stops the writer and keeps the staging file so a later run can
// resume it. It is safe to call after Commit.
func (w *FileWriter) Close() error {
	if w.cancel != nil {
		w.cancel()
	}
	if w.f != nil {
		err := w.f.Close()
		if errors.Is(err, os.ErrClosed) {
			return nil
		}
		return err
	}
	return nil
}

// Abort stops the writer and removes the staging file.
func (w *FileWriter) Abort() {
	w.Close()
	os.Remove(w.partial)
}

// WriteStream writes the planned archive sequentially to out, fetching each
// blob in archive order, and returns the archive's sha256 digest. It is the
// path for stdout and compressed outputs.
func (p *Plan) WriteStream(ctx context.Context, out io.Writer, fetch FetchFunc) (digest.Digest, error) {
	h := sha256.New()
	mw := io.MultiWriter(out, h)
	var zero [blockSize]byte
	for _, e := range p.entries {
		if _, err := mw.Write(e.header); err != nil {
			return "", err
		}
		if e.inline != nil {
			if _, err := mw.Write(e.inline); err != nil {
				return "", err
			}
		} else {
			rc, err := fetch(ctx, Blob{Digest: e.Digest, Size: e.Size})
			if err != nil {
				return "", fmt.Errorf("blob %s: %w", e.Digest, err)
			}
			vr, err := verify.NewReader(rc, e.Digest, e.Size)
			if err == nil {
				_, err = copyCtx(ctx, mw, vr)
			}
			rc.Close()
			if err != nil {
				return "", fmt.Errorf("blob %s: %w", e.Digest, err)
			}
		}
		if pad := padded(e.Size) - e.Size; pad > 0 {
			if _, err := mw.Write(zero[:pad]); err != nil {
				return "", err
			}
		}
	}
	for range 2 {
		if _, err := mw.Write(zero[:]); err != nil {
			return "", err
		}
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyCtx copies src to dst through a pooled 1 MiB buffer, stopping when ctx
// is cancelled. A verify.Reader source reports its mismatch as the error.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
