package main

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
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
	archivePath := filepath.Join(outDir, "bundle.tar")
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

	keyFile := filepath.Join(outDir, "cosign.pub")
	step("signing at the source: a cosign signature of the bundle index and an SBOM of web (OCI referrer), key %s", keyFile)
	if err := signSource(ctx, src, pb, keyFile); err != nil {
		return err
	}

	step("export (connected side): bundle, every image, every platform, into %s", archivePath)
	srcClient, err := registry.New(registry.Options{PlainHTTP: []string{src.Host}})
	if err != nil {
		return err
	}
	ex, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(srcClient))
	if err != nil {
		return err
	}
	fmt.Printf("    %d manifests, %d blobs, %s unique, archive %s (%s)\n", ex.Manifests, ex.Blobs, human(ex.BlobBytes), human(ex.ArchiveBytes), ex.ArchiveDigest)
	if ex.Signatures == nil || ex.Signatures.Artifacts != 2 {
		return fmt.Errorf("the export carries %+v signing artifacts, want the signature and the SBOM", ex.Signatures)
	}
	fmt.Printf("    and %d signing artifacts: %s\n", ex.Signatures.Artifacts, countsByRole(ex.Signatures.ByRole))

	step("the air gap: the connected registry goes away")
	src.Close()

	step("verify (offline): every blob re-hashed, the graph closed, bundle.json matched")
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		return err
	}
	verr := b.VerifyBlobs(ctx, nil)
	nBlobs, nManifests := len(b.Blobs), len(b.Nodes)
	var rep *sigbundle.Report
	if verr == nil {
		var key crypto.PublicKey
		if key, verr = sigbundle.LoadPublicKey(keyFile); verr == nil {
			rep, verr = b.VerifySignatures(ctx, sigbundle.WithCosignKey("cosign.pub", key), sigbundle.WithRequireSignatures(true))
		}
	}
	b.Close()
	if verr != nil {
		return verr
	}
	fmt.Printf("    ok: %d manifests, %d blobs; %d signing artifacts bound to their subjects, bundle signed: %v (verified with %s)\n",
		nManifests, nBlobs, len(rep.Artifacts), rep.Signed, keyFile)

	step("import (air-gapped side) into %s/airgap, writing %s", dst.Host, mappingFile)
	dstClient, err := registry.New(registry.Options{PlainHTTP: []string{dst.Host}})
	if err != nil {
		return err
	}
	pub, err := sigbundle.LoadPublicKey(keyFile)
	if err != nil {
		return err
	}
	im, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap", MappingPath: mappingFile}, importer.WithClient(dstClient),
		importer.WithSigningOptions(sigbundle.WithCosignKey("cosign.pub", pub), sigbundle.WithRequireSignatures(true)))
	if err != nil {
		return err
	}
	fmt.Printf("    %s, %d blobs uploaded (%s), %d manifests pushed\n", im.BundleReference, im.BlobsUploaded, human(im.BytesUploaded), im.ManifestsPushed)
	fmt.Printf("    signing artifacts after their subjects: %d referrer pushed by digest, %d cosign tag recreated\n", im.Signatures.Pushed, im.Signatures.Tags)

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
	fmt.Printf("    ok: %d images and the bundle %s: %d manifests, %d blobs (the signing artifacts are checked by verify)\n", len(audit.Images), audit.Bundle, audit.Manifests, audit.Blobs)

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
	servedDigest, err := pullServed(ctx, archivePath)
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
	fmt.Printf("  signatures   %d carried and re-attached at the target; the bundle signature verified offline with %s\n", ex.Signatures.Artifacts, keyFile)
	fmt.Printf("  bytes        %s of content (each blob once), %s uploaded\n", human(ex.BlobBytes), human(im.BytesUploaded))
	fmt.Printf("  archive      %s, %s, %s\n", archivePath, human(ex.ArchiveBytes), ex.ArchiveDigest)
	fmt.Printf("  mapping      %s\n", mappingFile)
	fmt.Printf("  took         %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// signSource signs the bundle index with a fresh cosign key (tag scheme,
// as `cosign sign` does) and attaches an SBOM to the web image as an OCI
// 1.1 referrer; the public key is written to keyFile.
func signSource(ctx context.Context, src *harness.Registry, pb *harness.PushedBundle, keyFile string) error {
	key, err := sigfixtures.NewKey()
	if err != nil {
		return err
	}
	if err := key.WritePublic(keyFile); err != nil {
		return err
	}
	repo := func(path string) (sigfixtures.Repo, error) {
		r, err := src.Repository(path)
		return sigfixtures.Repo{Name: r, Options: src.RemoteOptions()}, err
	}
	bundleRepo, err := repo(harness.DefaultSampleRepository)
	if err != nil {
		return err
	}
	idx := ocispec.Descriptor{MediaType: pb.IndexMediaType, Digest: pb.Digest, Size: int64(len(pb.IndexJSON))}
	sig, err := sigfixtures.CosignSignature(key, pb.Ref, idx, true)
	if err != nil {
		return err
	}
	if _, err := sigfixtures.Push(ctx, bundleRepo, sig); err != nil {
		return err
	}
	web, ok := pb.Image("web")
	if !ok {
		return errors.New("the sample bundle has no web image")
	}
	webRepo, err := repo("library/web")
	if err != nil {
		return err
	}
	got, err := remote.Get(webRepo.Name.Digest(web.ContentDigest.String()), webRepo.Options...)
	if err != nil {
		return err
	}
	wd := ocispec.Descriptor{MediaType: string(got.MediaType), Digest: web.ContentDigest, Size: got.Size}
	_, err = sigfixtures.Push(ctx, webRepo, sigfixtures.SBOM(wd, "web"))
	return err
}

// pullServed serves the archive on 127.0.0.1 and pulls the bundle from it
// with cnab-to-oci, returning the index digest pulled.
func pullServed(ctx context.Context, archivePath string) (string, error) {
	s, err := serve.Open(ctx, archivePath)
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

// countsByRole writes {"sbom": 1, "signature": 2} as "2 signature, 1 sbom"
// in a stable order.
func countsByRole(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}
