package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/cnabio/cnab-go/bundle"
	"github.com/cnabio/cnab-to-oci/remotes"
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CNAB annotations used by cnab-to-oci on the bundle index's descriptors.
const (
	// AnnotationManifestType marks each descriptor of a bundle index as
	// "config", "invocation" or "component".
	AnnotationManifestType = "io.cnab.manifest.type"
	// AnnotationComponentName carries the component name of "component"
	// descriptors.
	AnnotationComponentName = "io.cnab.component.name"
)

// Invocation selects the bundle's (first) invocation image where functions
// take an image name; any other name selects the component of that name.
const Invocation = "invocation"

// WrongDigest is the well-formed but wrong contentDigest that
// TamperBundleDigest and BundleJSONWithWrongDigest write into bundle.json.
// No content has this digest.
var WrongDigest = func() digest.Digest {
	sum := sha256.Sum256([]byte("cnab-airgap e2e harness: deliberately wrong content digest"))
	return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
}()

// BundleImage describes one image of a pushed bundle.
type BundleImage struct {
	// Kind is "invocation" or "component".
	Kind string
	// Name is the component name (Invocation for the invocation image).
	Name string
	// Image is the image reference as written in bundle.json.
	Image string
	// ContentDigest is the contentDigest written in bundle.json.
	ContentDigest digest.Digest
	// IndexDigest is the digest the bundle index references for this image
	// (the real manifest digest). It differs from ContentDigest only in
	// tampered bundles.
	IndexDigest digest.Digest
	// MediaType and Size are the mediaType and size written in bundle.json.
	MediaType string
	Size      uint64
	// Relocated is the digested reference of the copy cnab-to-oci made in
	// the bundle repository.
	Relocated string
}

// DigestRef is the image pinned by its contentDigest: the repository of
// Image (without its tag or digest) @ ContentDigest.
func (i BundleImage) DigestRef() string {
	return repoOnly(strings.SplitN(i.Image, "@", 2)[0]) + "@" + i.ContentDigest.String()
}

// PushedBundle describes a bundle stored in a registry in the cnab-to-oci
// layout: an image index whose descriptors point at a config manifest (whose
// config blob is bundle.json) and at every image of the bundle, all copied
// into the bundle repository.
type PushedBundle struct {
	// Ref is the reference the bundle was pushed (or read) with, e.g.
	// "127.0.0.1:PORT/bundles/sample-app:0.1.0".
	Ref string
	// Repository is Ref without the tag.
	Repository string
	// Digest is the digest of the bundle index.
	Digest digest.Digest
	// IndexMediaType is the media type of the bundle index.
	IndexMediaType string
	// IndexJSON is the exact bundle index manifest.
	IndexJSON []byte
	// ConfigManifestDigest and ConfigManifestMediaType describe the
	// manifest wrapping bundle.json.
	ConfigManifestDigest    digest.Digest
	ConfigManifestMediaType string
	// ConfigMediaType is the media type of the bundle.json blob.
	ConfigMediaType string
	// Bundle is the bundle as stored.
	Bundle *bundle.Bundle
	// BundleJSON is the exact bundle.json stored as the config blob.
	BundleJSON []byte
	// BundleJSONDigest is the digest of BundleJSON.
	BundleJSONDigest digest.Digest
	// Images lists the invocation image first, then components by name.
	Images []BundleImage
	// RelocationMap maps each image of bundle.json to its digested copy in
	// the bundle repository, as returned by cnab-to-oci.
	RelocationMap map[string]string
}

// DigestRef returns Repository@Digest.
func (p *PushedBundle) DigestRef() string { return p.Repository + "@" + p.Digest.String() }

// Image returns the image called name (a component name or Invocation).
func (p *PushedBundle) Image(name string) (BundleImage, bool) {
	for _, im := range p.Images {
		if im.Name == name {
			return im, true
		}
	}
	return BundleImage{}, false
}

// PushBundle pushes b to ref (a tag on reg, full or relative as in
// Registry.Ref) the way users do with cnab-to-oci: remotes.FixupBundle, which
// copies every image into the bundle repository, then remotes.Push. b is
// updated in place: images without contentDigest, size or mediaType get the
// values the registry reports for their manifest (images must be on running
// harness registries). It returns what was stored, read back from the
// registry.
func PushBundle(ctx context.Context, reg *Registry, ref string, b *bundle.Bundle) (*PushedBundle, error) {
	named, err := reference.ParseNormalizedNamed(reg.Ref(ref))
	if err != nil {
		return nil, fmt.Errorf("harness: bundle reference %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	if len(b.InvocationImages) != 1 {
		return nil, fmt.Errorf("harness: bundle needs exactly one invocation image, has %d", len(b.InvocationImages))
	}

	fill := func(bi *bundle.BaseImage) error {
		if bi.Digest != "" && bi.Size != 0 && bi.MediaType != "" {
			return nil
		}
		d, err := describeAnywhere(ctx, bi.Image)
		if err != nil {
			return err
		}
		if bi.Digest == "" {
			bi.Digest = d.Digest.String()
		}
		if bi.Size == 0 {
			bi.Size = uint64(d.Size)
		}
		if bi.MediaType == "" {
			bi.MediaType = d.MediaType
		}
		return nil
	}
	if err := fill(&b.InvocationImages[0].BaseImage); err != nil {
		return nil, err
	}
	for n, im := range b.Images {
		if err := fill(&im.BaseImage); err != nil {
			return nil, fmt.Errorf("component %q: %w", n, err)
		}
		b.Images[n] = im
	}

	resolver := NewResolver(reg)
	// Copy serially: cnab-to-oci v0.6.1's manifest walker shares an error
	// variable between its copy goroutines, and containerd's token
	// authorizer writes a cached token's expiry without its lock; both are
	// data races that `go test -race` reports with parallel copies.
	relocation, err := remotes.FixupBundle(ctx, b, named, resolver, remotes.WithParallelism(1, 64))
	if err != nil {
		return nil, fmt.Errorf("harness: cnab-to-oci fixup of %s: %w", named, err)
	}
	desc, err := remotes.Push(ctx, b, relocation, named, resolver, true)
	if err != nil {
		return nil, fmt.Errorf("harness: cnab-to-oci push of %s: %w", named, err)
	}
	pb, err := ReadBundle(ctx, reg, named.String())
	if err != nil {
		return nil, err
	}
	if pb.Digest != desc.Digest {
		return nil, fmt.Errorf("harness: %s resolves to %s, cnab-to-oci pushed %s", named, pb.Digest, desc.Digest)
	}
	pb.RelocationMap = map[string]string(relocation)
	return pb, nil
}

// ReadBundle reads a bundle stored in the cnab-to-oci layout at ref (a tag
// or digest reference on reg) straight from the registry: it fetches the
// index, follows the descriptor annotated io.cnab.manifest.type=config to the
// config manifest and downloads its config blob, bundle.json.
// RelocationMap is derived from the index.
func ReadBundle(ctx context.Context, reg *Registry, ref string) (*PushedBundle, error) {
	nref, err := reg.Reference(ref)
	if err != nil {
		return nil, err
	}
	opts := append(reg.RemoteOptions(), remote.WithContext(ctx))
	idxDesc, err := remote.Get(nref, opts...)
	if err != nil {
		return nil, fmt.Errorf("harness: fetching bundle index %s: %w", nref, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(idxDesc.Manifest, &idx); err != nil {
		return nil, fmt.Errorf("harness: decoding bundle index %s: %w", nref, err)
	}
	repo := nref.Context()
	pb := &PushedBundle{
		Ref:            reg.Ref(ref),
		Repository:     repo.Name(),
		Digest:         digest.Digest(idxDesc.Digest.String()),
		IndexMediaType: string(idxDesc.MediaType),
		IndexJSON:      idxDesc.Manifest,
	}

	var cfgDesc *ocispec.Descriptor
	for i := range idx.Manifests {
		if idx.Manifests[i].Annotations[AnnotationManifestType] == "config" {
			cfgDesc = &idx.Manifests[i]
			break
		}
	}
	if cfgDesc == nil {
		return nil, fmt.Errorf("harness: bundle index %s has no %s=config descriptor", nref, AnnotationManifestType)
	}
	pb.ConfigManifestDigest = cfgDesc.Digest
	pb.ConfigManifestMediaType = cfgDesc.MediaType

	cfgManDesc, err := remote.Get(repo.Digest(cfgDesc.Digest.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("harness: fetching bundle config manifest: %w", err)
	}
	var cfgMan ocispec.Manifest
	if err := json.Unmarshal(cfgManDesc.Manifest, &cfgMan); err != nil {
		return nil, fmt.Errorf("harness: decoding bundle config manifest: %w", err)
	}
	pb.ConfigMediaType = cfgMan.Config.MediaType
	pb.BundleJSON, err = fetchBlob(repo, cfgMan.Config.Digest, opts)
	if err != nil {
		return nil, fmt.Errorf("harness: fetching bundle.json: %w", err)
	}
	pb.BundleJSONDigest = digest.FromBytes(pb.BundleJSON)
	if pb.BundleJSONDigest != cfgMan.Config.Digest {
		return nil, fmt.Errorf("harness: bundle.json digest %s, config manifest says %s", pb.BundleJSONDigest, cfgMan.Config.Digest)
	}
	pb.Bundle, err = bundle.Unmarshal(pb.BundleJSON)
	if err != nil {
		return nil, fmt.Errorf("harness: decoding bundle.json: %w", err)
	}

	pb.Images, pb.RelocationMap, err = bundleImages(pb.Bundle, &idx, repo.Name())
	if err != nil {
		return nil, err
	}
	return pb, nil
}

func fetchBlob(repo name.Repository, d digest.Digest, opts []remote.Option) ([]byte, error) {
	l, err := remote.Layer(repo.Digest(d.String()), opts...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// bundleImages pairs bundle.json's images with the index descriptors.
func bundleImages(b *bundle.Bundle, idx *ocispec.Index, repo string) ([]BundleImage, map[string]string, error) {
	var invocation *ocispec.Descriptor
	components := map[string]*ocispec.Descriptor{}
	for i := range idx.Manifests {
		d := &idx.Manifests[i]
		switch d.Annotations[AnnotationManifestType] {
		case "invocation":
			invocation = d
		case "component":
			components[d.Annotations[AnnotationComponentName]] = d
		}
	}
	reloc := map[string]string{}
	mk := func(kind, n string, bi bundle.BaseImage, d *ocispec.Descriptor) (BundleImage, error) {
		if d == nil {
			return BundleImage{}, fmt.Errorf("harness: bundle index has no descriptor for %s %q", kind, n)
		}
		im := BundleImage{
			Kind:          kind,
			Name:          n,
			Image:         bi.Image,
			ContentDigest: digest.Digest(bi.Digest),
			IndexDigest:   d.Digest,
			MediaType:     bi.MediaType,
			Size:          bi.Size,
			Relocated:     repo + "@" + d.Digest.String(),
		}
		reloc[bi.Image] = im.Relocated
		return im, nil
	}
	if len(b.InvocationImages) == 0 {
		return nil, nil, errors.New("harness: bundle.json has no invocation image")
	}
	inv, err := mk("invocation", Invocation, b.InvocationImages[0].BaseImage, invocation)
	if err != nil {
		return nil, nil, err
	}
	out := []BundleImage{inv}
	names := make([]string, 0, len(b.Images))
	for n := range b.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		im, err := mk("component", n, b.Images[n].BaseImage, components[n])
		if err != nil {
			return nil, nil, err
		}
		out = append(out, im)
	}
	return out, reloc, nil
}

// BundleJSONWithWrongDigest returns bundle.json (canonical JSON, as
// cnab-to-oci stores it) with the contentDigest of image (a component name or
// Invocation) replaced by WrongDigest. Write the result to a file to test the
// `--bundle-file` path of an export: the images themselves are untouched.
func BundleJSONWithWrongDigest(bundleJSON []byte, image string) ([]byte, error) {
	b, err := bundle.Unmarshal(bundleJSON)
	if err != nil {
		return nil, fmt.Errorf("harness: decoding bundle.json: %w", err)
	}
	if err := setDigest(b, image, WrongDigest); err != nil {
		return nil, err
	}
	return b.Marshal()
}

func setDigest(b *bundle.Bundle, image string, d digest.Digest) error {
	if image == Invocation {
		if len(b.InvocationImages) == 0 {
			return errors.New("harness: bundle has no invocation image")
		}
		b.InvocationImages[0].Digest = d.String()
		return nil
	}
	im, ok := b.Images[image]
	if !ok {
		return fmt.Errorf("harness: bundle has no image %q", image)
	}
	im.Digest = d.String()
	b.Images[image] = im
	return nil
}

// TamperBundleDigest stores in reg, at ref (a tag; "" means base's own tag,
// which is then overwritten), a copy of the pushed bundle base whose
// bundle.json gives image (a component name or Invocation) the contentDigest
// WrongDigest. cnab-to-oci refuses to push such a bundle, so it is written by
// hand in the same form: the new bundle.json blob, a config manifest like
// base's pointing at it, and an index equal to base's except for the config
// descriptor, so the index still references the real image manifest while
// bundle.json claims another digest. An export must reject it.
func TamperBundleDigest(ctx context.Context, reg *Registry, base *PushedBundle, image string, ref string) (*PushedBundle, error) {
	if ref == "" {
		ref = base.Ref
	}
	newJSON, err := BundleJSONWithWrongDigest(base.BundleJSON, image)
	if err != nil {
		return nil, err
	}
	repo, err := reg.Repository(base.Repository)
	if err != nil {
		return nil, err
	}
	tag, err := reg.Reference(ref)
	if err != nil {
		return nil, err
	}
	if tag.Context().Name() != repo.Name() {
		return nil, fmt.Errorf("harness: %s is not in bundle repository %s", tag, repo)
	}
	opts := append(reg.RemoteOptions(), remote.WithContext(ctx))

	// bundle.json blob.
	cfgLayer := static.NewLayer(newJSON, types.MediaType(base.ConfigMediaType))
	if err := remote.WriteLayer(repo, cfgLayer, opts...); err != nil {
		return nil, fmt.Errorf("harness: uploading tampered bundle.json: %w", err)
	}

	// Config manifest.
	oldMan, err := remote.Get(repo.Digest(base.ConfigManifestDigest.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("harness: fetching config manifest: %w", err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(oldMan.Manifest, &man); err != nil {
		return nil, err
	}
	man.Config.Digest = digest.FromBytes(newJSON)
	man.Config.Size = int64(len(newJSON))
	if len(man.Layers) == 1 && man.Layers[0].Digest == base.BundleJSONDigest {
		// cnab-to-oci's Docker schema 2 fallback lists the config as a layer.
		man.Layers[0].Digest, man.Layers[0].Size = man.Config.Digest, man.Config.Size
	}
	manJSON, err := json.Marshal(&man)
	if err != nil {
		return nil, err
	}
	manDigest := digest.FromBytes(manJSON)
	if err := remote.Put(repo.Digest(manDigest.String()), rawManifest{manJSON, types.MediaType(base.ConfigManifestMediaType)}, opts...); err != nil {
		return nil, fmt.Errorf("harness: pushing tampered config manifest: %w", err)
	}

	// Index.
	var idx ocispec.Index
	if err := json.Unmarshal(base.IndexJSON, &idx); err != nil {
		return nil, err
	}
	found := false
	for i := range idx.Manifests {
		if idx.Manifests[i].Annotations[AnnotationManifestType] == "config" {
			idx.Manifests[i].Digest = manDigest
			idx.Manifests[i].Size = int64(len(manJSON))
			found = true
		}
	}
	if !found {
		return nil, errors.New("harness: base bundle index has no config descriptor")
	}
	idxJSON, err := json.Marshal(&idx)
	if err != nil {
		return nil, err
	}
	if err := remote.Put(tag, rawManifest{idxJSON, types.MediaType(base.IndexMediaType)}, opts...); err != nil {
		return nil, fmt.Errorf("harness: pushing tampered bundle index: %w", err)
	}
	return ReadBundle(ctx, reg, tag.String())
}

// rawManifest is a remote.Taggable holding manifest bytes and media type.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

var _ remote.Taggable = rawManifest{}
