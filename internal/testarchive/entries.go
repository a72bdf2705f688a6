package testarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Entry is one entry of a tar file.
type Entry struct {
	Name string
	Data []byte
}

// ReadEntries returns the entries of the tar file at path, in order, for a
// test that forges a variant of an archive.
func ReadEntries(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var es []Entry
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return es, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		es = append(es, Entry{h.Name, b})
	}
}

// WriteEntries writes es as a tar file at path, gzipped if gz.
func WriteEntries(path string, es []Entry, gz bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range es {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Size: int64(len(e.Data)), Mode: 0o644}); err != nil {
			return err
		}
		if _, err := tw.Write(e.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return f.Close()
}

// Tampered writes a copy of the archive, named name in the archive's
// directory, in which the last byte of blob d is flipped, and returns its
// path: content whose size is right and whose digest is not.
func (a *Archive) Tampered(d digest.Digest, name string) (string, error) {
	es, err := ReadEntries(a.Path)
	if err != nil {
		return "", err
	}
	found := false
	for i := range es {
		if es[i].Name == layout.BlobName(d) && len(es[i].Data) > 0 {
			es[i].Data = bytes.Clone(es[i].Data)
			es[i].Data[len(es[i].Data)-1] ^= 1
			found = true
		}
	}
	if !found {
		return "", fmt.Errorf("testarchive: no blob %s to tamper with", d)
	}
	path := filepath.Join(filepath.Dir(a.Path), name)
	return path, WriteEntries(path, es, false)
}
