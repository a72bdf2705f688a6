package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is everything printed at the end.
type report struct {
	Machine   string
	Limits    limits
	Runs      int
	Workloads []*workloadResult
	// OtherLoad is the average number of cores other programs used.
	OtherLoad float64
}

func numCPU() int                  { return runtime.NumCPU() }
func goVersion() string            { return runtime.Version() }
func secs(d time.Duration) float64 { return d.Seconds() }

func (o *outcome) summary(p *prepared) string {
	var parts []string
	for _, k := range []string{"export", "import", "reimport"} {
		if m, ok := o.phase(k); ok {
			parts = append(parts, fmt.Sprintf("%s %.2fs", k, m.Wall.Seconds()))
		}
	}
	parts = append(parts, fmt.Sprintf("uploaded %.1f MB", mb(o.Uploaded)))
	if n, ok := o.Requests["import"]; ok && p.Blobs > 0 {
		parts = append(parts, fmt.Sprintf("%.2f requests per blob", float64(n)/float64(p.Blobs)))
	}
	if _, ok := o.phase("reimport"); ok {
		parts = append(parts, fmt.Sprintf("re-uploaded %.1f MB", mb(o.ReUploaded)))
	}
	return strings.Join(parts, ", ")
}

// phase sums the steps of a phase ("export" or "export/pull" + "export/tar").
func (o *outcome) phase(p string) (measure, bool) {
	if m, ok := o.Steps[p]; ok {
		return m, true
	}
	var sum measure
	found := false
	for _, k := range sortedStepKeys(o.Steps) {
		if strings.HasPrefix(k, p+"/") {
			sum = sum.add(o.Steps[k])
			found = true
		}
	}
	return sum, found
}

// roundTrip is export followed by import.
func (o *outcome) roundTrip() (measure, bool) {
	e, ok1 := o.phase("export")
	i, ok2 := o.phase("import")
	return e.add(i), ok1 && ok2
}

func sortedStepKeys(m map[string]measure) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// stat is the summary of one phase of one tool over its runs: medians of
// time and bytes, the largest peak RSS.
type stat struct {
	Wall, CPU time.Duration
	MaxRSS    int64
	N         int
}

func summarize(runs []*outcome, get func(*outcome) (measure, bool)) (stat, bool) {
	var walls, cpus []time.Duration
	var rss int64
	for _, o := range runs {
		m, ok := get(o)
		if !ok {
			continue
		}
		walls = append(walls, m.Wall)
		cpus = append(cpus, m.CPU)
		rss = max(rss, m.MaxRSS)
	}
	if len(walls) == 0 {
		return stat{}, false
	}
	return stat{Wall: median(walls), CPU: median(cpus), MaxRSS: rss, N: len(walls)}, true
}

func median[T int64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func medianOf(runs []*outcome, get func(*outcome) int64) int64 {
	var v []int64
	for _, o := range runs {
		v = append(v, get(o))
	}
	if len(v) == 0 {
		return 0
	}
	return median(v)
}

func printHeader(w io.Writer, r *report) {
	l := r.Limits
	fmt.Fprintf(w, "cnab-airgap benchmark\n")
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "limits:  sha256 %.0f MB/s (1 core); disk write+fdatasync %.0f MB/s, read cold %.0f MB/s, warm %.0f MB/s;\n",
		l.SHA256/1e6, l.DiskWrite/1e6, l.DiskReadCold/1e6, l.DiskReadWarm/1e6)
	fmt.Fprintf(w, "         registry pull %.0f MB/s (%d streams), push %.0f MB/s (%d streams)\n",
		l.Pull/1e6, l.PullStreams, l.Push/1e6, l.PushStreams)
	fmt.Fprintf(w, "method:  medians of %d runs (each workload says if it differs); times are wall seconds of each tool's processes,\n", r.Runs)
	fmt.Fprintf(w, "         CPU is their user+system time, RSS the largest peak of any of them; MB/s is unique bytes over wall time;\n")
	fmt.Fprintf(w, "         a peer's export includes its tar step, its import its untar step; every import starts with the\n")
	fmt.Fprintf(w, "         archive evicted from the page cache, into an empty target registry; a re-import goes into the target\n")
	fmt.Fprintf(w, "         that already holds the bundle. req/blob: requests the target served during the (re-)import over the\n")
	fmt.Fprintf(w, "         bundle's unique blobs and manifests. ratio: ours/peer wall time on peer rows (below 1: we are\n")
	fmt.Fprintf(w, "         faster), ours/floor on our rows. Between tools and runs, archives, layouts and the target's storage\n")
	fmt.Fprintf(w, "         are deleted.\n")
	if timeBin == "" {
		fmt.Fprintf(w, "         GNU time is not installed: peak RSS includes this benchmark driver's own (an upper bound).\n")
	}
}

// floor is the fastest a phase can go on this machine: its bytes over the
// slowest resource it must go through (all others overlapped with it).
type floor struct {
	Export, Import time.Duration
	ExportBound    string
	ImportBound    string
}

func floorFor(l limits, bytes int64) floor {
	slowest := func(rates map[string]float64) (time.Duration, string) {
		worst := math.Inf(1)
		var what string
		for _, k := range []string{"pull", "push", "disk write", "disk read", "sha256"} {
			r, ok := rates[k]
			if ok && r > 0 && r < worst {
				worst, what = r, k
			}
		}
		return time.Duration(float64(bytes) / worst * 1e9), what
	}
	var f floor
	f.Export, f.ExportBound = slowest(map[string]float64{"pull": l.Pull, "disk write": l.DiskWrite, "sha256": l.SHA256})
	f.Import, f.ImportBound = slowest(map[string]float64{"push": l.Push, "disk read": l.DiskReadCold, "sha256": l.SHA256})
	return f
}

var phaseOrder = []string{"export", "import", "round trip", "reimport"}

func getter(phase string) func(*outcome) (measure, bool) {
	if phase == "round trip" {
		return (*outcome).roundTrip
	}
	return func(o *outcome) (measure, bool) { return o.phase(phase) }
}

func printWorkload(w io.Writer, r *report, wr *workloadResult) {
	p := wr.W
	f := floorFor(r.Limits, p.UniqueBytes)
	fmt.Fprintf(w, "\nworkload %s: %d images, %d blobs and manifests, %.1f MB unique (generated in %.1f s",
		p.Name, len(p.Images), p.Blobs, mb(p.UniqueBytes), wr.Gen.Seconds())
	if wr.GenPeakRSS > 0 {
		fmt.Fprintf(w, ", this process peaking at %.0f MiB meanwhile", float64(wr.GenPeakRSS)/(1<<20))
	}
	fmt.Fprintf(w, ")")
	if wr.Plan.Runs != r.Runs {
		fmt.Fprintf(w, "; %d run(s)", wr.Plan.Runs)
	}
	fmt.Fprintln(w)
	for _, n := range wr.Plan.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintf(w, "floor:   export %.2f s (%s), import %.2f s (%s), round trip %.2f s\n",
		secs(f.Export), f.ExportBound, secs(f.Import), f.ImportBound, secs(f.Export+f.Import))
	fmt.Fprintf(w, "%-11s %-12s %-7s %8s %8s %8s %8s %10s %8s %9s\n", "phase", "tool", "step", "wall s", "MB/s", "cpu s", "RSS MiB", "upload MB", "req/blob", "ratio")
	tools := toolsOf(wr)
	for _, ph := range phaseOrder {
		ourStat, haveOurs := summarize(wr.Runs["cnab-airgap"], getter(ph))
		for _, t := range tools {
			s, ok := summarize(wr.Runs[t], getter(ph))
			if !ok {
				continue
			}
			ratio := ""
			if haveOurs && t != "cnab-airgap" {
				ratio = fmt.Sprintf("%.2f", secs(ourStat.Wall)/secs(s.Wall))
			} else if t == "cnab-airgap" && ph != "reimport" {
				fl := map[string]time.Duration{"export": f.Export, "import": f.Import, "round trip": f.Export + f.Import}[ph]
				ratio = fmt.Sprintf("%.2f floor", secs(s.Wall)/secs(fl))
			}
			up, req := "", ""
			switch ph {
			case "import":
				up = fmt.Sprintf("%.1f", mb(medianOf(wr.Runs[t], func(o *outcome) int64 { return o.Uploaded })))
			case "reimport":
				up = fmt.Sprintf("%.1f", mb(medianOf(wr.Runs[t], func(o *outcome) int64 { return o.ReUploaded })))
			}
			if ph == "import" || ph == "reimport" {
				req = fmt.Sprintf("%.2f", requestsPerBlob(wr, t, ph))
			}
			fmt.Fprintf(w, "%-11s %-12s %-7s %8.2f %8.0f %8.2f %8.1f %10s %8s %9s\n", ph, t, "", secs(s.Wall),
				mb(p.UniqueBytes)/secs(s.Wall), secs(s.CPU), float64(s.MaxRSS)/(1<<20), up, req, ratio)
			if ph == "export" || ph == "import" || ph == "reimport" {
				for _, step := range stepsOf(wr.Runs[t], ph) {
					ss, _ := summarize(wr.Runs[t], getter(ph+"/"+step))
					fmt.Fprintf(w, "%-11s %-12s %-7s %8.2f %8.0f %8.2f %8.1f\n", "", "", step, secs(ss.Wall),
						mb(p.UniqueBytes)/secs(ss.Wall), secs(ss.CPU), float64(ss.MaxRSS)/(1<<20))
				}
			}
		}
	}
	fmt.Fprintf(w, "archive bytes vs %.1f MB unique (overhead):", mb(p.UniqueBytes))
	for _, t := range tools {
		a := medianOf(wr.Runs[t], func(o *outcome) int64 { return o.ArchiveBytes })
		fmt.Fprintf(w, "  %s %.1f MB (%+.3f%%)", t, mb(a), 100*float64(a-p.UniqueBytes)/float64(p.UniqueBytes))
	}
	fmt.Fprintln(w)
}

// requestsPerBlob is the median number of requests tool t's (re-)import
// made the target serve, over the bundle's unique blobs and manifests.
func requestsPerBlob(wr *workloadResult, t, phase string) float64 {
	if wr.W.Blobs == 0 {
		return 0
	}
	n := medianOf(wr.Runs[t], func(o *outcome) int64 { return o.Requests[phase] })
	return float64(n) / float64(wr.W.Blobs)
}

func toolsOf(wr *workloadResult) []string {
	var out []string
	for _, t := range []string{"cnab-airgap", "crane", "skopeo"} {
		if len(wr.Runs[t]) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func stepsOf(runs []*outcome, phase string) []string {
	var out []string
	for _, o := range runs {
		for _, k := range sortedStepKeys(o.Steps) {
			if s, ok := strings.CutPrefix(k, phase+"/"); ok && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	// untar before push, pull before tar
	slices.SortFunc(out, func(a, b string) int { return stepRank(a) - stepRank(b) })
	return out
}

func stepRank(s string) int {
	switch s {
	case "pull", "untar":
		return 0
	}
	return 1
}

// printTargets checks issue 5's targets against the medians.
func printTargets(w io.Writer, r *report) {
	byName := map[string]*workloadResult{}
	for _, wr := range r.Workloads {
		byName[wr.W.Name] = wr
	}
	fmt.Fprintf(w, "\ntargets (issue 5)\n")
	if byName["M"] == nil && byName["W"] == nil {
		fmt.Fprintf(w, "  [ -- ] they are checked on M and W: not measured (BENCH_WORKLOADS)\n")
		return
	}
	check := func(ok bool, format string, args ...any) {
		mark := "MISS"
		if ok {
			mark = "ok  "
		}
		fmt.Fprintf(w, "  [%s] %s\n", mark, fmt.Sprintf(format, args...))
	}
	ourRSS := func(wr *workloadResult) int64 {
		var m int64
		for _, ph := range []string{"export", "import"} {
			if s, ok := summarize(wr.Runs["cnab-airgap"], getter(ph)); ok {
				m = max(m, s.MaxRSS)
			}
		}
		return m
	}
	cpuPerByte := map[string]float64{} // our CPU seconds per unique byte of each phase, from M
	if m := byName["M"]; m != nil && len(m.Runs["cnab-airgap"]) > 0 {
		f := floorFor(r.Limits, m.W.UniqueBytes)
		ours, _ := summarize(m.Runs["cnab-airgap"], getter("round trip"))
		peer := fastestPeer(m, "round trip")
		if peer.name != "" {
			check(secs(peer.s.Wall)/secs(ours.Wall) >= 1.5, "M round trip %.2f s is %.2fx faster than %s (%.2f s); target 1.5x",
				secs(ours.Wall), secs(peer.s.Wall)/secs(ours.Wall), peer.name, secs(peer.s.Wall))
		}
		fl := f.Export + f.Import
		check(secs(ours.Wall) <= 1.25*secs(fl), "M round trip %.2f s is %.2fx the floor %.2f s; target 1.25x", secs(ours.Wall), secs(ours.Wall)/secs(fl), secs(fl))
		for _, ph := range []string{"export", "import"} {
			o, _ := summarize(m.Runs["cnab-airgap"], getter(ph))
			if p := fastestPeer(m, ph); p.name != "" {
				check(secs(p.s.Wall)/secs(o.Wall) >= 1.3, "M %s %.2f s is %.2fx faster than %s (%.2f s); target 1.3x",
					ph, secs(o.Wall), secs(p.s.Wall)/secs(o.Wall), p.name, secs(p.s.Wall))
			}
		}
		if re, ok := summarize(m.Runs["cnab-airgap"], getter("reimport")); ok {
			first, _ := summarize(m.Runs["cnab-airgap"], getter("import"))
			up := medianOf(m.Runs["cnab-airgap"], func(o *outcome) int64 { return o.ReUploaded })
			check(secs(first.Wall)/secs(re.Wall) >= 20 && up == 0, "M re-import %.3f s is %.1fx faster than the first import, %d blob bytes uploaded; target 20x and 0",
				secs(re.Wall), secs(first.Wall)/secs(re.Wall), up)
		}
		check(ourRSS(m) < 100<<20, "M peak RSS %.1f MiB; target below 100 MiB", float64(ourRSS(m))/(1<<20))
		if s := byName["S"]; s != nil && len(s.Runs["cnab-airgap"]) > 0 {
			a, b := float64(ourRSS(s)), float64(ourRSS(m))
			check(math.Abs(b-a)/a <= 0.2, "peak RSS S %.1f MiB vs M %.1f MiB: %+.0f%%; target within 20%%", a/(1<<20), b/(1<<20), 100*(b-a)/a)
		}
		for _, ph := range []string{"export", "import"} {
			st, _ := summarize(m.Runs["cnab-airgap"], getter(ph))
			cpuPerByte[ph] = st.CPU.Seconds() / float64(m.W.UniqueBytes)
		}
	}
	for _, n := range []string{"M", "W"} {
		wr := byName[n]
		if wr == nil || len(wr.Runs["cnab-airgap"]) == 0 {
			continue
		}
		a := medianOf(wr.Runs["cnab-airgap"], func(o *outcome) int64 { return o.ArchiveBytes })
		over := float64(a-wr.W.UniqueBytes) / float64(wr.W.UniqueBytes)
		check(over <= 0.005, "%s archive %d bytes for %d unique: %+.3f%%; target at most +0.5%%", n, a, wr.W.UniqueBytes, 100*over)
	}
	if wr := byName["W"]; wr != nil && len(wr.Runs["cnab-airgap"]) > 0 {
		n := float64(len(wr.W.Images))
		note := "beyond the bytes moved (at M's CPU per byte)"
		if len(cpuPerByte) == 0 {
			note = "including the bytes moved (run M to subtract them)"
		}
		for _, ph := range []string{"export", "import"} {
			s, _ := summarize(wr.Runs["cnab-airgap"], getter(ph))
			per := (s.CPU.Seconds() - cpuPerByte[ph]*float64(wr.W.UniqueBytes)) / n
			check(per < 0.002, "W %s: %.2f ms of CPU per image %s (%.2f s CPU for %d images); target below 2 ms",
				ph, per*1e3, note, s.CPU.Seconds(), len(wr.W.Images))
		}
	}
}

type named struct {
	name string
	s    stat
}

func fastestPeer(wr *workloadResult, phase string) named {
	var best named
	for _, t := range []string{"crane", "skopeo"} {
		s, ok := summarize(wr.Runs[t], getter(phase))
		if ok && (best.name == "" || s.Wall < best.s.Wall) {
			best = named{t, s}
		}
	}
	return best
}
