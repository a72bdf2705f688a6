package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/internal/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
)

// outDir is where the demo writes (gitignored).
const outDir = "demo-out"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func run(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := os.RemoveAll(outDir); err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	archive := filepath.Join(outDir, "bundle.tar")
	mappingFile := filepath.Join(outDir, relocate.MappingFile)

	step("starting two registries on 127.0.0.1 (distribution v3, in-process)")
	src, err := harness.StartRegistry(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := harness.StartRegistry(ctx)
	if err != nil {
		return err
	}
	defer dst.Close()
	fmt.Printf("    connected side %s, air-gapped side %s\n", src.Host, dst.Host)

	step("generating sample images and pushing the sample bundle with cnab-to-oci")
	pb, err := harness.SampleBundle(ctx, src, harness.SampleOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("    %s (index %s)\n", pb.Ref, pb.Digest)

	step("export (connected side): bundle, every image, every platform, into %s", archive)
	srcClient, err := registry.New(registry.Options{PlainHTTP: []string{src.Host}})
	if err != nil {
		return err
	}
	ex, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archive}, export.WithClient(srcClient))
	if err != nil {
		return err
	}
	fmt.Printf("    %d blobs, %s unique, archive %s (%s)\n", ex.Blobs, human(ex.BlobBytes), human(ex.ArchiveBytes), ex.ArchiveDigest)

	step("the air gap: the connected registry goes away")
	src.Close()

	step("verify (offline): every blob re-hashed, the graph closed, bundle.json matched")
	b, err := importer.Load(ctx, archive, layout.OpenOptions{})
	if err != nil {
		return err
	}
	verr := b.VerifyBlobs(ctx, nil)
	nBlobs, nManifests := len(b.Blobs), len(b.Nodes)
	b.Close()
	if verr != nil {
		return verr
	}
	fmt.Printf("    ok: %d manifests, %d blobs\n", nManifests, nBlobs)

	step("import (air-gapped side) into %s/airgap, writing %s", dst.Host, mappingFile)
	dstClient, err := registry.New(registry.Options{PlainHTTP: []string{dst.Host}})
	if err != nil {
		return err
	}
	im, err := importer.Import(ctx, importer.Request{Archive: archive, Target: dst.Host + "/airgap", MappingPath: mappingFile}, importer.WithClient(dstClient))
	if err != nil {
		return err
	}
	fmt.Printf("    %s, %d blobs uploaded (%s), %d manifests pushed\n", im.BundleReference, im.BlobsUploaded, human(im.BytesUploaded), im.ManifestsPushed)

	step("audit the relocation: every mapped reference resolves to its contentDigest, every blob present")
	mapping, err := relocate.ReadMapping(mappingFile)
	if err != nil {
		return err
	}
	bun, err := relocate.ParseBundle(pb.BundleJSON)
	if err != nil {
		return err
	}
	target, err := relocate.ParseTarget(dst.Host + "/airgap")
	if err != nil {
		return err
	}
	bundleRepo, bundleTag, _ := strings.Cut(strings.TrimPrefix(im.BundleReference, dst.Host+"/"), ":")
	audit, err := relocate.Audit(ctx, relocate.AuditRequest{Images: bun.Images, Mapping: mapping, Target: target,
		Bundle: &relocate.AuditBundle{Repository: dst.Host + "/" + bundleRepo, Tag: bundleTag, Digest: pb.Digest}},
		relocate.WithAuditClient(dstClient))
	if err != nil {
		return err
	}
	fmt.Printf("    ok: %d images and the bundle %s: %d manifests, %d blobs\n", len(audit.Images), audit.Bundle, audit.Manifests, audit.Blobs)

	step("pull the relocated bundle back with cnab-to-oci")
	pulled, err := harness.PullBundle(ctx, dst, im.BundleReference)
	if err != nil {
		return err
	}
	if pulled.Digest != pb.Digest || !bytes.Equal(pulled.BundleJSON, pb.BundleJSON) {
		return fmt.Errorf("pulled %s, pushed %s: the bundle changed on its way", pulled.Digest, pb.Digest)
	}
	fmt.Printf("    same index digest and byte-identical bundle.json\n")

	step("no registry at all? serve the archive read-only and pull from it with cnab-to-oci")
	servedDigest, err := pullServed(ctx, archive)
	if err != nil {
		return err
	}
	if servedDigest != pb.Digest.String() {
		return fmt.Errorf("served bundle %s, want %s", servedDigest, pb.Digest)
	}
	fmt.Printf("    same index digest\n")

	fmt.Println()
	fmt.Println("summary")
	fmt.Printf("  bundle       %s %s\n", ex.Bundle, ex.Version)
	fmt.Printf("  bundle.json  %s\n", ex.BundleDigest)
	fmt.Printf("  images       %d\n", len(im.Images))
	for _, img := range im.Images {
		fmt.Printf("    %-10s %-6s %s\n      -> %s\n", img.Role, img.Name, img.Reference, img.Relocated)
	}
	fmt.Printf("  bytes        %s of content (each blob once), %s uploaded\n", human(ex.BlobBytes), human(im.BytesUploaded))
	fmt.Printf("  archive      %s, %s, %s\n", archive, human(ex.ArchiveBytes), ex.ArchiveDigest)
	fmt.Printf("  mapping      %s\n", mappingFile)
	fmt.Printf("  took         %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// pullServed serves the archive on 127.0.0.1 and pulls the bundle from it
// with cnab-to-oci, returning the index digest pulled.
func pullServed(ctx context.Context, archive string) (string, error) {
	s, err := serve.Open(ctx, archive)
	if err != nil {
		return "", err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx, ln) }()
	ext, err := harness.External(ln.Addr().String())
	if err != nil {
		stop()
		return "", errors.Join(err, <-done)
	}
	defer ext.Close()
	fmt.Printf("    serving at %s/%s:%s\n", ln.Addr(), s.BundleRepository(), s.BundleTag())
	pulled, err := harness.PullBundle(ctx, ext, s.BundleRepository()+":"+s.BundleTag())
	stop()
	if serr := <-done; serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return "", err
	}
	return pulled.Digest.String(), nil
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
