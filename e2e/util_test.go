package e2e

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
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
