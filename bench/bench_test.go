package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
)

// TestMain lets the test binary serve as the benchmark's child processes
// (cnab-airgap's library and the crane baseline), as the real binary does.
func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(childMain(context.Background(), mode, os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBenchPlumbing runs the whole benchmark on the tiny XS workload with
// every tool: the machine probes, real registries, the cnab-airgap binary
// built from the tree, each tool's export, import and re-import as child
// processes, their checks of the target, and the report. TestOursLibrary
// covers the library child mode.
func TestBenchPlumbing(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := config{
		Workloads: []string{"XS"},
		Runs:      1,
		Tools:     []string{"cnab-airgap", "crane", "skopeo"},
		WImages:   300,
		Reimport:  true,
		Dir:       t.TempDir(),
		DiskBytes: 16 << 20,
		NetBytes:  16 << 20,
		Self:      self,
		OursCLI:   true, // built from ./cmd/cnab-airgap, as make bench does
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, c, &out, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	l := rep.Limits
	if l.SHA256 <= 0 || l.DiskWrite <= 0 || l.DiskReadCold <= 0 || l.Pull <= 0 || l.Push <= 0 {
		t.Fatalf("machine limits not measured: %+v", l)
	}
	if len(rep.Workloads) != 1 {
		t.Fatalf("%d workload results", len(rep.Workloads))
	}
	wr := rep.Workloads[0]
	if wr.W.UniqueBytes <= 0 || len(wr.W.Images) != 2 {
		t.Fatalf("workload XS: %d unique bytes, %d images", wr.W.UniqueBytes, len(wr.W.Images))
	}
	for _, tool := range c.Tools {
		runs := wr.Runs[tool]
		if len(runs) != 1 {
			t.Fatalf("%s: %d runs", tool, len(runs))
		}
		o := runs[0]
		for _, ph := range []string{"export", "import", "reimport"} {
			m, ok := o.phase(ph)
			if !ok || m.Wall <= 0 || m.CPU <= 0 || m.MaxRSS <= 0 {
				t.Fatalf("%s %s not measured: %+v (steps %v)", tool, ph, m, o.Steps)
			}
		}
		// The target received at least every unique blob byte once (the
		// bundle's own blobs excepted for the peers); the re-import nothing.
		if o.Uploaded < wr.W.UniqueBytes/2 || o.ReUploaded != 0 {
			t.Fatalf("%s uploaded %d bytes, re-uploaded %d, for %d unique", tool, o.Uploaded, o.ReUploaded, wr.W.UniqueBytes)
		}
		if o.ArchiveBytes < wr.W.UniqueBytes/2 {
			t.Fatalf("%s archive of %d bytes for %d unique", tool, o.ArchiveBytes, wr.W.UniqueBytes)
		}
	}
	text := out.String()
	for _, want := range []string{"limits:", "workload XS:", "floor:", "round trip  crane", "reimport    skopeo", "archive bytes vs",
		"req/blob", "goals (issue 16)", "[ -- ] M round trip within 1.3x of the floor"} {
		if !strings.Contains(text, want) {
			t.Fatalf("report lacks %q:\n%s", want, text)
		}
	}
}

// TestOursLibrary runs cnab-airgap's library child mode (BENCH_OURS=lib) on
// XS: export, import, re-import with nothing uploaded.
func TestOursLibrary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := config{Workloads: []string{"XS"}, Runs: 1, Tools: []string{"cnab-airgap"}, Reimport: true,
		Dir: t.TempDir(), DiskBytes: 4 << 20, NetBytes: 4 << 20, Self: self}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := run(ctx, c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := rep.Workloads[0].Runs["cnab-airgap"][0]
	if _, ok := o.phase("reimport"); !ok || o.Uploaded == 0 || o.ReUploaded != 0 {
		t.Fatalf("library mode: uploaded %d, re-uploaded %d, steps %v", o.Uploaded, o.ReUploaded, o.Steps)
	}
}

// TestWorkloadShapes checks the sizes the docs and the goals rely on: L is
// about 3 GiB over 20 images, two of them indexes; B holds exactly the
// bytes asked for in a few images of GiB-scale layers; MS has 2,000 layers
// over 50 images.
func TestWorkloadShapes(t *testing.T) {
	l := harness.WorkloadL()
	indexes := 0
	for _, im := range l.Images {
		if im.Index != nil {
			indexes++
		}
	}
	if n, lb := len(l.Images), l.LayerBytes(); n != 20 || indexes != 2 || lb < 2900<<20 || lb > 3200<<20 {
		t.Fatalf("L: %d images, %d indexes, %d MiB", n, indexes, lb>>20)
	}
	b := harness.WorkloadBig(20 << 30)
	if n, lb := len(b.Images), b.LayerBytes(); n > 5 || lb != 20<<30 {
		t.Fatalf("B: %d images, %d bytes", n, lb)
	}
	for _, ls := range b.Layers() {
		if ls.Label != "b-installer" && (ls.Size < 1<<30 || ls.Size > harness.BigLayerMax) {
			t.Fatalf("B layer %s is %d MiB, not GiB-scale", ls.Label, ls.Size>>20)
		}
	}
	ms := harness.WorkloadManySmall()
	if n := len(ms.Layers()); n < 2000 || len(ms.Images) < 50 {
		t.Fatalf("MS: %d layers over %d images", n, len(ms.Images))
	}
}

// TestPlanBig sizes B: what BENCH_BIG_GIB asks when the disk holds it,
// reduced with the reason when it does not, and skopeo left out by default
// with a note saying so.
func TestPlanBig(t *testing.T) {
	all := []tool{ours{}, crane{}, skopeo{}}
	c := config{Runs: 3, RunsBig: 1, Tools: []string{"cnab-airgap", "crane", "skopeo"},
		ToolsBig: []string{"cnab-airgap", "crane"}, Reimport: true, BigBytes: 1 << 30, BigSet: true}
	pl, ok, err := planBig(c, all, t.TempDir(), &report{})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(pl.Notes, "\n")
	if !ok || pl.W.LayerBytes() != 1<<30 || len(pl.Tools) != 2 || pl.Runs != 1 || !pl.DropPeerTar || pl.PeersReimport {
		t.Fatalf("plan %+v ok=%v\n%s", pl, ok, notes)
	}
	for _, want := range []string{"size: 1.00 GiB", "skopeo left out by BENCH_TOOLS_B", "runs: 1", "re-import: not by the peers", "over 3 copies"} {
		if !strings.Contains(notes, want) {
			t.Fatalf("notes lack %q:\n%s", want, notes)
		}
	}
	c.BigBytes = 1 << 50
	c.ReimportPeersBig = true
	pl, _, err = planBig(c, all, t.TempDir(), &report{})
	if err != nil {
		t.Fatal(err)
	}
	notes = strings.Join(pl.Notes, "\n")
	if !strings.Contains(notes, "reduced from BENCH_BIG_GIB") || !strings.Contains(notes, "over 4 copies") || pl.DropPeerTar {
		t.Fatalf("a size beyond the disk is not reduced with its reason:\n%s", notes)
	}
}

// TestGoals checks the goal lines on made-up medians: what is met, what is
// missed and by how much, and what was not measured.
func TestGoals(t *testing.T) {
	lim := limits{SHA256: 1e9, DiskWrite: 1e9, DiskReadCold: 1e9, Pull: 1e9, Push: 1e9}
	one := func(export, imp, re time.Duration, rss int64, reUp int64) []*outcome {
		return []*outcome{{
			Steps: map[string]measure{
				"export":   {Wall: export, MaxRSS: rss},
				"import":   {Wall: imp, MaxRSS: rss},
				"reimport": {Wall: re, MaxRSS: rss},
			},
			ReUploaded: reUp,
			Requests:   map[string]int64{"import": 40, "reimport": 20},
		}}
	}
	wl := func(name string, bytes int64, ours, crane []*outcome) *workloadResult {
		return &workloadResult{W: &prepared{Name: name, UniqueBytes: bytes, Blobs: 10},
			Runs: map[string][]*outcome{"cnab-airgap": ours, "crane": crane}}
	}
	// M: 1 GB, floor 2 s; ours 2.4 s (1.2x), crane 6 s (2.5x).
	m := wl("M", 1e9, one(time.Second+200*time.Millisecond, 1200*time.Millisecond, 50*time.Millisecond, 30<<20, 0),
		one(3*time.Second, 3*time.Second, time.Second, 30<<20, 0))
	// B: 20 GB, ours 50 s, crane 80 s (1.6x: missed), RSS 40 MiB (above M's),
	// re-import 1.5 s with bytes uploaded.
	b := wl("B", 20e9, one(25*time.Second, 25*time.Second, 1500*time.Millisecond, 40<<20, 123),
		one(40*time.Second, 40*time.Second, 0, 30<<20, 0))
	var out bytes.Buffer
	printGoals(&out, &report{Limits: lim, Workloads: []*workloadResult{m, b}})
	text := out.String()
	for _, want := range []string{
		"[met ] M round trip 2.40 s is 1.20x the floor 2.00 s; goal at most 1.3x: met with 0.10x to spare",
		"[ -- ] L round trip within 1.3x of the floor: L not measured",
		"[met ] M round trip 2.40 s vs crane 6.00 s: 2.50x ahead",
		"[MISS] B round trip 50.00 s vs crane 80.00 s: 1.60x ahead; goal at least 2x: missed by 0.40x: ours would need 40.00 s, 20% less time",
		"[met ] B peak RSS 40.0 MiB",
		"[MISS] B peak RSS 40.0 MiB vs M 30.0 MiB; goal no higher than M: missed by 10.0 MiB",
		"[met ] M re-import 0.050 s, 0 bytes uploaded (2.00 requests per blob)",
		"[MISS] B re-import 1.500 s, 123 bytes uploaded (2.00 requests per blob); goal under 1 s and 0 bytes: missed: 0.500 s too slow, 123 bytes uploaded",
		"[ -- ] MS peak RSS under 64 MiB: MS not measured",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("goals lack %q:\n%s", want, text)
		}
	}
}
