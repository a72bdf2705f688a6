package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnabio/cnab-go/bundle/loader"
	"github.com/cnabio/cnab-go/imagestore"
	"github.com/cnabio/cnab-go/imagestore/construction"
	"github.com/cnabio/cnab-go/imagestore/ocilayout"
	"github.com/cnabio/cnab-go/packager"
	relimage "github.com/cnabio/image-relocation/pkg/image"
	relggcr "github.com/cnabio/image-relocation/pkg/registry/ggcr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
)

// cnabGoThickBundle makes a CNAB-104 thick bundle of pb with cnab-go's own
// packager (the code duffle's export runs): bundle.json from a file, every
// image pulled from its reference into an OCI layout by cnab-go's image
// store, all tarred and gzipped by moby's archive package.
func cnabGoThickBundle(t *testing.T, pb *harness.PushedBundle, out string) {
	t.Helper()
	dir := t.TempDir()
	bf := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(bf, pb.BundleJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	ctor, err := construction.NewConstructor(false)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := packager.NewExporter(bf, out, dir, loader.NewLoader(), ctor)
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Export(); err != nil {
		t.Fatalf("cnab-go packager export: %v", err)
	}
}

// porterArchive makes an archive the way `porter archive` does
// (getporter/porter pkg/porter/archive.go): bundle.json and
// relocation-mapping.json (the bundle's relocation map, json.Marshal) at the
// root, each image pulled from its *relocated* reference by cnab-go's OCI
// layout image store (so index.json names images by relocated reference),
// and a gzipped tar whose names all start with "./", directories included,
// small files before the blobs.
func porterArchive(t *testing.T, pb *harness.PushedBundle, out string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bundle.json"), pb.BundleJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	rm, err := json.Marshal(pb.RelocationMap)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "relocation-mapping.json"), rm, 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := ocilayout.Create(imagestore.WithArchiveDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range pb.Images {
		d, err := store.Add(pb.RelocationMap[img.Image])
		if err != nil {
			t.Fatalf("adding %s: %v", pb.RelocationMap[img.Image], err)
		}
		if d != img.ContentDigest.String() {
			t.Fatalf("%s pulled as %s, contentDigest %s", img.Image, d, img.ContentDigest)
		}
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	add := func(rel string) {
		p := filepath.Join(dir, rel)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		h := &tar.Header{Name: "./" + rel, Mode: 0o644, Typeflag: tar.TypeReg, Size: st.Size()}
		if rel == "" {
			h.Name = "./"
		}
		if st.IsDir() {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
			if rel != "" {
				h.Name += "/"
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if !st.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			tw.Write(b)
		}
	}
	for _, rel := range []string{"", "bundle.json", "relocation-mapping.json", "artifacts", "artifacts/layout", "artifacts/layout/oci-layout", "artifacts/layout/index.json"} {
		add(rel)
	}
	err = filepath.Walk(filepath.Join(dir, "artifacts/layout/blobs"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		add(filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkImported checks an import of pb: the mapping covers every image and
// each value resolves at dst to its contentDigest with every platform and
// layer readable, and cnab-to-oci reads the bundle at ref with bundle.json
// byte for byte.
func checkImported(t *testing.T, pb *harness.PushedBundle, dst *harness.Registry, ir *importer.Result) {
	t.Helper()
	ctx := context.Background()
	if len(ir.Mapping) != len(pb.Images) {
		t.Fatalf("mapping has %d entries, the bundle %d images", len(ir.Mapping), len(pb.Images))
	}
	for _, img := range pb.Images {
		v, ok := ir.Mapping[img.Image]
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
		assertPullable(t, ref, dst)
	}
	pulled, err := harness.ReadBundle(ctx, dst, ir.BundleReference)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pulled.BundleJSON, pb.BundleJSON) {
		t.Fatal("bundle.json at the target differs from the source")
	}
	for _, img := range pb.Images {
		if got := pulled.RelocationMap[img.Image]; !strings.HasSuffix(got, "@"+img.ContentDigest.String()) {
			t.Fatalf("cnab-to-oci maps %s to %s, want digest %s", img.Image, got, img.ContentDigest)
		}
	}
}

// Thick bundles made by cnab-go's own packager and Porter-style archives
// are recognized from their content (whatever their file name) and import
// with every digest intact.
func TestImportForeignThickBundles(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	// Misleading names on purpose: detection is by content.
	thick := filepath.Join(dir, "from-cnab-go.tar")
	cnabGoThickBundle(t, pb, thick)
	porter := filepath.Join(dir, "from-porter.bin")
	porterArchive(t, pb, porter)
	src.Close() // the inside has no route to the source

	for _, tc := range []struct {
		name, path string
		format     layout.Format
		prefix     string
	}{
		{"cnab-go packager", thick, layout.FormatCNABThick, "thick"},
		{"porter archive", porter, layout.FormatPorter, "porter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := archive.Load(ctx, tc.path, layout.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if b.Format != tc.format || b.Archive.Annotated() {
				t.Fatalf("recognized as %s (annotated %v), want %s", b.Format, b.Archive.Annotated(), tc.format)
			}
			if err := b.VerifyBlobs(ctx, nil); err != nil {
				t.Fatal(err)
			}
			for _, w := range b.Warnings {
				if strings.Contains(w, "found in index.json") {
					t.Fatalf("an image was not found by its name: %s", w)
				}
			}
			for _, e := range b.Images {
				img := mustImage(t, pb, imageKey(e))
				if e.Desc.Digest != img.ContentDigest {
					t.Fatalf("%s: archive carries %s, contentDigest %s", e.Ref, e.Desc.Digest, img.ContentDigest)
				}
			}
			b.Close()

			mapping := filepath.Join(t.TempDir(), "relocation-mapping.json")
			ir, err := importer.Import(ctx, importer.Request{Archive: tc.path, Target: dst.Host + "/" + tc.prefix, MappingPath: mapping}, importer.WithClient(clientFor(t, dst)))
			if err != nil {
				t.Fatal(err)
			}
			checkImported(t, pb, dst, ir)
			if tc.format == layout.FormatPorter && !strings.HasPrefix(ir.BundleReference, dst.Host+"/porter/bundles/sample-app:") {
				t.Fatalf("a Porter archive's bundle goes to its images' repository, got %s", ir.BundleReference)
			}
			m, err := relocate.ReadMapping(mapping)
			if err != nil || len(m) != len(pb.Images) {
				t.Fatalf("mapping file: %v (%d entries)", err, len(m))
			}
		})
	}
}

func imageKey(e archive.ImageEntry) string {
	if e.Role == relocate.RoleInvocation {
		return harness.Invocation
	}
	return e.Name
}

// Our cnab-thick export is read by cnab-go's packager Importer (as duffle
// and Porter unpack thick bundles), its layout by go-containerregistry's
// layout package and image-relocation (duffle's relocate, cnab-go's image
// store), and it imports back with our importer.
func TestCNABThickExportReadByCNABGo(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	out := filepath.Join(dir, "sample-app.tgz")
	c := clientFor(t, src)
	res, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(c), export.WithFormat(layout.FormatCNABThick))
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != layout.FormatCNABThick || res.Compression != "gzip" {
		t.Fatalf("format %s compression %s", res.Format, res.Compression)
	}
	// Deterministic, like the default format.
	again := filepath.Join(dir, "again.tgz")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: again}, export.WithClient(c), export.WithFormat(layout.FormatCNABThick), export.WithJobs(1)); err != nil {
		t.Fatal(err)
	}
	if a, b := fileDigest(t, out), fileDigest(t, again); a != b {
		t.Fatalf("two cnab-thick exports differ: %s %s", a, b)
	}
	src.Close()
	code, stdout, stderr := runCLIBinary(t, "inspect", out)
	if code != 0 || !strings.Contains(stdout, "format      cnab-thick, gzip compressed\n") {
		t.Fatalf("inspect of a thick bundle (exit %d):\n%s\n%s", code, stdout, stderr)
	}

	// cnab-go unpacks it and loads (and validates) bundle.json.
	unpack := t.TempDir()
	imp := packager.NewImporter(out, unpack, loader.NewLoader())
	root, bun, err := imp.Unzip()
	if err != nil {
		t.Fatalf("cnab-go packager: %v", err)
	}
	if bun.Name != "sample-app" {
		t.Fatalf("cnab-go read bundle %q", bun.Name)
	}
	raw, err := os.ReadFile(filepath.Join(root, "bundle.json"))
	if err != nil || !bytes.Equal(raw, pb.BundleJSON) {
		t.Fatalf("unpacked bundle.json differs from the source (%v)", err)
	}

	// go-containerregistry reads the layout; every image is found by its
	// exact image string, has its contentDigest and validates completely
	// (every platform, config and layer hashed).
	lp, err := ggcrlayout.FromPath(filepath.Join(root, "artifacts", "layout"))
	if err != nil {
		t.Fatal(err)
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]v1.Descriptor{}
	for _, d := range im.Manifests {
		byName[d.Annotations["org.opencontainers.image.ref.name"]] = d
	}
	// image-relocation's layout (duffle relocate, cnab-go's image store)
	// looks images up by normalized name.
	rl, err := relggcr.NewRegistryClient().ReadLayout(filepath.Join(root, "artifacts", "layout"))
	if err != nil {
		t.Fatal(err)
	}
	var mapping map[string]string
	mraw, err := os.ReadFile(filepath.Join(root, "relocation-mapping.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mraw, &mapping); err != nil {
		t.Fatal(err)
	}
	for _, img := range pb.Images {
		d, ok := byName[img.Image]
		if !ok {
			t.Fatalf("index.json has no entry named %s", img.Image)
		}
		if d.Digest.String() != img.ContentDigest.String() {
			t.Fatalf("%s: layout has %s, contentDigest %s", img.Image, d.Digest, img.ContentDigest)
		}
		if d.MediaType.IsIndex() {
			idx, err := ii.ImageIndex(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Index(idx); err != nil {
				t.Fatalf("%s: %v", img.Image, err)
			}
		} else {
			i, err := ii.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(i); err != nil {
				t.Fatalf("%s: %v", img.Image, err)
			}
		}
		n, err := relimage.NewName(img.Image)
		if err != nil {
			t.Fatal(err)
		}
		found, err := rl.Find(n)
		if err != nil || found.String() != img.ContentDigest.String() {
			t.Fatalf("image-relocation finds %s as %v (%v)", img.Image, found, err)
		}
		// Porter's publish --archive looks each image up by the mapping's value.
		if v := mapping[img.Image]; byName[v].Digest != d.Digest {
			t.Fatalf("relocation-mapping.json sends %s to %q, which index.json does not name", img.Image, v)
		}
	}

	// Our importer reads it back (detected as our own, annotated, thick).
	b, err := archive.Load(ctx, out, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Format != layout.FormatCNABThick || !b.Archive.Annotated() || b.Index.Digest != pb.Digest {
		t.Fatalf("format %s annotated %v index %s", b.Format, b.Archive.Annotated(), b.Index.Digest)
	}
	b.Close()
	ir, err := importer.Import(ctx, importer.Request{Archive: out, Target: dst.Host + "/mirror"}, importer.WithClient(clientFor(t, dst)))
	if err != nil {
		t.Fatal(err)
	}
	if ir.IndexDigest != pb.Digest.String() {
		t.Fatalf("bundle index %s at the target, source %s", ir.IndexDigest, pb.Digest)
	}
	checkImported(t, pb, dst, ir)
}

// A thick bundle whose layout carries an image under another digest than
// bundle.json's contentDigest is refused before anything is pushed.
func TestForeignThickBundleWithWrongDigest(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	bad, err := harness.BundleJSONWithWrongDigest(pb.BundleJSON, "db")
	if err != nil {
		t.Fatal(err)
	}
	// Package the real images with the tampered bundle.json: cnab-go's
	// packager would refuse it, so swap bundle.json inside its output.
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tgz")
	cnabGoThickBundle(t, pb, good)
	tampered := filepath.Join(dir, "tampered.tgz")
	rewriteTar(t, good, tampered, true, func(name string, data []byte) []byte {
		if name == "./bundle.json" {
			return bad
		}
		return data
	})
	_, err = importer.Import(ctx, importer.Request{Archive: tampered, Target: dst.Host}, importer.WithClient(clientFor(t, dst)))
	if !errors.Is(err, archive.ErrBundleMismatch) || !strings.Contains(err.Error(), "component db") {
		t.Fatalf("want a bundle mismatch naming component db, got %v", err)
	}
	if n := dst.Counts(); n.BlobUploadStarts != 0 || n.ManifestPuts != 0 {
		t.Fatalf("pushed despite the mismatch: %+v", n)
	}
}

// rewriteTar copies a tar (gzipped when gz), passing every regular file
// through f.
func rewriteTar(t *testing.T, in, out string, gz bool, f func(name string, data []byte) []byte) {
	t.Helper()
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	var r io.Reader = src
	var w io.Writer = dst
	var zw *gzip.Writer
	if gz {
		zr, err := gzip.NewReader(src)
		if err != nil {
			t.Fatal(err)
		}
		r, zw = zr, gzip.NewWriter(dst)
		w = zw
	}
	tw := tar.NewWriter(w)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			data = f(h.Name, data)
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, _, err := v1.SHA256(f)
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// serve reads foreign archives too: cnab-to-oci pulls the bundle from a
// served cnab-go thick bundle and from a served Porter archive, with
// bundle.json byte for byte and every image at its contentDigest.
func TestServeForeignThickBundles(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	thick := filepath.Join(dir, "thick.tgz")
	cnabGoThickBundle(t, pb, thick)
	porter := filepath.Join(dir, "porter.tgz")
	porterArchive(t, pb, porter)
	src.Close()
	for _, path := range []string{thick, porter} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := serve.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Serve(sctx, ln) }()
			defer func() { stop(); <-done }()
			ext, err := harness.External(ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer ext.Close()
			pulled, err := harness.PullBundle(ctx, ext, s.BundleRepository()+":"+s.BundleTag())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pulled.BundleJSON, pb.BundleJSON) {
				t.Fatal("served bundle.json differs from the source")
			}
			for _, img := range pb.Images {
				if got := pulled.RelocationMap[img.Image]; !strings.HasSuffix(got, "@"+img.ContentDigest.String()) {
					t.Fatalf("cnab-to-oci maps %s to %s, want digest %s", img.Image, got, img.ContentDigest)
				}
			}
		})
	}
}
