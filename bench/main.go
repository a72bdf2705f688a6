// Command bench measures cnab-airgap's export and import side by side with
// go-containerregistry's crane path and skopeo, on workloads it generates
// at run time into real registries on 127.0.0.1, and prints the results
// with the machine's own limits and the floor they imply. It is run by
// `make bench`; docs/PERFORMANCE.md explains the method.
//
// Environment:
//
//	BENCH_WORKLOADS  comma-separated workloads among XS, S, M, W, MS, L, B
//	                 (default S,M,W,MS,L,B; see workloads in bench.go)
//	BENCH_RUNS       runs per workload and tool; medians are reported (default 3)
//	BENCH_RUNS_B     runs of workload B (default 1: one run moves 20 GiB per tool)
//	BENCH_TOOLS      tools to run (default cnab-airgap,crane,skopeo)
//	BENCH_TOOLS_B    tools run on workload B, among BENCH_TOOLS (default
//	                 cnab-airgap,crane: skopeo is left out, and the report says so)
//	BENCH_BIG_GIB    layer data of workload B in GiB, replacing the 20 GiB cap; it
//	                 is still reduced to what the free disk holds (default 20)
//	BENCH_W_IMAGES   images in workload W (default 300)
//	BENCH_REIMPORT   re-import into a target that already holds the bundle, which
//	                 cnab-airgap does on every workload: 1 = the peers too, on every
//	                 workload but B; all = the peers on B too (B then needs room
//	                 for a fourth copy); 0 = cnab-airgap only (default 1)
//	BENCH_SETTLE     sync and pause before each measured step of a workload of 256 MB
//	                 or more, so every step starts with the same memory and disk
//	                 state (default 3s)
//	BENCH_CPUPROFILE write CPU profiles of cnab-airgap's child processes to $BENCH_CPUPROFILE.<phase>.<pid>
//	BENCH_DRIVERPROFILE write CPU profiles of this process (the registries) during each
//	                 export and import to $BENCH_DRIVERPROFILE.<phase>-<tool>
//	BENCH_DIR        scratch directory for archives and peers' layouts (default: a
//	                 new one under $TMPDIR); the registries store under $TMPDIR
//	BENCH_OURS       cli: build and run the cnab-airgap binary (default; BENCH_BIN
//	                 names a prebuilt one); lib: make the same library calls in a
//	                 child process of this binary
//	BENCH_JOBS       --jobs for cnab-airgap (default: its own default)
//	BENCH_DISK_MIB   size of the disk probe (default 1024)
//	BENCH_NET_MIB    size of the registry probe (default 256)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// modeEnv selects a child-process mode of this binary (crane-export,
// crane-import); unset, the binary runs the benchmark.
const modeEnv = "CNAB_AIRGAP_BENCH_MODE"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(childMain(ctx, mode, os.Args[1:], os.Stdout, os.Stderr))
	}
	cfg, err := configFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if _, err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// childMain runs a child-process mode and returns its exit code.
func childMain(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) int {
	var err error
	switch mode {
	case "ours-export":
		err = oursExport(ctx, args, stdout)
	case "ours-import":
		err = oursImport(ctx, args, stdout)
	case "crane-export":
		err = craneExport(ctx, args)
	case "crane-import":
		err = craneImport(ctx, args)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench %s: %v\n", mode, err)
		return 1
	}
	return 0
}

// config is what a benchmark run does.
type config struct {
	Workloads []string
	Runs      int
	Tools     []string
	WImages   int
	// Reimport has the peers re-import too (cnab-airgap always does), on
	// every workload but B; ReimportPeersBig on B as well.
	Reimport         bool
	ReimportPeersBig bool
	// RunsBig and ToolsBig replace Runs and Tools on workload B (zero
	// values: Runs and Tools).
	RunsBig  int
	ToolsBig []string
	// BigBytes is the layer data of workload B before the disk check
	// (0: bigDefault); BigSet says BENCH_BIG_GIB gave it.
	BigBytes  int64
	BigSet    bool
	Settle    time.Duration
	Dir       string
	Bin       string
	OursCLI   bool
	Jobs      int
	DiskBytes int64
	NetBytes  int64
	// Self is the executable started for the crane child processes.
	Self string
}

func configFromEnv() (config, error) {
	c := config{
		Workloads: splitList(envOr("BENCH_WORKLOADS", "S,M,W,MS,L,B")),
		Tools:     splitList(envOr("BENCH_TOOLS", "cnab-airgap,crane,skopeo")),
		Dir:       os.Getenv("BENCH_DIR"),
		Bin:       os.Getenv("BENCH_BIN"),
	}
	var err error
	ints := []struct {
		env string
		def int
		dst *int
	}{{"BENCH_RUNS", 3, &c.Runs}, {"BENCH_RUNS_B", 1, &c.RunsBig}, {"BENCH_W_IMAGES", 300, &c.WImages}}
	for _, i := range ints {
		if *i.dst, err = strconv.Atoi(envOr(i.env, strconv.Itoa(i.def))); err != nil || *i.dst < 1 {
			return c, fmt.Errorf("%s must be a positive integer", i.env)
		}
	}
	switch envOr("BENCH_REIMPORT", "1") {
	case "0":
	case "1":
		c.Reimport = true
	case "all":
		c.Reimport, c.ReimportPeersBig = true, true
	default:
		return c, fmt.Errorf("BENCH_REIMPORT must be 1, 0 or all")
	}
	if g := os.Getenv("BENCH_BIG_GIB"); g != "" {
		f, err := strconv.ParseFloat(g, 64)
		if err != nil || f < 0.25 || f > 1<<20 {
			return c, fmt.Errorf("BENCH_BIG_GIB must be a number of GiB, at least 0.25")
		}
		c.BigBytes, c.BigSet = int64(f*(1<<30)), true
	}
	if c.Settle, err = time.ParseDuration(envOr("BENCH_SETTLE", "3s")); err != nil || c.Settle < 0 {
		return c, fmt.Errorf("BENCH_SETTLE must be a duration such as 3s")
	}
	switch envOr("BENCH_OURS", "cli") {
	case "lib":
	case "cli":
		c.OursCLI = true
	default:
		return c, fmt.Errorf("BENCH_OURS must be lib or cli")
	}
	if j := os.Getenv("BENCH_JOBS"); j != "" {
		if c.Jobs, err = strconv.Atoi(j); err != nil || c.Jobs < 1 {
			return c, fmt.Errorf("BENCH_JOBS must be a positive integer")
		}
	}
	for _, b := range []struct {
		env string
		def int64
		dst *int64
	}{{"BENCH_DISK_MIB", 1024, &c.DiskBytes}, {"BENCH_NET_MIB", 256, &c.NetBytes}} {
		n, err := strconv.ParseInt(envOr(b.env, strconv.FormatInt(b.def, 10)), 10, 64)
		if err != nil || n < 1 {
			return c, fmt.Errorf("%s must be a positive integer", b.env)
		}
		*b.dst = n << 20
	}
	for _, w := range c.Workloads {
		if !slices.Contains(workloadNames, w) {
			return c, fmt.Errorf("unknown workload %q (%s)", w, strings.Join(workloadNames, ", "))
		}
	}
	c.ToolsBig = splitList(envOr("BENCH_TOOLS_B", "cnab-airgap,crane"))
	for _, list := range [][]string{c.Tools, c.ToolsBig} {
		for _, t := range list {
			switch t {
			case "cnab-airgap", "crane", "skopeo":
			default:
				return c, fmt.Errorf("unknown tool %q (cnab-airgap, crane, skopeo)", t)
			}
		}
	}
	c.Self, err = os.Executable()
	return c, err
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.ToUpper(p[:1])+p[1:])
		}
	}
	for i, p := range out {
		switch strings.ToLower(p) {
		case "cnab-airgap", "crane", "skopeo":
			out[i] = strings.ToLower(p)
		case "xs", "s", "m", "w", "ms", "l", "b":
			out[i] = strings.ToUpper(p)
		}
	}
	return out
}

// buildBinary builds cmd/cnab-airgap into dir, from the module holding the
// current directory.
func buildBinary(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "cnab-airgap")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cnab-airgap")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cnab-airgap: %w\n%s", err, b)
	}
	return bin, nil
}
