package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// The demo runs end to end (as `make demo` does) and leaves the archive,
// its checksum, the mapping and the signing key under demo-out/. (Its
// speed is not judged here: timings belong to `make bench`.)
func TestDemo(t *testing.T) {
	t.Chdir(t.TempDir())
	out := captureStdout(t, func() error { return run(t.Context()) })
	// What it prints is for people: no Go syntax, and the export and the
	// offline verify count the same archive the same way.
	if strings.Contains(out, "map[") {
		t.Errorf("the demo prints a Go map:\n%s", out)
	}
	exported := regexp.MustCompile(`\n    (\d+ manifests, \d+ blobs), [^\n]* unique`).FindStringSubmatch(out)
	verified := regexp.MustCompile(`\n    ok: (\d+ manifests, \d+ blobs);`).FindStringSubmatch(out)
	if exported == nil || verified == nil || exported[1] != verified[1] {
		t.Errorf("export and verify count differently (%q, %q):\n%s", exported, verified, out)
	}
	for _, f := range []string{"bundle.tar", "bundle.tar.sha256", relocate.MappingFile, "cosign.pub"} {
		if st, err := os.Stat(filepath.Join(outDir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	m, err := relocate.ReadMapping(filepath.Join(outDir, relocate.MappingFile))
	if err != nil || len(m) != 4 {
		t.Fatalf("mapping %v: %v", m, err)
	}
}

// captureStdout runs f with standard output going to a pipe and returns
// what it printed.
func captureStdout(t *testing.T, f func() error) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	runErr := f()
	os.Stdout = orig
	_ = w.Close()
	out := <-done
	if runErr != nil {
		t.Fatalf("%v\n%s", runErr, out)
	}
	return out
}
