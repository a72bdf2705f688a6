package importer_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// tally adds up progress events the way a display does.
type tally struct {
	mu       sync.Mutex
	total    map[progress.Phase]int64
	count    map[progress.Phase]int
	active   map[progress.Phase]int64
	finished map[progress.Phase]map[string]int64
	closed   map[progress.Phase]bool
	unknown  []string // active bytes for items never started
	started  map[string]bool
}

func newTally() *tally {
	return &tally{total: map[progress.Phase]int64{}, count: map[progress.Phase]int{}, active: map[progress.Phase]int64{},
		finished: map[progress.Phase]map[string]int64{}, closed: map[progress.Phase]bool{}, started: map[string]bool{}}
}

func (t *tally) event(e progress.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.State {
	case progress.StateTotal:
		t.total[e.Phase], t.count[e.Phase] = e.Total, e.Count
	case progress.StateStarted:
		t.started[string(e.Phase)+e.Item] = true
	case progress.StateActive:
		t.active[e.Phase] += e.Bytes
		if !t.started[string(e.Phase)+e.Item] {
			t.unknown = append(t.unknown, e.Item)
		}
	case progress.StateDone, progress.StateSkipped:
		if e.Item == "" {
			t.closed[e.Phase] = true
			return
		}
		if t.finished[e.Phase] == nil {
			t.finished[e.Phase] = map[string]int64{}
		}
		t.finished[e.Phase][e.Item] = e.Bytes
	}
}

func (t *tally) finishedBytes(p progress.Phase) int64 {
	var n int64
	for _, b := range t.finished[p] {
		n += b
	}
	return n
}

// Progress accounting of an import, also when uploads break off and are
// retried: the blobs total counts each distinct blob once, the bytes
// reported never exceed it (a retry reports only bytes beyond what an
// earlier attempt reached), every item finishes once, and a second import
// reaches the same total with every blob skipped.
func TestImportProgressAccounting(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	broken := map[string]bool{}
	// The first PUT of every blob reads half of the body, then fails with 503.
	flaky := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := r.URL.Query().Get("digest")
			if r.Method == http.MethodPut && d != "" && r.ContentLength > 1024 {
				mu.Lock()
				first := !broken[d]
				broken[d] = true
				mu.Unlock()
				if first {
					io.CopyN(io.Discard, r.Body, r.ContentLength/2)
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	dst, err := harness.StartRegistry(ctx, harness.WithMiddleware(flaky))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	a, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, s := range a.Blobs {
		want += s
	}
	c, err := registry.New(registry.Options{PlainHTTP: []string{dst.Host}})
	if err != nil {
		t.Fatal(err)
	}

	for run, skipped := range []bool{false, true} {
		tl := newTally()
		res, err := importer.Import(ctx, importer.Request{Archive: a.Path, Target: dst.Host + "/mirror"},
			importer.WithClient(c), importer.WithProgress(tl.event), importer.WithJobs(2))
		if err != nil {
			t.Fatal(err)
		}
		if tl.total[progress.PhaseBlobs] != want || tl.count[progress.PhaseBlobs] != len(a.Blobs) {
			t.Fatalf("run %d: blobs total %d bytes / %d items, want %d / %d", run, tl.total[progress.PhaseBlobs], tl.count[progress.PhaseBlobs], want, len(a.Blobs))
		}
		if got := tl.finishedBytes(progress.PhaseBlobs); got != want || len(tl.finished[progress.PhaseBlobs]) != len(a.Blobs) {
			t.Fatalf("run %d: %d items finished with %d bytes, want %d with %d", run, len(tl.finished[progress.PhaseBlobs]), got, len(a.Blobs), want)
		}
		if skipped {
			if tl.active[progress.PhaseBlobs] != 0 || res.BytesSkipped != want {
				t.Fatalf("second run moved %d bytes, skipped %d", tl.active[progress.PhaseBlobs], res.BytesSkipped)
			}
		} else if tl.active[progress.PhaseBlobs] != res.BytesUploaded || res.BytesUploaded != want {
			t.Fatalf("first run reported %d bytes moving, uploaded %d, want %d (retries must not count twice)", tl.active[progress.PhaseBlobs], res.BytesUploaded, want)
		}
		if len(tl.unknown) > 0 {
			t.Fatalf("bytes reported for items never started: %s", strings.Join(tl.unknown, ", "))
		}
		for _, p := range []progress.Phase{progress.PhaseBlobs, progress.PhaseManifests, progress.PhaseTags} {
			if !tl.closed[p] {
				t.Fatalf("run %d: phase %s never closed", run, p)
			}
			if n := len(tl.finished[p]); n != tl.count[p] {
				t.Fatalf("run %d: phase %s finished %d items of %d announced", run, p, n, tl.count[p])
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(broken) == 0 {
		t.Fatal("no upload was broken off: the test did not exercise retries")
	}
}
