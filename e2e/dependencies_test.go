package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnabio/cnab-go/bundle"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// release is a parent bundle ("shop") that depends on two bundles, "db"
// (declared with CNAB-500's io.cnab.dependencies) and "monitor" (Porter's
// dependencies v2), which both use one shared image.
type release struct {
	shop, db, monitor *harness.PushedBundle
	shared            *harness.PushedImage
}

// pushImage pushes a one-off image of two layers, one of them its own.
func pushImage(t *testing.T, src *harness.Registry, repo, name string, shared harness.LayerSpec) *harness.PushedImage {
	t.Helper()
	img, err := harness.NewImage(harness.ImageSpec{Name: name, Seed: 7, Layers: []harness.LayerSpec{shared, {Label: name, Size: 96 << 10}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := src.PushImage(context.Background(), repo, img)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func baseImage(p *harness.PushedImage) bundle.BaseImage {
	return bundle.BaseImage{ImageType: "oci", Image: p.Ref, Digest: p.Digest.String(), Size: uint64(p.Size), MediaType: p.MediaType}
}

// pushDependent pushes a bundle with one invocation image and the given
// components, declaring custom extensions.
func pushDependent(t *testing.T, src *harness.Registry, ref, name, version string, inv *harness.PushedImage, comps map[string]*harness.PushedImage, custom map[string]any) *harness.PushedBundle {
	t.Helper()
	b := &bundle.Bundle{SchemaVersion: "v1.2.0", Name: name, Version: version,
		InvocationImages: []bundle.InvocationImage{{BaseImage: baseImage(inv)}}, Images: map[string]bundle.Image{}, Custom: custom}
	for k, p := range comps {
		b.Images[k] = bundle.Image{BaseImage: baseImage(p)}
	}
	if _, ok := custom[relocate.ExtensionDependencies]; ok {
		b.RequiredExtensions = []string{relocate.ExtensionDependencies}
	}
	pb, err := harness.PushBundle(context.Background(), src, ref, b)
	if err != nil {
		t.Fatal(err)
	}
	return pb
}

func pushRelease(t *testing.T, src *harness.Registry) *release {
	t.Helper()
	base := harness.LayerSpec{Label: "release-base", Size: 128 << 10}
	r := &release{shared: pushImage(t, src, "library/shared-agent:3.1", "shared-agent", base)}
	r.db = pushDependent(t, src, "bundles/db:15.0", "db", "15.0.0",
		pushImage(t, src, "library/db-installer:15", "db-installer", base),
		map[string]*harness.PushedImage{"agent": r.shared, "postgres": pushImage(t, src, "library/postgres:15", "postgres", base)}, nil)
	r.monitor = pushDependent(t, src, "bundles/monitor:2.0", "monitor", "2.0.0",
		pushImage(t, src, "library/monitor-installer:2", "monitor-installer", base),
		// The same image under another name: one image of the archive, two names.
		map[string]*harness.PushedImage{"agent": pushImage(t, src, "library/agent:stable", "shared-agent", base)}, nil)
	r.shop = pushDependent(t, src, "bundles/shop:1.0", "shop", "1.0.0",
		pushImage(t, src, "library/shop-installer:1", "shop-installer", base),
		map[string]*harness.PushedImage{"web": pushImage(t, src, "library/shop-web:1", "shop-web", base)},
		map[string]any{
			relocate.ExtensionDependencies: map[string]any{
				"sequence": []string{"db"},
				"requires": map[string]any{"db": map[string]any{"bundle": r.db.Ref, "version": map[string]any{"ranges": []string{"15.x"}}}},
			},
			relocate.ExtensionPorterDependenciesV2: map[string]any{
				"requires": map[string]any{"monitor": map[string]any{"bundle": r.monitor.Ref, "sharing": map[string]any{"mode": "group"}}},
			},
		})
	return r
}

// tarEntries counts the entries of a tar file by name.
func tarEntries(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name]++
	}
}

// TestDependenciesRoundTrip: a bundle and the two bundles it depends on
// (one image shared between them, under two names) travel in one archive and land at the
// target beside each other; cnab-to-oci pulls each of them back with
// bundle.json and index byte-identical.
func TestDependenciesRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst := startRegistry(t)
	rel := pushRelease(t, src)
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.tar")
	c := clientFor(t, src, dst)

	res, err := export.Export(ctx, export.Request{Reference: rel.shop.Ref, Output: path}, export.WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Bundles) != 3 || res.Bundle != "shop" || !res.Bundles[0].Requested || res.Bundles[1].Requested || res.Bundles[2].Requested {
		t.Fatalf("export bundles: %+v", res.Bundles)
	}
	deps := res.Bundles[0].Dependencies
	if len(deps) != 2 || deps[0].Alias != "db" || deps[0].IndexDigest != rel.db.Digest.String() || deps[1].Alias != "monitor" || deps[1].IndexDigest != rel.monitor.Digest.String() {
		t.Fatalf("shop's dependencies: %+v", deps)
	}

	b, err := archive.Load(ctx, path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := b.Archive.Index.Annotations[layout.AnnotationFormatVersion]; v != layout.FormatVersionMulti {
		t.Fatalf("format version %q", v)
	}
	if len(b.Others) != 2 || b.Bundle.Name != "shop" || len(b.DependsOn) != 2 || b.DependsOn[0].Bundle.Bundle.Name != "db" {
		t.Fatalf("loaded %s with %d others, depends on %+v", b.Bundle.Name, len(b.Others), b.DependsOn)
	}
	for _, x := range b.All() {
		want := map[string]*harness.PushedBundle{"shop": rel.shop, "db": rel.db, "monitor": rel.monitor}[x.Bundle.Name]
		if x.Index.Digest != want.Digest || x.BundleDigest != want.BundleJSONDigest || string(x.BundleJSON) != string(want.BundleJSON) {
			t.Fatalf("bundle %s: index %s bundle.json %s, source %s %s", x.Bundle.Name, x.Index.Digest, x.BundleDigest, want.Digest, want.BundleJSONDigest)
		}
	}
	// Each bundle's repository needs its closure's blobs: one probe each.
	blobJobs := 0
	for _, x := range b.All() {
		all := &archive.ImageEntry{}
		x.Closure(all, x.Index.Digest) // the bundle index names every image
		blobJobs += len(all.Blobs)
	}
	b.Close()

	// What index.json says of the bundles is checked against them.
	for name, tc := range map[string]struct {
		edit func(ix *ocispec.Index)
		want error
	}{
		"an alias bundle.json does not declare": {func(ix *ocispec.Index) {
			ix.Manifests[0].Annotations[layout.AnnotationDependencies] = "db=" + rel.db.Digest.String() + ",nope=" + rel.monitor.Digest.String()
		}, archive.ErrBundleMismatch},
		"a dependency that is no bundle entry": {func(ix *ocispec.Index) {
			ix.Manifests[0].Annotations[layout.AnnotationDependencies] = "db=" + rel.shared.Digest.String()
		}, archive.ErrInvalidArchive},
		"several bundles in format 2": {func(ix *ocispec.Index) {
			ix.Annotations[layout.AnnotationFormatVersion] = layout.FormatVersion
		}, archive.ErrInvalidArchive},
	} {
		bad := filepath.Join(dir, "bad.tar")
		rewriteIndex(t, path, bad, tc.edit)
		if _, err := archive.Load(ctx, bad, layout.OpenOptions{}); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v", name, err)
		}
	}

	src.Close() // nothing of the source is reachable from here on

	// serve answers for every bundle: cnab-to-oci pulls each from it.
	s, err := serve.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx, ln) }()
	ext, err := harness.External(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	served := s.Served(ln.Addr().String())
	if len(served.OtherBundles) != 2 {
		t.Fatalf("served other bundles: %q", served.OtherBundles)
	}
	for _, ref := range append([]string{served.Reference}, served.OtherBundles...) {
		pulled, err := harness.PullBundle(ctx, ext, strings.TrimPrefix(ref, ln.Addr().String()+"/"))
		if err != nil {
			t.Fatal(err)
		}
		if pulled.Digest != rel.shop.Digest && pulled.Digest != rel.db.Digest && pulled.Digest != rel.monitor.Digest {
			t.Fatalf("served %s is %s, none of the three bundles", ref, pulled.Digest)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ext.Close()
	s.Close()

	mapping := filepath.Join(dir, "relocation-mapping.json")
	ir, err := importer.Import(ctx, importer.Request{Archive: path, Target: dst.Host + "/airgap", MappingPath: mapping}, importer.WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	// One HEAD per blob and repository: what a bundle pushed is not asked
	// about again for the bundles after it.
	if n := settle(dst); n.BlobProbes != int64(blobJobs) {
		t.Fatalf("%d blob HEADs for %d blob jobs", n.BlobProbes, blobJobs)
	}
	if len(ir.Bundles) != 3 || ir.Bundles[0].Bundle != "shop" || len(ir.Bundles[0].Dependencies) != 2 {
		t.Fatalf("import bundles: %+v", ir.Bundles)
	}
	for _, br := range ir.Bundles {
		want := map[string]*harness.PushedBundle{"shop": rel.shop, "db": rel.db, "monitor": rel.monitor}[br.Bundle]
		pulled, err := harness.PullBundle(ctx, dst, br.BundleReference)
		if err != nil {
			t.Fatal(err)
		}
		if pulled.Digest != want.Digest || string(pulled.BundleJSON) != string(want.BundleJSON) {
			t.Fatalf("%s at %s: index %s, source %s; bundle.json identical: %v", br.Bundle, br.BundleReference, pulled.Digest, want.Digest, string(pulled.BundleJSON) == string(want.BundleJSON))
		}
		m, err := relocate.ReadMapping(br.MappingFile)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != len(want.Images) {
			t.Fatalf("%s: mapping %s has %d entries, the bundle %d images", br.Bundle, br.MappingFile, len(m), len(want.Images))
		}
		for _, img := range want.Images {
			if got := m[img.Image]; !strings.HasSuffix(got, "@"+img.ContentDigest.String()) {
				t.Fatalf("%s: %s maps to %q, want its digest %s", br.Bundle, img.Image, got, img.ContentDigest)
			}
		}
		for _, d := range br.Dependencies {
			if !strings.HasPrefix(d.Relocated, dst.Host+"/airgap/") {
				t.Fatalf("%s's dependency %s relocated to %q", br.Bundle, d.Alias, d.Relocated)
			}
		}
	}
	for _, f := range []string{"relocation-mapping.json", "relocation-mapping.db.json", "relocation-mapping.monitor.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}

	// Every bundle audits at the target with its own mapping.
	vr, err := importer.Verify(ctx, importer.VerifyRequest{Archive: path, Target: dst.Host + "/airgap", Mapping: mapping}, importer.WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	if !vr.OK || len(vr.Bundles) != 3 {
		t.Fatalf("verify: ok %v, %d bundles", vr.OK, len(vr.Bundles))
	}
	for _, vb := range vr.Bundles {
		if vb.Relocation == nil || !vb.Relocation.OK {
			t.Fatalf("bundle %s: audit %+v", vb.Bundle, vb.Relocation)
		}
	}

	// A second import finds everything in place and uploads nothing.
	again, err := importer.Import(ctx, importer.Request{Archive: path, Target: dst.Host + "/airgap", MappingPath: mapping}, importer.WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	if again.BlobsUploaded != 0 || again.BytesUploaded != 0 {
		t.Fatalf("re-import uploaded %d blobs (%d bytes)", again.BlobsUploaded, again.BytesUploaded)
	}
}

// TestThreeBundlesStoreSharedBlobsOnce: export of three bundles named on
// the command line (the parent's dependencies are among them, so each is
// carried once) stores every blob of the image they share once, and is no
// larger than the union of what the three hold.
func TestThreeBundlesStoreSharedBlobsOnce(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	rel := pushRelease(t, src)
	dir := t.TempDir()
	bin := buildCLI(t)
	env := cliEnv(t)
	path := filepath.Join(dir, "three.tar")
	r, code := runCLI(t, bin, env, "", "--plain-http", src.Host, "--output", "json", "export", "-o", path, rel.shop.Ref, rel.db.Ref, rel.monitor.Ref)
	if code != 0 {
		t.Fatalf("export exited %d: %s", code, r.stderr.String())
	}
	var res export.Result
	if err := json.Unmarshal(r.stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Bundles) != 3 {
		t.Fatalf("%d bundles", len(res.Bundles))
	}
	for _, b := range res.Bundles {
		if !b.Requested {
			t.Fatalf("bundle %s named on the command line is reported as a dependency only", b.Bundle)
		}
	}

	// The union of what the three bundles hold, from one export of each.
	union := map[digest.Digest]int64{}
	for _, pb := range []*harness.PushedBundle{rel.shop, rel.db, rel.monitor} {
		one := filepath.Join(dir, pb.Bundle.Name+".tar")
		if r, code := runCLI(t, bin, env, "", "--plain-http", src.Host, "--quiet", "export", "--no-dependencies", "-o", one, pb.Ref); code != 0 {
			t.Fatalf("export of %s exited %d: %s", pb.Ref, code, r.stderr.String())
		}
		b, err := archive.Load(ctx, one, layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for d, s := range b.Blobs {
			union[d] = s
		}
		for d, n := range b.Nodes {
			union[d] = n.Desc.Size
		}
		b.Close()
	}
	var unionBytes int64
	for _, s := range union {
		unionBytes += s
	}
	b, err := archive.Load(ctx, path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.UniqueBytes(); got != unionBytes {
		t.Fatalf("the archive holds %d bytes of blobs, the three bundles %d together", got, unionBytes)
	}
	entries := tarEntries(t, path)
	shared := 0
	for _, x := range b.All() {
		for _, e := range x.Images {
			if e.Desc.Digest != rel.shared.Digest {
				continue
			}
			shared++
			for _, d := range append(e.Manifests, e.Blobs...) {
				if n := entries[layout.BlobName(d)]; n != 1 {
					t.Fatalf("blob %s of the shared image is stored %d times", d, n)
				}
			}
		}
	}
	if shared != 2 {
		t.Fatalf("the shared image is an image of %d bundles, want 2", shared)
	}

	// docker save's manifest.json lists the shared image once, under both
	// of its names.
	raw, ok, err := b.Archive.File(layout.DockerManifestFile)
	if err != nil || !ok {
		t.Fatalf("manifest.json: %v (present %v)", err, ok)
	}
	var dm []struct{ RepoTags []string }
	if err := json.Unmarshal(raw, &dm); err != nil {
		t.Fatal(err)
	}
	names := 0
	for _, e := range dm {
		for _, n := range e.RepoTags {
			if strings.Contains(n, "/library/shared-agent:3.1") || strings.Contains(n, "/library/agent:stable") {
				names++
				if len(e.RepoTags) != 2 {
					t.Fatalf("the shared image is listed with names %v", e.RepoTags)
				}
			}
		}
	}
	if names != 2 {
		t.Fatalf("the shared image's names in manifest.json: %d, want 2:\n%s", names, raw)
	}

	// inspect lists the three bundles.
	r, code = runCLI(t, bin, env, "", "inspect", path)
	if code != 0 || !strings.Contains(r.stdout.String(), "bundles     3 in one archive") {
		t.Fatalf("inspect exited %d:\n%s%s", code, r.stdout.String(), r.stderr.String())
	}
}

// TestDependencyErrors: a cycle and a missing dependency are refused
// naming the chain; --no-dependencies carries the bundle alone and warns.
func TestDependencyErrors(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	rel := pushRelease(t, src)
	c := clientFor(t, src)
	dir := t.TempDir()
	inv := pushImage(t, src, "library/loop-installer:1", "loop-installer", harness.LayerSpec{Label: "loop", Size: 4 << 10})
	dep := func(ref string) map[string]any {
		return map[string]any{relocate.ExtensionDependencies: map[string]any{"requires": map[string]any{"next": map[string]any{"bundle": ref}}}}
	}
	// a -> b -> a: b names a's tag, pushed after it.
	pushDependent(t, src, "bundles/b:1", "b", "1.0.0", inv, nil, dep(src.Ref("bundles/a:1")))
	pushDependent(t, src, "bundles/a:1", "a", "1.0.0", inv, nil, dep(src.Ref("bundles/b:1")))
	_, err := export.Export(ctx, export.Request{Reference: src.Ref("bundles/a:1"), Output: filepath.Join(dir, "a.tar")}, export.WithClient(c))
	if !errors.Is(err, relocate.ErrDependency) || !strings.Contains(err.Error(), "dependency cycle: a ("+src.Ref("bundles/a:1")+") -> b ("+src.Ref("bundles/b:1")+") -> next") {
		t.Fatalf("cycle: %v", err)
	}
	pushDependent(t, src, "bundles/lonely:1", "lonely", "1.0.0", inv, nil, dep(src.Ref("bundles/gone:1")))
	_, err = export.Export(ctx, export.Request{Reference: src.Ref("bundles/lonely:1"), Output: filepath.Join(dir, "l.tar")}, export.WithClient(c))
	if err == nil || !strings.Contains(err.Error(), "dependency lonely ("+src.Ref("bundles/lonely:1")+") -> next ("+src.Ref("bundles/gone:1")+")") {
		t.Fatalf("missing dependency: %v", err)
	}
	pushDependent(t, src, "bundles/ranged:1", "ranged", "1.0.0", inv, nil, dep(src.Host+"/bundles/db"))
	if _, err = export.Export(ctx, export.Request{Reference: src.Ref("bundles/ranged:1"), Output: filepath.Join(dir, "r.tar")}, export.WithClient(c)); !errors.Is(err, relocate.ErrDependency) {
		t.Fatalf("a dependency without tag or digest: %v", err)
	}
	for _, f := range []string{"a.tar", "l.tar", "r.tar"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", f, err)
		}
	}

	res, err := export.Export(ctx, export.Request{Reference: rel.shop.Ref, Output: filepath.Join(dir, "shop.tar")}, export.WithClient(c), export.WithDependencies(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Bundles) != 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "dependency db ("+rel.db.Ref+") is not carried (--no-dependencies)") {
		t.Fatalf("--no-dependencies: bundles %+v, warnings %q", res.Bundles, res.Warnings)
	}
	b, err := archive.Load(ctx, filepath.Join(dir, "shop.tar"), layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if v := b.Archive.Index.Annotations[layout.AnnotationFormatVersion]; v != layout.FormatVersion || len(b.Others) != 0 {
		t.Fatalf("one bundle: format %q, %d others", v, len(b.Others))
	}
}

// rewriteIndex copies the tar archive in to out with its index.json
// passed through edit.
func rewriteIndex(t *testing.T, in, out string, edit func(ix *ocispec.Index)) {
	t.Helper()
	rewriteTar(t, in, out, false, func(name string, data []byte) []byte {
		if name != layout.IndexFile {
			return data
		}
		var ix ocispec.Index
		if err := json.Unmarshal(data, &ix); err != nil {
			t.Fatal(err)
		}
		edit(&ix)
		raw, err := json.Marshal(ix)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	})
}

// TestDependenciesSigned: each bundle of an archive of several is verified
// with its own signing evidence. The db bundle's index is signed (cosign
// tag scheme) and so is the image db and monitor share (a referrer); shop
// is not signed. Import with the key reports db signed and monitor's shared
// image verified, shop unsigned, and pushes each signature beside its
// subject in every bundle that carries it.
func TestDependenciesSigned(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	dst := startRegistry(t)
	rel := pushRelease(t, src)
	dir := t.TempDir()
	key, pub := newKeyFile(t, dir, "cosign.pub")
	repo := func(path string) sigfixtures.Repo {
		r, err := src.Repository(path)
		if err != nil {
			t.Fatal(err)
		}
		return sigfixtures.Repo{Name: r, Options: src.RemoteOptions()}
	}
	dbIndex := ocispec.Descriptor{MediaType: rel.db.IndexMediaType, Digest: rel.db.Digest, Size: int64(len(rel.db.IndexJSON))}
	a, err := sigfixtures.CosignSignature(key, rel.db.Ref, dbIndex, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sigfixtures.Push(ctx, repo("bundles/db"), a); err != nil {
		t.Fatal(err)
	}
	shared := ocispec.Descriptor{MediaType: rel.shared.MediaType, Digest: rel.shared.Digest, Size: rel.shared.Size}
	if a, err = sigfixtures.CosignSignature(key, rel.shared.Ref, shared, false); err != nil {
		t.Fatal(err)
	}
	if _, err := sigfixtures.Push(ctx, repo("library/shared-agent"), a); err != nil {
		t.Fatal(err)
	}

	c := clientFor(t, src, dst)
	path := filepath.Join(dir, "shop.tar")
	res, err := export.Export(ctx, export.Request{Reference: rel.shop.Ref, Output: path}, export.WithClient(c))
	if err != nil {
		t.Fatal(err)
	}
	if res.Signatures == nil || res.Signatures.Artifacts != 2 {
		t.Fatalf("export carried %+v", res.Signatures)
	}
	src.Close()

	// Another key: the signatures the bundles carry do not verify with it,
	// and nothing is pushed.
	_, wrongPub := newKeyFile(t, dir, "wrong.pub")
	_, err = importer.Import(ctx, importer.Request{Archive: path, Target: dst.Host + "/airgap", MappingPath: filepath.Join(dir, "m.json")},
		importer.WithClient(c), importer.WithSigningOptions(cosignKey(t, wrongPub)))
	if !errors.Is(err, sigbundle.ErrSignature) {
		t.Fatalf("another key: %v", err)
	}
	if n := dst.Counts(); n.BlobUploadStarts != 0 || n.ManifestPuts != 0 {
		t.Fatalf("pushed despite the refused key: %+v", n)
	}

	ir, err := importer.Import(ctx, importer.Request{Archive: path, Target: dst.Host + "/airgap", MappingPath: filepath.Join(dir, "m.json")},
		importer.WithClient(c), importer.WithSigningOptions(cosignKey(t, pub)))
	if err != nil {
		t.Fatal(err)
	}
	verified := map[string][]string{}
	signed := map[string]bool{}
	for _, br := range ir.Bundles {
		if br.Signatures == nil || br.Signatures.Report == nil {
			t.Fatalf("bundle %s: no signing report", br.Bundle)
		}
		signed[br.Bundle] = br.Signatures.Report.Signed
		for _, ar := range br.Signatures.Report.Artifacts {
			if !ar.Verified {
				t.Fatalf("bundle %s: artifact %s about %s not verified: %s", br.Bundle, ar.Digest, ar.SubjectLabel, ar.Note)
			}
			verified[br.Bundle] = append(verified[br.Bundle], ar.Subject.String())
		}
	}
	if !signed["db"] || signed["shop"] || signed["monitor"] {
		t.Fatalf("signed bundles: %v", signed)
	}
	if len(verified["shop"]) != 0 || len(verified["db"]) != 2 || len(verified["monitor"]) != 1 || verified["monitor"][0] != rel.shared.Digest.String() {
		t.Fatalf("verified per bundle: %v", verified)
	}
	// The db index's signature is where cosign looks for it at the target.
	dbRepo, err := dst.Repository("airgap/bundles/db")
	if err != nil {
		t.Fatal(err)
	}
	tag := dbRepo.Tag(strings.Replace(rel.db.Digest.String(), ":", "-", 1) + ".sig")
	if _, err := remote.Head(tag, dst.RemoteOptions()...); err != nil {
		t.Fatalf("%s at the target: %v", tag, err)
	}
}

// newKeyFile makes a signing key and writes its public key to dir/name.
func newKeyFile(t *testing.T, dir, name string) (*sigfixtures.Key, string) {
	t.Helper()
	k, err := sigfixtures.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := k.WritePublic(path); err != nil {
		t.Fatal(err)
	}
	return k, path
}
