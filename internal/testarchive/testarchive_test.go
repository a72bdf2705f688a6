package testarchive_test

import (
	"path/filepath"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// The fixture is a valid archive: archive.Load checks it completely and
// every blob verifies; two writes give the same bytes.
func TestWriteLoads(t *testing.T) {
	dir := t.TempDir()
	a, err := testarchive.Write(filepath.Join(dir, "a.tar"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := archive.Load(t.Context(), a.Path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Images) != 2 || b.Index.Digest != a.Index.Digest || b.BundleDigest != a.BundleDigest {
		t.Fatalf("loaded %d images, index %s, bundle %s", len(b.Images), b.Index.Digest, b.BundleDigest)
	}
	if len(b.Warnings) != 0 {
		t.Fatalf("warnings: %v", b.Warnings)
	}
	if err := b.VerifyBlobs(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	again, err := testarchive.Write(filepath.Join(dir, "b.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if again.ArchiveDigest != a.ArchiveDigest {
		t.Fatalf("two writes differ: %s %s", a.ArchiveDigest, again.ArchiveDigest)
	}
}
