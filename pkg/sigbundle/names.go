package sigbundle

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
)

// Names are the names the carried content is published under: what a
// verified signature must also vouch for. A signature proves a digest; the
// names decide where that digest is pushed and under which tag, so Verify
// binds them (see Carried.Names):
//
//   - Notary v1 trust data names its GUN and target. They must be the
//     registry and repository of one of the subject's references, and its
//     tag. Trust data for another repository, or for another tag (a
//     rollback to 0.9.0 pushed as 2.0.0), is refused with ErrNameMismatch.
//     The one exception needs the operator's word (WithAllowRename): the
//     same path and tag under another registry or an added prefix, as in
//     an archive exported from a mirror of the publisher's repository.
//   - A cosign signature claims a docker-reference. A claim whose
//     registry, path or tag (where it has one) is not the subject's does
//     not make the bundle signed (it is reported), unless WithAllowRename
//     says the rename is intended.
//
// Notation signatures and attestations claim no name: their reports say
// none. Relocation itself needs no rename: Import pushes under the
// operator's registry and prefix followed by the publisher's path and tag.
type Names struct {
	// Subjects maps a manifest digest to the references it is published
	// under, each "REGISTRY/PATH:TAG" or "REGISTRY/PATH" (a reference by
	// digest only has no tag to bind).
	Subjects map[digest.Digest][]string
	// Relocated says the references are where the content was relocated to
	// (a bundle checked at the registry it was imported into): a
	// publisher's name then matches when its path is the whole path or its
	// last segments (the registry and any prefix are the operator's). When
	// false the references are the publisher's own, and a Notary GUN must
	// equal the repository, registry included.
	Relocated bool
}

// Add records that d is published under ref.
func (n *Names) Add(d digest.Digest, ref string) {
	if ref == "" {
		return
	}
	if n.Subjects == nil {
		n.Subjects = map[digest.Digest][]string{}
	}
	if !slices.Contains(n.Subjects[d], ref) {
		n.Subjects[d] = append(n.Subjects[d], ref)
	}
}

// Name match outcomes in ArtifactReport.NameMatch.
const (
	// NameMatches: the claimed name is the subject's (registry aside).
	NameMatches = "match"
	// NameContradicts: the claimed path or tag is not the subject's.
	NameContradicts = "mismatch"
	// NameRenamed: it contradicts, and WithAllowRename accepted that.
	NameRenamed = "renamed"
)

// parsedName is a reference split into what binding compares.
type parsedName struct {
	full string // as given
	gun  string // registry and repository, Docker Hub spelled docker.io/...
	path string // repository path without the registry
	tag  string // "" when the reference has none
}

func parseName(ref string) (parsedName, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		// A repository without tag or digest.
		repo, rerr := name.NewRepository(ref)
		if rerr != nil {
			return parsedName{}, fmt.Errorf("name %q: %w", ref, err)
		}
		return parsedName{full: ref, gun: GUN(repo), path: repo.RepositoryStr()}, nil
	}
	p := parsedName{full: ref, gun: GUN(r.Context()), path: r.Context().RepositoryStr()}
	// ParseReference gives a bare repository the tag "latest": only a tag
	// written in the reference counts.
	if t, ok := r.(name.Tag); ok && strings.HasSuffix(ref, ":"+t.TagStr()) {
		p.tag = t.TagStr()
	}
	return p, nil
}

// compare says how a publisher's name pub (a Notary GUN, a claimed
// reference) stands to a subject's name: NameMatches when registry, path
// and tag (where pub has one) are the same; nameRelocated when the tag
// agrees and pub's path is the subject's path or its last whole segments
// under another registry or prefix (relocated content, or an archive
// exported from a mirror); NameContradicts otherwise. With relocated names
// (the subject's names are where the operator put it), nameRelocated is a
// match.
func (n *Names) compare(pub, subject parsedName) string {
	if pub.tag != "" && pub.tag != subject.tag {
		return NameContradicts
	}
	switch {
	case pub.gun == subject.gun:
		return NameMatches
	case pub.path == subject.path || strings.HasSuffix(subject.path, "/"+pub.path):
		if n.Relocated {
			return NameMatches
		}
		return nameRelocated
	}
	return NameContradicts
}

// nameRelocated is compare's verdict for a name under another registry or
// prefix; it becomes NameMatches, NameRenamed or NameContradicts.
const nameRelocated = "relocated"

// names returns the parsed names of subject d.
func (n *Names) names(d digest.Digest) []parsedName {
	var out []parsedName
	for _, ref := range n.Subjects[d] {
		if p, err := parseName(ref); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// bindNotary checks that trust data for gun and target vouches for one of
// subject d's names: the same repository and tag; or, with allowRename, the
// same tag and repository path under another registry or prefix (an
// archive exported from a mirror). It returns whether the rename was
// needed, or an ErrNameMismatch cause naming both sides.
func (n *Names) bindNotary(d digest.Digest, gun, target string, allowRename bool) (bool, error) {
	names := n.names(d)
	if len(names) == 0 {
		return false, wrapf(ErrNameMismatch, "trust data of GUN %s target %s signs %s, which the archive publishes under no name: nothing binds it to what would be pushed", gun, target, d)
	}
	pub, err := parseName(gun + ":" + target)
	if err != nil {
		return false, wrapf(ErrNameMismatch, "trust data names GUN %q target %q: %v", gun, target, err)
	}
	var seen []string
	relocated := false
	for _, p := range names {
		switch n.compare(pub, p) {
		case NameMatches:
			return false, nil
		case nameRelocated:
			relocated = true
		}
		seen = append(seen, p.full)
	}
	if relocated && allowRename {
		return true, nil
	}
	what := "the archive names it"
	if n.Relocated {
		what = "it is checked as"
	}
	hint := ""
	if relocated {
		hint = "; the path and tag agree under another registry or prefix: if this archive was exported from a mirror of the publisher's repository, --allow-rename accepts that"
	}
	return false, wrapf(ErrNameMismatch, "trust data signs GUN %s target %s, but %s %s: Notary trust data vouches only for the repository and tag it was signed for%s", gun, target, what, strings.Join(seen, ", "), hint)
}

// matchClaim compares a signer's claimed reference with subject d's names
// (compare). It returns NameMatches or NameContradicts (a claim under
// another registry or prefix contradicts too: the operator decides with
// WithAllowRename), and the names compared.
func (n *Names) matchClaim(d digest.Digest, claim string) (string, []string) {
	c, err := parseName(claim)
	var seen []string
	for _, p := range n.names(d) {
		seen = append(seen, p.full)
		if err == nil && n.compare(c, p) == NameMatches {
			return NameMatches, nil
		}
	}
	return NameContradicts, seen
}
