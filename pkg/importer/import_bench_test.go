package importer_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// benchArchive exports workload w from a real registry into an archive.
func benchArchive(b *testing.B, w harness.Workload) (string, int64) {
	b.Helper()
	ctx := context.Background()
	src, err := harness.StartRegistry(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	pb, err := harness.PushWorkload(ctx, src, w, "bench/"+w.Name+"/bundle:1.0", 4)
	if err != nil {
		b.Fatal(err)
	}
	c, err := registry.New(registry.Options{PlainHTTP: []string{src.Host}})
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "bundle.tar")
	res, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(c))
	if err != nil {
		b.Fatal(err)
	}
	return out, res.BlobBytes
}

// benchImport imports the archive of w into a fresh real registry once per
// iteration (starting the registry is not timed).
func benchImport(b *testing.B, w harness.Workload) {
	ctx := context.Background()
	archive, n := benchArchive(b, w)
	b.SetBytes(n)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst, err := harness.StartRegistry(ctx)
		if err != nil {
			b.Fatal(err)
		}
		c, err := registry.New(registry.Options{PlainHTTP: []string{dst.Host}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := importer.Import(ctx, importer.Request{Archive: archive, Target: dst.Host + "/airgap"}, importer.WithClient(c)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(len(w.Images)), "µs/image")
}

// BenchmarkImportS imports the small workload (3 images, about 60 MiB).
func BenchmarkImportS(b *testing.B) { benchImport(b, harness.WorkloadS()) }

// BenchmarkImportWide imports 50 small images: the per-image cost.
func BenchmarkImportWide(b *testing.B) { benchImport(b, harness.WorkloadW(50)) }

// BenchmarkReimportS imports the small workload into a registry that
// already holds it: HEAD requests only, nothing uploaded.
func BenchmarkReimportS(b *testing.B) {
	ctx := context.Background()
	archive, _ := benchArchive(b, harness.WorkloadS())
	dst, err := harness.StartRegistry(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	c, err := registry.New(registry.Options{PlainHTTP: []string{dst.Host}})
	if err != nil {
		b.Fatal(err)
	}
	req := importer.Request{Archive: archive, Target: dst.Host + "/airgap"}
	if _, err := importer.Import(ctx, req, importer.WithClient(c)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		res, err := importer.Import(ctx, req, importer.WithClient(c))
		if err != nil {
			b.Fatal(err)
		}
		if res.BytesUploaded != 0 {
			b.Fatalf("re-import uploaded %d bytes", res.BytesUploaded)
		}
	}
}
