package export_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// benchExport exports workload w from a real registry on 127.0.0.1 once per
// iteration and reports throughput and the cost per image.
func benchExport(b *testing.B, w harness.Workload) {
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
	plan, err := export.Export(ctx, export.Request{Reference: pb.Ref}, export.WithClient(c), export.WithDryRun(true))
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "bundle.tar")
	b.SetBytes(plan.BlobBytes)
	b.ResetTimer()
	for range b.N {
		if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(c)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(out)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(len(w.Images)), "µs/image")
}

// BenchmarkExportS exports the small workload (3 images, about 60 MiB).
func BenchmarkExportS(b *testing.B) { benchExport(b, harness.WorkloadS()) }

// BenchmarkExportWide exports 50 small images: the per-image cost.
func BenchmarkExportWide(b *testing.B) { benchExport(b, harness.WorkloadW(50)) }
