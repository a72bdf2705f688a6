package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/internal/testsigstore"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
)

const (
	keylessIdentity = "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v2.3.0"
	keylessIssuer   = "https://token.actions.githubusercontent.com"
)

// TestKeylessAcrossTheGap signs the bundle index and every image keyless
// (legacy cosign signatures, some as tags and some as referrers) and
// attests every image with SLSA provenance in Sigstore bundles, all by a
// private Sigstore whose trusted root a TUF repository on loopback
// publishes. Export carries the trusted root with its TUF chain; with the
// source and the TUF repository gone, import verifies every image offline
// against the pinned TUF root and the signer's identity, and names each
// signer. A wrong identity or issuer exits 3 with nothing pushed.
func TestKeylessAcrossTheGap(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	ss, err := testsigstore.New()
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := ss.TrustedRoot(false)
	if err != nil {
		t.Fatal(err)
	}
	// The TUF repository speaks HTTPS with a private CA (--ca-file).
	if _, err := sigfixtures.WriteTLS(dir); err != nil {
		t.Fatal(err)
	}
	tuf, err := testsigstore.NewTUFTLS(trusted, 24*time.Hour, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	pin := filepath.Join(dir, "tuf-root.json")
	if err := os.WriteFile(pin, tuf.Root(), 0o644); err != nil {
		t.Fatal(err)
	}

	push := func(r name.Repository, a sigfixtures.Artifact, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sigfixtures.Push(ctx, sigfixtures.Repo{Name: r, Options: src.RemoteOptions()}, a); err != nil {
			t.Fatal(err)
		}
	}
	bundleRepo, err := src.Repository(harness.DefaultSampleRepository)
	if err != nil {
		t.Fatal(err)
	}
	bundleIdx := ocispec.Descriptor{MediaType: pb.IndexMediaType, Digest: pb.Digest, Size: int64(len(pb.IndexJSON))}
	a, err := sigfixtures.KeylessSignature(ss, keylessIdentity, keylessIssuer, pb.Ref, bundleIdx, true)
	push(bundleRepo, a, err)
	a, err = sigfixtures.KeylessAttestation(ss, keylessIdentity, keylessIssuer, pb.Ref, bundleIdx, "https://slsa.dev/provenance/v1",
		map[string]any{"buildDefinition": map[string]any{"buildType": "https://example.com/e2e-bundle"}})
	push(bundleRepo, a, err)
	signed := map[digest.Digest]bool{pb.Digest: true}
	for i, img := range pb.Images {
		r, subject := descriptorAt(t, src, img.DigestRef())
		a, err := sigfixtures.KeylessSignature(ss, keylessIdentity, keylessIssuer, img.Image, subject, i%2 == 0)
		push(r, a, err)
		a, err = sigfixtures.KeylessAttestation(ss, keylessIdentity, keylessIssuer, img.Image, subject, "https://slsa.dev/provenance/v1",
			map[string]any{"buildDefinition": map[string]any{"buildType": "https://example.com/e2e"}})
		push(r, a, err)
		signed[img.ContentDigest] = true
	}

	archivePath := filepath.Join(dir, "keyless.tar")
	// Without the CA the TUF repository is not trusted: nothing is written.
	code, stdout, stderr := sigCLI(t, "--plain-http", src.Host, "export", "-o", filepath.Join(dir, "untrusted.tar"),
		"--sigstore-trust", "--sigstore-tuf-url", tuf.URL, "--sigstore-tuf-root", pin, pb.Ref)
	if code == 0 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("export from a TUF repository whose CA is not given: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "untrusted.tar")); !os.IsNotExist(err) {
		t.Fatalf("a failed export left an archive: %v", err)
	}
	code, stdout, stderr = sigCLI(t, "--plain-http", src.Host, "--ca-file", caFile, "--output", "json", "export", "-o", archivePath,
		"--sigstore-trust", "--sigstore-tuf-url", tuf.URL, "--sigstore-tuf-root", pin, pb.Ref)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var er export.Result
	if err := json.Unmarshal([]byte(stdout), &er); err != nil {
		t.Fatal(err)
	}
	if er.Signatures == nil || er.Signatures.Sigstore == nil || er.Signatures.Sigstore.Source != "tuf" || er.Signatures.Sigstore.URL != tuf.URL {
		t.Fatalf("export carries no Sigstore trust material: %s", stdout)
	}
	// --verify at export: the policy is checked before the archive crosses;
	// an archive that fails it is removed.
	strict := filepath.Join(dir, "strict.yaml")
	if err := os.WriteFile(strict, []byte(shopPolicy("**/library/**", "cyclonedx")), 0o644); err != nil {
		t.Fatal(err)
	}
	failed := filepath.Join(dir, "failed.tar")
	code, stdout, stderr = sigCLI(t, "--plain-http", src.Host, "--ca-file", caFile, "export", "-o", failed, "--sigstore-trust", "--sigstore-tuf-url", tuf.URL,
		"--sigstore-tuf-root", pin, "--verify", "--policy", strict, pb.Ref)
	if code != 3 || !strings.Contains(stderr, "no verified attestation https://cyclonedx.org/bom") {
		t.Fatalf("export --verify against a policy it violates: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Fatalf("the archive that failed verification is still there: %v", err)
	}
	checked := filepath.Join(dir, "checked.tar")
	code, stdout, stderr = sigCLI(t, "--plain-http", src.Host, "--ca-file", caFile, "--output", "json", "export", "-o", checked, "--sigstore-trust", "--sigstore-tuf-url", tuf.URL,
		"--sigstore-tuf-root", pin, "--verify", "--certificate-identity", keylessIdentity, "--certificate-oidc-issuer", keylessIssuer, pb.Ref)
	var cr export.Result
	if code != 0 || json.Unmarshal([]byte(stdout), &cr) != nil || cr.Signatures.Report == nil || !cr.Signatures.Report.Signed {
		t.Fatalf("export --verify: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// inspect shows what the archive claims, without keys.
	code, stdout, stderr = sigCLI(t, "inspect", archivePath)
	if code != 0 || !strings.Contains(stdout, "claims signature, keyless by "+keylessIdentity+" (issuer "+keylessIssuer+"), logged") ||
		!strings.Contains(stdout, "claims attestation https://slsa.dev/provenance/v1, keyless by "+keylessIdentity) ||
		!strings.Contains(stdout, "claims Sigstore trusted root sha256 "+er.Signatures.Sigstore.TrustedRootSHA256+" from TUF "+tuf.URL) {
		t.Fatalf("inspect: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// The connected side is gone.
	_ = tuf.Close()
	src.Close()

	id := []string{"--certificate-identity", keylessIdentity, "--certificate-oidc-issuer", keylessIssuer}
	t.Run("refused", func(t *testing.T) {
		dst := startRegistry(t)
		for _, bad := range [][]string{
			{"--certificate-identity", strings.Replace(keylessIdentity, "acme", "evil", 1), "--certificate-oidc-issuer", keylessIssuer},
			{"--certificate-identity", keylessIdentity, "--certificate-oidc-issuer", "https://accounts.google.com"},
		} {
			args := append([]string{"--plain-http", dst.Host, "import", archivePath, "--target", dst.Ref("shop"), "-m", filepath.Join(t.TempDir(), "m.json"),
				"--sigstore-tuf-root", pin}, bad...)
			code, stdout, stderr := sigCLI(t, args...)
			if code != 3 || !strings.Contains(stderr, "signature does not verify") {
				t.Fatalf("import with %v: exit %d\n%s\n%s", bad, code, stdout, stderr)
			}
			if repos, err := dst.Repositories(ctx); err != nil || len(repos) != 0 {
				t.Fatalf("a refused import left repositories %v (%v)", repos, err)
			}
		}
		// A policy that also wants an SPDX SBOM of every library image.
		policy := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(policy, []byte(shopPolicy("**/library/**", "spdxjson")), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := sigCLI(t, "--plain-http", dst.Host, "import", archivePath, "--target", dst.Ref("shop"), "-m", filepath.Join(t.TempDir(), "m.json"),
			"--sigstore-tuf-root", pin, "--policy", policy)
		if code != 3 || !strings.Contains(stderr, "image policy not satisfied") || !strings.Contains(stderr, "no verified attestation https://spdx.dev/Document") {
			t.Fatalf("import against a policy it violates: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if repos, err := dst.Repositories(ctx); err != nil || len(repos) != 0 {
			t.Fatalf("a refused import left repositories %v (%v)", repos, err)
		}
		// Without the pinned TUF root, the carried trusted root is not trusted.
		code, _, stderr = sigCLI(t, append([]string{"verify", archivePath}, id...)...)
		if code != 3 || !strings.Contains(stderr, "no Sigstore trusted root") {
			t.Fatalf("verify without the pinned TUF root: exit %d\n%s", code, stderr)
		}
	})

	dst := startRegistry(t)
	mapping := filepath.Join(dir, "mapping.json")
	args := append([]string{"--plain-http", dst.Host, "--output", "json", "import", archivePath, "--target", dst.Ref("shop"), "-m", mapping,
		"--sigstore-tuf-root", pin, "--require-signatures"}, id...)
	code, stdout, stderr = sigCLI(t, args...)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var ir importer.Result
	if err := json.Unmarshal([]byte(stdout), &ir); err != nil {
		t.Fatal(err)
	}
	rep := ir.Signatures.Report
	if rep == nil || !rep.Signed || rep.Sigstore == nil || rep.Sigstore.Anchor != "pin" || !rep.Sigstore.Used {
		t.Fatalf("import report: %s", stdout)
	}
	sigs, atts := map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for _, a := range rep.Artifacts {
		if a.Format != "cosign" && a.Format != "cosign-attestation" {
			continue
		}
		if !a.Verified || a.Signer == nil || a.Signer.Identity != keylessIdentity || a.Signer.Issuer != keylessIssuer || a.Signer.LogIndex == nil {
			t.Errorf("%s %s of %s: verified %v, signer %+v, note %q", a.Format, a.Digest, a.SubjectLabel, a.Verified, a.Signer, a.Note)
		}
		if a.Format == "cosign" {
			sigs[a.Subject] = true
		} else if a.PredicateType == "https://slsa.dev/provenance/v1" {
			atts[a.Subject] = true
		}
	}
	for d := range signed {
		if !sigs[d] || !atts[d] {
			t.Errorf("%s: signature verified %v, provenance verified %v", d, sigs[d], atts[d])
		}
	}
	// The same with a policy instead of the identity flags: every image
	// signed by the release workflow and with SLSA provenance.
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(shopPolicy("**", "slsaprovenance1")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = sigCLI(t, "--output", "json", "verify", archivePath, "--sigstore-tuf-root", pin, "--policy", policy)
	if code != 0 {
		t.Fatalf("verify --policy: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var vr struct {
		Signatures struct {
			Policy []struct {
				Reference string
				Satisfied []string
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &vr); err != nil || len(vr.Signatures.Policy) != len(pb.Images)+1 {
		t.Fatalf("verify --policy report (%v):\n%s", err, stdout)
	}
	// The readable report names the signer.
	code, stdout, stderr = sigCLI(t, append([]string{"verify", archivePath, "--sigstore-tuf-root", pin}, id...)...)
	if code != 0 || !strings.Contains(stdout, "signer "+keylessIdentity+" (issuer "+keylessIssuer+")") || !strings.Contains(stdout, "TUF chain verified offline against the pinned root") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// shopPolicy is a ClusterImagePolicy: images matching glob are signed by
// the release workflow and attested with predicate (with provenance too,
// unless that is the predicate).
func shopPolicy(glob, predicate string) string {
	return `apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: shop-release
spec:
  images:
  - glob: "` + glob + `"
  authorities:
  - name: release-workflow
    keyless:
      identities:
      - issuer: ` + keylessIssuer + `
        subjectRegExp: "^https://github.com/acme/shop/"
    attestations:
    - name: required
      predicateType: ` + predicate + `
`
}
