package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Issue 16's goals, checked by printGoals on the medians of this run.
const (
	goalFloorMax     = 1.3      // round trip at most this times the floor (M, L)
	goalAheadOfCrane = 2.0      // crane's round trip over ours, at least (every goal workload)
	goalRSS          = 64 << 20 // our peak RSS below this (every goal workload; B no higher than M)
	goalReimport     = time.Second
)

// goalWorkloads are the workloads the goals are about.
var goalWorkloads = []string{"M", "L", "MS", "B"}

// floorWorkloads are those of the floor goal.
var floorWorkloads = []string{"M", "L"}

// printGoals prints each goal with met, MISS or -- (not measured) and how
// far the measurement is from it.
func printGoals(w io.Writer, r *report) {
	byName := map[string]*workloadResult{}
	for _, wr := range r.Workloads {
		if len(wr.Runs["cnab-airgap"]) > 0 {
			byName[wr.W.Name] = wr
		}
	}
	fmt.Fprintf(w, "\ngoals (issue 16), on this run's medians: [met ], [MISS] or [ -- ] not measured\n")
	line := func(state, format string, args ...any) {
		fmt.Fprintf(w, "  [%s] %s\n", state, fmt.Sprintf(format, args...))
	}
	verdict := func(ok bool) string {
		if ok {
			return "met "
		}
		return "MISS"
	}
	notRun := func(n, goal string) {
		line(" -- ", "%s %s: %s not measured (BENCH_WORKLOADS, BENCH_TOOLS)", n, goal, n)
	}
	ours := func(wr *workloadResult, ph string) stat {
		s, _ := summarize(wr.Runs["cnab-airgap"], getter(ph))
		return s
	}

	for _, n := range floorWorkloads {
		wr := byName[n]
		if wr == nil {
			notRun(n, fmt.Sprintf("round trip within %.1fx of the floor", goalFloorMax))
			continue
		}
		f := floorFor(r.Limits, wr.W.UniqueBytes)
		fl, rt := secs(f.Export+f.Import), secs(ours(wr, "round trip").Wall)
		x := rt / fl
		dist := fmt.Sprintf("met with %.2fx to spare", goalFloorMax-x)
		if x > goalFloorMax {
			dist = fmt.Sprintf("missed by %.2fx: %.2f s too slow, %.0f%% less time needed", x-goalFloorMax, rt-goalFloorMax*fl, 100*(1-goalFloorMax/x))
		}
		line(verdict(x <= goalFloorMax), "%s round trip %.2f s is %.2fx the floor %.2f s; goal at most %.1fx: %s", n, rt, x, fl, goalFloorMax, dist)
	}

	for _, n := range goalWorkloads {
		wr := byName[n]
		goal := fmt.Sprintf("round trip at least %.0fx ahead of crane", goalAheadOfCrane)
		if wr == nil || len(wr.Runs["crane"]) == 0 {
			notRun(n, goal)
			continue
		}
		crane, _ := summarize(wr.Runs["crane"], getter("round trip"))
		rt, cr := secs(ours(wr, "round trip").Wall), secs(crane.Wall)
		x := cr / rt
		dist := fmt.Sprintf("met with %.2fx to spare", x-goalAheadOfCrane)
		if x < goalAheadOfCrane {
			dist = fmt.Sprintf("missed by %.2fx: ours would need %.2f s, %.0f%% less time", goalAheadOfCrane-x, cr/goalAheadOfCrane, 100*(1-cr/goalAheadOfCrane/rt))
		}
		line(verdict(x >= goalAheadOfCrane), "%s round trip %.2f s vs crane %.2f s: %.2fx ahead; goal at least %.0fx: %s", n, rt, cr, x, goalAheadOfCrane, dist)
	}

	peak := map[string]int64{}
	for _, n := range goalWorkloads {
		wr := byName[n]
		if wr == nil {
			notRun(n, fmt.Sprintf("peak RSS under %d MiB", goalRSS>>20))
			continue
		}
		var p int64
		for _, ph := range []string{"export", "import", "reimport"} {
			p = max(p, ours(wr, ph).MaxRSS)
		}
		peak[n] = p
		dist := fmt.Sprintf("met with %.1f MiB to spare", mib(goalRSS-p))
		if p >= goalRSS {
			dist = fmt.Sprintf("missed by %.1f MiB", mib(p-goalRSS))
		}
		line(verdict(p < goalRSS), "%s peak RSS %.1f MiB (export, import, re-import); goal under %d MiB: %s", n, mib(p), goalRSS>>20, dist)
	}
	b, okB := peak["B"]
	m, okM := peak["M"]
	switch {
	case okB && okM:
		dist := fmt.Sprintf("met with %.1f MiB to spare", mib(m-b))
		if b > m {
			dist = fmt.Sprintf("missed by %.1f MiB (%+.0f%%)", mib(b-m), 100*float64(b-m)/float64(m))
		}
		line(verdict(b <= m), "B peak RSS %.1f MiB vs M %.1f MiB; goal no higher than M: %s", mib(b), mib(m), dist)
	default:
		var missing []string
		for n, ok := range map[string]bool{"B": okB, "M": okM} {
			if !ok {
				missing = append(missing, n)
			}
		}
		slices.Sort(missing)
		line(" -- ", "B peak RSS no higher than M's: %s not measured (BENCH_WORKLOADS, BENCH_TOOLS)", strings.Join(missing, " and "))
	}

	for _, n := range goalWorkloads {
		wr := byName[n]
		goal := fmt.Sprintf("re-import under %.0f s with 0 bytes uploaded", goalReimport.Seconds())
		if wr == nil {
			notRun(n, goal)
			continue
		}
		re, ok := summarize(wr.Runs["cnab-airgap"], getter("reimport"))
		if !ok {
			notRun(n, goal)
			continue
		}
		var up int64 // the largest of any run: one upload is a miss
		for _, o := range wr.Runs["cnab-airgap"] {
			up = max(up, o.ReUploaded)
		}
		var miss []string
		if re.Wall >= goalReimport {
			miss = append(miss, fmt.Sprintf("%.3f s too slow", secs(re.Wall-goalReimport)))
		}
		if up > 0 {
			miss = append(miss, fmt.Sprintf("%d bytes uploaded", up))
		}
		dist := fmt.Sprintf("met with %.3f s to spare", secs(goalReimport-re.Wall))
		if len(miss) > 0 {
			dist = "missed: " + strings.Join(miss, ", ")
		}
		line(verdict(len(miss) == 0), "%s re-import %.3f s, %d bytes uploaded (%.2f requests per blob); goal under %.0f s and 0 bytes: %s",
			n, secs(re.Wall), up, requestsPerBlob(wr, "cnab-airgap", "reimport"), goalReimport.Seconds(), dist)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
