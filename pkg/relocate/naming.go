package relocate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// Naming is a strategy that chooses target repositories.
type Naming string

// Naming strategies.
const (
	// NamingBundleRepo puts every image into the bundle's repository under
	// the target prefix, as cnab-to-oci and Porter expect. The default.
	NamingBundleRepo Naming = "bundle-repo"
	// NamingPreserve also places each image at its original repository path
	// under the target prefix.
	NamingPreserve Naming = "preserve"
	// NamingFlatten places each image at prefix/<flattened path>-<hash>,
	// for registries that allow few path segments (duffle style).
	NamingFlatten Naming = "flatten"
)

// ErrNaming is returned when names cannot be chosen safely.
var ErrNaming = errdefs.New("naming", errdefs.ErrInvalidInput)

// ParseNaming validates a strategy name ("" means bundle-repo).
func ParseNaming(s string) (Naming, error) {
	switch Naming(s) {
	case "", NamingBundleRepo:
		return NamingBundleRepo, nil
	case NamingPreserve, NamingFlatten:
		return Naming(s), nil
	}
	return "", fmt.Errorf("%w: unknown strategy %q (bundle-repo, preserve, flatten)", ErrNaming, s)
}

// Target is REGISTRY[/PREFIX], where relocated content goes.
type Target struct {
	Registry string // host[:port]
	Prefix   string // may be empty
}

// ParseTarget parses "REGISTRY/PREFIX" (the prefix is optional).
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSuffix(s, "/")
	host, prefix, _ := strings.Cut(s, "/")
	if host == "" {
		return Target{}, fmt.Errorf("%w: target %q: no registry", ErrNaming, s)
	}
	// Like the distribution reference grammar, a registry must look like a
	// host: a dot, a port or "localhost". Anything else would be read as a
	// Docker Hub path.
	if host != "localhost" && !strings.ContainsAny(host, ".:") {
		return Target{}, fmt.Errorf("%w: target %q: %q is not a registry host (host.domain, host:port or localhost)", ErrNaming, s, host)
	}
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil {
		return Target{}, fmt.Errorf("%w: target %q: %w", ErrNaming, s, err)
	}
	if prefix != "" {
		if err := checkPath(prefix); err != nil {
			return Target{}, fmt.Errorf("target %q: %w", s, err)
		}
	}
	return Target{Registry: host, Prefix: prefix}, nil
}

// Repo returns the full repository name for path under the target.
func (t Target) Repo(path string) string {
	if t.Prefix == "" {
		return t.Registry + "/" + path
	}
	return t.Registry + "/" + t.Prefix + "/" + path
}

// String returns REGISTRY[/PREFIX].
func (t Target) String() string {
	if t.Prefix == "" {
		return t.Registry
	}
	return t.Registry + "/" + t.Prefix
}

var nonRepoChars = regexp.MustCompile(`[^a-z0-9._-]+`)

// SanitizePath turns a bundle name into a valid repository path component.
func SanitizePath(s string) string {
	s = nonRepoChars.ReplaceAllString(strings.ToLower(s), "-")
	// The grammar allows ".", "_", "__" or any run of "-" between
	// alphanumerics; any other run of separators becomes one "-".
	s = separatorRun.ReplaceAllStringFunc(s, func(run string) string {
		if run == "." || run == "_" || run == "__" || strings.Trim(run, "-") == "" {
			return run
		}
		return "-"
	})
	s = strings.Trim(s, "-._")
	if s == "" {
		s = "bundle"
	}
	return s
}

var separatorRun = regexp.MustCompile(`[._-]+`)

// pathComponent is the distribution spec's grammar for one path component.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)

// checkPath checks every component of a repository path against the
// distribution grammar.
func checkPath(path string) error {
	for _, c := range strings.Split(path, "/") {
		if !pathComponent.MatchString(c) {
			return fmt.Errorf("%w: path component %q of %q is not valid (lower-case letters and digits, separated by ., _, __ or -)", ErrNaming, c, path)
		}
	}
	return nil
}

// Limits constrain target names.
type Limits struct {
	// MaxPathSegments is the most path segments a repository may have
	// (0: no limit). Harbor projects allow two.
	MaxPathSegments int
}

// maxRepoNameLen is the distribution spec's limit on repository names.
const maxRepoNameLen = 255

// Plan maps each image to its repository at the target.
type Plan struct {
	// BundleRepo is the repository the bundle (and, for bundle-repo and
	// preserve, every image) goes to.
	BundleRepo string
	// ImageRepos maps each image's exact reference string to its repository.
	ImageRepos map[string]string
	// ImageTags maps an image reference to the tag it keeps at its
	// repository (preserve and flatten keep the original tag), if any.
	ImageTags map[string]string
}

// PlanNames chooses repositories for the bundle and its images. bundlePath
// is the bundle's repository path at the source (e.g. "bundles/app").
// It checks every name for validity, length, segment limits and collisions
// before anything moves.
func PlanNames(t Target, n Naming, bundlePath string, images []Image, lim Limits) (*Plan, error) {
	p := &Plan{BundleRepo: t.Repo(bundlePath), ImageRepos: map[string]string{}, ImageTags: map[string]string{}}
	if n == NamingFlatten {
		p.BundleRepo = t.Repo(flatten(bundlePath))
	}
	if err := checkRepo(p.BundleRepo, t, lim); err != nil {
		return nil, fmt.Errorf("bundle repository: %w", err)
	}
	owner := map[string]string{} // repository -> original repository that claimed it
	for _, img := range images {
		if _, done := p.ImageRepos[img.Ref]; done {
			continue
		}
		if n == NamingBundleRepo || !img.Relocatable() {
			p.ImageRepos[img.Ref] = p.BundleRepo
			continue
		}
		ref, err := name.ParseReference(img.Ref)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %q: %w", ErrNaming, img.Label(), img.Ref, err)
		}
		orig := ref.Context().RepositoryStr()
		var repo string
		switch n {
		case NamingPreserve:
			repo = t.Repo(orig)
		case NamingFlatten:
			repo = t.Repo(flattenRepo(ref.Context()))
		}
		if prev, ok := owner[repo]; ok && prev != ref.Context().Name() {
			return nil, fmt.Errorf("%w: %s and %s would both be placed at %s", ErrNaming, prev, ref.Context().Name(), repo)
		}
		owner[repo] = ref.Context().Name()
		if err := checkRepo(repo, t, lim); err != nil {
			return nil, fmt.Errorf("%s (%s): %w", img.Label(), img.Ref, err)
		}
		p.ImageRepos[img.Ref] = repo
		if tag, ok := ref.(name.Tag); ok && tag.TagStr() != "" && strings.Contains(img.Ref, ":"+tag.TagStr()) {
			p.ImageTags[img.Ref] = tag.TagStr()
		}
	}
	return p, nil
}

// flatten turns a/b/c into a-b-c-<8 hex of sha256(a/b/c)>, one path segment.
func flatten(path string) string { return flattenHashed(path, path) }

// flattenRepo flattens an image's repository path without its registry
// (registry.example/a/b becomes a-b-<hash>) and hashes its full name,
// registry included, so the same path on two registries stays apart
// (duffle's scheme).
func flattenRepo(r name.Repository) string { return flattenHashed(r.RepositoryStr(), r.Name()) }

// flattenHashed joins path's segments with "-" and appends 8 hex digits of
// sha256(full).
func flattenHashed(path, full string) string {
	sum := sha256.Sum256([]byte(full))
	flat := SanitizePath(strings.ReplaceAll(path, "/", "-"))
	const keep = 200
	if len(flat) > keep {
		flat = flat[:keep]
	}
	return flat + "-" + hex.EncodeToString(sum[:4])
}

func checkRepo(repo string, t Target, lim Limits) error {
	if _, err := name.NewRepository(repo); err != nil {
		return fmt.Errorf("%w: %q is not a valid repository: %w", ErrNaming, repo, err)
	}
	path := strings.TrimPrefix(repo, t.Registry+"/")
	if err := checkPath(path); err != nil {
		return err
	}
	if len(path) > maxRepoNameLen {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrNaming, path, maxRepoNameLen)
	}
	if lim.MaxPathSegments > 0 {
		if segs := strings.Count(path, "/") + 1; segs > lim.MaxPathSegments {
			return fmt.Errorf("%w: %q has %d path segments, the target allows %d (try --naming flatten)", ErrNaming, path, segs, lim.MaxPathSegments)
		}
	}
	return nil
}
