package archive_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Format 1 (the fixture: the bundle entry named by ref.name) and format 2
// (the bundle entry's io.cnab.airgap.reference, no ref.name) load to the
// same bundle reference; a version this reader does not know is refused,
// named.
func TestFormatVersions(t *testing.T) {
	t.Parallel()
	fx, es := fixture(t)
	b, err := archive.Load(context.Background(), fx.Path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := [2]string{b.RepoPath, b.Tag}
	b.Close()
	rewrite := func(f func(ix *ocispec.Index)) string {
		t.Helper()
		out := make([]entry, len(es))
		copy(out, es)
		for i, e := range out {
			if e.Name != layout.IndexFile {
				continue
			}
			var ix ocispec.Index
			if err := json.Unmarshal(e.Data, &ix); err != nil {
				t.Fatal(err)
			}
			f(&ix)
			raw, err := json.Marshal(ix)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = testarchive.Entry{Name: e.Name, Data: raw}
		}
		return writeArchive(t, out, false)
	}
	v2 := rewrite(func(ix *ocispec.Index) {
		ix.Annotations[layout.AnnotationFormatVersion] = "2"
		for i, d := range ix.Manifests {
			if d.Annotations[layout.AnnotationRole] == layout.RoleBundle {
				ix.Manifests[i].Annotations[layout.AnnotationReference] = d.Annotations[layout.AnnotationRefName]
				delete(ix.Manifests[i].Annotations, layout.AnnotationRefName)
			}
		}
	})
	b, err = archive.Load(context.Background(), v2, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := [2]string{b.RepoPath, b.Tag}; got != want {
		t.Fatalf("format 2 reads the bundle as %v, format 1 as %v", got, want)
	}
	b.Close()
	v4 := rewrite(func(ix *ocispec.Index) { ix.Annotations[layout.AnnotationFormatVersion] = "4" })
	if _, err := archive.Load(context.Background(), v4, layout.OpenOptions{}); !errors.Is(err, archive.ErrInvalidArchive) || !strings.Contains(err.Error(), `format version "4"`) {
		t.Fatalf("an unknown format version: %v", err)
	}
}
