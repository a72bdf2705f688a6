package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// TestMain removes the binary built by buildBinary.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds the command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "cnab-airgap-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cnab-airgap")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runPTY runs the binary with its standard error (and output) on a
// pseudo-terminal and returns everything written to it.
func runPTY(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, f)
	// Reading the master fails with EIO once the child has exited.
	if err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// frameRE matches one rendered bar: description, percent, then the
// "(current/total unit" count.
var frameRE = regexp.MustCompile(`^(\w+)\s+(\d+)% \[[^\]]*\] \(\s*([\d.]+)(?: ([KMGT]?i?B))?/([\d.]+) ([KMGT]?i?B)`)

type frame struct {
	phase   string
	percent int
	current float64 // bytes, from the humanized count
	total   float64
}

func unitBytes(n, unit string) float64 {
	v, _ := strconv.ParseFloat(n, 64)
	mult := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	return v * mult
}

// frames splits terminal output at carriage returns and newlines and
// parses every bar frame.
func frames(out string) []frame {
	var fs []frame
	for _, piece := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
		m := frameRE.FindStringSubmatch(strings.TrimSpace(piece))
		if m == nil {
			continue
		}
		p, _ := strconv.Atoi(m[2])
		unit := m[4]
		if unit == "" {
			unit = m[6]
		}
		fs = append(fs, frame{phase: m[1], percent: p, current: unitBytes(m[3], unit), total: unitBytes(m[5], m[6])})
	}
	return fs
}

// checkBars fails unless the phase has bars that never go backwards and
// whose total shows the expected bytes, and unless its summary line
// reports exactly those bytes.
func checkBars(t *testing.T, what, out, phase string, want int64) {
	t.Helper()
	var mine []frame
	for _, f := range frames(out) {
		if f.phase == phase {
			mine = append(mine, f)
		}
	}
	// How many frames are drawn depends on the machine's speed (bars are
	// throttled to 10 a second): at least one must appear.
	if len(mine) < 1 {
		t.Fatalf("%s: %d %s bar frames on the terminal:\n%q", what, len(mine), phase, out)
	}
	for i := 1; i < len(mine); i++ {
		if mine[i].percent < mine[i-1].percent || mine[i].current < mine[i-1].current {
			t.Fatalf("%s: the %s bar went backwards: %+v then %+v", what, phase, mine[i-1], mine[i])
		}
	}
	for _, f := range mine {
		// The total is humanized to one decimal: within 0.1 unit.
		if d := f.total - float64(want); d > float64(want)*0.02 || d < -float64(want)*0.02 {
			t.Fatalf("%s: the %s bar shows a total of %.0f bytes, want %d", what, phase, f.total, want)
		}
	}
	s, ok := summaries(out)[phase]
	if !ok || s[2] != want || s[3] != want || s[0] != s[1] {
		t.Fatalf("%s: %s summary %v, want %d of %d bytes:\n%q", what, phase, s, want, want, out)
	}
}

// The built binary under a pseudo-terminal draws bars whose totals are
// the deduplicated bytes and which never go backwards; with standard error
// on a pipe it writes no control characters at all.
func TestProgressOnTerminal(t *testing.T) {
	bin := buildBinary(t)
	ctx := t.Context()
	src, err := harness.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := harness.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	// Larger layers than the default fixture, so that bars have time to
	// draw; the base layer is shared by three images (counted once).
	pb, err := harness.SampleBundle(ctx, src, harness.SampleOptions{BaseLayerSize: 6 << 20, LayerSize: 3 << 20})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "bundle.tar")

	out := runPTY(t, bin, "export", pb.Ref, "-o", archivePath, "--plain-http", src.Host, "--jobs", "1")
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var blobBytes int64
	for _, s := range b.Blobs {
		blobBytes += s
	}
	fetched := blobBytes - int64(len(b.BundleJSON))
	b.Close()
	checkBars(t, "export", out, "blobs", fetched)
	if !strings.Contains(out, "archive     "+archivePath) {
		t.Fatalf("export result missing:\n%q", out)
	}

	out = runPTY(t, bin, "import", archivePath, "--target", dst.Host+"/airgap", "--mapping", filepath.Join(dir, "m.json"), "--plain-http", dst.Host, "--jobs", "1")
	checkBars(t, "import", out, "blobs", blobBytes)

	// A second import skips every blob: the bar still reaches its total.
	out = runPTY(t, bin, "import", archivePath, "--target", dst.Host+"/airgap", "--mapping", filepath.Join(dir, "m.json"), "--plain-http", dst.Host)
	if s := summaries(out)["blobs"]; s[2] != blobBytes || s[3] != blobBytes {
		t.Fatalf("second import: blobs summary %v, want %d bytes", s, blobBytes)
	}

	// Standard error on a pipe: plain lines only.
	cmd := exec.CommandContext(ctx, bin, "import", archivePath, "--target", dst.Host+"/airgap", "--mapping", filepath.Join(dir, "m.json"), "--plain-http", dst.Host)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
	}
	noControl(t, "stderr on a pipe", stderr.String())
	if !strings.Contains(stderr.String(), "image      "+pb.Images[0].Image+" -> ") {
		t.Fatalf("no per-image line without a terminal:\n%s", stderr.String())
	}
	t.Logf("pipe run took %s", time.Since(start))
	_ = os.Remove(archivePath)
}

// serve runs until SIGINT, then stops cleanly with exit code 0.
func TestServeStopsOnSIGINT(t *testing.T) {
	bin := buildBinary(t)
	archivePath := writeFixture(t)
	cmd := exec.CommandContext(t.Context(), bin, "serve", archivePath, "--addr", "127.0.0.1:0", "--output", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out serveOutput
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&out); err != nil {
		cmd.Process.Kill()
		t.Fatalf("serve wrote no JSON document: %v\n%s", err, stderr.String())
	}
	repo, tag, _ := strings.Cut(strings.TrimPrefix(out.Reference, out.Address+"/"), ":")
	resp, err := http.Get(out.URL + "/v2/" + repo + "/manifests/" + tag)
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the bundle reference %s: %v %v", out.Reference, err, resp)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve did not stop on SIGINT")
	}
}
