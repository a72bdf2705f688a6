package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/internal/testsigstore"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// cosignCLI runs the real cosign (v2.6.5, provisioned by scripts/tools.sh)
// with a private HOME, TUF cache and docker config, and with every proxy
// pointed at a closed loopback port, so that nothing can reach beyond
// loopback (cosign would otherwise fetch Sigstore's TUF root).
type cosignCLI struct {
	bin, dir string
}

func newCosign(t *testing.T) *cosignCLI {
	t.Helper()
	bin, err := exec.LookPath("cosign")
	if err != nil {
		t.Fatal("cosign is required (make test provisions it: scripts/tools.sh): ", err)
	}
	return &cosignCLI{bin: bin, dir: t.TempDir()}
}

func (c *cosignCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"HOME=" + c.dir, "TUF_ROOT=" + filepath.Join(c.dir, "tuf"), "DOCKER_CONFIG=" + filepath.Join(c.dir, "docker"),
		"COSIGN_PASSWORD=e2e-password", "PATH=" + os.Getenv("PATH"),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c *cosignCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestRealCosign carries what the real cosign CLI writes, in both layouts:
// legacy signatures and attestations (tags) and Sigstore bundles (OCI
// referrers: a DSSE statement for the signature, another for the SLSA
// provenance). Import verifies all of them offline with the public key; at
// the target, cosign itself verifies the relocated references offline. The
// keyless evidence of the private Sigstore, relocated too, still verifies
// with cosign against the trusted root.
func TestRealCosign(t *testing.T) {
	ctx := context.Background()
	cosign := newCosign(t)
	dir := t.TempDir()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	cosign.must(t, "generate-key-pair")
	key, pub := filepath.Join(cosign.dir, "cosign.key"), filepath.Join(cosign.dir, "cosign.pub")
	predicate := filepath.Join(cosign.dir, "provenance.json")
	if err := os.WriteFile(predicate, []byte(`{"builder":{"id":"https://example.com/e2e"},"buildType":"https://example.com/build"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyRoot := filepath.Join(cosign.dir, "empty-root.json")
	cosign.must(t, "trusted-root", "create", "--out", emptyRoot)

	byName := map[string]harness.BundleImage{}
	for _, img := range pb.Images {
		byName[img.Name] = img
	}
	web, worker, db := byName["web"], byName["worker"], byName["db"]
	// Legacy layout: web signed (.sig), db attested (.att), the bundle signed.
	cosign.must(t, "sign", "--key", key, "--tlog-upload=false", "-y", web.DigestRef())
	cosign.must(t, "attest", "--key", key, "--tlog-upload=false", "-y", "--type", "slsaprovenance", "--predicate", predicate, db.DigestRef())
	cosign.must(t, "sign", "--key", key, "--tlog-upload=false", "-y", pb.DigestRef())
	// Sigstore bundles as referrers: worker signed and attested.
	cosign.must(t, "sign", "--key", key, "--tlog-upload=false", "-y", "--new-bundle-format", worker.DigestRef())
	cosign.must(t, "attest", "--key", key, "--tlog-upload=false", "-y", "--new-bundle-format", "--type", "slsaprovenance", "--predicate", predicate, worker.DigestRef())

	// Keyless evidence from the private Sigstore on the invocation image.
	ss, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := ss.TrustedRoot(false)
	if err != nil {
		t.Fatal(err)
	}
	trustedFile := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(trustedFile, trusted, 0o644); err != nil {
		t.Fatal(err)
	}
	inv := byName[harness.Invocation]
	invRepo, invDesc := descriptorAt(t, src, inv.DigestRef())
	a, err := sigfixtures.KeylessSignature(ss, keylessIdentity, keylessIssuer, inv.Image, invDesc, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sigfixtures.Push(ctx, sigfixtures.Repo{Name: invRepo, Options: src.RemoteOptions()}, a); err != nil {
		t.Fatal(err)
	}

	archivePath := filepath.Join(dir, "cosign.tar")
	code, stdout, stderr := sigCLI(t, "--plain-http", src.Host, "export", "-o", archivePath, "--trusted-root", trustedFile,
		"--verify", "--cosign-key", pub, "--certificate-identity", keylessIdentity, "--certificate-oidc-issuer", keylessIssuer, pb.Ref)
	if code != 0 {
		t.Fatalf("export --verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	src.Close()
	// Each Sigstore bundle's role follows what it holds (cosign's predicate
	// type annotation): the worker's signature and its provenance.
	code, stdout, stderr = sigCLI(t, "--output", "json", "inspect", archivePath)
	var ins struct {
		Extra []struct {
			Role, ArtifactType string
		}
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &ins) != nil {
		t.Fatalf("inspect: exit %d\n%s\n%s", code, stdout, stderr)
	}
	roles := map[string]int{}
	for _, x := range ins.Extra {
		if x.ArtifactType == "application/vnd.dev.sigstore.bundle.v0.3+json" {
			roles[x.Role]++
		}
	}
	if roles["signature"] != 1 || roles["attestation"] != 1 {
		t.Fatalf("the two Sigstore bundles were given the roles %v, want a signature and an attestation", roles)
	}

	dst := startRegistry(t)
	mappingFile := filepath.Join(dir, "mapping.json")
	code, stdout, stderr = sigCLI(t, "--plain-http", dst.Host, "--output", "json", "import", archivePath, "--target", dst.Ref("mirror"), "-m", mappingFile,
		"--cosign-key", pub, "--trusted-root", trustedFile, "--certificate-identity", keylessIdentity, "--certificate-oidc-issuer", keylessIssuer, "--require-signatures")
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var ir importer.Result
	if err := json.Unmarshal([]byte(stdout), &ir); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, a := range ir.Signatures.Report.Artifacts {
		if a.Format != "cosign" && a.Format != "cosign-attestation" {
			continue
		}
		if !a.Verified || a.Signer == nil {
			t.Errorf("%s %s of %s not verified: %s", a.Format, a.Digest, a.SubjectLabel, a.Note)
			continue
		}
		kind := a.Format + " " + a.Signer.Key
		if a.Signer.Identity != "" {
			kind = a.Format + " keyless"
		}
		kinds[kind+" "+a.PredicateType]++
	}
	want := map[string]int{
		"cosign cosign.pub ": 2, // web, bundle (legacy)
		"cosign cosign.pub https://sigstore.dev/cosign/sign/v1":          1, // worker (bundle)
		"cosign-attestation cosign.pub https://slsa.dev/provenance/v0.2": 2, // db (legacy), worker (bundle)
		"cosign keyless ": 1, // the invocation image
	}
	if len(kinds) != len(want) {
		t.Fatalf("verified %v, want %v", kinds, want)
	}
	for k, n := range want {
		if kinds[k] != n {
			t.Fatalf("verified %v, want %v", kinds, want)
		}
	}

	// At the target, cosign verifies the relocated references offline.
	mapping, err := relocate.ReadMapping(mappingFile)
	if err != nil {
		t.Fatal(err)
	}
	at := func(img harness.BundleImage) string {
		r, ok := mapping[img.Image]
		if !ok {
			t.Fatalf("no relocation of %s in %v", img.Image, mapping)
		}
		return r
	}
	offline := []string{"--offline=true", "--insecure-ignore-tlog=true"}
	cosign.must(t, append([]string{"verify", "--key", pub, "--trusted-root", emptyRoot, at(web)}, offline...)...)
	cosign.must(t, append([]string{"verify", "--key", pub, "--trusted-root", emptyRoot, at(worker)}, offline...)...)
	cosign.must(t, append([]string{"verify-attestation", "--key", pub, "--trusted-root", emptyRoot, "--type", "slsaprovenance", at(db)}, offline...)...)
	cosign.must(t, append([]string{"verify-attestation", "--key", pub, "--trusted-root", emptyRoot, "--type", "slsaprovenance", at(worker)}, offline...)...)
	// The keyless legacy signature: chain, SET and identity, offline
	// (the test Sigstore's certificates carry no SCT).
	cosign.must(t, "verify", "--trusted-root", trustedFile, "--certificate-identity", keylessIdentity, "--certificate-oidc-issuer", keylessIssuer,
		"--offline=true", "--insecure-ignore-sct=true", at(inv))
	// And a wrong key is refused by cosign too.
	other := newCosign(t)
	other.must(t, "generate-key-pair")
	if out, err := cosign.run(t, append([]string{"verify", "--key", filepath.Join(other.dir, "cosign.pub"), "--trusted-root", emptyRoot, at(web)}, offline...)...); err == nil {
		t.Fatalf("cosign verified the relocated image with another key:\n%s", out)
	}
}

// descriptorAt returns the repository of ref (REPO@DIGEST) at reg and the
// descriptor of its manifest.
func descriptorAt(t *testing.T, reg *harness.Registry, ref string) (name.Repository, ocispec.Descriptor) {
	t.Helper()
	repoPath, d, _ := strings.Cut(ref, "@")
	r, err := reg.Repository(strings.TrimPrefix(repoPath, reg.Host+"/"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Get(r.Digest(d), reg.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return r, ocispec.Descriptor{MediaType: string(got.MediaType), Digest: digest.Digest(d), Size: got.Size}
}
