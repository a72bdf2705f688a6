package relocate

import (
	"errors"
	"maps"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

const seedBundle = `{"schemaVersion":"v1.2.0","name":"app","version":"0.1.0","invocationImages":[{"imageType":"docker","image":"registry.example.com/app/installer:0.1.0","contentDigest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}],"images":{"web":{"imageType":"oci","image":"registry.example.com/library/web:1.0","contentDigest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","mediaType":"application/vnd.oci.image.index.v1+json","size":1234}}}`

// FuzzParseMapping reads arbitrary relocation mappings: no panic, every
// refusal wraps ErrInvalidMapping, and an accepted mapping survives
// Marshal and a second parse unchanged, with every value a reference.
func FuzzParseMapping(f *testing.F) {
	f.Add([]byte(`{"registry.example.com/library/web:1.0":"127.0.0.1:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"a":"b"} {"c":"d"}`))
	f.Add([]byte(`{"":"x/y"}`))
	f.Add([]byte(`{"a":"UPPER/case"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMapping(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMapping) {
				t.Fatalf("unclassified refusal: %v", err)
			}
			return
		}
		for k, v := range m {
			if k == "" {
				t.Fatal("empty key accepted")
			}
			if _, err := name.ParseReference(v); err != nil {
				t.Fatalf("value %q accepted: %v", v, err)
			}
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseMapping(out)
		if err != nil {
			t.Fatalf("a marshalled mapping does not parse: %v\n%s", err, out)
		}
		if !maps.Equal(m, again) {
			t.Fatalf("round trip changed the mapping: %v -> %v", m, again)
		}
	})
}

// FuzzParseBundle reads arbitrary bundle.json: no panic, refusals wrap
// ErrInvalidBundle, and an accepted bundle lists each image with a role,
// a name and a non-empty reference, the same way on every parse.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(seedBundle))
	f.Add([]byte(`{"name":"x","invocationImages":[]}`))
	f.Add([]byte(`{"name":"x","invocationImages":[{"image":""}]}`))
	f.Add([]byte(`{"name":"x","invocationImages":[{"image":"a/b:c","contentDigest":"md5:x"}]}`))
	f.Add([]byte(`{"name":"x","invocationImages":[{"image":"a/b:c"}],"custom":{"io.cnab.dependencies":{}}}`))
	f.Add([]byte(`[[[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bun, err := ParseBundle(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidBundle) {
				t.Fatalf("unclassified refusal: %v", err)
			}
			return
		}
		invocations := 0
		for _, img := range bun.Images {
			switch img.Role {
			case RoleInvocation:
				invocations++
			case RoleComponent:
			default:
				t.Fatalf("image %+v has role %q", img, img.Role)
			}
			if img.Ref == "" || img.Label() == "" {
				t.Fatalf("image %+v accepted", img)
			}
			if img.ContentDigest != "" && img.ContentDigest.Validate() != nil {
				t.Fatalf("invalid contentDigest %q accepted", img.ContentDigest)
			}
		}
		if invocations == 0 {
			t.Fatal("a bundle without invocation images was accepted")
		}
		again, err := ParseBundle(b)
		if err != nil || len(again.Images) != len(bun.Images) {
			t.Fatalf("second parse differs: %v", err)
		}
		for i := range bun.Images {
			if again.Images[i] != bun.Images[i] {
				t.Fatalf("image order is not stable: %+v vs %+v", again.Images[i], bun.Images[i])
			}
		}
	})
}

// FuzzParseTarget parses arbitrary --target values: an accepted target
// renders back to itself and yields valid repository names.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5000", "registry.example.com/airgap", "localhost:5000/a/b/", "/x", "Registry/UPPER", "host:99999999/x", "a..b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			if !errors.Is(err, ErrNaming) {
				t.Fatalf("unclassified refusal: %v", err)
			}
			return
		}
		again, err := ParseTarget(tg.String())
		if err != nil || again != tg {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, tg, tg.String(), again, err)
		}
		if _, err := name.NewRepository(tg.Repo("bundle")); err != nil {
			t.Fatalf("%+v gives an invalid repository: %v", tg, err)
		}
	})
}

var repoPath = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)

// FuzzPlanNames feeds arbitrary image references and bundle paths to every
// naming strategy: whatever is accepted is a valid repository name under
// the target, within the length limit.
func FuzzPlanNames(f *testing.F) {
	f.Add("registry.example.com/library/web:1.0", "bundles/app", "preserve")
	f.Add("docker.io/library/nginx@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "app", "flatten")
	f.Add("web", "a/b", "bundle-repo")
	f.Add("REG.example.com/Upper:tag", "..", "flatten")
	f.Add(strings.Repeat("a/", 200)+"x:1", strings.Repeat("b", 300), "preserve")
	f.Fuzz(func(t *testing.T, ref, bundlePath, strategy string) {
		n, err := ParseNaming(strategy)
		if err != nil {
			return
		}
		tg := Target{Registry: "127.0.0.1:5000", Prefix: "airgap"}
		img := Image{Role: RoleComponent, Name: "c", Ref: ref}
		p, err := PlanNames(tg, n, bundlePath, []Image{img}, Limits{MaxPathSegments: 3})
		if err != nil {
			if !errors.Is(err, ErrNaming) {
				t.Fatalf("unclassified refusal: %v", err)
			}
			return
		}
		for _, repo := range append([]string{p.BundleRepo}, p.ImageRepos[ref]) {
			path, ok := strings.CutPrefix(repo, "127.0.0.1:5000/airgap/")
			if !ok || !repoPath.MatchString(path) || len(path) > maxRepoNameLen || strings.Count(path, "/") >= 3 {
				t.Fatalf("repository %q accepted for %q (%s)", repo, ref, n)
			}
			if _, err := name.NewRepository(repo); err != nil {
				t.Fatalf("repository %q does not parse: %v", repo, err)
			}
		}
		if tag, ok := p.ImageTags[ref]; ok {
			if _, err := name.NewTag(p.ImageRepos[ref] + ":" + tag); err != nil {
				t.Fatalf("tag %q kept for %q: %v", tag, ref, err)
			}
		}
	})
}

// FuzzSanitizePath: whatever a bundle is called, the path is a valid
// single repository path component.
func FuzzSanitizePath(f *testing.F) {
	for _, s := range []string{"My App", "", "..", "a/b", "ÄÖÜ", "--x--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := SanitizePath(s)
		if !repoPath.MatchString(p) || strings.Contains(p, "/") {
			t.Fatalf("SanitizePath(%q) = %q", s, p)
		}
	})
}
