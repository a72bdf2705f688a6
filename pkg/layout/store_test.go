package layout_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/content/contenttest"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// planFor plans an archive of blobs whose index.json names roots.
func planFor(t *testing.T, blobs []contenttest.Blob, roots []ocispec.Descriptor) *layout.Plan {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: roots}
	idx.SchemaVersion = 2
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	files := []layout.File{
		{Name: layout.OCILayoutFile, Data: []byte(layout.OCILayoutContent)},
		{Name: layout.IndexFile, Data: raw},
	}
	var lb []layout.Blob
	for _, b := range blobs {
		lb = append(lb, layout.Blob{Digest: b.Desc.Digest, Size: b.Desc.Size})
	}
	p, err := layout.NewPlan(files, lb)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rootsOf(blobs []contenttest.Blob) []ocispec.Descriptor {
	var roots []ocispec.Descriptor
	for _, b := range blobs {
		if b.Desc.MediaType == ocispec.MediaTypeImageIndex {
			roots = append(roots, b.Desc)
		}
	}
	return roots
}

// writeArchive writes an archive holding blobs and returns its path and
// digest.
func writeArchive(t *testing.T, blobs []contenttest.Blob) (string, digest.Digest) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.tar")
	w, err := layout.Create(path, planFor(t, blobs, rootsOf(blobs)), layout.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := w.Push(context.Background(), b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return path, d
}

func openArchive(t *testing.T, path string) *layout.Archive {
	t.Helper()
	a, err := layout.Open(context.Background(), path, layout.OpenOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestArchiveConformance(t *testing.T) {
	t.Parallel()
	contenttest.Run(t, contenttest.Suite{New: func(t *testing.T, held, _ []contenttest.Blob) any {
		path, _ := writeArchive(t, held)
		return openArchive(t, path)
	}})
}

// TestSplitArchiveConformance reads the archive from three volumes: a
// filler blob makes it larger than two of the smallest parts.
func TestSplitArchiveConformance(t *testing.T) {
	t.Parallel()
	filler := make([]byte, 2*layout.MinPartSize+layout.MinPartSize/2)
	if _, err := rand.Read(filler); err != nil {
		t.Fatal(err)
	}
	contenttest.Run(t, contenttest.Suite{New: func(t *testing.T, held, _ []contenttest.Blob) any {
		all := append([]contenttest.Blob{contenttest.NewBlob(ocispec.MediaTypeImageLayer, filler)}, held...)
		path, d := writeArchive(t, all)
		ps, err := layout.Split(context.Background(), path, layout.MinPartSize, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps.Parts) < 3 {
			t.Fatalf("split into %d parts, want at least 3", len(ps.Parts))
		}
		return openArchive(t, path+layout.PartsSuffix)
	}})
}

// TestWriterConformance pushes into an archive being written and reads
// the committed archive back.
func TestWriterConformance(t *testing.T) {
	t.Parallel()
	contenttest.Run(t, contenttest.Suite{
		New: func(t *testing.T, held, planned []contenttest.Blob) any {
			all := append(append([]contenttest.Blob{}, held...), planned...)
			seen := map[digest.Digest]bool{}
			var uniq []contenttest.Blob
			for _, b := range all {
				if !seen[b.Desc.Digest] {
					seen[b.Desc.Digest] = true
					uniq = append(uniq, b)
				}
			}
			w, err := layout.Create(filepath.Join(t.TempDir(), "w.tar"), planFor(t, uniq, rootsOf(uniq)), layout.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range held {
				if err := w.Push(context.Background(), b.Desc, bytes.NewReader(b.Data)); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { w.Close() })
			return w
		},
		ReadBack: func(t *testing.T, st any) content.Fetcher {
			w := st.(*layout.FileWriter)
			if _, err := w.Commit(); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			a := openArchive(t, w.Path())
			t.Cleanup(func() { a.Close() })
			return a
		},
	})
}
