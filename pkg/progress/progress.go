// Package progress defines the small events that cnab-airgap's library
// reports while it works. The library never prints; a caller that wants a
// display (the CLI draws bars) passes a Func.
package progress

// Phase names a stage of an export or import.
type Phase string

// Phases, in the order an export or import goes through them.
const (
	PhasePlan       Phase = "plan"
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
