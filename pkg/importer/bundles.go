package importer

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// BundleResult reports one bundle of an archive of several (Result.Bundles).
type BundleResult struct {
	archive.BundleID
	// BundleReference is where the bundle was pushed.
	BundleReference string `json:"bundleReference"`
	// Requested is false for a bundle carried only as a dependency.
	Requested bool `json:"requested"`
	// Dependencies are the bundles it depends on, where they were pushed.
	Dependencies []DependencyResult `json:"dependencies,omitempty"`
	Images       []Image            `json:"images"`
	MappingFile  string             `json:"mappingFile,omitempty"`
	// BlobsUploaded and BytesUploaded are what this bundle sent (content
	// another bundle of the archive sent first is not counted again).
	BlobsUploaded int64            `json:"blobsUploaded"`
	BytesUploaded int64            `json:"bytesUploaded"`
	Signatures    *SignatureResult `json:"signatures,omitempty"`
}

// DependencyResult is a dependency of a bundle and where it was pushed.
type DependencyResult struct {
	Alias string `json:"alias"`
	// Reference is the reference the parent's bundle.json declares.
	Reference string `json:"reference"`
	// Relocated is the dependency bundle's reference at the target.
	Relocated   string `json:"relocated"`
	IndexDigest string `json:"indexDigest"`
}

// importAll imports every bundle of an archive of several: all are
// planned and their signing evidence verified first, then every blob any
// of them sends is hashed, and only then are they pushed, each bundle after
// the bundles it depends on (the primary's tag last), each with its own
// relocation mapping (MappingPaths). The Result is the primary bundle's,
// with the transfer counts and warnings of the whole import and every
// bundle in Bundles.
func importAll(ctx context.Context, o *options, b *archive.Bundle, target relocate.Target, mappingPath string) (*Result, error) {
	order := dependencyOrder(b)
	paths := MappingPaths(mappingPath, b)
	ims := map[*archive.Bundle]*importer{}
	// Each bundle is verified with its own evidence; a trust anchor need
	// only verify something in one of them.
	each := *o
	each.signing.opts = append(slices.Clone(o.signing.opts), sigbundle.WithArchiveOfSeveral())
	var reports []*sigbundle.Report
	for _, x := range order {
		im, err := planBundle(ctx, &each, x, target)
		if err != nil {
			return nil, fmt.Errorf("import of bundle %s into %s: %w", x.Bundle.Name, target, err)
		}
		im.o = o
		ims[x] = im
		if s := im.res.Signatures; s != nil {
			reports = append(reports, s.Report)
		}
	}
	if !o.signing.off {
		if err := sigbundle.AnchorsUsed(reports, o.signing.opts...); err != nil {
			return nil, fmt.Errorf("import of %s into %s: %w", bundleList(order), target, err)
		}
	}
	if !o.dryRun {
		// Nothing is pushed before every byte any bundle sends is checked.
		send := map[digest.Digest]bool{}
		for _, x := range order {
			ds, err := ims[x].probe(ctx)
			if err != nil {
				return nil, fmt.Errorf("import of bundle %s into %s: %w", x.Bundle.Name, target, err)
			}
			for _, d := range ds {
				send[d] = true
			}
		}
		if err := b.HashDigests(ctx, slices.Sorted(maps.Keys(send)), o.Jobs, o.Progress); err != nil {
			return nil, fmt.Errorf("import of %s into %s: %w", bundleList(order), target, err)
		}
	}
	for i, x := range order {
		if err := ims[x].run(ctx, paths[x]); err != nil {
			return nil, fmt.Errorf("import of bundle %s into %s: %w", x.Bundle.Name, target, err)
		}
		// What it put at the target is there for the bundles after it:
		// their probe answers are kept true without a second probe.
		for _, y := range order[i+1:] {
			ims[y].heldAfterRun(ims[x])
		}
	}
	res := *ims[b].res
	res.Counts, res.Warnings = Counts{}, nil
	for _, x := range order {
		r := ims[x].res
		res.add(r.Counts)
		for _, w := range r.Warnings {
			if !slices.Contains(res.Warnings, w) {
				res.Warnings = append(res.Warnings, w)
			}
		}
	}
	for _, x := range b.All() {
		r := ims[x].res
		br := BundleResult{BundleID: r.BundleID,
			BundleReference: r.BundleReference, Requested: x.Requested, Images: r.Images, MappingFile: r.MappingFile,
			BlobsUploaded: r.BlobsUploaded, BytesUploaded: r.BytesUploaded, Signatures: r.Signatures}
		for _, d := range x.DependsOn {
			br.Dependencies = append(br.Dependencies, DependencyResult{Alias: d.Alias, Reference: d.Reference,
				Relocated: ims[d.Bundle].res.BundleReference, IndexDigest: d.Bundle.Index.Digest.String()})
		}
		res.Bundles = append(res.Bundles, br)
	}
	return &res, nil
}

// dependencyOrder lists every bundle of the archive, each after the bundles
// it depends on, the primary's tree first.
func dependencyOrder(b *archive.Bundle) []*archive.Bundle {
	var out []*archive.Bundle
	seen := map[*archive.Bundle]bool{}
	var visit func(x *archive.Bundle)
	visit = func(x *archive.Bundle) {
		if seen[x] {
			return
		}
		seen[x] = true // the archive's dependencies have no cycle (export refuses them); this stops one anyway
		for _, d := range x.DependsOn {
			visit(d.Bundle)
		}
		out = append(out, x)
	}
	for _, x := range b.All() {
		visit(x)
	}
	return out
}

// MappingPaths says where the relocation mapping of each bundle of an
// archive goes, given the path asked for ("" : none): the primary
// bundle's at that path, every other bundle's beside it, named by the
// bundle ("relocation-mapping.json" -> "relocation-mapping.db.json"), with
// its version too when two bundles share a name (and the start of its
// index digest when they share the version too).
func MappingPaths(path string, b *archive.Bundle) map[*archive.Bundle]string {
	out := map[*archive.Bundle]string{}
	if path == "" {
		return out
	}
	count := map[string]int{}
	for _, x := range b.Others {
		count[x.Bundle.Name]++
	}
	ext := filepath.Ext(path)
	stem := strings.TrimSuffix(path, ext)
	if ext == "" {
		ext = ".json"
	}
	out[b] = path
	used := map[string]bool{path: true}
	for _, x := range b.Others {
		n := x.Bundle.Name
		if count[n] > 1 || n == b.Bundle.Name {
			n += "-" + x.Bundle.Version
		}
		p := stem + "." + relocate.SanitizePath(n) + ext
		if used[p] { // same name and version, other content: the index digest tells them apart
			p = stem + "." + relocate.SanitizePath(n+"-"+x.Index.Digest.Encoded()[:12]) + ext
		}
		used[p] = true
		out[x] = p
	}
	return out
}

func bundleList(bs []*archive.Bundle) string {
	names := make([]string, len(bs))
	for i, x := range bs {
		names[i] = x.Bundle.Name
	}
	return "bundles " + strings.Join(names, ", ")
}
