package sigbundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// Remote is a bundle and its signing evidence as a registry serves them,
// ready for Verify (a bundle imported earlier, checked in place).
type Remote struct {
	// Store serves the content Verify reads: what was collected from
	// memory, everything else from the registry.
	Store   content.Fetcher
	Carried Carried
	// Collection is what was found.
	Collection *Collection
}

// remoteStore serves collected manifests from memory and other content
// from the repository it was found in (the bundle's by default), as stored:
// Verify reads it through content.Open, which verifies.
type remoteStore struct {
	c     *registry.Client
	repo  name.Repository
	data  map[digest.Digest][]byte
	repos map[digest.Digest]name.Repository
}

// Fetch implements content.Fetcher.
func (s *remoteStore) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if b, ok := s.data[d.Digest]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	repo := s.repo
	if r, ok := s.repos[d.Digest]; ok && r.RepositoryStr() != "" {
		repo = r
	}
	return s.c.Store(repo).Fetch(ctx, d)
}

// CollectRemote reads the bundle at ref (a cnab-to-oci bundle index), the
// manifests of its graph and their referrers and cosign tags, so that
// Verify can check a bundle where it was imported.
func CollectRemote(ctx context.Context, c *registry.Client, ref string, opts ...Option) (*Remote, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	r, err := c.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	got, err := c.Puller().Get(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", ref, err)
	}
	repo := r.Context()
	st := &remoteStore{c: c, repo: repo, data: map[digest.Digest][]byte{}, repos: map[digest.Digest]name.Repository{}}
	idx := ocispec.Descriptor{MediaType: string(got.MediaType), Digest: digest.FromBytes(got.Manifest), Size: int64(len(got.Manifest))}
	if mt := layout.MediaTypeOf(got.Manifest); mt != "" {
		idx.MediaType = mt
	}
	if !layout.IsIndex(idx.MediaType) {
		return nil, fmt.Errorf("bundle %s: a %s, not a bundle index", ref, idx.MediaType)
	}
	// The names: the reference checked, where the operator relocated the
	// bundle (its registry and prefix are theirs, the rest the publisher's).
	names := &Names{Relocated: true}
	names.Add(idx.Digest, r.String())
	carried := Carried{Index: idx, Manifests: map[digest.Digest]string{}, Names: names}
	// The manifests of the bundle's graph, each labelled by its place.
	src := content.WithBytes(c.Store(repo), idx, got.Manifest)
	wo := content.WalkOptions{MaxDepth: 8, MaxManifestBytes: o.maxMetadata,
		OnError: func(_ ocispec.Descriptor, err error) error { return fmt.Errorf("bundle %s: %w", ref, err) }}
	labels, err := LabelManifests(ctx, src, []ocispec.Descriptor{idx}, []string{"bundle index"}, wo, func(n content.Node) {
		st.data[n.Desc.Digest] = n.Raw
	})
	if err != nil {
		return nil, err
	}
	maps.Copy(carried.Manifests, labels)
	// bundle.json: the config of the config manifest.
	var ix ocispec.Index
	if err := json.Unmarshal(got.Manifest, &ix); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", ref, err)
	}
	for _, ch := range ix.Manifests {
		if ch.Annotations[layout.AnnotationCNABManifestType] != "config" {
			continue
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(st.data[ch.Digest], &m); err != nil {
			return nil, fmt.Errorf("bundle %s: config manifest: %w", ref, err)
		}
		rc, err := content.Open(ctx, st, m.Config)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: bundle.json: %w", ref, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, o.maxMetadata+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("bundle %s: bundle.json: %w", ref, err)
		}
		carried.BundleJSON = b
		names.Add(ch.Digest, r.String())
	}
	if carried.BundleJSON == nil {
		return nil, fmt.Errorf("bundle %s: the index has no config manifest", ref)
	}
	carried.Subjects = append([]PolicySubject{{Reference: r.String(), Digest: idx.Digest}}, addImageNames(names, carried.BundleJSON, carried.Manifests)...)
	var subjects []Subject
	for d := range carried.Manifests {
		subjects = append(subjects, Subject{Digest: d, Repos: []name.Repository{repo}})
	}
	found, err := Collect(ctx, RegistryRepositories(c), subjects, opts...)
	if err != nil {
		return nil, err
	}
	for _, b := range found.Blobs {
		if b.Data != nil {
			st.data[b.Digest] = b.Data
		}
		st.repos[b.Digest] = b.Repo
	}
	carried.Artifacts = found.Roots
	return &Remote{Store: st, Carried: carried, Collection: found}, nil
}

// childLabel names a child of an index for messages.
func childLabel(parent string, d ocispec.Descriptor) string {
	switch d.Annotations[layout.AnnotationCNABManifestType] {
	case "config":
		return "bundle config manifest"
	case "invocation":
		return "invocation image"
	case "component":
		return "image " + d.Annotations[layout.AnnotationCNABComponentName]
	}
	if d.Platform != nil {
		p := d.Platform.OS + "/" + d.Platform.Architecture
		if d.Platform.Variant != "" {
			p += "/" + d.Platform.Variant
		}
		return parent + " " + p
	}
	return parent + " child"
}

// LabelManifests walks the manifests and indexes below roots in f (blobs are
// not visited), one at a time, and names each for messages: a root by its
// label in labels, an index's child by its parent's name and its role or
// platform ("bundle index", "image web", "image web linux/arm64"). A
// manifest reached twice keeps its first name. visit, if set, sees each
// manifest node too. o sets the walk's bounds; its concurrency, PreVisit
// and Successors are the function's own.
func LabelManifests(ctx context.Context, f content.Fetcher, roots []ocispec.Descriptor, labels []string, o content.WalkOptions, visit func(content.Node)) (map[digest.Digest]string, error) {
	out := map[digest.Digest]string{}
	rootLabel := map[digest.Digest]string{}
	for i, r := range roots {
		if _, ok := rootLabel[r.Digest]; !ok {
			rootLabel[r.Digest] = labels[i]
		}
	}
	o.Concurrency = 1
	o.Successors = nil
	o.PreVisit = func(_ context.Context, d ocispec.Descriptor, depth int) error {
		if depth > 0 && !layout.IsManifestOrIndex(d.MediaType) {
			return content.ErrSkip
		}
		return nil
	}
	err := content.Walk(ctx, f, roots, o, func(_ context.Context, n content.Node) error {
		if n.Depth == 0 {
			out[n.Desc.Digest] = rootLabel[n.Desc.Digest]
		} else {
			out[n.Desc.Digest] = childLabel(out[n.Parent], n.Desc)
		}
		if visit != nil {
			visit(n)
		}
		return nil
	})
	return out, err
}

// addImageNames names each image manifest of a bundle by the image string
// bundle.json gives it (found by contentDigest), for images whose manifest
// the bundle index carries, and returns those images as policy subjects.
func addImageNames(n *Names, bundleJSON []byte, carried map[digest.Digest]string) []PolicySubject {
	type image struct {
		Image         string        `json:"image"`
		ContentDigest digest.Digest `json:"contentDigest"`
	}
	var b struct {
		InvocationImages []image          `json:"invocationImages"`
		Images           map[string]image `json:"images"`
	}
	if json.Unmarshal(bundleJSON, &b) != nil {
		return nil
	}
	all := b.InvocationImages
	for _, k := range slices.Sorted(maps.Keys(b.Images)) {
		all = append(all, b.Images[k])
	}
	var out []PolicySubject
	for _, im := range all {
		if _, ok := carried[im.ContentDigest]; ok {
			n.Add(im.ContentDigest, im.Image)
			out = append(out, PolicySubject{Reference: im.Image, Digest: im.ContentDigest})
		}
	}
	return out
}
