package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
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
	for _, want := range []string{"limits:", "workload XS:", "floor:", "round trip  crane", "reimport    skopeo", "archive bytes vs"} {
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
