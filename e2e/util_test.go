package e2e

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

func ioCopyDiscard(rc io.ReadCloser) (int64, error) {
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}

// corruptBlob flips one byte in the middle of blob d inside an archive.
func corruptBlob(t *testing.T, archive string, d digest.Digest) {
	t.Helper()
	a, err := layout.Open(t.Context(), archive, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := a.Section(d)
	if err != nil {
		t.Fatal(err)
	}
	_, off, size := sec.Outer()
	a.Close()
	f, err := os.OpenFile(archive, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pos := off + size/2
	b := make([]byte, 1)
	f.ReadAt(b, pos)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

// tarDir packs an OCI layout directory into a tar (regular files only) so
// the archive reader can check it.
func tarDir(t *testing.T, dir string) string {
	t.Helper()
	out := dir + ".tar"
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "blobs/") || rel == "index.json" || rel == "oci-layout" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
			tw.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return out
}

var (
	cliOnce sync.Once
	cliDir  string
	cliPath string
	cliErr  error
)

// TestMain removes the CLI binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if cliDir != "" {
		os.RemoveAll(cliDir)
	}
	os.Exit(code)
}

// cliBinary builds the cnab-airgap command once per test run and returns
// its path.
func cliBinary(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		cliDir, cliErr = os.MkdirTemp("", "cnab-airgap-e2e-cli-")
		if cliErr != nil {
			return
		}
		cliPath = filepath.Join(cliDir, "cnab-airgap")
		cmd := exec.Command("go", "build", "-o", cliPath, "github.com/cnab-airgap/cnab-airgap/cmd/cnab-airgap")
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("building the CLI: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// runCLIBinary runs the cnab-airgap binary and returns its exit code,
// standard output and standard error.
func runCLIBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cliBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}
