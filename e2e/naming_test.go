package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cnabio/cnab-go/bundle"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// maxPathSegments refuses, the way registries without nested paths do
// (Docker Hub, Quay: NAME_INVALID), every request for a repository with more
// than n path segments. It wraps the real registry.
func maxPathSegments(n int) harness.RegistryOption {
	return harness.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if repo, ok := repoOfPath(r.URL.Path); ok && strings.Count(repo, "/")+1 > n {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"errors":[{"code":"NAME_INVALID","message":"invalid repository name","detail":"%s: at most %d path segments"}]}`, repo, n)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
}

func repoOfPath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", false
	}
	for _, sep := range []string{"/blobs/", "/manifests/", "/tags/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			return rest[:i], true
		}
	}
	return "", false
}

// exportSample exports the sample bundle from src into a new archive.
func exportSample(t *testing.T, src *harness.Registry, pb *harness.PushedBundle, opts ...export.Option) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle.tar")
	if _, err := export.Export(context.Background(), export.Request{Reference: pb.Ref, Output: out}, append([]export.Option{export.WithClient(clientFor(t, src))}, opts...)...); err != nil {
		t.Fatal(err)
	}
	return out
}

// listing is every repository of a registry with its tags.
func listing(t *testing.T, r *harness.Registry) map[string][]string {
	t.Helper()
	ctx := context.Background()
	repos, err := r.Repositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, repo := range repos {
		tags, err := r.Tags(ctx, repo)
		if err != nil && !registry.IsNotFound(err) { // blobs but no tags yet
			t.Fatal(err)
		}
		slices.Sort(tags)
		out[repo] = tags
	}
	return out
}

func TestNamingPolicies(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	archivePath := exportSample(t, src, pb)
	src.Close()

	cases := []struct {
		naming relocate.Naming
		lim    int
		// repos is what the target must list afterwards.
		repos func(host string) []string
	}{
		{relocate.NamingBundleRepo, 0, func(string) []string { return []string{"airgap/bundles/sample-app"} }},
		{relocate.NamingPreserve, 0, func(string) []string {
			return []string{"airgap/bundles/sample-app", "airgap/cnab/sample-app-installer", "airgap/library/db", "airgap/library/web", "airgap/library/worker"}
		}},
		{relocate.NamingFlatten, 2, nil},
	}
	for _, tc := range cases {
		t.Run(string(tc.naming), func(t *testing.T) {
			var opts []harness.RegistryOption
			if tc.lim > 0 {
				opts = append(opts, maxPathSegments(tc.lim))
			}
			dst := startRegistry(t, opts...)
			ir, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"}, importer.WithClient(clientFor(t, dst)),
				importer.WithNaming(tc.naming), importer.WithNameLimits(relocate.Limits{MaxPathSegments: tc.lim}))
			if err != nil {
				t.Fatal(err)
			}
			checkImported(t, pb, dst, ir)
			got := listing(t, dst)
			var repos []string
			for r := range got {
				repos = append(repos, r)
			}
			slices.Sort(repos)
			switch tc.naming {
			case relocate.NamingFlatten:
				// Every repository has two segments: the prefix and one flat name.
				if len(repos) != len(pb.Images)+1 {
					t.Fatalf("flatten made repositories %v", repos)
				}
				for _, r := range repos {
					if strings.Count(r, "/") != 1 || !strings.HasPrefix(r, "airgap/") {
						t.Fatalf("flatten made %s", r)
					}
				}
				if !slices.ContainsFunc(repos, func(r string) bool { return strings.HasPrefix(r, "airgap/library-web-") }) {
					t.Fatalf("flatten made %v, want airgap/library-web-<hash> for library/web", repos)
				}
			default:
				if want := tc.repos(dst.Host); !slices.Equal(repos, want) {
					t.Fatalf("repositories %v, want %v", repos, want)
				}
			}
			for _, img := range pb.Images {
				v := ir.Mapping[img.Image]
				ref, err := name.ParseReference(v)
				if err != nil {
					t.Fatal(err)
				}
				if tc.naming == relocate.NamingBundleRepo && ref.Context().RepositoryStr() != "airgap/bundles/sample-app" {
					t.Fatalf("bundle-repo put %s at %s", img.Image, v)
				}
				if tc.naming == relocate.NamingPreserve {
					orig, _ := name.ParseReference(img.Image)
					if ref.Context().RepositoryStr() != "airgap/"+orig.Context().RepositoryStr() {
						t.Fatalf("preserve put %s at %s", img.Image, v)
					}
				}
				if tc.naming != relocate.NamingBundleRepo {
					// The image keeps its tag at its own repository.
					orig, _ := name.ParseReference(img.Image)
					tag := orig.(name.Tag).TagStr()
					if !slices.Contains(got[ref.Context().RepositoryStr()], tag) {
						t.Fatalf("%s: tag %s missing at %s (%v)", img.Image, tag, ref.Context(), got[ref.Context().RepositoryStr()])
					}
					tagged, _ := name.ParseReference(ref.Context().Name()+":"+tag, name.Insecure)
					d, err := remote.Head(tagged, remote.WithTransport(dst.Transport()))
					if err != nil || d.Digest.String() != img.ContentDigest.String() {
						t.Fatalf("%s resolves to %v (%v), want %s", tagged, d, err, img.ContentDigest)
					}
				}
			}
		})
	}
}

// Names that cannot work are refused before any request reaches the target:
// too many path segments for the target, names longer than 255 characters,
// two images that would land in one repository.
func TestNamingRefusedBeforeAnyByteMoves(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	src2 := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	archivePath := exportSample(t, src, pb)

	// A bundle.json with the same library/web path on two registries.
	web := mustImage(t, pb, "web")
	mirror, err := harness.SampleBundle(ctx, src2, harness.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Unmarshal(pb.BundleJSON)
	if err != nil {
		t.Fatal(err)
	}
	w2 := b.Images["web"]
	w2.Image = mustImage(t, mirror, "web").Image
	b.Images["web-mirror"] = w2
	if w2.Digest != web.ContentDigest.String() {
		t.Fatalf("fixture: %s vs %s", w2.Digest, web.ContentDigest)
	}
	raw, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bf := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(bf, raw, 0o644)
	twoWebs := filepath.Join(t.TempDir(), "two-webs.tar")
	if _, err := export.Export(ctx, export.Request{BundleFile: bf, Output: twoWebs}, export.WithClient(clientFor(t, src, src2))); err != nil {
		t.Fatal(err)
	}

	dst := startRegistry(t, maxPathSegments(2))
	cases := []struct {
		name        string
		archivePath string
		prefix      string
		naming      relocate.Naming
		lim         int
		want        string
	}{
		{"preserve over two segments", archivePath, "airgap", relocate.NamingPreserve, 2, "try --naming flatten"},
		{"bundle-repo over two segments", archivePath, "airgap", relocate.NamingBundleRepo, 2, "path segments"},
		{"longer than 255", archivePath, strings.Repeat("p", 250), relocate.NamingPreserve, 0, "255 characters"},
		{"collision", twoWebs, "airgap", relocate.NamingPreserve, 0, "would both be placed at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst.ResetCounts()
			mapping := filepath.Join(t.TempDir(), "m.json")
			_, err := importer.Import(ctx, importer.Request{Archive: tc.archivePath, Target: dst.Host + "/" + tc.prefix, MappingPath: mapping}, importer.WithClient(clientFor(t, dst)),
				importer.WithNaming(tc.naming), importer.WithNameLimits(relocate.Limits{MaxPathSegments: tc.lim}))
			if !errors.Is(err, relocate.ErrNaming) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a naming error with %q, got %v", tc.want, err)
			}
			if n := dst.Counts(); n.Requests != 0 {
				t.Fatalf("the target was contacted: %+v", n)
			}
			if _, err := os.Stat(mapping); !os.IsNotExist(err) {
				t.Fatal("a mapping was written")
			}
		})
	}
	// The same two images stay apart when flattened: the hash covers the registry.
	ir, err := importer.Import(ctx, importer.Request{Archive: twoWebs, Target: dst.Host + "/airgap"}, importer.WithClient(clientFor(t, dst)),
		importer.WithNaming(relocate.NamingFlatten), importer.WithNameLimits(relocate.Limits{MaxPathSegments: 2}))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := name.ParseReference(ir.Mapping[web.Image])
	c, _ := name.ParseReference(ir.Mapping[w2.Image])
	if a.Context().Name() == c.Context().Name() {
		t.Fatalf("flatten put %s and %s in one repository", web.Image, w2.Image)
	}
	// Without --max-path-segments the registry itself refuses, mid-import,
	// with its own diagnosis.
	_, err = importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"}, importer.WithClient(clientFor(t, dst)), importer.WithNaming(relocate.NamingPreserve))
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") {
		t.Fatalf("want the registry's refusal (400), got %v", err)
	}
}

// cliRunner runs the cnab-airgap command and returns its exit code,
// standard output and standard error.
type cliRunner func(t *testing.T, args ...string) (int, string, string)

// newCLI returns a runner for the cnab-airgap binary.
func newCLI(t *testing.T) cliRunner {
	t.Helper()
	cliBinary(t)
	return func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		return runCLIBinary(t, args...)
	}
}

// import --dry-run prints the planned mapping and what would be uploaded
// after asking the target what it has, and changes nothing at the target.
func TestImportDryRun(t *testing.T) {
	ctx := context.Background()
	cli := newCLI(t)
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	archivePath := exportSample(t, src, pb)
	src.Close()
	dst := startRegistry(t, maxPathSegments(2))
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var allBytes int64
	for _, s := range b.Blobs {
		allBytes += s
	}
	allBlobs := len(b.Blobs)
	b.Close()

	mapping := filepath.Join(t.TempDir(), "relocation-mapping.json")
	args := []string{"--plain-http", dst.Host, "import", "--target", dst.Host + "/airgap", "--mapping", mapping, "--naming", "flatten", "--max-path-segments", "2", "--dry-run", archivePath}
	dryRun := func(wantUpload int, wantBytes int64) {
		t.Helper()
		before := listing(t, dst)
		dst.ResetCounts()
		code, out, errOut := cli(t, args...)
		if code != 0 {
			t.Fatalf("dry run exit %d: %s", code, errOut)
		}
		for _, img := range pb.Images {
			if !strings.Contains(out, "  "+img.Image+"\n    -> "+dst.Host+"/airgap/") || !strings.Contains(out, "@"+img.ContentDigest.String()) {
				t.Fatalf("the plan does not show where %s goes:\n%s", img.Image, out)
			}
		}
		if !strings.Contains(out, fmt.Sprintf("would upload %d (", wantUpload)) {
			t.Fatalf("want %d blobs to upload:\n%s", wantUpload, out)
		}
		code, jout, errOut := cli(t, append([]string{"-O", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("dry run exit %d: %s", code, errOut)
		}
		var r importer.Result
		if err := json.Unmarshal([]byte(jout), &r); err != nil {
			t.Fatal(err)
		}
		if !r.DryRun || r.BlobsUploaded != int64(wantUpload) || r.BytesUploaded != wantBytes || r.BlobsUploaded+r.BlobsSkipped != int64(allBlobs) {
			t.Fatalf("dry run result: %+v", r)
		}
		n := dst.Counts()
		if n.BlobUploadStarts != 0 || n.BlobMounts != 0 || n.ManifestPuts != 0 || n.Requests == 0 {
			t.Fatalf("the dry run wrote to the target or did not ask it: %+v", n)
		}
		if after := listing(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("the target changed: %v -> %v", before, after)
		}
		if _, err := os.Stat(mapping); !os.IsNotExist(err) {
			t.Fatal("a dry run wrote a mapping")
		}
	}
	dryRun(allBlobs, allBytes)
	if _, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst.Host + "/airgap"}, importer.WithClient(clientFor(t, dst)),
		importer.WithNaming(relocate.NamingFlatten), importer.WithNameLimits(relocate.Limits{MaxPathSegments: 2})); err != nil {
		t.Fatal(err)
	}
	if len(listing(t, dst)) == 0 {
		t.Fatal("the import pushed nothing")
	}
	dryRun(0, 0)
}
