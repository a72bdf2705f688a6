package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnabio/cnab-go/bundle"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// sampleV2 pushes version 0.2.0 of the sample bundle: the same invocation
// image, web and db, and a worker with one more layer.
func sampleV2(t *testing.T, src *harness.Registry, v1 *harness.PushedBundle) *harness.PushedBundle {
	t.Helper()
	ctx := context.Background()
	worker, err := harness.NewImage(harness.ImageSpec{Name: "worker", Seed: harness.DefaultSampleSeed, Layers: []harness.LayerSpec{
		{Label: "base", Size: harness.DefaultSampleBaseLayerSize},
		{Label: "worker", Size: harness.DefaultSampleLayerSize},
		{Label: "worker-v2", Size: 300 << 10},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := src.PushImage(ctx, "library/worker:2.0", worker)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Unmarshal(v1.BundleJSON)
	if err != nil {
		t.Fatal(err)
	}
	b.Version = "0.2.0"
	w := b.Images["worker"]
	w.Image, w.Digest, w.Size, w.MediaType = p.Ref, p.Digest.String(), uint64(p.Size), p.MediaType
	b.Images["worker"] = w
	pb, err := harness.PushBundle(ctx, src, "bundles/sample-app:0.2.0", b)
	if err != nil {
		t.Fatal(err)
	}
	return pb
}

// blobSet lists an archive's blobs, split into manifests (and bundle
// metadata) and the rest.
func blobSet(t *testing.T, path string) (all map[digest.Digest]bool, manifests map[digest.Digest]bool) {
	t.Helper()
	b, err := archive.Load(context.Background(), path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	all, manifests = map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for d := range b.Archive.Blobs() {
		all[d] = true
	}
	for d := range b.Nodes {
		manifests[d] = true
	}
	manifests[b.BundleDigest] = true
	return all, manifests
}

func TestDeltaExport(t *testing.T) {
	ctx := context.Background()
	cli := newCLI(t)
	src := startRegistry(t)
	v1 := sample(t, src, harness.SampleOptions{})
	v2 := sampleV2(t, src, v1)
	dir := t.TempDir()
	v1tar := exportSample(t, src, v1)
	v2full := exportSample(t, src, v2)

	// export --base v1.tar, through the CLI.
	delta := filepath.Join(dir, "v2-delta.tar")
	code, out, errOut := cli(t, "--plain-http", src.Host, "export", "--base", v1tar, "-o", delta, v2.Ref)
	if code != 0 {
		t.Fatalf("export exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "delta       against archive of "+v1.Ref) {
		t.Fatalf("export does not report its base:\n%s", out)
	}

	// The delta carries every manifest of v2, bundle.json, and only the
	// blobs v1 lacks: the new worker layer and the new worker config.
	have, _ := blobSet(t, v1tar)
	fullSet, fullManifests := blobSet(t, v2full)
	deltaSet, _ := blobSet(t, delta)
	var carried []digest.Digest
	for d := range fullSet {
		switch {
		case fullManifests[d]:
			if !deltaSet[d] {
				t.Fatalf("manifest %s left out of the delta", d)
			}
		case have[d]:
			if deltaSet[d] {
				t.Fatalf("blob %s is in the base and in the delta", d)
			}
		default:
			if !deltaSet[d] {
				t.Fatalf("new blob %s left out of the delta", d)
			}
			carried = append(carried, d)
		}
	}
	if len(carried) != 2 {
		t.Fatalf("the delta carries %d new blobs (%v), want 2", len(carried), carried)
	}
	if len(deltaSet) != len(fullSet)-(len(fullSet)-len(fullManifests)-2) {
		t.Fatalf("delta has %d blobs, full v2 %d", len(deltaSet), len(fullSet))
	}
	a, err := layout.Open(ctx, delta, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := layout.Open(ctx, v1tar, layout.OpenOptions{})
	if a.Index.Annotations[layout.AnnotationDeltaBaseKind] != layout.DeltaBaseArchive || a.Index.Annotations[layout.AnnotationDeltaBase] != digest.FromBytes(base.IndexRaw).String() {
		t.Fatalf("the delta does not record its base: %v", a.Index.Annotations)
	}
	base.Close()
	a.Close()
	// It verifies on its own, offline.
	if code, _, errOut := cli(t, "verify", delta); code != 0 {
		t.Fatalf("verify exit %d: %s", code, errOut)
	}

	t.Run("into a target that has the base", func(t *testing.T) {
		dst := startRegistry(t)
		c := clientFor(t, dst)
		if _, err := importer.Import(ctx, importer.Request{Archive: v1tar, Target: dst.Host + "/airgap"}, importer.WithClient(c)); err != nil {
			t.Fatal(err)
		}
		dst.ResetCounts()
		ir, err := importer.Import(ctx, importer.Request{Archive: delta, Target: dst.Host + "/airgap"}, importer.WithClient(c))
		if err != nil {
			t.Fatal(err)
		}
		// The two new blobs and the new bundle.json.
		if ir.BlobsUploaded != 3 || dst.Counts().BlobUploadsCompleted != 3 {
			t.Fatalf("uploaded %d blobs (%+v), want the 3 new ones", ir.BlobsUploaded, dst.Counts())
		}
		checkImported(t, v2, dst, ir)
	})

	t.Run("into an empty target", func(t *testing.T) {
		dst := startRegistry(t)
		mapping := filepath.Join(t.TempDir(), "m.json")
		_, err := importer.Import(ctx, importer.Request{Archive: delta, Target: dst.Host + "/airgap", MappingPath: mapping}, importer.WithClient(clientFor(t, dst)))
		if !errors.Is(err, importer.ErrDeltaBaseMissing) {
			t.Fatalf("want the base missing, got %v", err)
		}
		// Every missing blob is named, with the images that need it.
		for d := range have {
			if fullSet[d] && !fullManifests[d] && !strings.Contains(err.Error(), d.String()) {
				t.Fatalf("error does not name %s: %v", d, err)
			}
		}
		if !strings.Contains(err.Error(), "component web") || !strings.Contains(err.Error(), "invocation image 0") {
			t.Fatalf("error does not name the images: %v", err)
		}
		n := dst.Counts()
		if n.BlobUploadStarts != 0 || n.BlobMounts != 0 || n.ManifestPuts != 0 {
			t.Fatalf("pushed before failing: %+v", n)
		}
	})

	t.Run("other names: mounted from the base's repository", func(t *testing.T) {
		dst := startRegistry(t)
		c := clientFor(t, dst)
		if _, err := importer.Import(ctx, importer.Request{Archive: v1tar, Target: dst.Host + "/airgap"}, importer.WithClient(c)); err != nil {
			t.Fatal(err)
		}
		ir, err := importer.Import(ctx, importer.Request{Archive: delta, Target: dst.Host + "/airgap"}, importer.WithClient(c), importer.WithNaming(relocate.NamingPreserve))
		if err != nil {
			t.Fatal(err)
		}
		if ir.BlobsMounted == 0 {
			t.Fatalf("nothing mounted: %+v", ir)
		}
		checkImported(t, v2, dst, ir)
	})

	t.Run("base inventory", func(t *testing.T) {
		dst := startRegistry(t)
		c := clientFor(t, dst)
		if _, err := importer.Import(ctx, importer.Request{Archive: v1tar, Target: dst.Host + "/airgap"}, importer.WithClient(c)); err != nil {
			t.Fatal(err)
		}
		inv := filepath.Join(t.TempDir(), "inventory.json")
		code, out, errOut := cli(t, "--plain-http", dst.Host, "inventory", "--target", dst.Host+"/airgap", "-o", inv)
		if code != 0 {
			t.Fatalf("inventory exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "1 repositories") {
			t.Fatalf("inventory:\n%s", out)
		}
		got, _, err := export.ReadInventory(inv)
		if err != nil {
			t.Fatal(err)
		}
		for d := range have {
			if _, isBlob := got.Blobs[d]; !isBlob {
				if _, isManifest := got.Manifests[d]; !isManifest {
					t.Fatalf("inventory lacks %s", d)
				}
			}
		}
		// The inventory stands in for the base archive: same blobs left out.
		delta2 := filepath.Join(t.TempDir(), "v2-delta.tar")
		res, err := export.Export(ctx, export.Request{Reference: v2.Ref, Output: delta2}, export.WithClient(clientFor(t, src)), export.WithBaseInventory(inv))
		if err != nil {
			t.Fatal(err)
		}
		if res.Base == nil || res.Base.Kind != layout.DeltaBaseInventory || res.Base.OmittedBlobs != len(fullSet)-len(fullManifests)-2 {
			t.Fatalf("base %+v", res.Base)
		}
		d2, _ := blobSet(t, delta2)
		if len(d2) != len(deltaSet) {
			t.Fatalf("inventory delta has %d blobs, archive delta %d", len(d2), len(deltaSet))
		}
		ir, err := importer.Import(ctx, importer.Request{Archive: delta2, Target: dst.Host + "/airgap"}, importer.WithClient(c))
		if err != nil {
			t.Fatal(err)
		}
		checkImported(t, v2, dst, ir)
	})
}
