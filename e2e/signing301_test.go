package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// TestSigningInToto301AndImages carries the trust data a CNAB 301 / Docker
// Content Trust publisher produces: the bundle tag signed in
// targets/releases with its in-toto root layout and layout key signed by
// the targets role and its links in targets/releases, all as separate TUF
// targets (their bytes come from --in-toto-dir), and every image tag signed
// in its own repository's trust data (--notary-images). The source is
// stopped; verify and import check everything offline; tampering with any
// carried in-toto file or moving an image's trust data to another image is
// refused.
func TestSigningInToto301AndImages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	notary, err := sigfixtures.StartNotaryServer(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(notary.Close)

	// The bundle: 301-form in-toto metadata.
	gun := src.Host + "/" + harness.DefaultSampleRepository
	pub, err := sigfixtures.NewPublisher(notary.URL, gun, filepath.Join(dir, "trust"), notary.Transport, true)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sigfixtures.NewSupplyChain(pb.BundleJSON, sigfixtures.InTotoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	its, custom, err := sigfixtures.Layout301(gun, pb.BundleJSON, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishAll(append(slices.Clone(its), sigfixtures.Target{Name: harness.DefaultSampleTag, Content: pb.BundleJSON, Custom: custom})...); err != nil {
		t.Fatal(err)
	}
	rootID, err := pub.RootKeyID()
	if err != nil {
		t.Fatal(err)
	}
	pins := []string{"--notary-pin", gun + "=" + rootID}
	verifyOpts := []sigbundle.Option{sigbundle.WithNotaryPin(gun, rootID)}
	// --in-toto-dir: the files under names of the operator's choosing (they
	// are found by their signed sha256), beside an unrelated file.
	itDir := filepath.Join(dir, "in-toto")
	var layoutName, linkName string
	for i, x := range its {
		p := filepath.Join(itDir, "f"+string(rune('a'+i)), filepath.Base(x.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, x.Content, 0o644); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(x.Name, ".layout"):
			layoutName = x.Name
		case strings.HasSuffix(x.Name, ".link"):
			linkName = x.Name
		}
	}
	if err := os.WriteFile(filepath.Join(itDir, "notes.txt"), []byte("unrelated"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Every image tag signed in its own repository (web with a
	// targets/releases delegation, the others in targets), the worker last.
	type signedImage struct {
		img    harness.BundleImage
		gun    string
		tag    string
		raw    []byte
		pub    *sigfixtures.Publisher
		rootID string
	}
	var imgs []*signedImage
	for _, im := range pb.Images {
		ref, err := name.ParseReference(im.Image, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		tag, ok := ref.(name.Tag)
		if !ok {
			t.Fatalf("sample image %s has no tag", im.Image)
		}
		got, err := remote.Get(ref, src.RemoteOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		si := &signedImage{img: im, gun: ref.Context().Name(), tag: tag.TagStr(), raw: got.Manifest}
		if si.pub, err = sigfixtures.NewPublisher(notary.URL, si.gun, filepath.Join(dir, "trust-"+im.Name), notary.Transport, im.Name == "web"); err != nil {
			t.Fatal(err)
		}
		if im.Name != "worker" {
			if err := si.pub.Publish(tag.TagStr(), si.raw, nil); err != nil {
				t.Fatal(err)
			}
		}
		if si.rootID, err = si.pub.RootKeyID(); err != nil {
			t.Fatal(err)
		}
		pins = append(pins, "--notary-pin", si.gun+"="+si.rootID)
		verifyOpts = append(verifyOpts, sigbundle.WithNotaryPin(si.gun, si.rootID))
		imgs = append(imgs, si)
	}
	if len(imgs) != 4 {
		t.Fatalf("sample bundle has %d images, want 4", len(imgs))
	}
	exportArgs := func(out string, extra ...string) []string {
		return append([]string{"--plain-http", src.Host, "--ca-file", notary.CAFile, "--output", "json", "export", "-o", out, "--notary-server", notary.URL}, append(extra, pb.Ref)...)
	}

	// The worker's tag has no trust data yet: --notary-images fails naming
	// it, and leaves no archive.
	failed := filepath.Join(dir, "failed.tar")
	code, stdout, stderr := sigCLI(t, exportArgs(failed, "--notary-images", "--in-toto-dir", itDir)...)
	if code == 0 || !strings.Contains(stderr, "component worker") || !strings.Contains(stderr, imgs[len(imgs)-1].gun) {
		t.Fatalf("export with an unsigned image tag: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(failed); err == nil {
		t.Fatal("a failed export left an archive")
	}
	worker := imgs[len(imgs)-1]
	if err := worker.pub.Publish(worker.tag, worker.raw, nil); err != nil {
		t.Fatal(err)
	}

	// A directory without the link: the export names the missing target.
	partial := filepath.Join(dir, "partial")
	if err := os.MkdirAll(partial, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, x := range its {
		if !strings.HasSuffix(x.Name, ".link") {
			if err := os.WriteFile(filepath.Join(partial, filepath.Base(x.Name)), x.Content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, stdout, stderr = sigCLI(t, exportArgs(filepath.Join(dir, "partial.tar"), "--in-toto-dir", partial)...)
	if code == 0 || !strings.Contains(stderr, linkName) || !strings.Contains(stderr, "not in --in-toto-dir") {
		t.Fatalf("export with a link missing from --in-toto-dir: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// Without --in-toto-dir the references are reported, not carried.
	c := clientFor(t, src)
	bare := filepath.Join(dir, "bare.tar")
	res, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: bare}, export.WithClient(c), export.WithNotaryServer(notary.URL),
		export.WithSigningOptions(sigbundle.WithNotaryTransport(notary.Transport)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "--in-toto-dir") }) ||
		res.Signatures.Notary.InToto == nil || res.Signatures.Notary.InToto.Verified || len(res.Signatures.Notary.InToto.References) != 2 {
		t.Fatalf("export of 301 references without --in-toto-dir: %v %+v", res.Warnings, res.Signatures.Notary.InToto)
	}

	// The full export.
	archivePath := filepath.Join(dir, "signed.tar")
	code, stdout, stderr = sigCLI(t, exportArgs(archivePath, "--notary-images", "--in-toto-dir", itDir)...)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var er export.Result
	if err := json.Unmarshal([]byte(stdout), &er); err != nil {
		t.Fatalf("export JSON: %v\n%s", err, stdout)
	}
	n := er.Signatures.Notary
	if n == nil || n.GUN != gun || n.TargetRole != "targets/releases" || n.InToto == nil || n.InToto.Form != sigbundle.InTotoForm301 ||
		!n.InToto.Verified || len(n.InToto.Files) != 3 || n.InToto.KeyID != sc.OwnerKeyID {
		t.Fatalf("bundle trust data at export: %+v in-toto %+v", n, n.InToto)
	}
	if len(er.Signatures.NotaryImages) != len(imgs) || er.Signatures.ByRole[layout.RoleTrust] != 1+len(imgs) {
		t.Fatalf("image trust data at export: %d infos, %v", len(er.Signatures.NotaryImages), er.Signatures.ByRole)
	}
	for _, si := range imgs {
		i := slices.IndexFunc(er.Signatures.NotaryImages, func(x *sigbundle.NotaryInfo) bool { return x.GUN == si.gun })
		if i < 0 {
			t.Fatalf("no trust data for %s", si.gun)
		}
		x := er.Signatures.NotaryImages[i]
		if x.Object != sigbundle.TargetObjectManifest || x.Subject != si.img.ContentDigest || x.SHA256 != si.img.ContentDigest.Encoded() ||
			x.Length != int64(len(si.raw)) || !slices.Equal(x.RootKeyIDs, []string{si.rootID}) {
			t.Fatalf("trust data of %s: %+v", si.img.Name, x)
		}
	}
	for _, w := range er.Warnings {
		t.Errorf("export warning: %s", w)
	}

	// The import side has no route to the source.
	src.Close()
	notary.Close()

	code, stdout, stderr = sigCLI(t, "inspect", archivePath)
	if code != 0 || strings.Count(stdout, "trust ") != 1+len(imgs) || !strings.Contains(stdout, "(notary "+gun+":"+harness.DefaultSampleTag+")") ||
		!strings.Contains(stdout, "(notary "+imgs[0].gun+":"+imgs[0].tag+")") {
		t.Fatalf("inspect (exit %d) does not list the trust data per subject:\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = sigCLI(t, append([]string{"verify", archivePath}, pins...)...)
	if code != 0 || !strings.Contains(stdout, "cnab-301 form: steps build, 3 carried files checked against their signed hashes, verified true") ||
		strings.Count(stdout, "notary      GUN ") != 1+len(imgs) {
		t.Fatalf("verify (exit %d):\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = sigCLI(t, "verify", archivePath, "--notary-pin", gun+"="+rootID)
	if code != 3 || !strings.Contains(stderr, "trust anchor") {
		t.Fatalf("verify with the bundle's pin only: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// Import (preserve naming: images keep their repositories and tags);
	// each image's trust data is a referrer of its manifest at the target.
	dst := startRegistry(t)
	mapping := filepath.Join(dir, "mapping.json")
	code, stdout, stderr = sigCLI(t, append([]string{"--plain-http", dst.Host, "import", archivePath, "-t", dst.Host + "/airgap", "--naming", "preserve", "-m", mapping}, pins...)...)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range imgs {
		to, ok := m[si.img.Image]
		if !ok {
			t.Fatalf("mapping has no %s", si.img.Image)
		}
		ref, err := name.ParseReference(to, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Referrers(ref.Context().Digest(si.img.ContentDigest.String()), dst.RemoteOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(im.Manifests, func(d v1.Descriptor) bool { return d.ArtifactType == sigbundle.ArtifactTypeNotary }) {
			t.Fatalf("%s at the target has no trust-data referrer: %+v", to, im.Manifests)
		}
	}
	bundleRef := dst.Host + "/airgap/" + harness.DefaultSampleRepository + ":" + harness.DefaultSampleTag
	code, stdout, stderr = sigCLI(t, append([]string{"--plain-http", dst.Host, "verify", "--reference", bundleRef}, pins...)...)
	if code != 0 || strings.Count(stdout, "notary      GUN ") != 1+len(imgs) || !strings.Contains(stdout, "3 carried files checked") {
		t.Fatalf("verify --reference (exit %d):\n%s\n%s", code, stdout, stderr)
	}

	// Re-signing inside: the bundle and every image under their relocated
	// names, with the destination's keys.
	inside, err := sigfixtures.StartNotaryServer(ctx, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	for _, r := range []string{"ROOT", "TARGETS", "SNAPSHOT"} {
		t.Setenv("NOTARY_"+r+"_PASSPHRASE", "inside-"+r)
	}
	dst2 := startRegistry(t)
	code, stdout, stderr = sigCLI(t, append([]string{"--plain-http", dst2.Host, "import", archivePath, "-t", dst2.Host + "/airgap", "--naming", "preserve",
		"-m", filepath.Join(dir, "m2.json"), "--notary-resign", "--notary-server", inside.URL, "--notary-trust-dir", filepath.Join(dir, "inside-keys")}, pins...)...)
	if code != 0 || strings.Count(stdout, "re-signed   GUN ") != 1+len(imgs) {
		t.Fatalf("import --notary-resign: exit %d\n%s\n%s", code, stdout, stderr)
	}
	web := imgs[slices.IndexFunc(imgs, func(si *signedImage) bool { return si.img.Name == "web" })]
	webGUN := dst2.Host + "/airgap/" + strings.SplitN(web.gun, "/", 2)[1]
	ts, err := sigfixtures.Targets(inside.URL, webGUN, inside.Transport)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Length != int64(len(web.raw)) || digest.NewDigestFromBytes(digest.SHA256, ts[0].Hashes["sha256"]) != web.img.ContentDigest {
		t.Fatalf("re-signed web target under %s: %+v", webGUN, ts)
	}

	// Tampering, each refused offline.
	neg := startRegistry(t)
	cases := []struct {
		name string
		edit func(m *ocispec.Manifest, files map[string][]byte)
		want error
		msg  string
	}{
		{"carried layout changed", func(m *ocispec.Manifest, f map[string][]byte) {
			if b, ok := f["target:"+layoutName]; ok {
				b[bytes.IndexByte(b, '{')+1] = ' '
			}
		}, sigbundle.ErrInToto, "does not match the hashes the trust data signs"},
		{"carried link dropped", func(m *ocispec.Manifest, f map[string][]byte) {
			m.Layers = slices.DeleteFunc(m.Layers, func(l ocispec.Descriptor) bool {
				return l.Annotations[sigbundle.AnnotationNotaryTargetName] == linkName
			})
		}, sigbundle.ErrInToto, "is referenced but not carried"},
		{"unreferenced file added", func(m *ocispec.Manifest, f map[string][]byte) {
			if _, ok := f["target:"+layoutName]; ok {
				f["target:extra"] = []byte("extra")
				m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: sigbundle.MediaTypeNotaryTargetFile,
					Annotations: map[string]string{sigbundle.AnnotationNotaryTargetName: "extra"}})
			}
		}, sigbundle.ErrTrustData, "does not reference"},
		{"image trust data moved to another image", func(m *ocispec.Manifest, f map[string][]byte) {
			if m.Subject != nil && m.Subject.Digest == imgs[1].img.ContentDigest {
				m.Subject = &ocispec.Descriptor{MediaType: imgs[2].img.MediaType, Digest: imgs[2].img.ContentDigest, Size: int64(len(imgs[2].raw))}
			}
		}, sigbundle.ErrTargetMismatch, "signs sha256 " + imgs[1].img.ContentDigest.Encoded()},
	}
	for _, tc := range cases {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			a := editTrust(archivePath, tc.edit)(t)
			b, err := archive.Load(ctx, a, layout.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, err = b.VerifySignatures(ctx, verifyOpts...)
			if !errors.Is(err, tc.want) || err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("verify: %v\nwant %v and %q", err, tc.want, tc.msg)
			}
			code, _, stderr := sigCLI(t, append([]string{"--plain-http", neg.Host, "import", a, "-t", neg.Host + "/airgap", "-m", filepath.Join(t.TempDir(), "m.json")}, pins...)...)
			if code != 3 || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("CLI import: exit %d\n%s", code, stderr)
			}
			if repos, err := neg.Repositories(ctx); err != nil || len(repos) != 0 {
				t.Fatalf("something was pushed: %v %v", repos, err)
			}
		})
	}
}
