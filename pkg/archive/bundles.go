package archive

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// BundleID is how every report names a bundle: export, import, inspect
// and verify, of the whole archive and of each of its bundles.
type BundleID struct {
	// Bundle and Version are bundle.json's name and version.
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	// BundleDigest is the sha256 of bundle.json, byte for byte.
	BundleDigest string `json:"bundleDigest"`
	// IndexDigest is the digest of the bundle's OCI index.
	IndexDigest string `json:"indexDigest"`
}

// ID names the bundle in reports.
func (b *Bundle) ID() BundleID {
	return BundleID{Bundle: b.Bundle.Name, Version: b.Bundle.Version, BundleDigest: b.BundleDigest.String(), IndexDigest: b.Index.Digest.String()}
}

// BundleSummary reports one bundle of an archive that carries several
// (format 3): export, import and inspect list one per bundle, the
// archive's primary bundle (whose bundle.json is the archive root's) first.
type BundleSummary struct {
	BundleID
	// Reference is the reference it was exported from.
	Reference string `json:"reference,omitempty"`
	// Requested is true for a bundle the export was asked for, false for
	// one carried only because another depends on it.
	Requested bool `json:"requested"`
	// Dependencies are the bundles it depends on, as the archive carries
	// them.
	Dependencies []DependencyLink `json:"dependencies,omitempty"`
	Images       []ImageSummary   `json:"images"`
}

// DependencyLink is a dependency of a bundle and the bundle that
// satisfies it.
type DependencyLink struct {
	// Alias is the dependency's name in the parent's bundle.json.
	Alias string `json:"alias"`
	// Reference is the reference the parent declares for it.
	Reference string `json:"reference"`
	// IndexDigest is the digest of the carried bundle's OCI index.
	IndexDigest string `json:"indexDigest"`
}

// Dependency is a dependency of a bundle that the archive carries.
type Dependency struct {
	// Alias is the dependency's name in the parent's bundle.json.
	Alias string
	// Reference is the bundle reference the parent declares for it.
	Reference string
	// Bundle is the carried bundle that satisfies it.
	Bundle *Bundle
}

// All returns the bundle and its Others: every bundle of the archive, the
// primary first.
func (b *Bundle) All() []*Bundle {
	return append([]*Bundle{b}, b.Others...)
}

// Summary reports the bundle.
func (b *Bundle) Summary() BundleSummary {
	s := BundleSummary{BundleID: b.ID(), Reference: b.Reference, Requested: b.Requested}
	for _, d := range b.DependsOn {
		s.Dependencies = append(s.Dependencies, DependencyLink{Alias: d.Alias, Reference: d.Reference, IndexDigest: d.Bundle.Index.Digest.String()})
	}
	for _, e := range b.Images {
		s.Images = append(s.Images, e.Summary())
	}
	return s
}

// linkBundles resolves the dependencies each bundle entry of a
// multi-bundle archive records (layout.AnnotationDependencies) to the
// bundles carried, each an alias its bundle.json declares, and gives each
// bundle the archive's other entries that belong to it: the signing
// artifacts whose subject is its content (or another of its artifacts).
// An artifact about content two bundles share belongs to both; an entry
// about nothing belongs to the primary bundle.
func (b *Bundle) linkBundles(all []*Bundle, extra []ocispec.Descriptor) error {
	byIndex := map[digest.Digest]*Bundle{}
	for _, x := range all {
		byIndex[x.Index.Digest] = x
	}
	var errs []error
	for _, x := range all {
		v := x.Index.Annotations[layout.AnnotationDependencies]
		if v == "" {
			continue
		}
		for _, part := range strings.Split(v, ",") {
			alias, d, ok := strings.Cut(part, "=")
			dep := byIndex[digest.Digest(d)]
			i := slices.IndexFunc(x.Bundle.Dependencies, func(rd relocate.Dependency) bool { return rd.Alias == alias })
			switch {
			case !ok || dep == nil:
				errs = append(errs, fmt.Errorf("%w: bundle %s: dependency %q names no bundle entry of the archive", ErrInvalidArchive, x.Bundle.Name, part))
			case i < 0:
				errs = append(errs, fmt.Errorf("%w: bundle %s: index.json records a dependency %q its bundle.json does not declare", ErrBundleMismatch, x.Bundle.Name, alias))
			default:
				x.DependsOn = append(x.DependsOn, Dependency{Alias: alias, Reference: x.Bundle.Dependencies[i].Bundle, Bundle: dep})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	anyTaken := map[digest.Digest]bool{}
	for _, x := range all {
		held := map[digest.Digest]bool{}
		e := &ImageEntry{}
		x.Closure(e, x.Index.Digest)
		for _, img := range x.Images {
			x.Closure(e, img.Desc.Digest)
		}
		for _, d := range e.Manifests {
			held[d] = true
		}
		taken := map[digest.Digest]bool{}
		for grew := true; grew; {
			grew = false
			for _, a := range extra {
				s := digest.Digest(a.Annotations[layout.AnnotationSubject])
				if taken[a.Digest] || !(held[s] || (s == "" && x == b)) {
					continue
				}
				taken[a.Digest], held[a.Digest], grew = true, true, true
				anyTaken[a.Digest] = true
				x.Extra = append(x.Extra, a)
			}
		}
	}
	// What belongs to no bundle stays with the primary, whose import then
	// refuses it as it would in an archive of one bundle.
	for _, a := range extra {
		if !anyTaken[a.Digest] {
			b.Extra = append(b.Extra, a)
		}
	}
	return nil
}
