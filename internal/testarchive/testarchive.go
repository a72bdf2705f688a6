package testarchive

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Reference values of the fixture.
const (
	// BundleReference is where the bundle was "exported" from.
	BundleReference = "example.com/bundles/app:1.0.0"
	// InstallerRef and WebRef are the `image` strings of bundle.json.
	InstallerRef = "example.com/app/installer:1.0.0"
	WebRef       = "example.com/library/web:1.0"
	// SignatureType is the artifactType of the signature referrer.
	SignatureType = "application/vnd.example.signature.v1"
)

// Image is one image of the fixture bundle.
type Image struct {
	Role, Name, Ref string
	Digest          digest.Digest
	MediaType       string
	Size            int64
}

// Archive describes a written fixture.
type Archive struct {
	Path         string
	BundleJSON   []byte
	BundleDigest digest.Digest
	// Index is the bundle's OCI index (cnab-to-oci form).
	Index ocispec.Descriptor
	// Images are the installer (invocation) and web (component, an index
	// of linux/amd64 and linux/arm64).
	Images []Image
	// Signature is an artifact manifest whose subject is the web index.
	Signature ocispec.Descriptor
	// SharedLayer is the layer every platform of every image uses.
	SharedLayer ocispec.Descriptor
	// Blobs are all non-manifest blobs with their sizes (layers, configs,
	// bundle.json, the signature's blobs).
	Blobs map[digest.Digest]int64
	// Manifests are all manifests and indexes with their sizes.
	Manifests map[digest.Digest]int64
	// ArchiveDigest is the sha256 of the archive file.
	ArchiveDigest digest.Digest
}

// content returns n deterministic, incompressible bytes for seed.
func content(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

type builder struct {
	blobs     map[digest.Digest][]byte
	manifests map[digest.Digest]int64
}

func (b *builder) blob(mt string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	b.blobs[d] = data
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
}

func (b *builder) manifest(mt string, v any) (ocispec.Descriptor, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := b.blob(mt, raw)
	b.manifests[d.Digest] = d.Size
	return d, nil
}

func (b *builder) image(config []byte, layers ...ocispec.Descriptor) (ocispec.Descriptor, error) {
	cfg := b.blob(ocispec.MediaTypeImageConfig, config)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers}
	m.SchemaVersion = 2
	return b.manifest(ocispec.MediaTypeImageManifest, m)
}

// Write writes the fixture archive to path (through layout.Create, as an
// export does) and describes it.
func Write(path string) (*Archive, error) {
	b := &builder{blobs: map[digest.Digest][]byte{}, manifests: map[digest.Digest]int64{}}
	a := &Archive{Path: path}
	a.SharedLayer = b.blob(ocispec.MediaTypeImageLayerGzip, content("shared", 256<<10))
	own := func(seed string) ocispec.Descriptor {
		return b.blob(ocispec.MediaTypeImageLayerGzip, content(seed, 64<<10))
	}
	config := func(arch string) []byte {
		return []byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, arch))
	}
	installer, err := b.image(config("amd64"), a.SharedLayer, own("installer"))
	if err != nil {
		return nil, err
	}
	amd, err := b.image(append(config("amd64"), ' '), a.SharedLayer, own("web-amd64"))
	if err != nil {
		return nil, err
	}
	arm, err := b.image(config("arm64"), a.SharedLayer, own("web-arm64"))
	if err != nil {
		return nil, err
	}
	amd.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	webIdx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{amd, arm}}
	webIdx.SchemaVersion = 2
	web, err := b.manifest(ocispec.MediaTypeImageIndex, webIdx)
	if err != nil {
		return nil, err
	}
	a.Images = []Image{
		{Role: "invocation", Name: "0", Ref: InstallerRef, Digest: installer.Digest, MediaType: installer.MediaType, Size: installer.Size},
		{Role: "component", Name: "web", Ref: WebRef, Digest: web.Digest, MediaType: web.MediaType, Size: web.Size},
	}

	// A signature attached to the web index as an OCI 1.1 referrer.
	empty := b.blob("application/vnd.oci.empty.v1+json", []byte("{}"))
	sig := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: SignatureType, Config: empty,
		Layers:      []ocispec.Descriptor{b.blob("application/octet-stream", content("signature", 96))},
		Subject:     &ocispec.Descriptor{MediaType: web.MediaType, Digest: web.Digest, Size: web.Size},
		Annotations: map[string]string{"org.example.signer": "fixture"}}
	sig.SchemaVersion = 2
	if a.Signature, err = b.manifest(ocispec.MediaTypeImageManifest, sig); err != nil {
		return nil, err
	}

	// bundle.json: canonical JSON (sorted keys, no insignificant space).
	bundle := map[string]any{
		"schemaVersion": "v1.2.0", "name": "app", "version": "1.0.0",
		"invocationImages": []any{map[string]any{"imageType": "oci", "image": InstallerRef,
			"contentDigest": installer.Digest.String(), "mediaType": installer.MediaType, "size": installer.Size}},
		"images": map[string]any{"web": map[string]any{"imageType": "oci", "image": WebRef, "description": "web",
			"contentDigest": web.Digest.String(), "mediaType": web.MediaType, "size": web.Size}},
	}
	if a.BundleJSON, err = json.Marshal(bundle); err != nil {
		return nil, err
	}
	bj := b.blob(layout.MediaTypeCNABConfig, a.BundleJSON)
	a.BundleDigest = bj.Digest
	cm := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: bj, Layers: []ocispec.Descriptor{}}
	cm.SchemaVersion = 2
	cmDesc, err := b.manifest(ocispec.MediaTypeImageManifest, cm)
	if err != nil {
		return nil, err
	}
	annotate := func(d ocispec.Descriptor, kv ...string) ocispec.Descriptor {
		d.Annotations = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			d.Annotations[kv[i]] = kv[i+1]
		}
		return d
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		annotate(cmDesc, layout.AnnotationCNABManifestType, "config"),
		annotate(installer, layout.AnnotationCNABManifestType, "invocation"),
		annotate(web, layout.AnnotationCNABManifestType, "component", layout.AnnotationCNABComponentName, "web"),
	}}
	idx.SchemaVersion = 2
	if a.Index, err = b.manifest(ocispec.MediaTypeImageIndex, idx); err != nil {
		return nil, err
	}

	// Format 1, as earlier releases wrote it (the bundle entry named by
	// org.opencontainers.image.ref.name): the unit tests that read this
	// fixture keep format 1 readable; the end-to-end tests read the format
	// export writes now.
	root := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Annotations: map[string]string{
		layout.AnnotationFormatVersion:   "1",
		layout.AnnotationBundleDigest:    a.BundleDigest.String(),
		layout.AnnotationBundleReference: BundleReference,
	}, Manifests: []ocispec.Descriptor{
		annotate(a.Index, layout.AnnotationRefName, BundleReference, layout.AnnotationRole, layout.RoleBundle),
		annotate(installer, layout.AnnotationRefName, InstallerRef, layout.AnnotationRole, layout.RoleInvocation, layout.AnnotationInvocationIndex, "0"),
		annotate(web, layout.AnnotationRefName, WebRef, layout.AnnotationRole, layout.RoleComponent, layout.AnnotationComponent, "web"),
		annotate(ocispec.Descriptor{MediaType: a.Signature.MediaType, Digest: a.Signature.Digest, Size: a.Signature.Size, ArtifactType: SignatureType},
			layout.AnnotationRole, layout.RoleSignature, layout.AnnotationSubject, web.Digest.String()),
	}}
	root.SchemaVersion = 2
	indexJSON, err := json.Marshal(root)
	if err != nil {
		return nil, err
	}

	a.Blobs = map[digest.Digest]int64{}
	a.Manifests = b.manifests
	var blobs []layout.Blob
	ds := make([]digest.Digest, 0, len(b.blobs))
	for d := range b.blobs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	for _, d := range ds {
		blobs = append(blobs, layout.Blob{Digest: d, Size: int64(len(b.blobs[d])), Data: b.blobs[d]})
		if _, ok := b.manifests[d]; !ok {
			a.Blobs[d] = int64(len(b.blobs[d]))
		}
	}
	plan, err := layout.NewPlan([]layout.File{
		{Name: layout.OCILayoutFile, Data: []byte(layout.OCILayoutContent)},
		{Name: layout.IndexFile, Data: indexJSON},
		{Name: layout.BundleFile, Data: a.BundleJSON},
	}, blobs)
	if err != nil {
		return nil, err
	}
	w, err := layout.Create(path, plan, layout.CreateOptions{})
	if err != nil {
		return nil, err
	}
	if a.ArchiveDigest, err = w.Commit(); err != nil {
		w.Abort()
		return nil, err
	}
	return a, nil
}
