package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

func startRegistry(t *testing.T, opts ...harness.RegistryOption) *harness.Registry {
	t.Helper()
	r, err := harness.StartRegistry(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func clientFor(t *testing.T, regs ...*harness.Registry) *registry.Client {
	t.Helper()
	var plain []string
	for _, r := range regs {
		plain = append(plain, r.Host)
	}
	c, err := registry.New(registry.Options{PlainHTTP: plain})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sample(t *testing.T, src *harness.Registry, o harness.SampleOptions) *harness.PushedBundle {
	t.Helper()
	b, err := harness.SampleBundle(context.Background(), src, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "bundle.tar")

	c := clientFor(t, src, dst)
	res, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	if res.IndexDigest != pb.Digest.String() || res.BundleDigest != pb.BundleJSONDigest.String() {
		t.Fatalf("export recorded index %s bundle %s, source has %s %s", res.IndexDigest, res.BundleDigest, pb.Digest, pb.BundleJSONDigest)
	}
	if len(res.Images) != len(pb.Images) {
		t.Fatalf("exported %d images, bundle has %d", len(res.Images), len(pb.Images))
	}
	sum, err := os.ReadFile(archivePath + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw).Encoded() + "  bundle.tar\n"; string(sum) != got {
		t.Fatalf("checksum file %q, archive hashes to %q", sum, got)
	}

	// Deterministic: a second export is byte-identical.
	again := filepath.Join(dir, "again.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: again}, export.WithClient(c), export.WithJobs(1)); err != nil {
		t.Fatal(err)
	}
	raw2, _ := os.ReadFile(again)
	if !bytes.Equal(raw, raw2) {
		t.Fatal("two exports of the same bundle differ")
	}

	// Every blob once: the archive's blob bytes equal the unique content.
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(len(raw)) - b.UniqueBytes(); got < 0 || got > 64<<10 {
		t.Fatalf("archive overhead %d bytes over %d unique", got, b.UniqueBytes())
	}
	if err := b.VerifyBlobs(ctx, nil); err != nil {
		t.Fatal(err)
	}
	b.Close()

	src.Close() // the import side has no route to the source
	mapping := filepath.Join(dir, "relocation-mapping.json")
	ir, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap", MappingPath: mapping}, importer.WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	if ir.IndexDigest != pb.Digest.String() {
		t.Fatalf("imported index %s, source %s", ir.IndexDigest, pb.Digest)
	}

	// cnab-to-oci pulls the relocated bundle; bundle.json is byte-identical.
	target := dst.Host + "/airgap/bundles/sample-app:0.1.0"
	pulled, err := harness.ReadBundle(ctx, dst, target)
	if err != nil {
		t.Fatal(err)
	}
	if pulled.BundleJSONDigest != pb.BundleJSONDigest || pulled.Digest != pb.Digest {
		t.Fatalf("target bundle %s/%s, source %s/%s", pulled.Digest, pulled.BundleJSONDigest, pb.Digest, pb.BundleJSONDigest)
	}

	// The mapping covers every image string; every value resolves to its contentDigest.
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range pb.Images {
		v, ok := m[img.Image]
		if !ok {
			t.Fatalf("mapping lacks %s", img.Image)
		}
		ref, err := name.ParseReference(v, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(ref, remote.WithTransport(dst.Transport()))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if d.Digest.String() != img.ContentDigest.String() {
			t.Fatalf("%s resolves to %s, contentDigest %s", v, d.Digest, img.ContentDigest)
		}
		// Every platform and layer is there: pull the image (all children) and read each layer.
		assertPullable(t, ref, dst)
	}
	if len(m) != len(pb.Images) {
		t.Fatalf("mapping has %d keys, bundle %d images", len(m), len(pb.Images))
	}

	// A second import uploads nothing.
	dst.ResetCounts()
	ir2, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap", MappingPath: mapping}, importer.WithClient(clientFor(t, dst)))
	if err != nil {
		t.Fatal(err)
	}
	if n := dst.Counts(); n.BlobUploadStarts != 0 || n.ManifestPuts != 0 {
		t.Fatalf("second import uploaded: %+v", n)
	}
	if ir2.BlobsUploaded != 0 || ir2.BlobsSkipped == 0 {
		t.Fatalf("second import result: uploaded %d skipped %d", ir2.BlobsUploaded, ir2.BlobsSkipped)
	}
}

// assertPullable walks an image or index at ref and reads every layer.
func assertPullable(t *testing.T, ref name.Reference, reg *harness.Registry) {
	t.Helper()
	desc, err := remote.Get(ref, remote.WithTransport(reg.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range im.Manifests {
			assertPullable(t, ref.Context().Digest(m.Digest.String()), reg)
		}
		return
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ioCopyDiscard(rc); err != nil {
			t.Fatalf("%s layer: %v", ref, err)
		}
	}
}

func TestExportRejectsWrongContentDigest(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{WrongDigestImage: "web"})
	out := filepath.Join(t.TempDir(), "bundle.tar")
	_, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(clientFor(t, src)))
	if !errors.Is(err, export.ErrDigestMismatch) {
		t.Fatalf("want digest mismatch, got %v", err)
	}
	if !strings.Contains(err.Error(), "component web") || !strings.Contains(err.Error(), "library/web:1.0") {
		t.Fatalf("error does not name the image: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("an archive was written")
	}

	// The same from a local bundle.json whose contentDigest is wrong.
	valid := sample(t, src, harness.SampleOptions{Tag: "0.2.0"})
	bad, err := harness.BundleJSONWithWrongDigest(valid.BundleJSON, "db")
	if err != nil {
		t.Fatal(err)
	}
	bf := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(bf, bad, 0o644)
	_, err = export.Export(ctx, export.Request{BundleFile: bf, Output: out}, export.WithClient(clientFor(t, src)))
	if err == nil || !strings.Contains(err.Error(), "component db") {
		t.Fatalf("want an error naming component db, got %v", err)
	}
}

func mustImage(t *testing.T, pb *harness.PushedBundle, n string) harness.BundleImage {
	t.Helper()
	img, ok := pb.Image(n)
	if !ok {
		t.Fatalf("no image %s", n)
	}
	return img
}

func TestImportStopsOnCorruptBlobBeforeAnyTag(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst, writes := untouchedTarget(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "bundle.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	// Flip one byte in the middle of the largest blob.
	big := largestBlob(t, archivePath)
	corruptBlob(t, archivePath, big)

	mapping := filepath.Join(dir, "relocation-mapping.json")
	_, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host, MappingPath: mapping}, importer.WithClient(clientFor(t, dst)))
	if err == nil {
		t.Fatal("import of a corrupted archive succeeded")
	}
	if !strings.Contains(err.Error(), big.String()) {
		t.Fatalf("error does not name the blob %s: %v", big, err)
	}
	// Every blob is hashed before the first byte is uploaded: the target
	// saw no upload session, no blob and no manifest.
	if n := writes.n.Load(); n != 0 {
		t.Fatalf("%d requests changed the target before the corrupt blob was found", n)
	}
	repos, err := dst.Repositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range repos {
		tags, _ := dst.Tags(ctx, r)
		if len(tags) > 0 {
			t.Fatalf("tags pushed despite the failure: %s %v", r, tags)
		}
	}
	if _, err := os.Stat(mapping); !os.IsNotExist(err) {
		t.Fatal("mapping written despite the failure")
	}
}

// largestBlob returns the digest of the largest blob an archive carries.
func largestBlob(t *testing.T, archivePath string) digest.Digest {
	t.Helper()
	a, err := layout.Open(context.Background(), archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var big digest.Digest
	var bigSize int64
	for d, s := range a.Blobs() {
		if s > bigSize {
			big, bigSize = d, s
		}
	}
	return big
}

// TestImportHashesWhatItSends: the probe before the hashing asks the target
// for every blob in every repository. A re-import into repositories that
// hold everything reads nothing from the archive, so a byte flipped in a
// blob the target already holds changes nothing (the target's copy, named
// by its digest, is what the bundle references) and nothing is uploaded;
// the same archive into repositories that lack the blob is refused before
// a single request changes the target.
func TestImportHashesWhatItSends(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst, writes := untouchedTarget(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "bundle.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	first, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/one"}, importer.WithClient(clientFor(t, dst)))
	if err != nil {
		t.Fatal(err)
	}
	big := largestBlob(t, archivePath)
	corruptBlob(t, archivePath, big)

	again, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/one"}, importer.WithClient(clientFor(t, dst)))
	if err != nil {
		t.Fatalf("re-import into repositories that hold every blob: %v", err)
	}
	if again.BytesUploaded != 0 || again.BlobsUploaded != 0 || again.BlobsSkipped != first.BlobsUploaded {
		t.Fatalf("re-import uploaded %d blobs (%d bytes) and skipped %d; want 0, 0 and %d", again.BlobsUploaded, again.BytesUploaded, again.BlobsSkipped, first.BlobsUploaded)
	}

	before := writes.n.Load()
	_, err = importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/two"}, importer.WithClient(clientFor(t, dst)))
	if err == nil || !strings.Contains(err.Error(), big.String()) || !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("import into repositories that lack %s: %v", big, err)
	}
	if n := writes.n.Load() - before; n != 0 {
		t.Fatalf("%d requests changed the target before the corrupt blob was found", n)
	}
}

func TestSkopeoReadsArchive(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is required (make test provisions it: scripts/tools.sh): ", err)
	}
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "bundle.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	// containers/image looks up ref.name only among OCI-typed descriptors,
	// so the OCI image (worker) and the OCI index (web, every platform) are
	// read. Debian's skopeo 1.9 re-serializes an index whose descriptors
	// carry artifactType (it does not know the field), so for the index the
	// platform manifests, not the index bytes, are compared.
	for _, n := range []string{"worker", "web"} {
		img := mustImage(t, pb, n)
		out := filepath.Join(dir, "out-"+n)
		args := []string{"--insecure-policy", "copy", "--all", "--preserve-digests"}
		if n == "web" {
			args = args[:3]
		}
		args = append(args, "oci-archive:"+archivePath+":"+img.Image, "oci:"+out+":copied")
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		cmd := exec.CommandContext(cctx, skopeo, args...)
		cmd.Env = append(os.Environ(), "TMPDIR="+dir)
		b, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", img.Image, err, b)
		}
		// skopeo wrote its own OCI layout: every blob must hash to its name,
		// and the image's manifests must be the ones of the bundle.
		a, err := layout.Open(ctx, tarDir(t, out), layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for d, size := range a.Blobs() {
			r, err := a.Blob(d, size)
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if err != nil {
				t.Fatalf("skopeo output blob %s: %v", d, err)
			}
		}
		if len(a.Index.Manifests) != 1 {
			t.Fatalf("skopeo wrote %d roots", len(a.Index.Manifests))
		}
		root := a.Index.Manifests[0]
		if n == "worker" {
			if root.Digest != img.ContentDigest {
				t.Fatalf("skopeo copied %s as %s, contentDigest %s", img.Image, root.Digest, img.ContentDigest)
			}
		} else {
			got := childDigests(t, a, root)
			ours, err := layout.Open(ctx, archivePath, layout.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := childDigests(t, ours, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: img.ContentDigest, Size: -1})
			ours.Close()
			if strings.Join(got, ",") != strings.Join(want, ",") || len(want) != 2 {
				t.Fatalf("skopeo copied platforms %v, the bundle has %v", got, want)
			}
		}
		a.Close()
	}
}

func childDigests(t *testing.T, a *layout.Archive, d ocispec.Descriptor) []string {
	t.Helper()
	raw, err := a.Metadata(d.Digest, d.Size)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := layout.Children(d.MediaType, raw)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Digest.String())
	}
	sort.Strings(out)
	return out
}

// A local thin bundle.json: images come from their own references, and the
// import pushes a cnab-to-oci style bundle index that cnab-to-oci can pull.
func TestRoundTripFromBundleFile(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	bf := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(bf, pb.BundleJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	archivePath := filepath.Join(dir, "bundle.tar")
	res, err := export.Export(ctx, export.Request{BundleFile: bf, Output: archivePath}, export.WithClient(clientFor(t, src)))
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range res.Images {
		if !strings.Contains(img.Source, "/library/") && !strings.Contains(img.Source, "/cnab/") {
			t.Fatalf("%s read from %s, want its own repository", img.Reference, img.Source)
		}
	}
	src.Close()
	mapping := filepath.Join(dir, "relocation-mapping.json")
	ir, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/mirror", MappingPath: mapping}, importer.WithClient(clientFor(t, dst)))
	if err != nil {
		t.Fatal(err)
	}
	if want := dst.Host + "/mirror/sample-app:0.1.0"; ir.BundleReference != want {
		t.Fatalf("bundle pushed to %s, want %s", ir.BundleReference, want)
	}
	pulled, err := harness.ReadBundle(ctx, dst, ir.BundleReference)
	if err != nil {
		t.Fatal(err)
	}
	if pulled.BundleJSONDigest != pb.BundleJSONDigest {
		t.Fatalf("pulled bundle.json %s, want %s", pulled.BundleJSONDigest, pb.BundleJSONDigest)
	}
	for _, img := range pb.Images {
		got := pulled.RelocationMap[img.Image]
		if !strings.HasSuffix(got, "@"+img.ContentDigest.String()) {
			t.Fatalf("cnab-to-oci maps %s to %s, want digest %s", img.Image, got, img.ContentDigest)
		}
	}
}
