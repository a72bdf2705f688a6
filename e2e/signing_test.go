package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// sigArtifact is a signing artifact the test pushed at the source.
type sigArtifact struct {
	desc    ocispec.Descriptor
	subject digest.Digest
	role    string
	tag     string // cosign tag, or "" for a referrer
}

// signedSource is the connected side: a registry (no Referrers API) with
// the sample bundle and signing evidence on every kind of subject, and a
// Notary server with the bundle tag signed in targets/releases, with
// Signy-style in-toto data.
type signedSource struct {
	src       *harness.Registry
	notary    *sigfixtures.NotaryServer
	pb        *harness.PushedBundle
	pub       *sigfixtures.Publisher
	gun       string
	rootID    string
	key       *sigfixtures.Key
	keyFile   string
	wrongFile string
	arts      []sigArtifact
	dir       string
	// notationCert is the notation signer's certificate (PEM), the trust
	// store for --notation-cert.
	notationCert string
}

func newSignedSource(t *testing.T) *signedSource {
	t.Helper()
	ctx := context.Background()
	s := &signedSource{dir: t.TempDir()}
	s.src = startRegistry(t)
	s.pb = sample(t, s.src, harness.SampleOptions{})
	var err error
	if s.notary, err = sigfixtures.StartNotaryServer(ctx, s.dir, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.notary.Close)
	if s.key, err = sigfixtures.NewKey(); err != nil {
		t.Fatal(err)
	}
	wrong, err := sigfixtures.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s.keyFile, s.wrongFile = filepath.Join(s.dir, "cosign.pub"), filepath.Join(s.dir, "wrong.pub")
	if err := s.key.WritePublic(s.keyFile); err != nil {
		t.Fatal(err)
	}
	if err := wrong.WritePublic(s.wrongFile); err != nil {
		t.Fatal(err)
	}

	repo := func(path string) sigfixtures.Repo {
		r, err := s.src.Repository(path)
		if err != nil {
			t.Fatal(err)
		}
		return sigfixtures.Repo{Name: r, Options: s.src.RemoteOptions()}
	}
	push := func(r sigfixtures.Repo, subject ocispec.Descriptor, role string, a sigfixtures.Artifact, err error) ocispec.Descriptor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		d, err := sigfixtures.Push(ctx, r, a)
		if err != nil {
			t.Fatal(err)
		}
		s.arts = append(s.arts, sigArtifact{desc: d, subject: subject.Digest, role: role, tag: a.Tag})
		return d
	}
	img := func(n string) harness.BundleImage {
		im, ok := s.pb.Image(n)
		if !ok {
			t.Fatalf("sample bundle has no image %s", n)
		}
		return im
	}
	descOf := func(r sigfixtures.Repo, d digest.Digest) ocispec.Descriptor {
		got, err := remote.Get(r.Name.Digest(d.String()), r.Options...)
		if err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: string(got.MediaType), Digest: d, Size: got.Size}
	}
	bundleRepo := repo(harness.DefaultSampleRepository)
	bundleIdx := ocispec.Descriptor{MediaType: s.pb.IndexMediaType, Digest: s.pb.Digest, Size: int64(len(s.pb.IndexJSON))}

	// cosign tag scheme: the bundle index and the web index are signed, the
	// worker image carries an attestation.
	a, err := sigfixtures.CosignSignature(s.key, s.pb.Ref, bundleIdx, true)
	push(bundleRepo, bundleIdx, layout.RoleSignature, a, err)
	webRepo := repo("library/web")
	web := descOf(webRepo, img("web").ContentDigest)
	a, err = sigfixtures.CosignSignature(s.key, img("web").Image, web, true)
	push(webRepo, web, layout.RoleSignature, a, err)
	workerRepo := repo("library/worker")
	worker := descOf(workerRepo, img("worker").ContentDigest)
	a, err = sigfixtures.CosignAttestation(s.key, img("worker").Image, worker, "https://slsa.dev/provenance/v1", map[string]any{"builder": map[string]string{"id": "e2e"}})
	push(workerRepo, worker, layout.RoleAttestation, a, err)
	// OCI 1.1 referrers (fallback tags here): a cosign signature of the
	// invocation image in the bundle repository, a notation signature of
	// db, an SBOM of web's linux/amd64 image and a signature on the SBOM.
	inv := descOf(bundleRepo, img(harness.Invocation).ContentDigest)
	a, err = sigfixtures.CosignSignature(s.key, img(harness.Invocation).Image, inv, false)
	push(bundleRepo, inv, layout.RoleSignature, a, err)
	dbRepo := repo("library/db")
	db := descOf(dbRepo, img("db").ContentDigest)
	cert, err := sigfixtures.NotationCert(s.key)
	if err != nil {
		t.Fatal(err)
	}
	s.notationCert = filepath.Join(s.dir, "notation.crt")
	if err := os.WriteFile(s.notationCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err = sigfixtures.NotationSignatureWithCert(s.key, cert, db)
	push(dbRepo, db, layout.RoleSignature, a, err)
	got, err := remote.Get(webRepo.Name.Digest(web.Digest.String()), webRepo.Options...)
	if err != nil {
		t.Fatal(err)
	}
	var webIdx ocispec.Index
	if err := json.Unmarshal(got.Manifest, &webIdx); err != nil {
		t.Fatal(err)
	}
	var amd64 ocispec.Descriptor
	for _, m := range webIdx.Manifests {
		if m.Platform != nil && m.Platform.Architecture == "amd64" {
			amd64 = ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}
		}
	}
	sbom := push(webRepo, amd64, layout.RoleSBOM, sigfixtures.SBOM(amd64, "web"), nil)
	a, err = sigfixtures.CosignSignature(s.key, img("web").Image, sbom, false)
	push(webRepo, sbom, layout.RoleSignature, a, err)

	// Notary v1: GUN = registry host + bundle repository, target = tag.
	s.gun = s.src.Host + "/" + harness.DefaultSampleRepository
	if s.pub, err = sigfixtures.NewPublisher(s.notary.URL, s.gun, filepath.Join(s.dir, "trust"), s.notary.Transport, true); err != nil {
		t.Fatal(err)
	}
	custom, err := sigfixtures.SignyCustom(s.pb.BundleJSON, sigfixtures.InTotoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.pub.Publish(harness.DefaultSampleTag, s.pb.BundleJSON, custom); err != nil {
		t.Fatal(err)
	}
	if s.rootID, err = s.pub.RootKeyID(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSigning carries a signed bundle across the gap: export collects the
// referrers, cosign tags and Notary trust data; the source registry and
// Notary server are stopped; import verifies everything offline and
// re-publishes it into a registry without the Referrers API (fallback tags)
// and one with it; verify checks the archive and the imported bundle; a
// second export reads the referrers back through the Referrers API; every
// tampering is refused before anything is pushed.
func TestSigning(t *testing.T) {
	ctx := context.Background()
	s := newSignedSource(t)
	dir := s.dir
	archivePath := filepath.Join(dir, "signed.tar")
	pin := s.gun + "=" + s.rootID

	// Export through the CLI: it prints the root key ID to pin.
	code, stdout, stderr := sigCLI(t, "--plain-http", s.src.Host, "--ca-file", s.notary.CAFile, "--output", "json", "export", "-o", archivePath, "--notary-server", s.notary.URL, s.pb.Ref)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var er export.Result
	if err := json.Unmarshal([]byte(stdout), &er); err != nil {
		t.Fatalf("export JSON: %v\n%s", err, stdout)
	}
	if er.Signatures == nil || er.Signatures.Notary == nil {
		t.Fatalf("export carries no Notary data: %s", stdout)
	}
	n := er.Signatures.Notary
	if !slices.Equal(n.RootKeyIDs, []string{s.rootID}) || n.GUN != s.gun || n.TargetRole != "targets/releases" ||
		n.SHA256 != s.pb.BundleJSONDigest.Encoded() || n.Length != int64(len(s.pb.BundleJSON)) {
		t.Fatalf("export Notary summary %+v; want root %s GUN %s targets/releases sha256 %s", n, s.rootID, s.gun, s.pb.BundleJSONDigest)
	}
	if n.InToto == nil || !n.InToto.Verified || n.InToto.Form != sigbundle.InTotoFormSigny {
		t.Fatalf("in-toto at export: %+v", n.InToto)
	}
	wantRoles := map[string]int{layout.RoleSignature: 5, layout.RoleAttestation: 1, layout.RoleSBOM: 1, layout.RoleTrust: 1}
	if !equalCounts(er.Signatures.ByRole, wantRoles) || er.Signatures.Artifacts != len(s.arts)+1 {
		t.Fatalf("export carries %d artifacts %v, want %d %v", er.Signatures.Artifacts, er.Signatures.ByRole, len(s.arts)+1, wantRoles)
	}
	checkCarried(t, archivePath, s)
	code, stdout, _ = sigCLI(t, "--plain-http", s.src.Host, "--ca-file", s.notary.CAFile, "export", "-o", filepath.Join(dir, "text.tar"), "--notary-server", s.notary.URL, s.pb.Ref)
	if code != 0 || !strings.Contains(stdout, "--notary-pin "+pin) {
		t.Fatalf("text export (exit %d) does not print the pin:\n%s", code, stdout)
	}

	// The same target re-signed with an in-toto layout that has an
	// inspection; and an export without any signing evidence.
	custom, err := sigfixtures.SignyCustom(s.pb.BundleJSON, sigfixtures.InTotoOptions{Inspection: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.pub.Publish(harness.DefaultSampleTag, s.pb.BundleJSON, custom); err != nil {
		t.Fatal(err)
	}
	c := clientFor(t, s.src)
	inspectArchive := filepath.Join(dir, "inspect.tar")
	res, err := export.Export(ctx, export.Request{Reference: s.pb.Ref, Output: inspectArchive}, export.WithClient(c), export.WithNotaryServer(s.notary.URL),
		export.WithSigningOptions(sigbundle.WithNotaryTransport(s.notary.Transport)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "inspections") }) {
		t.Fatalf("export of a layout with inspections does not warn: %v", res.Warnings)
	}
	unsigned := filepath.Join(dir, "unsigned.tar")
	if res, err = export.Export(ctx, export.Request{Reference: s.pb.Ref, Output: unsigned}, export.WithClient(c), export.WithSignatures(false)); err != nil {
		t.Fatal(err)
	}
	if res.Signatures != nil {
		t.Fatalf("export without signatures carries %+v", res.Signatures)
	}

	// A second bundle repository whose Notary root certificate a CA issued
	// (for --notary-ca), signed in the targets role.
	ca, err := sigfixtures.NewCA(dir, "notary-ca")
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := sigfixtures.NewCA(dir, "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	pbCA := sample(t, s.src, harness.SampleOptions{Repository: "bundles/sample-ca"})
	caGUN := s.src.Host + "/bundles/sample-ca"
	caPub, err := sigfixtures.NewPublisherWithCA(s.notary.URL, caGUN, filepath.Join(dir, "trust-ca"), s.notary.Transport, ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := caPub.Publish(harness.DefaultSampleTag, pbCA.BundleJSON, nil); err != nil {
		t.Fatal(err)
	}
	caArchive := filepath.Join(dir, "ca.tar")
	if res, err = export.Export(ctx, export.Request{Reference: pbCA.Ref, Output: caArchive}, export.WithClient(c), export.WithNotaryServer(s.notary.URL),
		export.WithSigningOptions(sigbundle.WithNotaryTransport(s.notary.Transport))); err != nil {
		t.Fatal(err)
	}
	if res.Signatures.Notary.TargetRole != "targets" {
		t.Fatalf("CA-rooted trust data: %+v", res.Signatures.Notary)
	}

	// The import side has no route to the source.
	s.src.Close()
	s.notary.Close()

	// notation: verified against the signer's certificate as trust store,
	// and refused against a CA that did not issue it.
	code, stdout, stderr = sigCLI(t, "--output", "json", "verify", archivePath, "--notary-pin", pin, "--notation-cert", s.notationCert)
	var vr struct{ Signatures sigbundle.Report }
	if code != 0 || json.Unmarshal([]byte(stdout), &vr) != nil ||
		!slices.ContainsFunc(vr.Signatures.Artifacts, func(a sigbundle.ArtifactReport) bool {
			return a.Format == "notation" && a.Verified && slices.Equal(a.Keys, []string{"notation.crt"})
		}) {
		t.Fatalf("verify --notation-cert (exit %d):\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = sigCLI(t, "verify", archivePath, "--notary-pin", pin, "--notation-cert", otherCA.File)
	if code != 3 || !strings.Contains(stderr, "none of the notation signatures of image db") || !strings.Contains(stderr, "unknown authority") {
		t.Fatalf("verify with another notation trust store (exit %d):\n%s\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = sigCLI(t, "inspect", archivePath)
	if code != 0 || !strings.Contains(stdout, "signing artifacts (per subject):") || !strings.Contains(stdout, "image web linux/amd64") ||
		!strings.Contains(stdout, "sha256-"+s.pb.Digest.Encoded()+".sig") {
		t.Fatalf("inspect (exit %d) does not list the artifacts per subject:\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = sigCLI(t, "verify", archivePath, "--notary-pin", pin, "--cosign-key", s.keyFile, "--require-signatures")
	if code != 0 || !strings.Contains(stdout, "notary      GUN "+s.gun+" target 0.1.0 in targets/releases verified") ||
		!strings.Contains(stdout, "bundle signed: true") || !strings.Contains(stdout, "valid at export time") {
		t.Fatalf("verify (exit %d):\n%s\n%s", code, stdout, stderr)
	}

	t.Run("import/fallback-tags", func(t *testing.T) {
		dst := startRegistry(t)
		ir, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap", MappingPath: filepath.Join(t.TempDir(), "m.json")},
			importer.WithClient(clientFor(t, dst)),
			importer.WithSigningOptions(sigbundle.WithNotaryPin(s.gun, s.rootID), cosignKey(t, s.keyFile), sigbundle.WithRequireSignatures(true)))
		if err != nil {
			t.Fatal(err)
		}
		sr := ir.Signatures
		if sr == nil || sr.Report == nil || !sr.Report.Signed || len(sr.Report.Notary) != 1 || sr.Tags != 3 || sr.Pushed != int64(len(s.arts)-3+1) {
			t.Fatalf("import signatures: %+v", sr)
		}
		for _, a := range sr.Report.Artifacts {
			if !a.Bound || (a.Format == "cosign" || a.Format == "cosign-attestation") && !a.Verified {
				t.Fatalf("artifact not verified: %+v", a)
			}
		}
		bundleRepo := dst.Host + "/airgap/" + harness.DefaultSampleRepository
		checkPublished(t, s, ggcrTarget{repo: bundleRepo, opts: dst.RemoteOptions()}, true)
		if tags, err := dst.Tags(ctx, bundleRepo); err != nil || !slices.Contains(tags, "sha256-"+s.pb.Digest.Encoded()) {
			t.Fatalf("no fallback tag for the bundle index at the target: %v %v", tags, err)
		}
		// verify the imported bundle where it is, from the registry.
		code, stdout, stderr := sigCLI(t, "--plain-http", dst.Host, "verify", "--reference", bundleRepo+":"+harness.DefaultSampleTag,
			"--notary-pin", pin, "--cosign-key", s.keyFile, "--require-signatures")
		if code != 0 || !strings.Contains(stdout, "bundle signed: true") || !strings.Contains(stdout, fmt.Sprintf("%d signing artifacts", len(s.arts)+1)) {
			t.Fatalf("verify --reference (exit %d):\n%s\n%s", code, stdout, stderr)
		}
		// A second import pushes no signing artifact again.
		ir2, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"},
			importer.WithClient(clientFor(t, dst)), importer.WithSigningOptions(sigbundle.WithNotaryPin(s.gun, s.rootID)))
		if err != nil {
			t.Fatal(err)
		}
		if ir2.Signatures.Pushed != 0 || ir2.Signatures.Present != int64(len(s.arts)-3+1) || ir2.Signatures.Tags != 0 {
			t.Fatalf("second import: %+v", ir2.Signatures)
		}
		// A fallback tag that lost its entries (an import stopped between a
		// referrer and its listing) is repaired by the next import.
		br, err := name.NewRepository(bundleRepo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		empty := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
		if err := remote.Put(br.Tag("sha256-"+s.pb.Digest.Encoded()), rawIndex(empty), dst.RemoteOptions()...); err != nil {
			t.Fatal(err)
		}
		ir3, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"},
			importer.WithClient(clientFor(t, dst)), importer.WithSigningOptions(sigbundle.WithNotaryPin(s.gun, s.rootID)))
		if err != nil {
			t.Fatal(err)
		}
		if ir3.Signatures.Pushed != 1 { // the trust data, the only referrer of the bundle index
			t.Fatalf("repairing import: %+v", ir3.Signatures)
		}
		checkPublished(t, s, ggcrTarget{repo: bundleRepo, opts: dst.RemoteOptions()}, true)
	})

	t.Run("import/cosign-tag-merge", func(t *testing.T) {
		// The target already has a .sig object for the bundle index, signed
		// inside with another key: the import keeps that signature beside
		// the carried one, and a second import changes nothing.
		dst := startRegistry(t)
		bundleRepo := dst.Host + "/airgap/" + harness.DefaultSampleRepository
		br, err := name.NewRepository(bundleRepo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		inside, err := sigfixtures.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		insideFile := filepath.Join(t.TempDir(), "inside.pub")
		if err := inside.WritePublic(insideFile); err != nil {
			t.Fatal(err)
		}
		idx := ocispec.Descriptor{MediaType: s.pb.IndexMediaType, Digest: s.pb.Digest, Size: int64(len(s.pb.IndexJSON))}
		a, err := sigfixtures.CosignSignature(inside, bundleRepo+":"+harness.DefaultSampleTag, idx, true)
		if err != nil {
			t.Fatal(err)
		}
		before, err := sigfixtures.Push(ctx, sigfixtures.Repo{Name: br, Options: dst.RemoteOptions()}, a)
		if err != nil {
			t.Fatal(err)
		}
		ir, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"},
			importer.WithClient(clientFor(t, dst)), importer.WithSigningOptions(sigbundle.WithNotaryPin(s.gun, s.rootID)))
		if err != nil {
			t.Fatal(err)
		}
		if ir.Signatures.TagsMerged != 1 || !slices.ContainsFunc(ir.Warnings, func(w string) bool { return strings.Contains(w, "keeps them beside") }) {
			t.Fatalf("import over an inside signature: %+v %v", ir.Signatures, ir.Warnings)
		}
		got, err := remote.Get(br.Tag("sha256-"+s.pb.Digest.Encoded()+".sig"), dst.RemoteOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(got.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Layers) != 2 || got.Digest.String() == before.Digest.String() {
			t.Fatalf("merged .sig object %s has %d layers", got.Digest, len(m.Layers))
		}
		// At the target, the bundle index's .sig object verifies with both
		// keys: the carried signature and the one made inside.
		code, stdout, stderr := sigCLI(t, "--plain-http", dst.Host, "--output", "json", "verify", "--reference", bundleRepo+":"+harness.DefaultSampleTag,
			"--notary-pin", pin, "--cosign-key", s.keyFile, "--cosign-key", insideFile, "--require-signatures")
		var vr struct{ Signatures sigbundle.Report }
		if code != 0 || json.Unmarshal([]byte(stdout), &vr) != nil || !vr.Signatures.Signed {
			t.Fatalf("verify --reference (exit %d):\n%s\n%s", code, stdout, stderr)
		}
		i := slices.IndexFunc(vr.Signatures.Artifacts, func(a sigbundle.ArtifactReport) bool { return a.Tag == "sha256-"+s.pb.Digest.Encoded()+".sig" })
		if i < 0 || !slices.Equal(slices.Sorted(slices.Values(vr.Signatures.Artifacts[i].Keys)), []string{"cosign.pub", "inside.pub"}) {
			t.Fatalf("the bundle index's .sig at the target: %+v", vr.Signatures.Artifacts)
		}
		ir2, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"},
			importer.WithClient(clientFor(t, dst)), importer.WithSigningOptions(sigbundle.WithNotaryPin(s.gun, s.rootID)))
		if err != nil {
			t.Fatal(err)
		}
		if ir2.Signatures.Tags != 0 || ir2.Signatures.TagsMerged != 0 {
			t.Fatalf("second import rewrote cosign tags: %+v", ir2.Signatures)
		}
		if again, err := remote.Get(br.Tag("sha256-"+s.pb.Digest.Encoded()+".sig"), dst.RemoteOptions()...); err != nil || again.Digest != got.Digest {
			t.Fatalf("the merged object changed: %v %v", again, err)
		}
	})

	var apiHost string
	t.Run("import/referrers-api", func(t *testing.T) {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
		t.Cleanup(srv.Close)
		apiHost = strings.TrimPrefix(srv.URL, "http://")
		code, stdout, stderr := sigCLI(t, "--plain-http", apiHost, "--output", "json", "import", archivePath, "-t", apiHost+"/airgap",
			"-m", filepath.Join(t.TempDir(), "m.json"), "--notary-pin", pin, "--cosign-key", s.keyFile, "--in-toto-run-inspections")
		if code != 0 {
			t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
		}
		bundleRepo := apiHost + "/airgap/" + harness.DefaultSampleRepository
		checkPublished(t, s, ggcrTarget{repo: bundleRepo, opts: []remote.Option{}}, false)

		// Export from the registry with the Referrers API: the same
		// artifacts come back, Notary trust data included (as a referrer of
		// the bundle index), and verify offline.
		again := filepath.Join(t.TempDir(), "again.tar")
		res, err := export.Export(ctx, export.Request{Reference: bundleRepo + ":" + harness.DefaultSampleTag, Output: again},
			export.WithClient(plainClient(t, apiHost)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Signatures == nil || res.Signatures.Artifacts != len(s.arts)+1 {
			t.Fatalf("export through the Referrers API found %+v, want %d artifacts", res.Signatures, len(s.arts)+1)
		}
		if got, want := carriedDigests(t, again), carriedDigests(t, archivePath); !slices.Equal(got, want) {
			t.Fatalf("artifacts read back through the Referrers API differ:\n got %v\nwant %v", got, want)
		}
		b, err := archive.Load(ctx, again, layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		// Re-exported from the mirror, the archive names the bundle
		// airgap/bundles/...: the trust data signs the publisher's GUN, so
		// only the operator's --allow-rename accepts the mirror's prefix.
		_, err = b.VerifySignatures(ctx, sigbundle.WithNotaryPin(s.gun, s.rootID), cosignKey(t, s.keyFile), sigbundle.WithRequireSignatures(true))
		if !errors.Is(err, sigbundle.ErrNameMismatch) || !strings.Contains(err.Error(), "--allow-rename") {
			t.Fatalf("trust data of %s accepted for the mirror's name without --allow-rename: %v", s.gun, err)
		}
		rep, err := b.VerifySignatures(ctx, sigbundle.WithNotaryPin(s.gun, s.rootID), cosignKey(t, s.keyFile), sigbundle.WithRequireSignatures(true), sigbundle.WithAllowRename(true))
		if err != nil || !rep.Signed || len(rep.Notary) != 1 || !rep.Notary[0].Renamed {
			t.Fatalf("the re-exported archive does not verify with --allow-rename: %v", err)
		}
	})

	t.Run("import/notary-resign", func(t *testing.T) {
		tdir := t.TempDir()
		inside, err := sigfixtures.StartNotaryServer(ctx, tdir, false)
		if err != nil {
			t.Fatal(err)
		}
		defer inside.Close()
		dst := startRegistry(t)
		for _, r := range []string{"ROOT", "TARGETS", "SNAPSHOT"} {
			t.Setenv("NOTARY_"+r+"_PASSPHRASE", "inside-"+r)
		}
		code, stdout, stderr := sigCLI(t, "--plain-http", dst.Host, "import", archivePath, "-t", dst.Host+"/airgap", "-m", filepath.Join(tdir, "m.json"),
			"--notary-pin", pin, "--notary-resign", "--notary-server", inside.URL, "--notary-trust-dir", filepath.Join(tdir, "keys"))
		if code != 0 || !strings.Contains(stdout, "re-signed   GUN "+dst.Host+"/airgap/"+harness.DefaultSampleRepository) {
			t.Fatalf("import --notary-resign (exit %d):\n%s\n%s", code, stdout, stderr)
		}
		relocated := dst.Host + "/airgap/" + harness.DefaultSampleRepository
		ts, err := sigfixtures.Targets(inside.URL, relocated, inside.Transport)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 1 || ts[0].Name != harness.DefaultSampleTag || fmt.Sprintf("%x", ts[0].Hashes["sha256"]) != s.pb.BundleJSONDigest.Encoded() ||
			ts[0].Length != int64(len(s.pb.BundleJSON)) || ts[0].Custom == nil {
			t.Fatalf("re-signed targets at the destination: %+v", ts)
		}
		// The destination's own trust data verifies the relocated bundle
		// end to end: export it from inside with the inside Notary server.
		out := filepath.Join(tdir, "inside.tar")
		res, err := export.Export(ctx, export.Request{Reference: relocated + ":" + harness.DefaultSampleTag, Output: out},
			export.WithClient(clientFor(t, dst)), export.WithNotaryServer(inside.URL))
		if err != nil {
			t.Fatal(err)
		}
		if res.Signatures.Notary.GUN != relocated || res.Signatures.Notary.InToto == nil {
			t.Fatalf("inside trust data: %+v", res.Signatures.Notary)
		}
	})

	t.Run("import/no-signatures", func(t *testing.T) {
		dst := startRegistry(t)
		ir, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"}, importer.WithClient(clientFor(t, dst)), importer.WithSignatures(false))
		if err != nil {
			t.Fatal(err)
		}
		if !ir.Signatures.Skipped || !slices.ContainsFunc(ir.Warnings, func(w string) bool { return strings.Contains(w, "--no-signatures") }) {
			t.Fatalf("result does not say signatures were skipped: %+v %v", ir.Signatures, ir.Warnings)
		}
		tags, err := dst.Tags(ctx, dst.Host+"/airgap/"+harness.DefaultSampleRepository)
		if err != nil || !slices.Equal(tags, []string{harness.DefaultSampleTag}) {
			t.Fatalf("tags at the target: %v %v", tags, err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		neg := startRegistry(t)
		nc := clientFor(t, neg)
		good := []sigbundle.Option{sigbundle.WithNotaryPin(s.gun, s.rootID), cosignKey(t, s.keyFile)}
		future := func() time.Time { return time.Now().AddDate(4, 0, 0) }
		relocatedGUN := neg.Host + "/airgap/" + harness.DefaultSampleRepository
		cases := []struct {
			name        string
			archivePath func(t *testing.T) string
			opts        []sigbundle.Option
			want        error
			msg         string
		}{
			{"wrong pin", keep(archivePath), []sigbundle.Option{sigbundle.WithNotaryPin(s.gun, strings.Repeat("ab", 32))}, sigbundle.ErrTrustAnchor, "does not satisfy the pin trust anchor"},
			{"no trust anchor", keep(archivePath), nil, sigbundle.ErrTrustAnchor, s.rootID},
			{"one byte changed in a carried role", editTrust(archivePath, func(m *ocispec.Manifest, roles map[string][]byte) {
				r := roles["targets/releases"]
				i := bytes.Index(r, []byte(`"expires":"`)) + len(`"expires":"`)
				r[i+3]++ // the year, one byte
			}), good, sigbundle.ErrTrustData, "targets/releases"},
			{"bundle.json changed", changeBundle(archivePath), good, sigbundle.ErrTargetMismatch, "signs sha256 " + s.pb.BundleJSONDigest.Encoded()},
			{"bundle.json byte flipped", flipBundle(archivePath), good, archive.ErrBundleMismatch, "bundle.json"},
			{"referrer blob changed", corruptPayload(archivePath, s), good, verify.ErrDigestMismatch, "blob sha256:"},
			{"expired targets role", keep(archivePath), append(slices.Clone(good), sigbundle.WithClock(future)), sigbundle.ErrExpired, "targets expired"},
			{"relocated GUN presented as the original", editTrust(archivePath, func(m *ocispec.Manifest, roles map[string][]byte) {
				m.Annotations[sigbundle.AnnotationNotaryGUN] = relocatedGUN
			}), []sigbundle.Option{sigbundle.WithNotaryPin(relocatedGUN, s.rootID)}, sigbundle.ErrTrustAnchor, "issued to GUN \"" + s.gun + "\""},
			{"layout with inspections", keep(inspectArchive), good, sigbundle.ErrInspections, "--in-toto-run-inspections"},
			{"cosign signature and the wrong key", keep(archivePath), []sigbundle.Option{sigbundle.WithNotaryPin(s.gun, s.rootID), cosignKey(t, s.wrongFile)}, sigbundle.ErrSignature, "wrong.pub"},
			{"root not issued by the trusted CA", keep(caArchive), []sigbundle.Option{sigbundle.WithNotaryCA(s.src.Host+"/", otherCA.File)}, sigbundle.ErrTrustAnchor, "does not satisfy the ca trust anchor"},
			{"unsigned bundle with --require-signatures", keep(unsigned), []sigbundle.Option{sigbundle.WithRequireSignatures(true)}, sigbundle.ErrUnsigned, "signatures are required"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := tc.archivePath(t)
				_, err := importer.Import(ctx, importer.Request{Archive: a, Target: neg.Host + "/airgap", MappingPath: filepath.Join(t.TempDir(), "m.json")},
					importer.WithClient(nc), importer.WithSigningOptions(tc.opts...))
				if err == nil {
					t.Fatal("import succeeded")
				}
				t.Logf("refused: %v", err)
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("import failed with %v\nwant %v and %q", err, tc.want, tc.msg)
				}
				if repos, lerr := neg.Repositories(ctx); lerr != nil || len(repos) != 0 {
					t.Fatalf("something was pushed: %v %v", repos, lerr)
				}
				if _, serr := os.Stat(filepath.Join(t.TempDir(), "m.json")); serr == nil {
					t.Fatal("a mapping was written")
				}
			})
		}
		// The CLI reports them with the verification exit code.
		code, _, stderr := sigCLI(t, "--plain-http", neg.Host, "import", archivePath, "-t", neg.Host+"/airgap", "--notary-pin", s.gun+"="+strings.Repeat("cd", 32))
		if code != 3 || !strings.Contains(stderr, "trust anchor") {
			t.Fatalf("CLI import with a wrong pin: exit %d, %s", code, stderr)
		}
		// The escape hatches, which say what they give up.
		b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		rep, err := b.VerifySignatures(ctx, append(slices.Clone(good), sigbundle.WithClock(future), sigbundle.WithAllowExpired(true))...)
		if err != nil || len(rep.Notary) != 1 || !slices.Contains(rep.Notary[0].Expired, "targets") {
			t.Fatalf("--allow-expired: %v %+v", err, rep)
		}
		if rep, err = b.VerifySignatures(ctx, sigbundle.WithNotaryTOFU(true)); err != nil || rep.Notary[0].Anchor != "tofu" ||
			!slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "trusted on first use") }) {
			t.Fatalf("--notary-tofu: %v %+v", err, rep)
		}
		cb, err := archive.Load(ctx, caArchive, layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer cb.Close()
		if rep, err = cb.VerifySignatures(ctx, sigbundle.WithNotaryCA(s.src.Host+"/bundles/", ca.File), sigbundle.WithRequireSignatures(true)); err != nil ||
			rep.Notary[0].Anchor != "ca" || rep.Notary[0].GUN != caGUN {
			t.Fatalf("--notary-ca: %v %+v", err, rep)
		}
		ib, err := archive.Load(ctx, inspectArchive, layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer ib.Close()
		if rep, err = ib.VerifySignatures(ctx, append(slices.Clone(good), sigbundle.WithInTotoInspections(true))...); err != nil ||
			!rep.Notary[0].InToto.InspectionsRun || !rep.Notary[0].InToto.Verified {
			t.Fatalf("--in-toto-run-inspections: %v %+v", err, rep)
		}
		if repos, _ := neg.Repositories(ctx); len(repos) != 0 {
			t.Fatalf("something was pushed: %v", repos)
		}
	})
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func cosignKey(t *testing.T, path string) sigbundle.Option {
	t.Helper()
	k, err := sigbundle.LoadPublicKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return sigbundle.WithCosignKey(filepath.Base(path), k)
}

func plainClient(t *testing.T, hosts ...string) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.Options{PlainHTTP: hosts})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkCarried checks index.json: every artifact pushed at the source is
// there, byte for byte, with its subject and repository, cosign objects
// with their tag; the trust-data artifact is attached to the bundle index.
func checkCarried(t *testing.T, archivePath string, s *signedSource) {
	t.Helper()
	b, err := archive.Load(context.Background(), archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := map[digest.Digest]ocispec.Descriptor{}
	for _, d := range b.SigningArtifacts() {
		got[d.Digest] = d
	}
	for _, a := range s.arts {
		d, ok := got[a.desc.Digest]
		if !ok {
			t.Fatalf("artifact %s (%s of %s, tag %q) is not carried)", a.desc.Digest, a.role, a.subject, a.tag)
		}
		if d.Annotations[layout.AnnotationSubject] != a.subject.String() || d.Annotations[layout.AnnotationRole] != a.role ||
			d.Annotations[sigbundle.AnnotationRepository] == "" || layout.CosignTag(d) != a.tag || d.Annotations[layout.AnnotationRefName] != "" {
			t.Fatalf("artifact %s carried as %v, want subject %s role %s tag %q", a.desc.Digest, d.Annotations, a.subject, a.role, a.tag)
		}
		if raw := b.Nodes[a.desc.Digest].Raw; digest.FromBytes(raw) != a.desc.Digest {
			t.Fatalf("artifact %s not carried byte for byte", a.desc.Digest)
		}
	}
	trust := 0
	for _, d := range got {
		if d.Annotations[layout.AnnotationRole] == layout.RoleTrust {
			trust++
			if d.Annotations[layout.AnnotationSubject] != s.pb.Digest.String() || d.ArtifactType != sigbundle.ArtifactTypeNotary {
				t.Fatalf("trust data carried as %+v", d)
			}
		}
	}
	if trust != 1 || len(got) != len(s.arts)+1 {
		t.Fatalf("carried %d artifacts (%d trust), want %d", len(got), trust, len(s.arts)+1)
	}
}

// carriedDigests lists an archive's signing artifacts.
func carriedDigests(t *testing.T, archivePath string) []string {
	t.Helper()
	b, err := archive.Load(context.Background(), archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out []string
	for _, d := range b.SigningArtifacts() {
		out = append(out, d.Digest.String()+" "+d.Annotations[layout.AnnotationSubject]+" "+layout.CosignTag(d))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// rawIndex pushes exact OCI index bytes.
type rawIndex []byte

func (r rawIndex) RawManifest() ([]byte, error) { return r, nil }
func (r rawIndex) MediaType() (types.MediaType, error) {
	return types.OCIImageIndex, nil
}

type ggcrTarget struct {
	repo string
	opts []remote.Option
}

// checkPublished checks the target: every referrer is listed for its
// subject (Referrers API or fallback tag, as remote.Referrers reads them),
// with the same digest; cosign tags point at the same manifests; the
// trust-data artifact is a referrer of the bundle index.
func checkPublished(t *testing.T, s *signedSource, tgt ggcrTarget, fallback bool) {
	t.Helper()
	repo, err := name.NewRepository(tgt.repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	referrers := func(subject digest.Digest) []string {
		idx, err := remote.Referrers(repo.Digest(subject.String()), tgt.opts...)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range im.Manifests {
			out = append(out, d.Digest.String())
		}
		return out
	}
	for _, a := range s.arts {
		if a.tag != "" {
			d, err := remote.Head(repo.Tag(a.tag), tgt.opts...)
			if err != nil || d.Digest.String() != a.desc.Digest.String() {
				t.Fatalf("cosign tag %s at the target: %v %v, want %s", a.tag, d, err, a.desc.Digest)
			}
			continue
		}
		if got := referrers(a.subject); !slices.Contains(got, a.desc.Digest.String()) {
			t.Fatalf("referrer %s of %s not listed at the target (fallback %v): %v", a.desc.Digest, a.subject, fallback, got)
		}
	}
	found := false
	for _, d := range referrers(s.pb.Digest) {
		desc, err := remote.Get(repo.Digest(d), tgt.opts...)
		if err != nil {
			t.Fatal(err)
		}
		var m ocispec.Manifest
		json.Unmarshal(desc.Manifest, &m)
		found = found || m.ArtifactType == sigbundle.ArtifactTypeNotary
	}
	if !found {
		t.Fatal("the Notary trust data is not a referrer of the bundle index at the target")
	}
}

// Archive rewriting for the negative cases. The archives are small (a few
// MiB), so they are read whole.

func keep(path string) func(*testing.T) string {
	return func(*testing.T) string { return path }
}

func readTar(t *testing.T, path string) (map[string][]byte, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
		order = append(order, h.Name)
	}
	return files, order
}

func writeTar(t *testing.T, files map[string][]byte) string {
	t.Helper()
	pruneUnreferenced(t, files)
	out := filepath.Join(t.TempDir(), "tampered.tar")
	var names []string
	for n := range files {
		names = append(names, n)
	}
	rank := func(n string) string {
		switch n {
		case layout.OCILayoutFile:
			return "0"
		case layout.IndexFile:
			return "1"
		case layout.BundleFile:
			return "2"
		}
		return "3" + n
	}
	sort.Slice(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// pruneUnreferenced drops the blobs no manifest reachable from index.json
// references, as an attacker who rewrites an archive would: the reader
// refuses unreferenced entries, and the tampering under test must be
// refused for what it is, not for the leftovers.
func pruneUnreferenced(t *testing.T, files map[string][]byte) {
	t.Helper()
	keep := map[string]bool{}
	var walk func(d ocispec.Descriptor)
	walk = func(d ocispec.Descriptor) {
		n := layout.BlobName(d.Digest)
		if keep[n] {
			return
		}
		keep[n] = true
		if raw, ok := files[n]; ok && layout.IsManifestOrIndex(d.MediaType) {
			children, err := layout.Children(d.MediaType, raw)
			if err != nil {
				return // malformed on purpose: the test wants that refused
			}
			for _, c := range children {
				walk(c)
			}
		}
	}
	for _, d := range indexOf(t, files).Manifests {
		walk(d)
	}
	for n := range files {
		if _, ok := layout.DigestFromBlobName(n); ok && !keep[n] {
			delete(files, n)
		}
	}
}

func putBlob(files map[string][]byte, b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	files[layout.BlobName(d)] = b
	return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
}

func indexOf(t *testing.T, files map[string][]byte) *ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(files[layout.IndexFile], &idx); err != nil {
		t.Fatal(err)
	}
	return &idx
}

func setIndex(files map[string][]byte, idx *ocispec.Index) {
	files[layout.IndexFile], _ = json.Marshal(idx)
}

// trustLayerKey names a trust-data layer for editTrust: its role, or
// "target:" and the target name of a carried target file.
func trustLayerKey(l ocispec.Descriptor) string {
	if n := l.Annotations[sigbundle.AnnotationNotaryTargetName]; n != "" {
		return "target:" + n
	}
	return l.Annotations[sigbundle.AnnotationNotaryRole]
}

// editTrust rewrites the trust-data artifacts as an attacker would: the
// role files and the manifest changed consistently, index.json updated.
// edit sees each artifact's layers by trustLayerKey.
func editTrust(path string, edit func(m *ocispec.Manifest, roles map[string][]byte)) func(*testing.T) string {
	return func(t *testing.T) string {
		files, _ := readTar(t, path)
		idx := indexOf(t, files)
		for i, d := range idx.Manifests {
			if d.Annotations[layout.AnnotationRole] != layout.RoleTrust {
				continue
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(files[layout.BlobName(d.Digest)], &m); err != nil {
				t.Fatal(err)
			}
			roles := map[string][]byte{}
			for _, l := range m.Layers {
				roles[trustLayerKey(l)] = slices.Clone(files[layout.BlobName(l.Digest)])
			}
			edit(&m, roles)
			for j, l := range m.Layers {
				nd := putBlob(files, roles[trustLayerKey(l)])
				m.Layers[j].Digest, m.Layers[j].Size = nd.Digest, nd.Size
			}
			raw, _ := json.Marshal(m)
			nd := putBlob(files, raw)
			idx.Manifests[i].Digest, idx.Manifests[i].Size = nd.Digest, nd.Size
			for k, v := range m.Annotations {
				if strings.HasPrefix(k, "io.cnab.airgap.notary.") {
					idx.Manifests[i].Annotations[k] = v
				}
			}
			if m.Subject != nil {
				idx.Manifests[i].Annotations[layout.AnnotationSubject] = m.Subject.Digest.String()
			}
		}
		setIndex(files, idx)
		return writeTar(t, files)
	}
}

// changeBundle changes bundle.json and rebuilds everything an attacker can
// rebuild without keys: the config manifest, the bundle index, index.json
// and the trust-data artifact's subject. The cosign signature of the old
// index is dropped (it would name the old digest).
func changeBundle(path string) func(*testing.T) string {
	return func(t *testing.T) string {
		files, _ := readTar(t, path)
		bj := bytes.Replace(files[layout.BundleFile], []byte("cnab-airgap sample bundle"), []byte("cnab-airgap sample bundlE"), 1)
		if bytes.Equal(bj, files[layout.BundleFile]) {
			t.Fatal("bundle.json has no description to change")
		}
		files[layout.BundleFile] = bj
		bd := putBlob(files, bj)
		idx := indexOf(t, files)
		var bundle *ocispec.Descriptor
		for i, d := range idx.Manifests {
			if d.Annotations[layout.AnnotationRole] == layout.RoleBundle {
				bundle = &idx.Manifests[i]
			}
		}
		var bi ocispec.Index
		json.Unmarshal(files[layout.BlobName(bundle.Digest)], &bi)
		for i, d := range bi.Manifests {
			if d.Annotations[layout.AnnotationCNABManifestType] != "config" {
				continue
			}
			var cm map[string]any
			json.Unmarshal(files[layout.BlobName(d.Digest)], &cm)
			cfg := cm["config"].(map[string]any)
			cfg["digest"], cfg["size"] = bd.Digest.String(), bd.Size
			raw, _ := json.Marshal(cm)
			nd := putBlob(files, raw)
			bi.Manifests[i].Digest, bi.Manifests[i].Size = nd.Digest, nd.Size
		}
		raw, _ := json.Marshal(bi)
		old := bundle.Digest
		nb := putBlob(files, raw)
		bundle.Digest, bundle.Size = nb.Digest, nb.Size
		idx.Annotations[layout.AnnotationBundleDigest] = bd.Digest.String()
		var kept []ocispec.Descriptor
		for _, d := range idx.Manifests {
			if d.Annotations[layout.AnnotationSubject] == old.String() {
				if d.Annotations[layout.AnnotationRole] != layout.RoleTrust {
					continue
				}
				var m ocispec.Manifest
				json.Unmarshal(files[layout.BlobName(d.Digest)], &m)
				m.Subject.Digest, m.Subject.Size = nb.Digest, nb.Size
				raw, _ := json.Marshal(m)
				nd := putBlob(files, raw)
				d.Digest, d.Size = nd.Digest, nd.Size
				d.Annotations[layout.AnnotationSubject] = nb.Digest.String()
			}
			kept = append(kept, d)
		}
		idx.Manifests = kept
		setIndex(files, idx)
		return writeTar(t, files)
	}
}

// flipBundle changes one byte of bundle.json and nothing else.
func flipBundle(path string) func(*testing.T) string {
	return func(t *testing.T) string {
		files, _ := readTar(t, path)
		files[layout.BundleFile] = bytes.Replace(files[layout.BundleFile], []byte("sample-app"), []byte("sample-apq"), 1)
		return writeTar(t, files)
	}
}

// corruptPayload flips a byte of the cosign payload of the web index's
// signature inside a copy of the archive.
func corruptPayload(path string, s *signedSource) func(*testing.T) string {
	return func(t *testing.T) string {
		cp := filepath.Join(t.TempDir(), "corrupt.tar")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cp, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		files, _ := readTar(t, path)
		web, _ := s.pb.Image("web")
		for _, a := range s.arts {
			if a.tag == "sha256-"+web.ContentDigest.Encoded()+".sig" {
				var m ocispec.Manifest
				json.Unmarshal(files[layout.BlobName(a.desc.Digest)], &m)
				corruptBlob(t, cp, m.Layers[0].Digest)
				return cp
			}
		}
		t.Fatal("no web signature")
		return ""
	}
}

// sigCLI runs the cnab-airgap binary and returns its exit code, standard
// output and standard error.
func sigCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLIBinary(t, args...)
}
