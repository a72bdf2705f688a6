package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/opts"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

var (
	// ErrInvalidArchive: the archive's content is inconsistent or incomplete.
	// It is layout.ErrInvalidArchive: one sentinel whichever layer refuses.
	ErrInvalidArchive = layout.ErrInvalidArchive
	// ErrBundleMismatch: bundle.json and the carried manifests disagree.
	ErrBundleMismatch = errdefs.New("bundle.json does not match the archive", errdefs.ErrVerification)
)

// Node is a manifest or index in the archive's graph.
type Node struct {
	Desc     ocispec.Descriptor
	Raw      []byte
	Children []ocispec.Descriptor
	// Height is 0 for a manifest, 1 + the highest child for an index.
	Height int
}

// ImageEntry is an image of the bundle as carried by the archive.
type ImageEntry struct {
	relocate.Image
	// Desc is the index.json descriptor (digest = contentDigest).
	Desc ocispec.Descriptor
	// Platforms lists os/arch of each platform manifest.
	Platforms []string
	// Bytes is the size of the image's blobs and manifests.
	Bytes int64
	// Manifests and Blobs are the digests of the image's closure.
	Manifests []digest.Digest
	Blobs     []digest.Digest
	Resolved  bool
}

// ImageSummary reports an image of a bundle as an archive carries it:
// export's result and inspect's report give one per image.
type ImageSummary struct {
	Role      string   `json:"role"`
	Name      string   `json:"name"`
	Reference string   `json:"reference"`
	Digest    string   `json:"digest"`
	MediaType string   `json:"mediaType"`
	Platforms []string `json:"platforms,omitempty"`
	// Bytes is the total size of the image's blobs and manifests.
	Bytes int64 `json:"bytes"`
	// Resolved is true when bundle.json has no contentDigest for the image
	// and its tag was resolved at export time.
	Resolved bool `json:"resolved,omitempty"`
}

// Summary reports the image.
func (e ImageEntry) Summary() ImageSummary {
	return ImageSummary{Role: e.Role, Name: e.Name, Reference: e.Ref, Digest: e.Desc.Digest.String(),
		MediaType: e.Desc.MediaType, Platforms: e.Platforms, Bytes: e.Bytes, Resolved: e.Resolved}
}

// Bundle is a fully checked archive.
type Bundle struct {
	Archive    *layout.Archive
	BundleJSON []byte
	Bundle     *relocate.Bundle
	// BundleDigest is sha256 of bundle.json.
	BundleDigest digest.Digest
	// Index is the bundle's OCI index descriptor (cnab-to-oci form).
	Index ocispec.Descriptor
	// ConfigManifest is the digest of the bundle's config manifest.
	ConfigManifest digest.Digest
	// Reference is the reference the bundle was exported from ("" for a local file).
	Reference string
	// RepoPath is the bundle's repository path at the source.
	RepoPath string
	// Tag is the bundle's tag.
	Tag    string
	Images []ImageEntry
	// Requested is false for a bundle an archive of several carries only
	// because another depends on it.
	Requested bool
	// Others are the further bundles of an archive of several (format 3),
	// in index.json order. They share this Bundle's Archive, Nodes and
	// Blobs (close only this one); each has its own bundle.json, images
	// and signing artifacts. Empty in an archive of one bundle, and in the
	// Others themselves.
	Others []*Bundle
	// DependsOn are the bundles of the archive this one depends on, in the
	// order of bundle.json's dependencies.
	DependsOn []Dependency
	// Nodes are every manifest and index, by digest.
	Nodes map[digest.Digest]*Node
	// Blobs are every non-manifest blob referenced by the graph, with sizes.
	Blobs map[digest.Digest]int64
	// Extra are root descriptors that are not the bundle or its images
	// (signing artifacts and other content carried along).
	Extra    []ocispec.Descriptor
	Warnings []string
	// Format is the archive's format, recognized from its content.
	Format layout.Format
	// Absent are the index children the archive leaves out (export
	// --platform), by digest; Omitted the blobs a delta archive leaves to
	// its base, with sizes; Base describes that base (nil: not a delta).
	Absent  map[digest.Digest]ocispec.Descriptor
	Omitted map[digest.Digest]int64
	Base    *DeltaBase
	// absentSet and omittedSet are what index.json declares (formats.go).
	absentSet, omittedSet map[digest.Digest]bool
	// metaBytes and descriptors are what the model holds so far, bounded by
	// Limits.MaxTotalMetadataBytes and Limits.MaxDescriptors.
	metaBytes   int64
	descriptors int
}

// Fetch implements content.Fetcher over the checked archive: manifests and
// indexes from the model in memory, blobs from the archive as stored
// (seekable, so an upload can start over).
func (b *Bundle) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if n, ok := b.Nodes[d.Digest]; ok {
		return io.NopCloser(bytes.NewReader(n.Raw)), nil
	}
	if layout.IsManifestOrIndex(d.MediaType) {
		return nil, fmt.Errorf("%w: manifest %s is not in the archive's model", layout.ErrBlobNotFound, d.Digest)
	}
	return b.Archive.Fetch(ctx, d)
}

// Close releases the archive.
func (b *Bundle) Close() error { return b.Archive.Close() }

// UniqueBytes returns the total size of all blobs and manifests, each once.
func (b *Bundle) UniqueBytes() int64 {
	var n int64
	for _, s := range b.Blobs {
		n += s
	}
	for _, nd := range b.Nodes {
		n += nd.Desc.Size
	}
	return n
}

// Load opens and checks an archive. Nothing is pushed or written (except a
// decompressed copy of a compressed archive in a private temp directory).
func Load(ctx context.Context, path string, o layout.OpenOptions) (*Bundle, error) {
	a, err := layout.Open(ctx, path, o)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Archive: a, Nodes: map[digest.Digest]*Node{}, Blobs: map[digest.Digest]int64{},
		metaBytes: int64(len(a.IndexRaw) + len(a.BundleJSON)), descriptors: len(a.Index.Manifests)}
	if err := b.loadAll(); err != nil { // any format, sparse and delta archives (formats.go)
		a.Close()
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	return b, nil
}

func (b *Bundle) load() error {
	a := b.Archive
	if a.BundleJSON == nil {
		return fmt.Errorf("%w: no bundle.json", ErrInvalidArchive)
	}
	b.BundleJSON = a.BundleJSON
	b.BundleDigest = digest.FromBytes(a.BundleJSON)
	if want := a.Index.Annotations[layout.AnnotationBundleDigest]; want != "" && want != b.BundleDigest.String() {
		return fmt.Errorf("%w: bundle.json hashes to %s, index.json records %s", ErrBundleMismatch, b.BundleDigest, want)
	}
	bun, err := relocate.ParseBundle(a.BundleJSON)
	if err != nil {
		return err
	}
	b.Bundle = bun
	b.Reference = a.Index.Annotations[layout.AnnotationBundleReference]
	if v := a.Index.Annotations[layout.AnnotationFormatVersion]; !layout.KnownFormatVersion(v) {
		return fmt.Errorf("%w: archive format version %q is newer than this cnab-airgap understands (1, 2 and 3); use a newer release", ErrInvalidArchive, v)
	}

	byRef := map[string][]ocispec.Descriptor{}
	var bundleDescs []ocispec.Descriptor
	var extra []ocispec.Descriptor
	for _, d := range a.Index.Manifests {
		if err := b.walk(d, 0); err != nil {
			return err
		}
		switch d.Annotations[layout.AnnotationRole] {
		case layout.RoleBundle:
			bundleDescs = append(bundleDescs, d)
		case layout.RoleInvocation, layout.RoleComponent:
			ref := d.Annotations[layout.AnnotationRefName]
			if !slices.ContainsFunc(byRef[ref], func(x ocispec.Descriptor) bool { return x.Digest == d.Digest }) {
				byRef[ref] = append(byRef[ref], d)
			}
		default:
			extra = append(extra, d)
		}
	}
	if len(bundleDescs) == 0 {
		return fmt.Errorf("%w: index.json has no bundle entry (annotation %s=%s)", ErrInvalidArchive, layout.AnnotationRole, layout.RoleBundle)
	}
	multi := a.Index.Annotations[layout.AnnotationFormatVersion] == layout.FormatVersionMulti
	if len(bundleDescs) > 1 && !multi {
		return fmt.Errorf("%w: %d bundle entries in index.json of a format %q archive (only format %s carries several bundles)", ErrInvalidArchive,
			len(bundleDescs), a.Index.Annotations[layout.AnnotationFormatVersion], layout.FormatVersionMulti)
	}
	// The primary bundle is the one whose bundle.json is the archive
	// root's; in a single-bundle archive, the only entry.
	primary := 0
	if multi {
		primary = -1
		for i, d := range bundleDescs {
			if _, m, err := b.configManifest(d); err == nil && m.Config.Digest == b.BundleDigest {
				primary = i
				break
			}
		}
		if primary < 0 {
			return fmt.Errorf("%w: no bundle entry of index.json carries the root bundle.json (%s)", ErrInvalidArchive, b.BundleDigest)
		}
	}
	b.Index = bundleDescs[primary]
	b.Requested = !multi || b.Index.Annotations[layout.AnnotationRequested] == "true"
	if err := b.checkBundle(byRef); err != nil {
		return err
	}
	if !multi {
		b.Extra = extra
		return nil
	}
	// Every other bundle: its bundle.json read from the blob its config
	// manifest names (walked and size-checked above, hashed here), checked
	// the same way, sharing the archive's graph.
	all := []*Bundle{b}
	var errs []error
	for i, d := range bundleDescs {
		if i == primary {
			continue
		}
		o, err := b.other(d, byRef)
		if err != nil {
			errs = append(errs, fmt.Errorf("bundle entry %s (%s): %w", d.Digest, layout.BundleReference(d), err))
			continue
		}
		all = append(all, o)
		b.Others = append(b.Others, o)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return b.linkBundles(all, extra)
}

// configManifest finds and reads the config manifest of bundle entry d:
// the child of its index annotated io.cnab.manifest.type=config, whose
// config is bundle.json.
func (b *Bundle) configManifest(d ocispec.Descriptor) (*Node, *ocispec.Manifest, error) {
	idx := b.Nodes[d.Digest]
	if idx == nil || !layout.IsIndex(idx.Desc.MediaType) {
		return nil, nil, fmt.Errorf("%w: the bundle entry is not an index", ErrInvalidArchive)
	}
	for _, c := range idx.Children {
		if c.Annotations[layout.AnnotationCNABManifestType] != "config" {
			continue
		}
		n := b.Nodes[c.Digest]
		if n == nil {
			break
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(n.Raw, &m); err != nil {
			return nil, nil, fmt.Errorf("%w: bundle config manifest: %w", ErrInvalidArchive, err)
		}
		return n, &m, nil
	}
	return nil, nil, fmt.Errorf("%w: the bundle index has no config manifest", ErrInvalidArchive)
}

// other builds the view of a further bundle of a multi-bundle archive.
func (b *Bundle) other(d ocispec.Descriptor, byRef map[string][]ocispec.Descriptor) (*Bundle, error) {
	_, m, err := b.configManifest(d)
	if err != nil {
		return nil, err
	}
	cfg := &m.Config
	if _, ok := b.Blobs[cfg.Digest]; !ok {
		return nil, fmt.Errorf("%w: bundle.json %s is not carried", ErrInvalidArchive, cfg.Digest)
	}
	lim := b.Archive.Limits()
	if cfg.Size > lim.MaxMetadataBytes {
		return nil, fmt.Errorf("%w: bundle.json %s is %d bytes, limit %d (Limits.MaxMetadataBytes)", layout.ErrTooLarge, cfg.Digest, cfg.Size, lim.MaxMetadataBytes)
	}
	if b.metaBytes += cfg.Size; b.metaBytes > lim.MaxTotalMetadataBytes {
		return nil, fmt.Errorf("%w: bundle.json %s brings the metadata held to %d bytes, limit %d (Limits.MaxTotalMetadataBytes)", layout.ErrTooLarge, cfg.Digest, b.metaBytes, lim.MaxTotalMetadataBytes)
	}
	raw, err := content.ReadAll(context.Background(), b.Archive, *cfg, lim.MaxMetadataBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: bundle.json %s: %w", ErrInvalidArchive, cfg.Digest, err)
	}
	bun, err := relocate.ParseBundle(raw)
	if err != nil {
		return nil, err
	}
	o := &Bundle{Archive: b.Archive, BundleJSON: raw, Bundle: bun, BundleDigest: cfg.Digest, Index: d,
		Reference: layout.BundleReference(d), Requested: d.Annotations[layout.AnnotationRequested] == "true",
		Nodes: b.Nodes, Blobs: b.Blobs, Format: b.Format, Absent: b.Absent, Omitted: b.Omitted, Base: b.Base,
		absentSet: b.absentSet, omittedSet: b.omittedSet}
	if err := o.checkBundle(byRef); err != nil {
		return nil, err
	}
	return o, nil
}

// checkBundle checks the bundle index against bundle.json and finds every
// relocatable image of bundle.json among the image entries (by its exact
// image string and, when there are several, its digest).
func (b *Bundle) checkBundle(byRef map[string][]ocispec.Descriptor) error {
	if err := b.checkBundleIndex(); err != nil {
		return err
	}
	var errs []error
	for _, img := range b.Bundle.Images {
		if !img.Relocatable() {
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s (%s): image type %q is not carried", img.Label(), img.Ref, img.ImageType))
			continue
		}
		cands := byRef[img.Ref]
		if len(cands) == 0 {
			errs = append(errs, fmt.Errorf("%w: %s (%s) is not in the archive", ErrBundleMismatch, img.Label(), img.Ref))
			continue
		}
		d := cands[0]
		if i := slices.IndexFunc(cands, func(x ocispec.Descriptor) bool { return x.Digest == img.ContentDigest }); i >= 0 {
			d = cands[i]
		} else if len(cands) > 1 {
			if img.ContentDigest == "" {
				errs = append(errs, fmt.Errorf("%w: %s (%s) has no contentDigest and the archive carries that image string with %d digests", ErrBundleMismatch, img.Label(), img.Ref, len(cands)))
				continue
			}
		}
		resolved := d.Annotations[layout.AnnotationDigestResolved] == "true"
		if img.ContentDigest == "" && !resolved {
			errs = append(errs, fmt.Errorf("%w: %s (%s) has no contentDigest and the archive does not record a resolved one", ErrBundleMismatch, img.Label(), img.Ref))
			continue
		}
		if img.ContentDigest != "" && d.Digest != img.ContentDigest {
			errs = append(errs, fmt.Errorf("%w: %s (%s): contentDigest is %s but the archive carries %s", ErrBundleMismatch, img.Label(), img.Ref, img.ContentDigest, d.Digest))
			continue
		}
		e := ImageEntry{Image: img, Desc: d, Resolved: resolved}
		b.closure(&e, d.Digest, nil, map[digest.Digest]bool{})
		b.Images = append(b.Images, e)
	}
	return errors.Join(errs...)
}

// checkBundleIndex checks the bundle index: its config manifest carries this
// bundle.json, and its image descriptors agree with bundle.json.
func (b *Bundle) checkBundleIndex() error {
	cfg, m, err := b.configManifest(b.Index)
	if err != nil {
		return err
	}
	b.ConfigManifest = cfg.Desc.Digest
	if m.Config.Digest != b.BundleDigest {
		return fmt.Errorf("%w: the bundle's config manifest points at %s, bundle.json hashes to %s", ErrBundleMismatch, m.Config.Digest, b.BundleDigest)
	}
	invocation := 0
	for _, c := range b.Nodes[b.Index.Digest].Children {
		if c.Annotations[layout.AnnotationCNABManifestType] == "config" {
			continue
		}
		var img *relocate.Image
		for i := range b.Bundle.Images {
			x := &b.Bundle.Images[i]
			switch c.Annotations[layout.AnnotationCNABManifestType] {
			case "invocation":
				if x.Role == relocate.RoleInvocation && x.Name == fmt.Sprint(invocation) {
					img = x
				}
			case "component":
				if x.Role == relocate.RoleComponent && x.Name == c.Annotations[layout.AnnotationCNABComponentName] {
					img = x
				}
			}
		}
		if c.Annotations[layout.AnnotationCNABManifestType] == "invocation" {
			invocation++
		}
		if img == nil {
			return fmt.Errorf("%w: the bundle index lists %s (%s) which bundle.json does not have", ErrBundleMismatch, c.Digest, layout.FormatAnnotations(c.Annotations))
		}
		if img.ContentDigest != "" && img.ContentDigest != c.Digest {
			return fmt.Errorf("%w: %s (%s): contentDigest is %s but the bundle index points at %s", ErrBundleMismatch, img.Label(), img.Ref, img.ContentDigest, c.Digest)
		}
	}
	ref := layout.BundleReference(b.Index)
	if b.Reference != "" {
		ref = b.Reference
	}
	b.RepoPath, b.Tag = repoPathAndTag(ref, b.Bundle)
	return nil
}

// repoPathAndTag derives the bundle's repository path and tag from its
// reference ("host/path:tag", or "name:tag" for a bundle exported from a file).
func repoPathAndTag(ref string, bun *relocate.Bundle) (string, string) {
	tag := ""
	if r, err := name.ParseReference(ref); err == nil && strings.Contains(ref, "/") {
		if t, ok := r.(name.Tag); ok {
			tag = t.TagStr()
		}
		if tag == "" {
			tag = relocate.VersionTag(bun.Version)
		}
		return r.Context().RepositoryStr(), tag
	}
	path, tag, _ := strings.Cut(ref, ":")
	if path == "" {
		path = relocate.SanitizePath(bun.Name)
	}
	if tag == "" {
		tag = relocate.VersionTag(bun.Version)
	}
	return path, tag
}

// walk reads and verifies root and all below it with the shared graph walk
// (pkg/content) over the archive, recording nodes and blobs: every manifest
// is capped, verified and parsed, every referenced blob must be in the
// archive with its declared size, and what the model holds stays within
// Limits.MaxTotalMetadataBytes and Limits.MaxDescriptors. Content walked by
// an earlier call is not walked again. One node at a time, so that the
// first problem reported is the same on every run.
func (b *Bundle) walk(root ocispec.Descriptor, _ int) error {
	lim := b.Archive.Limits()
	opts := content.WalkOptions{
		Concurrency:      1,
		MaxManifestBytes: lim.MaxMetadataBytes,
		PreVisit: func(_ context.Context, d ocispec.Descriptor, depth int) error {
			if _, ok := b.Nodes[d.Digest]; ok {
				return content.ErrSkip
			}
			if b.leftOut(d, depth) { // declared absent (--platform) or left to a delta's base (formats.go)
				return content.ErrSkip
			}
			if !layout.IsManifestOrIndex(d.MediaType) {
				return nil
			}
			// The model holds every manifest and index, so their total is
			// bounded before one more is read: an archive of many large
			// manifests, each within Limits.MaxMetadataBytes, cannot take
			// memory without end.
			if size, ok := b.Archive.Has(d.Digest); ok && b.metaBytes+size > lim.MaxTotalMetadataBytes {
				return fmt.Errorf("%w: manifest %s (%d bytes) would bring the manifests and indexes held to %d bytes, limit %d (Limits.MaxTotalMetadataBytes)",
					layout.ErrTooLarge, d.Digest, size, b.metaBytes+size, lim.MaxTotalMetadataBytes)
			}
			return nil
		},
		OnError: func(_ ocispec.Descriptor, err error) error {
			return fmt.Errorf("%w: %w", ErrInvalidArchive, err)
		},
	}
	err := content.Walk(context.Background(), b.Archive, []ocispec.Descriptor{root}, opts, func(_ context.Context, n content.Node) error {
		d := n.Desc
		if !n.IsManifest() {
			size, ok := b.Archive.Has(d.Digest)
			if !ok {
				return fmt.Errorf("%w: blob %s (%s) is missing", ErrInvalidArchive, d.Digest, d.MediaType)
			}
			if size != d.Size {
				return fmt.Errorf("%w: blob %s is described as %d bytes, the archive holds %d", ErrInvalidArchive, d.Digest, d.Size, size)
			}
			b.Blobs[d.Digest] = d.Size
			return nil
		}
		b.metaBytes += int64(len(n.Raw))
		if b.descriptors += len(n.Children); b.descriptors > lim.MaxDescriptors {
			return fmt.Errorf("%w: manifest %s brings the descriptors of index.json and the archive's manifests and indexes to %d, limit %d (Limits.MaxDescriptors)",
				layout.ErrTooLarge, d.Digest, b.descriptors, lim.MaxDescriptors)
		}
		b.Nodes[d.Digest] = &Node{Desc: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, Raw: n.Raw, Children: n.Children}
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrInvalidArchive) && !errors.Is(err, layout.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", ErrInvalidArchive, err) // two descriptors of one digest disagree on its size
		}
		return err
	}
	b.setHeights()
	return nil
}

// setHeights sets every node's Height (children before parents).
func (b *Bundle) setHeights() {
	children := make(map[digest.Digest][]ocispec.Descriptor, len(b.Nodes))
	for d, n := range b.Nodes {
		children[d] = n.Children
	}
	for d, h := range content.Heights(children) {
		b.Nodes[d].Height = h
	}
}

// Closure adds to e the manifests, blobs and bytes of the graph below root
// (platforms too, for an image), each once.
func (b *Bundle) Closure(e *ImageEntry, root digest.Digest) {
	b.closure(e, root, nil, map[digest.Digest]bool{})
}

// closure records the manifests, blobs, platforms and bytes of an image.
func (b *Bundle) closure(e *ImageEntry, d digest.Digest, platform *ocispec.Platform, seen map[digest.Digest]bool) {
	if seen[d] {
		return
	}
	seen[d] = true
	n, ok := b.Nodes[d]
	if _, absent := b.Absent[d]; absent && !ok {
		return // a platform the archive leaves out
	}
	if !ok {
		e.Blobs = append(e.Blobs, d)
		e.Bytes += b.Blobs[d]
		return
	}
	e.Manifests = append(e.Manifests, d)
	e.Bytes += n.Desc.Size
	if layout.IsManifest(n.Desc.MediaType) && platform != nil && platform.OS != "unknown" {
		p := platform.OS + "/" + platform.Architecture
		if platform.Variant != "" {
			p += "/" + platform.Variant
		}
		e.Platforms = append(e.Platforms, p)
	}
	for _, c := range n.Children {
		b.closure(e, c.Digest, c.Platform, seen)
	}
}

// VerifyBlobs reads every blob of the archive through a verifying reader
// (size and digest), a few at once, reporting every failure; done, if not
// nil, is called for each blob that verified. It is HashBlobs with the
// default concurrency and a plain callback.
func (b *Bundle) VerifyBlobs(ctx context.Context, done func(d digest.Digest, n int64)) error {
	var pf progress.Func
	if done != nil {
		pf = func(e progress.Event) {
			if e.State == progress.StateDone && e.Item != "" {
				done(digest.Digest(e.Item), e.Bytes)
			}
		}
	}
	return b.HashBlobs(ctx, opts.DefaultJobs, pf)
}
