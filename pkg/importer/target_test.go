package importer_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// memTarget is an import target in memory: one content.Memory per
// repository, with cross-repository mounts.
type memTarget struct {
	mu     sync.Mutex
	repos  map[string]*memRepo
	mounts int
}

type memRepo struct {
	*content.Memory
	t *memTarget
}

func newMemTarget() *memTarget { return &memTarget{repos: map[string]*memRepo{}} }

func (t *memTarget) Repository(name string) (importer.Repository, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.repos[name]
	if !ok {
		r = &memRepo{Memory: content.NewMemory(), t: t}
		t.repos[name] = r
	}
	return r, nil
}

// Mount implements content.Mounter from another repository of the target.
func (r *memRepo) Mount(ctx context.Context, d ocispec.Descriptor, from string) error {
	r.t.mu.Lock()
	src, ok := r.t.repos[from]
	r.t.mu.Unlock()
	if !ok {
		return content.ErrUnsupported
	}
	rc, err := src.Fetch(ctx, d)
	if err != nil {
		return content.ErrUnsupported
	}
	defer rc.Close()
	if err := r.Push(ctx, d, rc); err != nil {
		return err
	}
	r.t.mu.Lock()
	r.t.mounts++
	r.t.mu.Unlock()
	return nil
}

// held counts the contents of every repository.
func (t *memTarget) held() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.repos {
		n += r.Len()
	}
	return n
}

// An import into memory: every repository the naming plans holds its
// images' graphs, the tags resolve, the mapping names them, a second
// import moves nothing, and blobs are mounted, not sent twice.
func TestImportIntoMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	target := newMemTarget()
	opts := []importer.Option{importer.WithTarget(target), importer.WithNaming(relocate.NamingPreserve)}
	res, err := importer.Import(ctx, importer.Request{Archive: fx.Path, Target: "mem.example/mirror"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	bundleRepo := target.repos["mem.example/mirror/bundles/app"]
	if bundleRepo == nil {
		t.Fatalf("no bundle repository; repositories: %v", keys(target.repos))
	}
	d, err := bundleRepo.Resolve(ctx, "1.0.0")
	if err != nil || d.Digest != fx.Index.Digest {
		t.Fatalf("bundle tag resolves to %v, %v; want %s", d.Digest, err, fx.Index.Digest)
	}
	for _, img := range fx.Images {
		rel := res.Mapping[img.Ref]
		repo := target.repos["mem.example/mirror/"+repoPath(img.Ref)]
		if repo == nil || rel != "mem.example/mirror/"+repoPath(img.Ref)+"@"+img.Digest.String() {
			t.Fatalf("%s mapped to %q; repositories %v", img.Ref, rel, keys(target.repos))
		}
		// The image's whole graph is in its repository.
		if err := content.Walk(ctx, repo, []ocispec.Descriptor{{MediaType: img.MediaType, Digest: img.Digest, Size: img.Size}}, content.WalkOptions{},
			func(ctx context.Context, n content.Node) error {
				if has, _ := repo.Exists(ctx, n.Desc); !has {
					return errors.New("missing " + n.Desc.Digest.String())
				}
				return nil
			}); err != nil {
			t.Fatalf("%s: %v", img.Ref, err)
		}
	}
	// The signing artifact went with its subject, and is listed as its referrer.
	web := target.repos["mem.example/mirror/"+repoPath(testarchive.WebRef)]
	refs, err := web.Referrers(ctx, ocispec.Descriptor{MediaType: fx.Images[1].MediaType, Digest: fx.Images[1].Digest, Size: fx.Images[1].Size}, "")
	if err != nil || len(refs) != 1 || refs[0].Digest != fx.Signature.Digest || res.Signatures == nil || res.Signatures.Pushed == 0 {
		t.Fatalf("referrers of web: %v, %v; signatures %+v", refs, err, res.Signatures)
	}
	if res.BlobsUploaded == 0 || target.mounts == 0 || res.BlobsMounted != int64(target.mounts) {
		t.Fatalf("uploaded %d, mounted %d (target saw %d mounts)", res.BlobsUploaded, res.BlobsMounted, target.mounts)
	}
	before := target.held()
	again, err := importer.Import(ctx, importer.Request{Archive: fx.Path, Target: "mem.example/mirror"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if again.BlobsUploaded != 0 || again.ManifestsPushed != 0 || target.held() != before {
		t.Fatalf("second import uploaded %d blobs and %d manifests", again.BlobsUploaded, again.ManifestsPushed)
	}
}

// A tampered blob stops the import before the target receives anything.
func TestImportIntoMemoryRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := fx.Tampered(fx.SharedLayer.Digest, "forged.tar")
	if err != nil {
		t.Fatal(err)
	}
	target := newMemTarget()
	_, err = importer.Import(ctx, importer.Request{Archive: forged, Target: "mem.example/mirror"}, importer.WithTarget(target))
	if !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("tampered archive: %v, want a digest mismatch", err)
	}
	if n := target.held(); n != 0 {
		t.Fatalf("the target holds %d contents after a refused import", n)
	}
}

// repoPath is the repository path of a reference host/path:tag.
func repoPath(ref string) string {
	_, p, _ := strings.Cut(ref[:strings.LastIndex(ref, ":")], "/")
	return p
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
