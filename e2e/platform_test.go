package e2e

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// webPlatforms returns the sample web index's raw bytes and its children by
// platform ("linux/amd64"), read from the source registry.
func webPlatforms(t *testing.T, src *harness.Registry, pb *harness.PushedBundle) ([]byte, map[string]v1.Descriptor) {
	t.Helper()
	web := mustImage(t, pb, "web")
	ref, err := name.ParseReference(web.Image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithTransport(src.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Descriptor{}
	for _, m := range im.Manifests {
		out[m.Platform.OS+"/"+m.Platform.Architecture] = m
	}
	return desc.Manifest, out
}

func TestPlatformSelection(t *testing.T) {
	ctx := context.Background()
	cli := newCLI(t)
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	web := mustImage(t, pb, "web")
	indexRaw, children := webPlatforms(t, src, pb)
	amd, arm := children["linux/amd64"], children["linux/arm64"]
	dir := t.TempDir()

	// Through the CLI: --platform linux/amd64.
	archivePath := filepath.Join(dir, "amd64.tar")
	code, out, errOut := cli(t, "--plain-http", src.Host, "export", "--platform", "linux/amd64", "-o", archivePath, pb.Ref)
	if code != 0 {
		t.Fatalf("export exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "sparse      component web") || !strings.Contains(out, "linux/arm64 "+arm.Digest.String()) {
		t.Fatalf("export does not report the sparse index:\n%s", out)
	}
	full := exportSample(t, src, pb)

	a, err := layout.Open(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The index is carried byte for byte; the arm64 manifest and what only
	// it needs are not; the archive records the absent child.
	got, err := a.Metadata(web.ContentDigest, -1)
	if err != nil || !bytes.Equal(got, indexRaw) {
		t.Fatalf("web index not carried byte for byte (%v)", err)
	}
	if _, ok := a.Has(digest.Digest(arm.Digest.String())); ok {
		t.Fatal("the arm64 manifest was carried")
	}
	if _, ok := a.Has(digest.Digest(amd.Digest.String())); !ok {
		t.Fatal("the amd64 manifest was not carried")
	}
	if a.Index.Annotations[layout.AnnotationAbsent] != arm.Digest.String() || a.Index.Annotations[layout.AnnotationPlatforms] != "linux/amd64" {
		t.Fatalf("index.json annotations %v", a.Index.Annotations)
	}
	fa, err := layout.Open(ctx, full, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Left out: the arm64 manifest, its config and its own layer.
	if n, m := len(fa.Blobs()), len(a.Blobs()); n-m != 3 {
		t.Fatalf("full export has %d blobs, amd64 export %d; want 3 fewer", n, m)
	}
	fa.Close()
	a.Close()

	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Absent) != 1 || !strings.Contains(strings.Join(b.Warnings, "\n"), "sparse index "+web.ContentDigest.String()) {
		t.Fatalf("absent %v warnings %v", b.Absent, b.Warnings)
	}
	if err := b.VerifyBlobs(ctx, nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	src.Close()

	t.Run("registry accepting sparse indexes", func(t *testing.T) {
		dst := startRegistry(t, harness.WithSparseIndexes())
		mapping := filepath.Join(t.TempDir(), "m.json")
		code, out, errOut := cli(t, "--plain-http", dst.Host, "import", "--target", dst.Host+"/airgap", "--mapping", mapping, archivePath)
		if code != 0 {
			t.Fatalf("import exit %d: %s\n%s", code, errOut, out)
		}
		// The audit does not look for the platforms the archive left out.
		if code, out, errOut := cli(t, "--plain-http", dst.Host, "verify", archivePath, "--target", dst.Host+"/airgap", "--mapping", mapping); code != 0 {
			t.Fatalf("verify --target after a --platform import: exit %d\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "sparse index") || !strings.Contains(errOut, "linux/arm64") {
			t.Fatalf("import does not say the index is sparse:\nstdout %s\nstderr %s", out, errOut)
		}
		repo, _ := name.NewRepository(dst.Host+"/airgap/bundles/sample-app", name.Insecure)
		opts := remote.WithTransport(dst.Transport())
		// The index digest at the target is contentDigest.
		d, err := remote.Head(repo.Digest(web.ContentDigest.String()), opts)
		if err != nil || d.Digest.String() != web.ContentDigest.String() {
			t.Fatalf("web index at the target: %v %v", d, err)
		}
		// amd64 pulls completely; arm64 is not there.
		assertPullable(t, repo.Digest(amd.Digest.String()), dst)
		if _, err := remote.Head(repo.Digest(arm.Digest.String()), opts); err == nil {
			t.Fatal("the arm64 manifest is at the target")
		}
		pulled, err := harness.ReadBundle(ctx, dst, dst.Host+"/airgap/bundles/sample-app:0.1.0")
		if err != nil || pulled.Digest != pb.Digest {
			t.Fatalf("bundle at the target: %v %v", pulled, err)
		}
	})

	t.Run("registry validating index children", func(t *testing.T) {
		// distribution's default; the option makes it explicit.
		dst := startRegistry(t, harness.WithIndexValidation())
		mapping := filepath.Join(t.TempDir(), "m.json")
		_, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap", MappingPath: mapping}, importer.WithClient(clientFor(t, dst)))
		if !errors.Is(err, importer.ErrSparseRefused) {
			t.Fatalf("want a refused sparse index, got %v", err)
		}
		for _, want := range []string{"component web", web.Image, "linux/arm64", "MANIFEST_BLOB_UNKNOWN"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error lacks %q: %v", want, err)
			}
		}
		for repo, tags := range listing(t, dst) {
			if len(tags) > 0 {
				t.Fatalf("tags pushed despite the failure: %s %v", repo, tags)
			}
		}
		// The full archive goes into the same registry.
		if _, err := importer.Import(ctx, importer.Request{Archive: full, Target: dst.Host + "/airgap"}, importer.WithClient(clientFor(t, dst))); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPlatformSelectionEdges(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	c := clientFor(t, src)
	out := filepath.Join(t.TempDir(), "b.tar")
	// Both platforms selected: nothing is absent.
	res, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(c), export.WithPlatforms("linux/amd64,linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sparse) != 0 {
		t.Fatalf("sparse %v", res.Sparse)
	}
	a, err := layout.Open(ctx, out, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Index.Annotations[layout.AnnotationAbsent]; ok {
		t.Fatal("absent children recorded")
	}
	a.Close()
	// No platform of web selected: the export stops and names the image.
	_, err = export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(c), export.WithPlatforms("linux/s390x"))
	if err == nil || !strings.Contains(err.Error(), "component web") || !strings.Contains(err.Error(), "linux/s390x") {
		t.Fatalf("want an error naming component web, got %v", err)
	}
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(c), export.WithPlatforms("linux")); err == nil {
		t.Fatal("a malformed platform was accepted")
	}
}
