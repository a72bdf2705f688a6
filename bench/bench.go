package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// workloadNames are the workloads BENCH_WORKLOADS may name.
var workloadNames = []string{"XS", "S", "M", "W", "MS", "L", "B"}

// workloads are the fixed-size workloads; B is sized to the free disk when
// its turn comes (planBig).
func workloads(c config) map[string]harness.Workload {
	return map[string]harness.Workload{
		"XS": harness.WorkloadXS(),
		"S":  harness.WorkloadS(),
		"M":  harness.WorkloadM(),
		"W":  harness.WorkloadW(c.WImages),
		"MS": harness.WorkloadManySmall(),
		"L":  harness.WorkloadL(),
	}
}

// plan is how one workload is run.
type plan struct {
	Name  string
	W     harness.Workload
	Runs  int
	Tools []tool
	// PeersReimport has the peers re-import too (cnab-airgap always does).
	PeersReimport bool
	// DropPeerTar deletes a peer's tar once unpacked (no re-import needs
	// it), so that B needs one copy less on disk.
	DropPeerTar bool
	// Notes say why the plan differs from the defaults (B's size, tools
	// left out); printed under the workload's heading.
	Notes []string
}

func planFor(c config, wname string, tools []tool) plan {
	return plan{Name: wname, W: workloads(c)[wname], Runs: c.Runs, Tools: tools, PeersReimport: c.Reimport}
}

// workloadResult is every run of every tool on one workload.
type workloadResult struct {
	W    *prepared
	Plan plan
	Gen  time.Duration
	Runs map[string][]*outcome // tool -> runs
	// GenPeakRSS is this process's peak resident set while it generated
	// and pushed the workload (0 if unknown): flat whatever the size when
	// layers are streamed.
	GenPeakRSS int64
}

// run executes the whole benchmark and writes the report to out; progress
// goes to log.
func run(ctx context.Context, c config, out, log io.Writer) (*report, error) {
	start := time.Now()
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "cnab-airgap-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var tools []tool
	for _, t := range c.Tools {
		switch t {
		case "cnab-airgap":
			t := ours{self: c.Self, jobs: c.Jobs}
			if c.OursCLI {
				t.bin = c.Bin
				if t.bin == "" {
					var err error
					if t.bin, err = buildBinary(ctx, dir); err != nil {
						return nil, err
					}
				}
			}
			tools = append(tools, t)
		case "crane":
			tools = append(tools, crane{self: c.Self})
		case "skopeo":
			bin, err := exec.LookPath("skopeo")
			if err != nil {
				return nil, fmt.Errorf("skopeo is not installed (apt-get install skopeo): %w", err)
			}
			tools = append(tools, skopeo{bin: bin})
		}
	}
	snap := takeCPUSnapshot()
	fmt.Fprintf(log, "bench: measuring the machine's limits\n")
	lim, err := measureLimits(ctx, dir, c.DiskBytes, c.NetBytes)
	if err != nil {
		return nil, err
	}
	rep := &report{Machine: describeMachine(ctx), Limits: lim, Runs: c.Runs}
	printHeader(out, rep)
	for _, wname := range c.Workloads {
		pl := planFor(c, wname, tools)
		if wname == "B" {
			var ok bool
			if pl, ok, err = planBig(c, tools, dir, rep); err != nil {
				return nil, fmt.Errorf("workload B: %w", err)
			}
			for _, n := range pl.Notes {
				fmt.Fprintf(log, "bench: workload B: %s\n", n)
			}
			if !ok {
				fmt.Fprintf(out, "\nworkload B: not run\n")
				for _, n := range pl.Notes {
					fmt.Fprintf(out, "  note: %s\n", n)
				}
				continue
			}
		}
		wr, err := runWorkload(ctx, c, pl, dir, log)
		if err != nil {
			return nil, fmt.Errorf("workload %s: %w", wname, err)
		}
		rep.Workloads = append(rep.Workloads, wr)
		printWorkload(out, rep, wr)
	}
	printGoals(out, rep)
	printTargets(out, rep)
	fmt.Fprintf(out, "\nbenchmark took %.0f s", time.Since(start).Seconds())
	if load, ok := otherLoad(snap, takeCPUSnapshot()); ok {
		rep.OtherLoad = load
		fmt.Fprintf(out, "; other programs kept %.2f of %d cores busy meanwhile", load, numCPU())
		if load > 0.1 {
			fmt.Fprintf(out, " (the timings are disturbed: run again on an idle machine)")
		}
	}
	fmt.Fprintln(out)
	return rep, nil
}

func runWorkload(ctx context.Context, c config, pl plan, dir string, log io.Writer) (*workloadResult, error) {
	wname, w := pl.Name, pl.W
	genStart := time.Now()
	fmt.Fprintf(log, "bench: workload %s: generating %d images (%.0f MiB of layer data)\n", wname, len(w.Images), float64(w.LayerBytes())/(1<<20))
	peakKnown := resetPeakRSS()
	src, err := harness.StartRegistry(ctx)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	pb, err := harness.PushWorkload(ctx, src, w, "bench/"+strings.ToLower(wname)+"/bundle:1.0", 4)
	if err != nil {
		return nil, err
	}
	p := &prepared{Name: wname, Src: src, Bundle: pb, PeersReimport: pl.PeersReimport, DropPeerTar: pl.DropPeerTar}
	for _, im := range pb.Images {
		p.Images = append(p.Images, image{Ref: im.Image, Path: strings.TrimPrefix(im.Image, src.Host+"/"), Digest: im.ContentDigest.String()})
	}
	if p.UniqueBytes, p.Blobs, err = uniqueBytes(ctx, src, pb.Ref); err != nil {
		return nil, err
	}
	wr := &workloadResult{W: p, Plan: pl, Gen: time.Since(genStart), Runs: map[string][]*outcome{}}
	if peakKnown {
		wr.GenPeakRSS = peakRSS()
	}
	fmt.Fprintf(log, "bench: workload %s: %d blobs and manifests, %.1f MB unique, generated in %.1f s (this process peaked at %.0f MiB)\n",
		wname, p.Blobs, mb(p.UniqueBytes), wr.Gen.Seconds(), float64(wr.GenPeakRSS)/(1<<20))
	for i := range pl.Runs {
		for _, t := range pl.Tools {
			runDir := filepath.Join(dir, fmt.Sprintf("%s-%s-%d", wname, t.name(), i))
			o, err := runOnce(ctx, c, p, t, runDir)
			// The archive, a peer's layout and (runOnce) the target
			// registry go before the next tool starts.
			os.RemoveAll(runDir)
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", t.name(), i+1, err)
			}
			wr.Runs[t.name()] = append(wr.Runs[t.name()], o)
			fmt.Fprintf(log, "bench: %s run %d/%d %-11s %s\n", wname, i+1, pl.Runs, t.name(), o.summary(p))
		}
	}
	return wr, nil
}

// settleAbove is the workload size from which measured steps are preceded
// by a sync and a pause. On a VM that reports freed memory to its host (virtio-balloon
// free page reporting, as on the machine this was tuned on), pages freed a
// moment ago are still backed and cheap to reuse while older ones fault in
// again at a few hundred MB/s: without the pause, whichever tool runs right
// after another tool's files were deleted writes its page cache several
// times faster. After the pause every step starts in the same state.
const settleAbove = 256 << 20

// runOnce runs one tool through export, import into a fresh target and,
// where measured, a re-import into the same target.
func runOnce(ctx context.Context, c config, p *prepared, t tool, dir string) (*outcome, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	o := &outcome{Steps: map[string]measure{}, Requests: map[string]int64{}}
	settle := func() {
		if p.UniqueBytes >= settleAbove {
			// Write back what earlier steps left dirty (peers do not sync
			// their layouts and tars), so no step pays for another's.
			unix.Sync()
			time.Sleep(c.Settle)
		}
	}
	settle()
	stopProf := driverProfile("export-" + t.name())
	archive, err := t.export(ctx, p, dir, o)
	stopProf()
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	// The archive crosses the gap on a disk: nothing of it is cached.
	if err := evict(archive); err != nil {
		return nil, err
	}
	target, err := harness.StartRegistry(ctx)
	if err != nil {
		return nil, err
	}
	// Close removes the target's storage, before the next tool or run.
	defer target.Close()
	target.ResetCounts()
	settle()
	stopProf = driverProfile("import-" + t.name())
	err = t.importTo(ctx, p, archive, dir, target, "import", o)
	stopProf()
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	o.Uploaded = target.Counts().BlobUploadBytes
	if t.name() == "cnab-airgap" || p.PeersReimport {
		os.RemoveAll(filepath.Join(dir, "import-layout"))
		if err := evict(archive); err != nil {
			return nil, err
		}
		target.ResetCounts()
		settle()
		if err := t.importTo(ctx, p, archive, dir, target, "reimport", o); err != nil {
			return nil, fmt.Errorf("re-import: %w", err)
		}
		o.ReUploaded = target.Counts().BlobUploadBytes
	}
	return o, nil
}

// uniqueBytes walks the bundle index at ref and everything below it and
// returns the size of every manifest and blob, each counted once.
func uniqueBytes(ctx context.Context, reg *harness.Registry, ref string) (int64, int, error) {
	r, err := name.ParseReference(ref, reg.NameOptions()...)
	if err != nil {
		return 0, 0, err
	}
	opts := append(reg.RemoteOptions(), remote.WithContext(ctx))
	seen := map[string]bool{}
	var total int64
	var walk func(ref name.Reference, size int64) error
	walk = func(ref name.Reference, _ int64) error {
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			return err
		}
		d := desc.Digest.String()
		if seen[d] {
			return nil
		}
		seen[d] = true
		total += desc.Size
		children, err := layout.Children(string(desc.MediaType), desc.Manifest)
		if err != nil {
			return err
		}
		for _, c := range children {
			if layout.IsManifestOrIndex(c.MediaType) {
				if err := walk(r.Context().Digest(c.Digest.String()), c.Size); err != nil {
					return err
				}
				continue
			}
			if !seen[c.Digest.String()] {
				seen[c.Digest.String()] = true
				total += c.Size
			}
		}
		return nil
	}
	if err := walk(r, -1); err != nil {
		return 0, 0, err
	}
	return total, len(seen), nil
}

// describeMachine says what the numbers were measured on.
func describeMachine(ctx context.Context) string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	sk := "skopeo not installed"
	if b, err := exec.CommandContext(ctx, "skopeo", "--version").Output(); err == nil {
		sk = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s%s; %s; %s", cpu, numCPU(), mem, kernel, goVersion(), sk)
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// driverProfile profiles this process (where the registries run) to
// $BENCH_DRIVERPROFILE.<what> until the returned function is called; the
// last run wins.
func driverProfile(what string) func() {
	path := os.Getenv("BENCH_DRIVERPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path + "." + what)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
