package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// loadAll checks an archive of any format. An archive written by another
// tool (a CNAB-104 thick bundle from duffle or cnab-go's packager, a Porter
// archive) is first described the way cnab-airgap describes its own (see
// adopt); what the archive declares it leaves out (platforms, a delta's
// blobs) is read; then the whole graph is checked (load) and sparse images
// are reported.
func (b *Bundle) loadAll() error {
	a := b.Archive
	b.Format = a.Format()
	absent, err := a.AbsentChildren()
	if err != nil {
		return err
	}
	b.absentSet = absent
	b.Absent = map[digest.Digest]ocispec.Descriptor{}
	omitted, isDelta, err := a.DeltaOmitted()
	if err != nil {
		return err
	}
	if isDelta {
		ann := a.Index.Annotations
		b.Base = &DeltaBase{Kind: ann[layout.AnnotationDeltaBaseKind], Digest: ann[layout.AnnotationDeltaBase], Name: ann[layout.AnnotationDeltaBaseName]}
		b.omittedSet = omitted
		b.Omitted = map[digest.Digest]int64{}
	}
	if !a.Annotated() {
		if err := b.adopt(); err != nil {
			return err
		}
	}
	if err := b.load(); err != nil {
		return err
	}
	if err := b.checkReferenced(); err != nil {
		return err
	}
	for _, x := range b.All() {
		x.reportSparse()
	}
	if b.Base != nil {
		b.Warnings = append(b.Warnings, fmt.Sprintf("delta archive: %d blobs are not carried; its base (%s, %s) must have been imported into the target", len(b.Omitted), b.Base.Name, b.Base.Digest))
	}
	return nil
}

// checkReferenced refuses blob entries that no manifest or index reachable
// from index.json references: this reader would ignore them while another
// tool reading the layout might not, and every entry the archive carries is
// thereby hashed by verify (VerifyBlobs reads every referenced blob).
// Content a delta or a --platform export leaves out is missing, not extra,
// so it does not matter here.
func (b *Bundle) checkReferenced() error {
	prefix := ""
	if b.Format != layout.FormatOCI {
		prefix = layout.ThickLayoutDir
	}
	var extra []string
	for d := range b.Archive.Blobs() {
		if _, ok := b.Blobs[d]; ok {
			continue
		}
		if _, ok := b.Nodes[d]; ok {
			continue
		}
		extra = append(extra, prefix+layout.BlobName(d))
	}
	if len(extra) == 0 {
		return nil
	}
	return fmt.Errorf("%w%.0w: %d blob entries that no manifest reachable from index.json references: %s", ErrInvalidArchive, layout.ErrInvalidArchive,
		len(extra), layout.NameList(extra, 3))
}

// DeltaBase describes the base a delta archive was exported against.
type DeltaBase struct {
	// Kind is layout.DeltaBaseArchive or layout.DeltaBaseInventory.
	Kind string `json:"kind"`
	// Digest identifies the base: its index.json, or the inventory file.
	Digest string `json:"digest"`
	// Name describes it.
	Name string `json:"name"`
}

// leftOut reports whether d, referenced below a root, is content the
// archive declares it does not carry: a platform manifest left out at
// export (--platform), or a blob a delta leaves to its base. It records it.
// Content the archive carries anyway is never left out, and roots must
// always be carried.
func (b *Bundle) leftOut(d ocispec.Descriptor, depth int) bool {
	if depth == 0 {
		return false
	}
	if _, ok := b.Archive.Has(d.Digest); ok {
		return false
	}
	if layout.IsManifestOrIndex(d.MediaType) {
		if b.absentSet[d.Digest] {
			b.Absent[d.Digest] = d
			return true
		}
		return false
	}
	if b.omittedSet[d.Digest] {
		b.Omitted[d.Digest] = d.Size
		return true
	}
	return false
}

// reportSparse warns about every image whose index lacks children.
func (b *Bundle) reportSparse() {
	if len(b.Absent) == 0 {
		return
	}
	for _, e := range b.Images {
		if absent := b.AbsentBelow(e.Desc.Digest); len(absent) > 0 {
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s (%s): sparse index %s: the archive carries %s and leaves out %s (export --platform %s); a registry that checks index children will refuse it",
				e.Label(), e.Ref, e.Desc.Digest, orNone(e.Platforms), strings.Join(absent, ", "), b.Archive.Index.Annotations[layout.AnnotationPlatforms]))
		}
	}
}

func orNone(ps []string) string {
	if len(ps) == 0 {
		return "no platform manifest"
	}
	return strings.Join(ps, ", ")
}

// AbsentBelow lists the index children below manifest d that the archive
// does not carry, as "os/arch sha256:...".
func (b *Bundle) AbsentBelow(d digest.Digest) []string {
	var out []string
	seen := map[digest.Digest]bool{}
	var visit func(digest.Digest)
	visit = func(d digest.Digest) {
		n, ok := b.Nodes[d]
		if !ok || seen[d] {
			return
		}
		seen[d] = true
		for _, c := range n.Children {
			if _, absent := b.Absent[c.Digest]; absent {
				out = append(out, platformOf(c)+" "+c.Digest.String())
				continue
			}
			visit(c.Digest)
		}
	}
	visit(d)
	sort.Strings(out)
	return out
}

func platformOf(d ocispec.Descriptor) string {
	if d.Platform == nil {
		return "(no platform)"
	}
	p := d.Platform.OS + "/" + d.Platform.Architecture
	if d.Platform.Variant != "" {
		p += "/" + d.Platform.Variant
	}
	return p
}

// adopt describes an archive written by another tool the way cnab-airgap
// describes its own, so that the same checks and the same import apply:
//   - each image of bundle.json is found among index.json's entries by its
//     reference name: the exact `image` string (duffle, cnab-go), or, in a
//     Porter archive, the relocated reference its relocation-mapping.json
//     gives (Porter names images that way); references are also compared
//     in normalized form (docker.io/library/...), as cnab-go does; as a
//     last resort an entry whose digest is the image's contentDigest;
//   - that entry is annotated with the image's role and exact `image`
//     string; entries that are no image of the bundle are not imported;
//   - the bundle's registry form, which such archives do not carry, is
//     built the way cnab-to-oci builds it: a config manifest whose config is
//     bundle.json (served from the root file) and an index that lists it
//     and every image. Its digest is new; bundle.json is unchanged.
func (b *Bundle) adopt() error {
	a := b.Archive
	if a.BundleJSON == nil {
		return fmt.Errorf("%w: %s archive without bundle.json at its root", ErrInvalidArchive, a.Format())
	}
	bun, err := relocate.ParseBundle(a.BundleJSON)
	if err != nil {
		return err
	}
	var mapping relocate.Mapping
	if a.Format() == layout.FormatPorter {
		raw, _, err := a.File(layout.MappingFile)
		if err != nil {
			return err
		}
		if mapping, err = relocate.ParseMapping(raw); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidArchive, layout.MappingFile, err)
		}
	}
	roots := a.Index.Manifests
	used := make([]bool, len(roots))
	var entries []ocispec.Descriptor
	var children []ocispec.Descriptor // of the synthesized bundle index, after its config
	done := map[string]bool{}
	var errs []error
	for _, img := range bun.Images {
		if !img.Relocatable() {
			continue
		}
		names := []string{img.Ref}
		if v, ok := mapping[img.Ref]; ok {
			names = append([]string{v}, names...)
		}
		i, how := findRoot(roots, names, img.ContentDigest)
		if i < 0 {
			errs = append(errs, fmt.Errorf("%w: %s (%s) is not in the archive: no index.json entry named %s", ErrBundleMismatch, img.Label(), img.Ref, strings.Join(names, " or ")))
			continue
		}
		used[i] = true
		d := roots[i]
		if how != "" {
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s (%s): found in index.json %s", img.Label(), img.Ref, how))
		}
		children = append(children, relocate.IndexEntry(img, d))
		if done[img.Ref] {
			continue
		}
		done[img.Ref] = true
		ann := map[string]string{layout.AnnotationRefName: img.Ref, layout.AnnotationRole: img.Role}
		if src := d.Annotations[layout.AnnotationRefName]; src != "" {
			ann[layout.AnnotationSource] = src
		}
		if img.Role == relocate.RoleInvocation {
			ann[layout.AnnotationInvocationIndex] = img.Name
		} else {
			ann[layout.AnnotationComponent] = img.Name
		}
		if img.ContentDigest == "" {
			ann[layout.AnnotationDigestResolved] = "true"
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s (%s): bundle.json has no contentDigest; the archive's %s is used", img.Label(), img.Ref, d.Digest))
		}
		entries = append(entries, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Annotations: ann})
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i, d := range roots {
		if !used[i] {
			b.Warnings = append(b.Warnings, fmt.Sprintf("index.json entry %s (%s) is not an image of bundle.json and is not imported", d.Digest, d.Annotations[layout.AnnotationRefName]))
		}
	}
	// The images' graphs first, so the bundle index knows its height.
	for _, d := range entries {
		if err := b.walk(d, 0); err != nil {
			return err
		}
	}
	// Entries that are no image of the bundle are not imported, but what
	// the archive carries is checked all the same (checkReferenced).
	for i, d := range roots {
		if !used[i] {
			if err := b.walk(d, 0); err != nil {
				return fmt.Errorf("index.json entry %s, not an image of bundle.json: %w", d.Digest, err)
			}
		}
	}
	bundleDigest, bundleSize, _ := a.BundleBlob()
	// cnab-to-oci's order: config, invocation images, components by name
	// (bundle.Images is in that order already).
	f, err := relocate.NewRegistryForm(bun, ocispec.Descriptor{Digest: bundleDigest, Size: bundleSize}, children)
	if err != nil {
		return err
	}
	cmDesc, idxDesc, raw := f.ConfigDesc, f.IndexDesc, f.Index
	b.Blobs[bundleDigest] = bundleSize
	b.Nodes[cmDesc.Digest] = &Node{Desc: ocispec.Descriptor{MediaType: cmDesc.MediaType, Digest: cmDesc.Digest, Size: cmDesc.Size}, Raw: f.ConfigManifest,
		Children: []ocispec.Descriptor{{MediaType: layout.MediaTypeCNABConfig, Digest: bundleDigest, Size: bundleSize}}}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return err
	}
	height := 1
	for _, c := range children {
		if n, ok := b.Nodes[c.Digest]; ok && n.Height+1 > height {
			height = n.Height + 1
		}
	}
	b.Nodes[idxDesc.Digest] = &Node{Desc: idxDesc, Raw: raw, Children: idx.Manifests, Height: height}
	bundleEntry := idxDesc
	bundleEntry.Annotations = map[string]string{
		layout.AnnotationReference:   bundleRepoPath(bun, mapping) + ":" + relocate.VersionTag(bun.Version),
		layout.AnnotationRole:        layout.RoleBundle,
		"io.cnab.airgap.synthesized": "true",
	}
	a.Index.Manifests = append([]ocispec.Descriptor{bundleEntry}, entries...)
	b.Warnings = append(b.Warnings, fmt.Sprintf("%s archive: the bundle's registry form (config manifest and index %s) was built at import, as cnab-to-oci builds it; bundle.json is unchanged", a.Format(), idxDesc.Digest))
	return nil
}

// findRoot finds the index.json entry of an image: by exact reference name,
// then by normalized reference name, then by digest. how is "" for an exact
// match and says how it was found otherwise.
func findRoot(roots []ocispec.Descriptor, names []string, contentDigest digest.Digest) (int, string) {
	for _, n := range names {
		for i, d := range roots {
			if d.Annotations[layout.AnnotationRefName] == n {
				return i, ""
			}
		}
	}
	for _, n := range names {
		want := normalizedRef(n)
		if want == "" {
			continue
		}
		for i, d := range roots {
			if got := d.Annotations[layout.AnnotationRefName]; got != "" && normalizedRef(got) == want {
				return i, "as " + got
			}
		}
	}
	if contentDigest != "" {
		for i, d := range roots {
			if d.Digest == contentDigest {
				return i, "by its contentDigest " + contentDigest.String()
			}
		}
	}
	return -1, ""
}

// normalizedRef is the fully qualified form of a reference
// (docker.io/library/x:tag), as cnab-go's image store compares them; "" if
// it does not parse.
func normalizedRef(s string) string {
	r, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return ""
	}
	return r.String()
}

// bundleRepoPath chooses the bundle's repository path for an archive that
// does not name it: Porter relocates every image into the bundle's
// repository, so when all mapping values share one repository, that is it;
// otherwise the bundle's name.
func bundleRepoPath(bun *relocate.Bundle, mapping relocate.Mapping) string {
	repo := ""
	for _, v := range mapping {
		r, err := name.ParseReference(v)
		if err != nil {
			return relocate.SanitizePath(bun.Name)
		}
		p := r.Context().RepositoryStr()
		if repo != "" && p != repo {
			return relocate.SanitizePath(bun.Name)
		}
		repo = p
	}
	if repo == "" {
		return relocate.SanitizePath(bun.Name)
	}
	return repo
}
