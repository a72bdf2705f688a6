package progress

import (
	"io"
	"sync"
)

// Phase names a stage of an export or import.
type Phase string

// Phases, in the order an export or import goes through them.
const (
	PhasePlan Phase = "plan"
	// PhaseVerify: every blob an import is to upload is hashed before
	// the first byte moves; verify hashes every blob of the archive.
	PhaseVerify     Phase = "verify"
	PhaseBlobs      Phase = "blobs"
	PhaseManifests  Phase = "manifests"
	PhaseSignatures Phase = "signatures"
	PhaseTags       Phase = "tags"
)

// State is what happened to one item.
type State string

// States of an item.
const (
	// StateTotal announces the total bytes (Total) and items (Count) of a phase.
	StateTotal State = "total"
	// StateStarted: work on an item began.
	StateStarted State = "started"
	// StateActive: Bytes more bytes of the item were moved.
	StateActive State = "active"
	// StateDone: the item is complete.
	StateDone State = "done"
	// StateSkipped: the item was already present; its bytes count as done.
	StateSkipped State = "skipped"
)

// Event is one progress report.
type Event struct {
	Phase Phase
	State State
	// Item is a digest or a reference, depending on the phase.
	Item string
	// Image is the bundle image the item belongs to, when known.
	Image string
	// Bytes: for StateActive the bytes just moved; for StateDone and
	// StateSkipped the item's total size.
	Bytes int64
	// Total and Count are set with StateTotal.
	Total int64
	Count int
}

// Func receives events. It is called from worker goroutines, concurrently,
// and must return quickly.
type Func func(Event)

// Emit calls f with e if f is not nil.
func (f Func) Emit(e Event) {
	if f != nil {
		f(e)
	}
}

// Reader counts bytes read through it as StateActive events.
type Reader struct {
	R     interface{ Read([]byte) (int, error) }
	F     Func
	Phase Phase
	Item  string
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	if n > 0 && r.F != nil {
		r.F(Event{Phase: r.Phase, State: StateActive, Item: r.Item, Bytes: int64(n)})
	}
	return n, err
}

// Item reports the StateActive bytes of one item across any number of
// attempts to move it. Each attempt reads the item from its start through
// Reader; only bytes beyond the furthest offset an earlier attempt reached
// are reported, so a retried transfer never counts a byte twice. An Item is
// safe for concurrent use.
type Item struct {
	F     Func
	Phase Phase
	// Name is reported as Event.Item (a digest or a reference).
	Name string
	// Image is reported as Event.Image.
	Image string

	mu       sync.Mutex
	reported int64
}

// Reader returns a reader for one attempt: it reads r from the item's
// first byte on. When r is an io.Seeker, so is the reader: an attempt that
// starts over (seeks back) reports again only the bytes past the furthest
// offset reached before.
func (it *Item) Reader(r io.Reader) io.Reader {
	ir := &itemReader{it: it, r: r}
	if s, ok := r.(io.Seeker); ok {
		return &seekingItemReader{itemReader: ir, s: s}
	}
	return ir
}

// Reported returns how many bytes of the item have been reported.
func (it *Item) Reported() int64 {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.reported
}

// advance records that an attempt reached offset pos and reports the bytes
// beyond what was reported before.
func (it *Item) advance(pos int64) {
	it.mu.Lock()
	n := pos - it.reported
	if n > 0 {
		it.reported = pos
	}
	it.mu.Unlock()
	if n > 0 && it.F != nil {
		it.F(Event{Phase: it.Phase, State: StateActive, Item: it.Name, Image: it.Image, Bytes: n})
	}
}

type itemReader struct {
	it  *Item
	r   io.Reader
	pos int64
}

func (r *itemReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.pos += int64(n)
		r.it.advance(r.pos)
	}
	return n, err
}

type seekingItemReader struct {
	*itemReader
	s io.Seeker
}

func (r *seekingItemReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := r.s.Seek(offset, whence)
	if err == nil {
		r.pos = pos
	}
	return pos, err
}
