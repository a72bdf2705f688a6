package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// writeCounter counts the requests that would change a registry: anything
// but GET and HEAD (uploads, manifest and tag PUTs, deletes).
type writeCounter struct{ n atomic.Int64 }

func (w *writeCounter) hook(r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.n.Add(1)
	}
}

// untouchedTarget starts a registry and returns it with a counter of the
// requests that would have changed it.
func untouchedTarget(t *testing.T) (*harness.Registry, *writeCounter) {
	t.Helper()
	w := &writeCounter{}
	return startRegistry(t, harness.WithRequestHook(w.hook)), w
}

// withReference rewrites the bundle reference index.json records (nothing
// signs it) and returns the new archive.
func withReference(t *testing.T, archive, ref string) string {
	t.Helper()
	files, _ := readTar(t, archive)
	idx := indexOf(t, files)
	if idx.Annotations[layout.AnnotationBundleReference] == "" {
		t.Fatal("the archive records no bundle reference")
	}
	idx.Annotations[layout.AnnotationBundleReference] = ref
	setIndex(files, idx)
	return writeTar(t, files)
}

// TestTrustBoundToPushedName: trust that verified is bound to the name
// that is pushed. An archive whose unsigned bundle reference was rewritten
// (another repository, another tag) is refused with exit 3 before a single
// request changes the target, and no mapping is written, although its
// Notary trust data verifies against the right pin; a cosign signature
// whose docker-reference contradicts the name does not make the bundle
// signed unless --allow-rename; trust anchors for evidence the archive does
// not carry are refused; --trust-state refuses older trust data.
func TestTrustBoundToPushedName(t *testing.T) {
	ctx := context.Background()
	s := newSignedSource(t)
	dir := s.dir
	pin := s.gun + "=" + s.rootID
	c := clientFor(t, s.src)
	exp := func(name string, opts ...export.Option) string {
		t.Helper()
		out := filepath.Join(dir, name)
		if _, err := export.Export(ctx, export.Request{Reference: s.pb.Ref, Output: out}, append([]export.Option{export.WithClient(c)}, opts...)...); err != nil {
			t.Fatal(err)
		}
		return out
	}
	notary := []export.Option{export.WithNotaryServer(s.notary.URL), export.WithSigningOptions(sigbundle.WithNotaryTransport(s.notary.Transport))}
	signed := exp("v1.tar", notary...)
	cosignOnly := exp("cosign.tar")
	unsigned := exp("unsigned.tar", export.WithSignatures(false))

	// A newer release of the same tag (every role's version goes up).
	if err := s.pub.Publish(harness.DefaultSampleTag, s.pb.BundleJSON, nil); err != nil {
		t.Fatal(err)
	}
	signedV2 := exp("v2.tar", notary...)
	s.src.Close() // everything below is offline
	s.notary.Close()

	otherRepo := s.src.Host + "/acme/other-product:" + harness.DefaultSampleTag
	otherTag := s.src.Host + "/" + harness.DefaultSampleRepository + ":2.0.0"
	refused := []struct {
		name    string
		archive string
		args    []string
		want    []string // in the message
	}{
		{"another repository", withReference(t, signed, otherRepo), []string{"--notary-pin", pin, "--require-signatures"},
			[]string{"signed for another name", "GUN " + s.gun, "acme/other-product:" + harness.DefaultSampleTag}},
		{"another tag", withReference(t, signed, otherTag), []string{"--notary-pin", pin, "--require-signatures"},
			[]string{"signed for another name", "target " + harness.DefaultSampleTag, harness.DefaultSampleRepository + ":2.0.0"}},
		{"another tag with re-signing asked", withReference(t, signed, otherTag), []string{"--notary-pin", pin, "--notary-resign",
			"--notary-server", "https://127.0.0.1:1", "--notary-trust-dir", t.TempDir()},
			[]string{"signed for another name"}},
		{"cosign claim contradicts the name", withReference(t, cosignOnly, otherRepo), []string{"--cosign-key", s.keyFile, "--require-signatures"},
			[]string{"signed for another name", "claims " + s.pb.Ref, "--allow-rename"}},
		{"pin for trust data not carried", cosignOnly, []string{"--notary-pin", pin},
			[]string{"trust anchor", "GUN " + s.gun, "no Notary trust data"}},
		{"cosign key for signatures not carried", unsigned, []string{"--cosign-key", s.keyFile},
			[]string{"trust anchor", "verified none of the 0 cosign"}},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			dst, writes := untouchedTarget(t)
			mapping := filepath.Join(t.TempDir(), "m.json")
			code, stdout, stderr := sigCLI(t, append([]string{"--plain-http", dst.Host, "import", tc.archive, "-t", dst.Host + "/mirror", "-m", mapping}, tc.args...)...)
			if code != 3 {
				t.Fatalf("exit %d, want 3\n%s\n%s", code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("the message does not say %q:\n%s", w, stderr)
				}
			}
			if n := writes.n.Load(); n != 0 {
				t.Errorf("%d requests changed the target", n)
			}
			if repos, _ := dst.Repositories(ctx); len(repos) != 0 {
				t.Errorf("repositories at the target: %v", repos)
			}
			if _, err := os.Stat(mapping); !os.IsNotExist(err) {
				t.Error("a mapping was written")
			}
		})
	}

	t.Run("claim reported and rename allowed", func(t *testing.T) {
		renamed := withReference(t, cosignOnly, otherRepo)
		dst, _ := untouchedTarget(t)
		code, stdout, stderr := sigCLI(t, "--plain-http", dst.Host, "--output", "json", "import", renamed, "-t", dst.Host+"/mirror",
			"-m", filepath.Join(t.TempDir(), "m.json"), "--cosign-key", s.keyFile, "--require-signatures", "--allow-rename")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		var res importer.Result
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range res.Signatures.Report.Artifacts {
			if a.Subject.String() == s.pb.Digest.String() && a.Format == "cosign" {
				found = a.ClaimedName == s.pb.Ref && a.NameMatch == sigbundle.NameRenamed && a.Verified
			}
		}
		if !found || !res.Signatures.Report.Signed || !strings.HasSuffix(res.BundleReference, "/mirror/acme/other-product:"+harness.DefaultSampleTag) {
			t.Fatalf("the rename is not reported as such: %+v %s", res.Signatures.Report.Artifacts, res.BundleReference)
		}
		// The name the publisher signed: the claim matches, and is said so.
		code, stdout, stderr = sigCLI(t, "--plain-http", dst.Host, "import", cosignOnly, "-t", dst.Host+"/mirror",
			"-m", filepath.Join(t.TempDir(), "m.json"), "--cosign-key", s.keyFile, "--require-signatures")
		if code != 0 || !strings.Contains(stdout, "claims "+s.pb.Ref+": matches") {
			t.Fatalf("exit %d, the matching claim is not reported:\n%s\n%s", code, stdout, stderr)
		}
	})

	t.Run("trust state refuses a rollback", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "trust-state.json")
		dst, _ := untouchedTarget(t)
		imp := func(archive string) (int, string) {
			code, stdout, stderr := sigCLI(t, "--plain-http", dst.Host, "import", archive, "-t", dst.Host+"/mirror",
				"-m", filepath.Join(t.TempDir(), "m.json"), "--notary-pin", pin, "--require-signatures", "--trust-state", state)
			return code, stdout + stderr
		}
		if code, out := imp(signed); code != 0 {
			t.Fatalf("first import: exit %d\n%s", code, out)
		}
		if code, out := imp(signedV2); code != 0 {
			t.Fatalf("newer import: exit %d\n%s", code, out)
		}
		st, err := sigbundle.ReadTrustState(state)
		if err != nil || st.GUNs[s.gun] == nil || st.GUNs[s.gun].Roles["targets/releases"] < 2 {
			t.Fatalf("trust state after two imports: %+v %v", st, err)
		}
		code, out := imp(signed)
		if code != 3 || !strings.Contains(out, "trust data rollback") || !strings.Contains(out, "older than trust data accepted before") {
			t.Fatalf("replayed older trust data: exit %d\n%s", code, out)
		}
		code, stdout, stderr := sigCLI(t, "verify", signed, "--notary-pin", pin, "--trust-state", state)
		if code != 3 || !strings.Contains(stderr, "rollback") {
			t.Fatalf("verify of older trust data: exit %d\n%s\n%s", code, stdout, stderr)
		}
		// The library says which sentinel.
		b, err := archive.Load(ctx, signed, layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.VerifySignatures(ctx, sigbundle.WithNotaryPin(s.gun, s.rootID), sigbundle.WithTrustState(st)); !errors.Is(err, sigbundle.ErrRollback) {
			t.Fatalf("library: %v", err)
		}
	})
}
