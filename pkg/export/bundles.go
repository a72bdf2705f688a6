package export

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// WithDependencies carries, with each bundle, the bundles it declares it
// depends on (relocate.ExtensionDependencies, Porter's
// relocate.ExtensionPorterDependenciesV2), resolved recursively from their
// registries, each once. The default is on; off carries only the bundles
// asked for and warns about every dependency left behind.
func WithDependencies(b bool) Option {
	return func(o *options) error { o.noDependencies = !b; return nil }
}

// bundleSpec is one bundle asked for: a reference or a bundle file.
type bundleSpec struct{ ref, file string }

// specs lists the bundles asked for, the primary first.
func (r Request) specs() ([]bundleSpec, error) {
	var out []bundleSpec
	if r.Reference != "" {
		out = append(out, bundleSpec{ref: r.Reference})
	}
	if r.BundleFile != "" {
		out = append(out, bundleSpec{file: r.BundleFile})
	}
	for _, ref := range r.References {
		out = append(out, bundleSpec{ref: ref})
	}
	for _, f := range r.BundleFiles {
		out = append(out, bundleSpec{file: f})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: export: give a bundle reference or a bundle file", errdefs.ErrUsage)
	}
	for _, s := range out {
		if s.ref == "" && s.file == "" {
			return nil, fmt.Errorf("%w: export: an empty bundle reference or file name", errdefs.ErrUsage)
		}
	}
	return out, nil
}

// depEdge is a carried dependency: the parent's alias and declared
// reference, and the bundle that satisfies it.
type depEdge struct {
	alias, ref string
	to         *bundleSource
}

// resolveBundles resolves the bundles asked for, in order, then, depth
// first, every bundle each depends on. A bundle reached twice (asked for
// twice, or a dependency shared by several bundles) is carried once,
// identified by its index digest; a dependency on a bundle of its own chain
// is a cycle, refused naming the chain.
func (e *exporter) resolveBundles(ctx context.Context, specs []bundleSpec) ([]*bundleSource, error) {
	var out []*bundleSource
	byDigest := map[digest.Digest]*bundleSource{}
	for _, s := range specs {
		src, err := e.resolveBundle(ctx, s)
		if err != nil {
			return nil, err
		}
		if prev := byDigest[src.indexDigest]; prev != nil && src.index != nil {
			prev.requested = true
			continue
		}
		src.requested = true
		if src.index != nil {
			byDigest[src.indexDigest] = src
		}
		out = append(out, src)
	}
	for _, src := range slices.Clone(out) {
		if err := e.resolveDependencies(ctx, src, nil, byDigest, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// resolveDependencies resolves the dependencies of src, whose parents are
// path, recursively, appending bundles not yet carried to out.
func (e *exporter) resolveDependencies(ctx context.Context, src *bundleSource, path []*bundleSource, byDigest map[digest.Digest]*bundleSource, out *[]*bundleSource) error {
	path = append(slices.Clone(path), src)
	for _, d := range src.bundle.Dependencies {
		chain := chainOf(path) + " -> " + d.Alias
		switch {
		case d.Bundle == "":
			e.warn("%s: dependency %s declares no bundle reference (only an interface): nothing is carried for it; the installer must provide it", chainOf(path), d.Alias)
			continue
		case e.o.noDependencies:
			e.warn("%s: dependency %s (%s) is not carried (--no-dependencies): move it separately", chainOf(path), d.Alias, d.Bundle)
			continue
		case !strings.Contains(d.Bundle, "@") && tagOf(d.Bundle) == "":
			return fmt.Errorf("%w: %s: %s names no tag or digest; cnab-airgap carries the bundle a dependency names and does not pick a version from a range: declare a tag or a digest", relocate.ErrDependency, chain, d.Bundle)
		}
		dep, err := e.resolveBundle(ctx, bundleSpec{ref: d.Bundle})
		if err != nil {
			return fmt.Errorf("dependency %s (%s): %w", chain, d.Bundle, err)
		}
		if i := slices.IndexFunc(path, func(p *bundleSource) bool { return p.index != nil && p.indexDigest == dep.indexDigest }); i >= 0 {
			return fmt.Errorf("%w: dependency cycle: %s (%s is %s again)", relocate.ErrDependency, chain, d.Bundle, bundleLabel(path[i]))
		}
		if prev := byDigest[dep.indexDigest]; prev != nil {
			src.deps = append(src.deps, depEdge{alias: d.Alias, ref: d.Bundle, to: prev})
			continue
		}
		byDigest[dep.indexDigest] = dep
		*out = append(*out, dep)
		src.deps = append(src.deps, depEdge{alias: d.Alias, ref: d.Bundle, to: dep})
		if err := e.resolveDependencies(ctx, dep, path, byDigest, out); err != nil {
			return err
		}
	}
	return nil
}

// id names the bundle in reports.
func (s *bundleSource) id() archive.BundleID {
	return archive.BundleID{Bundle: s.bundle.Name, Version: s.bundle.Version,
		BundleDigest: digest.FromBytes(s.bundleJSON).String(), IndexDigest: s.root.Digest.String()}
}

// firstResolution reports whether the image string ref is resolved for
// the first time in this export: progress counts each image string once,
// however many bundles use it.
func (e *exporter) firstResolution(ref string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.resolved == nil {
		e.resolved = map[string]bool{}
	}
	if e.resolved[ref] {
		return false
	}
	e.resolved[ref] = true
	return true
}

// chainOf names a dependency chain: "app (REF) -> db (REF)".
func chainOf(path []*bundleSource) string { return bundleLabels(path, " -> ") }

func bundleLabel(s *bundleSource) string {
	if s.ref != "" {
		return s.bundle.Name + " (" + s.ref + ")"
	}
	return s.bundle.Name
}

// bundleLabels names bundles, joined by sep.
func bundleLabels(srcs []*bundleSource, sep string) string {
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = bundleLabel(s)
	}
	return strings.Join(names, sep)
}

// collectAll resolves the images of every bundle into one index.json: the
// bundles' entries in order (the primary first), each image once across
// bundles. An archive of several bundles is format 3, its bundle entries
// annotated with their dependencies and whether they were asked for, and
// res.Bundles lists them.
func (e *exporter) collectAll(ctx context.Context, srcs []*bundleSource, res *Result) (*ocispec.Index, error) {
	primary := srcs[0]
	index := &ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Annotations: map[string]string{
		layout.AnnotationFormatVersion: layout.FormatVersion,
		layout.AnnotationBundleDigest:  digest.FromBytes(primary.bundleJSON).String(),
	}}
	index.SchemaVersion = 2
	if e.o.allowMissingDigest {
		index.Annotations[layout.AnnotationAllowMissingDigest] = "true"
	}
	carried := map[string]bool{}
	for _, s := range srcs {
		for _, img := range s.bundle.Images {
			if img.Relocatable() {
				carried[img.Ref] = true
			}
		}
	}
	e.o.Progress.Emit(progress.Event{Phase: progress.PhasePlan, State: progress.StateTotal, Count: len(carried)})
	seen := map[string]bool{}
	var errs []error
	for _, s := range srcs {
		images, err := e.collectImages(ctx, index, s, seen)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.images = images
		e.images = append(e.images, images...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if primary.index != nil {
		index.Annotations[layout.AnnotationBundleReference] = layout.BundleReference(primary.root)
	}
	res.Images = primary.images
	if len(srcs) == 1 {
		return index, nil
	}
	index.Annotations[layout.AnnotationFormatVersion] = layout.FormatVersionMulti
	for _, s := range srcs {
		var deps []string
		sum := archive.BundleSummary{BundleID: s.id(), Reference: s.ref, Requested: s.requested}
		for _, d := range s.deps {
			deps = append(deps, d.alias+"="+d.to.root.Digest.String())
			sum.Dependencies = append(sum.Dependencies, archive.DependencyLink{Alias: d.alias, Reference: d.ref, IndexDigest: d.to.root.Digest.String()})
		}
		for _, img := range s.images {
			sum.Images = append(sum.Images, img.ImageSummary)
		}
		res.Bundles = append(res.Bundles, sum)
		// s.root's annotations are those of its index.json entry (one map).
		if s.requested {
			s.root.Annotations[layout.AnnotationRequested] = "true"
		}
		if len(deps) > 0 {
			slices.Sort(deps)
			s.root.Annotations[layout.AnnotationDependencies] = strings.Join(deps, ",")
		}
	}
	return index, nil
}
