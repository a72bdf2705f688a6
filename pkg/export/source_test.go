package export_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// memSource is an export source in memory: one content.Memory per
// repository.
type memSource struct {
	mu    sync.Mutex
	repos map[string]*content.Memory
}

func (s *memSource) Repository(name string) (export.SourceRepository, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.repos[name]
	if !ok {
		m = content.NewMemory()
		s.repos[name] = m
	}
	return m, nil
}

// An export from memory: a bundle published in memory as cnab-to-oci
// publishes it (here: copied out of the fixture archive with the copy
// engine) is exported into an archive that carries the same bundle, images
// and signing artifact, byte for byte.
func TestExportFromMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx, err := testarchive.Write(filepath.Join(t.TempDir(), "fixture.tar"))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := archive.Load(ctx, fx.Path, layout.OpenOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()

	// Publish: the bundle repository holds the bundle index (tagged), the
	// images and the signature, the layout cnab-to-oci pushes.
	src := &memSource{repos: map[string]*content.Memory{}}
	repo, _ := src.Repository("example.com/bundles/app")
	roots := []ocispec.Descriptor{fb.Index, fx.Signature}
	if _, err := content.Copy(ctx, fb, repo.(*content.Memory), roots, content.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := repo.(*content.Memory).Tag(ctx, fb.Index, "1.0.0"); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "bundle.tar")
	res, err := export.Export(ctx, export.Request{Reference: "example.com/bundles/app:1.0.0", Output: out}, export.WithSource(src))
	if err != nil {
		t.Fatal(err)
	}
	if res.IndexDigest != fx.Index.Digest.String() || res.BundleDigest != fx.BundleDigest.String() {
		t.Fatalf("exported index %s, bundle %s; want %s, %s", res.IndexDigest, res.BundleDigest, fx.Index.Digest, fx.BundleDigest)
	}
	b, err := archive.Load(ctx, out, layout.OpenOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Images) != len(fx.Images) {
		t.Fatalf("%d images carried, want %d", len(b.Images), len(fx.Images))
	}
	for i, img := range b.Images {
		if img.Desc.Digest != fx.Images[i].Digest {
			t.Errorf("%s carried as %s, want %s", img.Ref, img.Desc.Digest, fx.Images[i].Digest)
		}
	}
	for d, size := range fx.Blobs {
		if got, ok := b.Archive.Has(d); !ok || got != size {
			t.Errorf("blob %s (%d bytes) not carried", d, size)
		}
	}
	if arts := b.SigningArtifacts(); len(arts) != 1 || arts[0].Digest != fx.Signature.Digest {
		t.Errorf("signing artifacts carried: %v, want the fixture's signature %s", arts, fx.Signature.Digest)
	}
	if err := b.HashBlobs(ctx, 2, nil); err != nil {
		t.Fatal(err)
	}
	// docker save's manifest.json lists every image (one platform of the
	// web index) over blobs the archive carries, named by its full name.
	raw, ok, err := b.Archive.File(layout.DockerManifestFile)
	if err != nil || !ok {
		t.Fatalf("manifest.json: %v (present %v)", err, ok)
	}
	var dm []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(raw, &dm); err != nil || len(dm) != len(fx.Images) {
		t.Fatalf("manifest.json lists %d images, want %d (%v):\n%s", len(dm), len(fx.Images), err, raw)
	}
	for i, e := range dm {
		if want := layout.ContainerdName(fx.Images[i].Ref); len(e.RepoTags) != 1 || e.RepoTags[0] != want {
			t.Errorf("manifest.json entry %d is named %v, want %s", i, e.RepoTags, want)
		}
		for _, name := range append([]string{e.Config}, e.Layers...) {
			d, isBlob := layout.DigestFromBlobName(name)
			if _, carried := b.Archive.Has(d); !isBlob || !carried {
				t.Errorf("manifest.json entry %d names %s, which the archive does not carry", i, name)
			}
		}
	}
}
