package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
)

// Workload B ("big") is sized when its turn comes, to what the disk holds
// then: every copy of it that exists at once during a run must fit in the
// free space, with a margin, on the filesystem that holds it.
const (
	bigDefault = 20 << 30 // the cap, unless BENCH_BIG_GIB says otherwise
	bigMin     = 1 << 30  // below this, B is not run
	// bigMarginFixed + bigMarginShare of the free space stays free.
	bigMarginFixed = 2 << 30
	bigMarginShare = 0.10
)

// disk is the free space of one filesystem and how many copies of B it
// must hold at once.
type disk struct {
	Path   string
	Free   int64
	Copies int
	What   string // what the copies are
}

func (d disk) margin() int64 { return bigMarginFixed + int64(bigMarginShare*float64(d.Free)) }

// fits is the largest B this filesystem holds.
func (d disk) fits() int64 { return max(0, d.Free-d.margin()) / int64(d.Copies) }

// statDisk returns the free space (for unprivileged users) of the
// filesystem holding path, and its device number.
func statDisk(path string) (free int64, dev uint64, err error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, err
	}
	return int64(fs.Bavail) * fs.Bsize, st.Dev, nil
}

// bigDisks lists the filesystems B lives on with the copies each holds at
// the peak of a run. The registries (source and target) store under
// $TMPDIR, archives and peers' layouts under the bench directory. At the
// peak: cnab-airgap holds source, archive and target (3 copies); a peer's
// export holds source, layout and tar (3); its import source, tar and the
// unpacked layout, then the target (4, or 3 when the tar is deleted once
// unpacked because no re-import needs it).
func bigDisks(benchDir string, peers, peersReimport bool) ([]disk, error) {
	regFree, regDev, err := statDisk(os.TempDir())
	if err != nil {
		return nil, err
	}
	benchFree, benchDev, err := statDisk(benchDir)
	if err != nil {
		return nil, err
	}
	if regDev == benchDev {
		d := disk{Path: os.TempDir(), Free: regFree, Copies: 3,
			What: "source registry, archive, target registry"}
		switch {
		case peers && peersReimport:
			d.Copies, d.What = 4, "source registry, a peer's tar and its unpacked layout, target registry; BENCH_REIMPORT=all keeps the tar for the peers' re-import"
		case peers:
			d.What = "source registry, archive or a peer's unpacked layout, target registry; a peer's tar is deleted once unpacked"
		}
		if rel, err := filepath.Rel(os.TempDir(), benchDir); err != nil || strings.HasPrefix(rel, "..") {
			d.Path = os.TempDir() + " (registries) and " + benchDir + " (archives)"
		}
		return []disk{d}, nil
	}
	local := disk{Path: benchDir, Free: benchFree, Copies: 1, What: "the archive"}
	if peers {
		local.Copies, local.What = 2, "a peer's layout and tar"
	}
	return []disk{{Path: os.TempDir(), Free: regFree, Copies: 2, What: "source and target registries"}, local}, nil
}

// planBig sizes workload B to the free disk (at most 20 GiB, or
// BENCH_BIG_GIB) and picks its tools (BENCH_TOOLS_B), runs (BENCH_RUNS_B)
// and re-imports (BENCH_REIMPORT), with a note for the report on each
// choice. ok is false when B cannot run (too little disk, no tool).
func planBig(c config, all []tool, benchDir string, rep *report) (pl plan, ok bool, err error) {
	pl = plan{Name: "B", Runs: c.RunsBig, PeersReimport: c.ReimportPeersBig}
	var left, names []string
	peers := false
	for _, t := range all {
		if !slices.Contains(c.ToolsBig, t.name()) {
			left = append(left, t.name())
			continue
		}
		pl.Tools = append(pl.Tools, t)
		names = append(names, t.name())
		peers = peers || t.name() != "cnab-airgap"
	}
	pl.DropPeerTar = peers && !pl.PeersReimport
	if len(pl.Tools) == 0 {
		pl.Notes = append(pl.Notes, fmt.Sprintf("no tool: BENCH_TOOLS_B=%s and BENCH_TOOLS=%s have none in common",
			strings.Join(c.ToolsBig, ","), strings.Join(c.Tools, ",")))
		return pl, false, nil
	}

	disks, err := bigDisks(benchDir, peers, pl.PeersReimport)
	if err != nil {
		return pl, false, err
	}
	fit := int64(-1)
	var why []string
	for _, d := range disks {
		if fit < 0 || d.fits() < fit {
			fit = d.fits()
		}
		why = append(why, fmt.Sprintf("%s has %.1f GiB free, less a margin of %.1f GiB (2 GiB + 10%%), over %d copies (%s): %.1f GiB",
			d.Path, gib(d.Free), gib(d.margin()), d.Copies, d.What, gib(d.fits())))
	}
	want, wantWhy := int64(bigDefault), "the 20 GiB cap (BENCH_BIG_GIB unset)"
	if c.BigSet {
		want, wantWhy = c.BigBytes, fmt.Sprintf("BENCH_BIG_GIB=%s", os.Getenv("BENCH_BIG_GIB"))
	}
	size := min(want, fit) &^ (1<<20 - 1) // whole MiB
	disksText := strings.Join(why, "; ")
	switch {
	case size < bigMin:
		pl.Notes = append(pl.Notes, fmt.Sprintf("not run: the disk holds %.2f GiB of it, under the 1 GiB minimum: %s", gib(fit), disksText))
		return pl, false, nil
	case size < want:
		pl.Notes = append(pl.Notes, fmt.Sprintf("size: %.2f GiB of layer data, reduced from %s (%.2f GiB) to what the disk holds: %s",
			gib(size), wantWhy, gib(want), disksText))
	default:
		pl.Notes = append(pl.Notes, fmt.Sprintf("size: %.2f GiB of layer data, set by %s; the disk would hold %.2f GiB: %s",
			gib(size), wantWhy, gib(fit), disksText))
	}
	pl.W = harness.WorkloadBig(size)

	toolNote := "tools: " + strings.Join(names, ", ")
	if len(left) > 0 {
		toolNote += fmt.Sprintf("; %s left out by BENCH_TOOLS_B=%s", strings.Join(left, ", "), strings.Join(c.ToolsBig, ","))
		if !c.toolsBigSet() && slices.Contains(left, "skopeo") {
			toolNote += " (the default: skopeo, the slowest peer, would make B's the longest run of the benchmark; " +
				"the goals compare with crane"
			if est := estimateFromM(rep, "skopeo", size); est > 0 {
				toolNote += fmt.Sprintf("; its M round trip in this run scales to %s per run of B", duration(est))
			}
			toolNote += "; BENCH_TOOLS_B=cnab-airgap,crane,skopeo includes it)"
		}
	}
	pl.Notes = append(pl.Notes, toolNote)
	if pl.Runs != c.Runs {
		pl.Notes = append(pl.Notes, fmt.Sprintf("runs: %d (BENCH_RUNS_B; BENCH_RUNS=%d for the other workloads)", pl.Runs, c.Runs))
	}
	if peers && !pl.PeersReimport {
		pl.Notes = append(pl.Notes, "re-import: not by the peers; BENCH_REIMPORT=all has them re-import B too, which needs room for a fourth copy")
	}
	return pl, true, nil
}

// toolsBigSet says whether BENCH_TOOLS_B was given.
func (c config) toolsBigSet() bool { return os.Getenv("BENCH_TOOLS_B") != "" }

// estimateFromM scales tool's median round trip of M in this run to
// layerBytes of B, in seconds (0 when M was not run with that tool).
func estimateFromM(rep *report, tool string, layerBytes int64) float64 {
	for _, wr := range rep.Workloads {
		if wr.W.Name != "M" {
			continue
		}
		if s, ok := summarize(wr.Runs[tool], getter("round trip")); ok && wr.W.UniqueBytes > 0 {
			return s.Wall.Seconds() * float64(layerBytes) / float64(wr.W.UniqueBytes)
		}
	}
	return 0
}

// duration says s seconds in seconds or, from two minutes, minutes.
func duration(s float64) string {
	if s < 120 {
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.0f min", s/60)
}

func gib(n int64) float64 { return float64(n) / (1 << 30) }

// resetPeakRSS returns freed memory to the kernel and resets this process's
// peak resident set (VmHWM) to its current one; false where the kernel
// does not allow it.
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.WriteString("5")
	return err == nil
}

// peakRSS returns this process's peak resident set (VmHWM) in bytes, 0 if
// unknown.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
