package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// writeFixture writes the offline fixture archive and returns its path.
func writeFixture(t *testing.T) string {
	t.Helper()
	a, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	return a.Path
}

// flipByte corrupts the largest blob of an archive in place.
func flipByte(t *testing.T, path string) {
	t.Helper()
	a, err := layout.Open(t.Context(), path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var off, size int64
	for d, s := range a.Blobs() {
		if s > size {
			sec, err := a.Section(d)
			if err != nil {
				t.Fatal(err)
			}
			_, off, size = sec.Outer()
		}
	}
	a.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off+size/2)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off+size/2); err != nil {
		t.Fatal(err)
	}
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
