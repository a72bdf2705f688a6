package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// buildCLI builds cmd/cnab-airgap into a temporary directory and returns
// the binary's path.
func buildCLI(t *testing.T) string {
	t.Helper()
	return cliBinary(t)
}

// cliRun is one run of the CLI as a subprocess.
type cliRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

// cliEnv is a clean environment for the CLI: its own HOME, docker config
// and temporary directory, so nothing of the machine's leaks in.
func cliEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	home := t.TempDir()
	tmp := filepath.Join(home, "tmp")
	os.Mkdir(tmp, 0o700)
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "TMPDIR=" + tmp}, extra...)
}

func startCLI(t *testing.T, bin string, env []string, stdin string, args ...string) *cliRun {
	t.Helper()
	r := &cliRun{cmd: exec.Command(bin, args...)}
	r.cmd.Env = env
	r.cmd.Stdin = strings.NewReader(stdin)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// wait returns the exit code, or -1 if the process was killed by a signal.
func (r *cliRun) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return -1
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(2 * time.Minute):
		r.cmd.Process.Kill()
		t.Fatalf("%v did not finish\nstderr: %s", r.cmd.Args, r.stderr.String())
		return 0
	}
}

func runCLI(t *testing.T, bin string, env []string, stdin string, args ...string) (*cliRun, int) {
	t.Helper()
	r := startCLI(t, bin, env, stdin, args...)
	return r, r.wait(t)
}

// killSwitch sends SIGKILL to the process it is armed with, once, from
// inside a registry middleware.
type killSwitch struct {
	mu    sync.Mutex
	proc  *os.Process
	fired bool
}

func (k *killSwitch) arm(p *os.Process) { k.mu.Lock(); k.proc, k.fired = p, false; k.mu.Unlock() }

// fire kills the armed process; it reports whether it did.
func (k *killSwitch) fire() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.proc == nil || k.fired {
		return false
	}
	k.fired = true
	k.proc.Kill() // SIGKILL: no cleanup runs in the victim
	return true
}

func (k *killSwitch) disarm() { k.mu.Lock(); k.proc = nil; k.mu.Unlock() }

// settle waits until the registry's counters stop moving (requests that
// were in flight when the client died have been handled) and returns them.
func settle(reg *harness.Registry) harness.Counts {
	last := reg.Counts()
	stable := time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		c := reg.Counts()
		if c != last {
			last, stable = c, time.Now()
		} else if time.Since(stable) > 300*time.Millisecond {
			break
		}
	}
	return last
}

// An import killed with SIGKILL at several points (after some blobs, in
// the middle of the manifests, before the tags) leaves no tag and no
// mapping; running it again completes it, uploads only what was missing
// (counted at the registry), and the result verifies.
func TestImportResumesAfterKill(t *testing.T) {
	archive, _ := exportedSample(t, harness.SampleOptions{})
	bin := buildCLI(t)

	// Reference: what a clean import uploads.
	clean := cleanImportCounts(t, bin, cliEnv(t), archive)

	isTag := func(r *http.Request) bool {
		_, ref, ok := strings.Cut(r.URL.Path, "/manifests/")
		return ok && !strings.Contains(ref, ":")
	}
	cases := []struct {
		name string
		// kill decides, for each request the registry has handled (after)
		// or is about to handle (before: the request is then dropped),
		// whether to kill the import now.
		before func(r *http.Request, c harness.Counts) bool
		after  func(r *http.Request, c harness.Counts) bool
	}{
		{name: "after 2 blobs", after: func(r *http.Request, c harness.Counts) bool { return c.BlobUploadsCompleted >= 2 }},
		{name: "after most blobs", after: func(r *http.Request, c harness.Counts) bool {
			return c.BlobUploadsCompleted >= clean.BlobUploadsCompleted-2
		}},
		{name: "in the manifest phase", before: func(r *http.Request, c harness.Counts) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && c.ManifestPuts >= 3
		}},
		{name: "before the tags", before: func(r *http.Request, c harness.Counts) bool {
			return r.Method == http.MethodPut && isTag(r)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks := &killSwitch{}
			var dst *harness.Registry
			dst = startRegistry(t, harness.WithMiddleware(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tc.before != nil && tc.before(r, dst.Counts()) && ks.fire() {
						// The client is dead; the request never reaches the registry.
						w.WriteHeader(http.StatusServiceUnavailable)
						return
					}
					next.ServeHTTP(w, r)
					if tc.after != nil && tc.after(r, dst.Counts()) {
						ks.fire()
					}
				})
			}))
			dir := t.TempDir()
			mapping := filepath.Join(dir, "relocation-mapping.json")
			args := []string{"--plain-http", dst.Host, "--jobs", "3", "--quiet", "import", "--target", dst.Host + "/airgap", "--mapping", mapping, archive}
			env := cliEnv(t)

			first := killedImport(t, bin, env, args, ks, dst, mapping)
			if tags := tagsAtTarget(t, dst); len(tags) != 0 {
				t.Fatalf("a killed import left tags: %v", tags)
			}

			second, code := runCLI(t, bin, env, "", args...)
			if code != 0 {
				t.Fatalf("the second import failed: exit %d\n%s", code, second.stderr.String())
			}
			checkResumed(t, first, settle(dst), clean, "")

			// The final state verifies: the CLI's own relocation audit, and
			// byte for byte against the archive.
			if r, code := runCLI(t, bin, env, "", "--plain-http", dst.Host, "verify", "--target", dst.Host+"/airgap", "--mapping", mapping, archive); code != 0 {
				t.Fatalf("verify after the re-run: exit %d\n%s%s", code, r.stdout.String(), r.stderr.String())
			}
			m, err := relocate.ReadMapping(mapping)
			if err != nil {
				t.Fatal(err)
			}
			assertTargetHoldsArchive(t, dst, "airgap/bundles/sample-app", archive, m)
		})
	}
}

// cleanImportCounts imports archive with the CLI into a new registry and
// returns what the registry counted: the reference a resumed import must
// add up to.
func cleanImportCounts(t *testing.T, bin string, env []string, archive string) harness.Counts {
	t.Helper()
	ref := startRegistry(t)
	if r, code := runCLI(t, bin, env, "", "--plain-http", ref.Host, "--quiet", "import", "--target", ref.Host+"/airgap",
		"--mapping", filepath.Join(t.TempDir(), "m.json"), archive); code != 0 {
		t.Fatalf("clean import: exit %d\n%s", code, r.stderr.String())
	}
	clean := settle(ref)
	if clean.BlobUploadsCompleted < 5 || clean.ManifestPuts < 5 {
		t.Fatalf("the sample is too small for this test: %+v", clean)
	}
	return clean
}

// killedImport runs the CLI with args, armed in ks, which must kill it;
// it returns what dst counted, after checking that no mapping was written.
func killedImport(t *testing.T, bin string, env, args []string, ks *killSwitch, dst *harness.Registry, mapping string) harness.Counts {
	t.Helper()
	run := startCLI(t, bin, env, "", args...)
	ks.arm(run.cmd.Process)
	if code := run.wait(t); code != -1 {
		t.Fatalf("the import was not killed (exit %d)\nstderr: %s", code, run.stderr.String())
	}
	ks.disarm()
	first := settle(dst)
	if _, err := os.Stat(mapping); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a killed import left a mapping: %v", err)
	}
	return first
}

// checkResumed checks that what a killed import uploaded (first) and what
// its re-run added (total - first) add up to a clean import, neither more
// nor less, and that the kill came after something was uploaded.
func checkResumed(t *testing.T, first, total, clean harness.Counts, detail string) {
	t.Helper()
	blobs2 := total.BlobUploadsCompleted - first.BlobUploadsCompleted
	manifests2 := total.ManifestPuts - first.ManifestPuts
	t.Logf("killed after %d blob uploads and %d manifest puts; the re-run uploaded %d blobs%s and put %d manifests (a clean import: %d and %d)",
		first.BlobUploadsCompleted, first.ManifestPuts, blobs2, detail, manifests2, clean.BlobUploadsCompleted, clean.ManifestPuts)
	if first.BlobUploadsCompleted+blobs2 != clean.BlobUploadsCompleted {
		t.Errorf("blob uploads: %d before the kill + %d after != %d for a clean import", first.BlobUploadsCompleted, blobs2, clean.BlobUploadsCompleted)
	}
	if first.ManifestPuts+manifests2 != clean.ManifestPuts {
		t.Errorf("manifest puts: %d before the kill + %d after != %d for a clean import", first.ManifestPuts, manifests2, clean.ManifestPuts)
	}
	if first.BlobUploadsCompleted == 0 && first.ManifestPuts == 0 {
		t.Error("the kill came before anything was uploaded: the re-run proves nothing")
	}
}

// An export killed with SIGKILL in the middle of fetching blobs leaves no
// file under the final name, only the staging file; `export --resume`
// keeps the blobs that verify, fetches the rest, and the archive is byte
// for byte the one a clean export writes.
func TestExportResumesAfterKill(t *testing.T) {
	bin := buildCLI(t)
	ks := &killSwitch{}
	var layerGets sync.Map // path -> true, GETs of layers that completed
	src := startRegistry(t, harness.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			blobGet := r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
			n := 0
			layerGets.Range(func(any, any) bool { n++; return true })
			// With --jobs 2, a blob fetch that starts after two layers
			// were served means a fetch slot was freed: at least one
			// layer is in the staging file. Kill the export there.
			if blobGet && n >= 2 && ks.fire() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			cw := &countingResponse{ResponseWriter: w}
			next.ServeHTTP(cw, r)
			if blobGet && cw.n > 64<<10 {
				layerGets.Store(r.URL.Path+time.Now().String(), true)
			}
		})
	}))
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	cleanOut := filepath.Join(dir, "clean.tar")
	env := cliEnv(t)
	pushed := settle(src).BlobGets
	if r, code := runCLI(t, bin, env, "", "--plain-http", src.Host, "--quiet", "export", "-o", cleanOut, pb.Ref); code != 0 {
		t.Fatalf("clean export: exit %d\n%s", code, r.stderr.String())
	}
	cleanGets := settle(src).BlobGets - pushed
	layerGets.Clear()

	out := filepath.Join(dir, "bundle.tar")
	args := []string{"--plain-http", src.Host, "--jobs", "2", "--output", "json", "export", "-o", out, pb.Ref}
	// Whether the killed run had finished writing a blob when it died is a
	// matter of timing; the resumed archive must be right every time, and
	// within three tries some blob must have been kept.
	for attempt := 1; ; attempt++ {
		layerGets.Clear()
		os.Remove(out)
		os.Remove(out + ".sha256")
		before := settle(src)
		run := startCLI(t, bin, env, "", args...)
		ks.arm(run.cmd.Process)
		if code := run.wait(t); code != -1 {
			t.Fatalf("the export was not killed (exit %d)\nstderr: %s", code, run.stderr.String())
		}
		ks.disarm()
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a killed export left a file under the final name: %v", err)
		}
		if _, err := os.Stat(out + layout.PartialSuffix); err != nil {
			t.Fatalf("a killed export left no staging file: %v", err)
		}
		afterKill := settle(src)

		resumed, code := runCLI(t, bin, env, "", append(args[:len(args)-1:len(args)-1], "--resume", pb.Ref)...)
		if code != 0 {
			t.Fatalf("export --resume: exit %d\n%s", code, resumed.stderr.String())
		}
		var res struct {
			ResumedBytes int64 `json:"resumedBytes"`
			FetchedBytes int64 `json:"fetchedBytes"`
		}
		if err := json.Unmarshal(resumed.stdout.Bytes(), &res); err != nil {
			t.Fatalf("export --output json: %v\n%s", err, resumed.stdout.String())
		}
		resumeGets := settle(src).BlobGets - afterKill.BlobGets
		t.Logf("killed after %d blob GETs; the resumed export kept %d bytes, fetched %d bytes in %d blob GETs (a clean export: %d GETs)",
			afterKill.BlobGets-before.BlobGets, res.ResumedBytes, res.FetchedBytes, resumeGets, cleanGets)
		identicalFiles(t, out, cleanOut)
		if res.ResumedBytes > 0 {
			if resumeGets >= cleanGets {
				t.Fatalf("the resumed export made %d blob GETs, a clean one %d", resumeGets, cleanGets)
			}
			break
		}
		if attempt == 3 {
			t.Fatal("nothing was resumed in three tries")
		}
	}
	if _, err := os.Stat(out + layout.PartialSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the staging file was left after a successful export")
	}
	sum, err := os.ReadFile(out + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(cleanOut + ".sha256")
	if strings.Fields(string(sum))[0] != strings.Fields(string(want))[0] {
		t.Fatalf("checksum files differ: %s vs %s", sum, want)
	}
}

// identicalFiles fails unless files a and b have the same bytes.
func identicalFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s differs from %s", a, b)
	}
}

// countingResponse counts the body bytes a handler writes.
type countingResponse struct {
	http.ResponseWriter
	n int64
}

func (c *countingResponse) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingResponse) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *countingResponse) Unwrap() http.ResponseWriter { return c.ResponseWriter }
