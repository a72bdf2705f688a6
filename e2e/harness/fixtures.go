package harness

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// Format selects the manifest and layer media types of fixture images.
type Format string

const (
	// FormatOCI builds OCI image manifests, OCI config and OCI gzip layers
	// (and OCI image indexes). It is the default.
	FormatOCI Format = "oci"
	// FormatDocker builds Docker v2 schema 2 manifests, Docker config and
	// Docker gzip layers (and Docker manifest lists).
	FormatDocker Format = "docker"
)

func (f Format) layerMediaType() types.MediaType {
	if f == FormatDocker {
		return types.DockerLayer
	}
	return types.OCILayer
}

// LayerSpec describes a fixture layer: a gzip-compressed tar holding one
// file, harness/<Label>.bin, of Size pseudo-random bytes. Within one seed,
// equal Label and Size give byte-identical layers, which is how images share
// layers.
type LayerSpec struct {
	Label string
	Size  int64
}

// ImageSpec describes a fixture image.
type ImageSpec struct {
	// Name is recorded in the image config (label and Cmd), so images with
	// the same layers but different names have different digests.
	Name string
	// Seed determines layer content (together with each layer's Label and
	// Size).
	Seed uint64
	// Format selects OCI (default) or Docker v2 schema 2 media types.
	Format Format
	// Platform is recorded in the config; the zero value means linux/amd64.
	Platform v1.Platform
	// Layers lists the layers, base first.
	Layers []LayerSpec
}

// IndexSpec describes a multi-platform fixture index: one image per
// platform, all starting with the shared Layers and followed by
// PlatformLayers whose labels get a "-OS-ARCH[-VARIANT]" suffix so that their
// content differs per platform.
type IndexSpec struct {
	// Name is recorded in every child's config.
	Name string
	// Seed determines layer content.
	Seed uint64
	// Format selects an OCI image index (default) or a Docker manifest
	// list, and the media types of the children.
	Format Format
	// Platforms lists the children's platforms; empty means linux/amd64
	// and linux/arm64.
	Platforms []v1.Platform
	// Layers are shared by all children (same digests).
	Layers []LayerSpec
	// PlatformLayers are added on top of Layers, with per-platform content.
	PlatformLayers []LayerSpec
}

// DefaultPlatforms are the platforms of an IndexSpec without Platforms.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// layerKey identifies a fixture layer; equal keys mean identical bytes.
type layerKey struct {
	seed   uint64
	label  string
	size   int64
	format Format
}

type layerSums struct {
	digest, diffID v1.Hash
	size           int64
}

// sumCache remembers the digests of layers already hashed, so building
// several images sharing a large layer hashes it once.
var sumCache sync.Map // layerKey -> layerSums

// randomLayer is a v1.Layer whose content is regenerated from its key every
// time it is read: nothing but its digests is kept in memory.
type randomLayer struct {
	key  layerKey
	sums layerSums
}

var _ v1.Layer = (*randomLayer)(nil)

// NewLayer returns a deterministic fixture layer (see LayerSpec) in the
// given format. Its digests are computed by streaming the content once;
// Compressed and Uncompressed regenerate the stream on every call, so even a
// 100 MiB layer is never held in memory. Content is produced with ChaCha8 and
// compressed with gzip.NoCompression, so it is incompressible and fast.
func NewLayer(seed uint64, label string, size int64, format Format) (v1.Layer, error) {
	if size < 0 {
		return nil, fmt.Errorf("harness: negative layer size %d", size)
	}
	if label == "" {
		return nil, errors.New("harness: layer label must not be empty")
	}
	if format == "" {
		format = FormatOCI
	}
	key := layerKey{seed: seed, label: label, size: size, format: format}
	if v, ok := sumCache.Load(key); ok {
		return &randomLayer{key: key, sums: v.(layerSums)}, nil
	}
	l := &randomLayer{key: key}
	cd, uh := sha256.New(), sha256.New()
	cw := &countWriter{w: cd}
	if err := l.writeCompressed(cw, uh); err != nil {
		return nil, err
	}
	l.sums = layerSums{
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(cd.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))},
		size:   cw.n,
	}
	sumCache.Store(key, l.sums)
	return l, nil
}

// Digest implements v1.Layer.
func (l *randomLayer) Digest() (v1.Hash, error) { return l.sums.digest, nil }

// DiffID implements v1.Layer.
func (l *randomLayer) DiffID() (v1.Hash, error) { return l.sums.diffID, nil }

// Size implements v1.Layer (compressed size).
func (l *randomLayer) Size() (int64, error) { return l.sums.size, nil }

// MediaType implements v1.Layer.
func (l *randomLayer) MediaType() (types.MediaType, error) { return l.key.format.layerMediaType(), nil }

// Compressed implements v1.Layer by regenerating the gzip stream.
func (l *randomLayer) Compressed() (io.ReadCloser, error) {
	return pipe(func(w io.Writer) error { return l.writeCompressed(w, nil) }), nil
}

// Uncompressed implements v1.Layer by regenerating the tar stream.
func (l *randomLayer) Uncompressed() (io.ReadCloser, error) {
	return pipe(l.writeTar), nil
}

func pipe(produce func(io.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(produce(pw)) }()
	return pr
}

// writeCompressed writes the gzip stream to w and, if tarHash is not nil,
// the tar stream to tarHash.
func (l *randomLayer) writeCompressed(w io.Writer, tarHash hash.Hash) error {
	gz, err := gzip.NewWriterLevel(w, gzip.NoCompression)
	if err != nil {
		return err
	}
	var dst io.Writer = gz
	if tarHash != nil {
		dst = io.MultiWriter(gz, tarHash)
	}
	if err := l.writeTar(dst); err != nil {
		return err
	}
	return gz.Close()
}

var epoch = time.Unix(0, 0).UTC()

func (l *randomLayer) writeTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeDir, Name: "harness/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: "harness/" + safeName(l.key.label) + ".bin",
		Mode: 0o644, Size: l.key.size, ModTime: epoch, Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	rng := rand.NewChaCha8(l.key.rngSeed())
	buf := make([]byte, 256<<10)
	for left := l.key.size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = rng.Read(buf[:n])
		if _, err := tw.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return tw.Close()
}

func (k layerKey) rngSeed() [32]byte {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte("cnab-airgap/e2e/harness/layer\x00"))
	binary.BigEndian.PutUint64(b[:], k.seed)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(k.size))
	h.Write(b[:])
	h.Write([]byte(k.label))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewImage builds a deterministic fixture image from spec. Its layers are
// streamed (see NewLayer).
func NewImage(spec ImageSpec) (v1.Image, error) {
	format := spec.Format
	if format == "" {
		format = FormatOCI
	}
	plat := spec.Platform
	if plat.OS == "" {
		plat.OS = "linux"
	}
	if plat.Architecture == "" {
		plat.Architecture = "amd64"
	}

	base := empty.Image
	if format == FormatOCI {
		base = mutate.MediaType(base, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	} else {
		base = mutate.MediaType(base, types.DockerManifestSchema2)
		base = mutate.ConfigMediaType(base, types.DockerConfigJSON)
	}
	img, err := mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: plat.Architecture,
		OS:           plat.OS,
		Variant:      plat.Variant,
		OSVersion:    plat.OSVersion,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Cmd: []string{"/harness/" + safeName(spec.Name)},
			Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			Labels: map[string]string{
				"org.opencontainers.image.title": spec.Name,
				"io.cnab-airgap.harness.seed":    strconv.FormatUint(spec.Seed, 10),
			},
		},
	})
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, 0, len(spec.Layers))
	for _, ls := range spec.Layers {
		l, err := NewLayer(spec.Seed, ls.Label, ls.Size, format)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{
			Layer:   l,
			History: v1.History{CreatedBy: "cnab-airgap harness layer " + ls.Label},
		})
	}
	return mutate.Append(img, adds...)
}

// NewIndex builds a deterministic multi-platform fixture index from spec.
func NewIndex(spec IndexSpec) (v1.ImageIndex, error) {
	format := spec.Format
	if format == "" {
		format = FormatOCI
	}
	plats := spec.Platforms
	if len(plats) == 0 {
		plats = DefaultPlatforms
	}
	var idx v1.ImageIndex = empty.Index
	if format == FormatOCI {
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	} else {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	adds := make([]mutate.IndexAddendum, 0, len(plats))
	for _, p := range plats {
		suffix := "-" + p.OS + "-" + p.Architecture
		if p.Variant != "" {
			suffix += "-" + p.Variant
		}
		layers := append([]LayerSpec(nil), spec.Layers...)
		for _, ls := range spec.PlatformLayers {
			layers = append(layers, LayerSpec{Label: ls.Label + suffix, Size: ls.Size})
		}
		img, err := NewImage(ImageSpec{Name: spec.Name, Seed: spec.Seed, Format: format, Platform: p, Layers: layers})
		if err != nil {
			return nil, err
		}
		plat := p
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// PushedImage describes an image or index stored in a registry.
type PushedImage struct {
	// Ref is the reference it was pushed or looked up with, e.g.
	// "127.0.0.1:PORT/library/web:1.0".
	Ref string
	// Repository is Ref without tag or digest.
	Repository string
	// Digest is the manifest digest reported by the registry.
	Digest digest.Digest
	// MediaType is the manifest media type reported by the registry.
	MediaType string
	// Size is the manifest's length in bytes.
	Size int64
}

// DigestRef returns Repository@Digest.
func (p *PushedImage) DigestRef() string { return p.Repository + "@" + p.Digest.String() }

// PushImage pushes img to ref on this registry (a full reference or a path
// such as "library/db:1.0", see Ref) and returns what the registry reports
// for it.
func (r *Registry) PushImage(ctx context.Context, ref string, img v1.Image) (*PushedImage, error) {
	nref, err := r.Reference(ref)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(nref, img, append(r.RemoteOptions(), remote.WithContext(ctx))...); err != nil {
		return nil, fmt.Errorf("harness: pushing image %s: %w", nref, err)
	}
	return r.Describe(ctx, nref.String())
}

// PushIndex pushes idx (and all its children) to ref on this registry and
// returns what the registry reports for it.
func (r *Registry) PushIndex(ctx context.Context, ref string, idx v1.ImageIndex) (*PushedImage, error) {
	nref, err := r.Reference(ref)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(nref, idx, append(r.RemoteOptions(), remote.WithContext(ctx))...); err != nil {
		return nil, fmt.Errorf("harness: pushing index %s: %w", nref, err)
	}
	return r.Describe(ctx, nref.String())
}

// Describe asks this registry (HEAD on the manifest) for the digest, media
// type and size of ref.
func (r *Registry) Describe(ctx context.Context, ref string) (*PushedImage, error) {
	nref, err := r.Reference(ref)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Head(nref, append(r.RemoteOptions(), remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("harness: describing %s: %w", nref, err)
	}
	return &PushedImage{
		Ref:        r.Ref(ref),
		Repository: nref.Context().Name(),
		Digest:     digest.Digest(desc.Digest.String()),
		MediaType:  string(desc.MediaType),
		Size:       desc.Size,
	}, nil
}

// describeAnywhere describes a full reference on whichever running harness
// registry serves its host. References to other hosts are refused: the
// harness never contacts anything but its own registries.
func describeAnywhere(ctx context.Context, ref string) (*PushedImage, error) {
	nref, err := name.ParseReference(ref, name.WeakValidation, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("harness: parsing image reference %q: %w", ref, err)
	}
	reg := lookupRegistry(nref.Context().RegistryStr())
	if reg == nil {
		return nil, fmt.Errorf("harness: image %q is not on a running harness registry", ref)
	}
	return reg.Describe(ctx, ref)
}
