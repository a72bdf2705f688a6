package relocate

import (
	"encoding/json"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// RegistryForm is a bundle as cnab-to-oci pushes it: a config manifest
// whose config is bundle.json, and an OCI index that lists that manifest
// first, then every image. Export builds it for a bundle read from a local
// file, import for an archive of another tool that carries only
// bundle.json and the images.
type RegistryForm struct {
	// ConfigManifest and ConfigDesc are the config manifest and its index
	// entry (annotated io.cnab.manifest.type=config).
	ConfigManifest []byte
	ConfigDesc     ocispec.Descriptor
	// Index and IndexDesc are the bundle index and its descriptor.
	Index     []byte
	IndexDesc ocispec.Descriptor
}

// IndexEntry is image img's entry in a bundle index (d is its manifest):
// annotated as an invocation image, or as a component with its name.
func IndexEntry(img Image, d ocispec.Descriptor) ocispec.Descriptor {
	e := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Annotations: map[string]string{}}
	if img.Role == RoleInvocation {
		e.Annotations[layout.AnnotationCNABManifestType] = "invocation"
	} else {
		e.Annotations[layout.AnnotationCNABManifestType] = "component"
		e.Annotations[layout.AnnotationCNABComponentName] = img.Name
	}
	return e
}

// NewRegistryForm builds the registry form of bundle b, whose bundle.json
// bytes bundleJSON describes, with the index entries of its images
// (IndexEntry) in cnab-to-oci's order: invocation images, then components
// by name, as b.Images lists them.
func NewRegistryForm(b *Bundle, bundleJSON ocispec.Descriptor, images []ocispec.Descriptor) (*RegistryForm, error) {
	cfg := ocispec.Descriptor{MediaType: layout.MediaTypeCNABConfig, Digest: bundleJSON.Digest, Size: bundleJSON.Size}
	cm, err := json.Marshal(struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Config        ocispec.Descriptor   `json:"config"`
		Layers        []ocispec.Descriptor `json:"layers"`
	}{2, ocispec.MediaTypeImageManifest, cfg, []ocispec.Descriptor{}})
	if err != nil {
		return nil, err
	}
	f := &RegistryForm{ConfigManifest: cm, ConfigDesc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
		Digest: digest.FromBytes(cm), Size: int64(len(cm)), Annotations: map[string]string{layout.AnnotationCNABManifestType: "config"}}}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: append([]ocispec.Descriptor{f.ConfigDesc}, images...),
		Annotations: map[string]string{
			"io.cnab.runtime_version":         string(b.Parsed.SchemaVersion),
			"org.opencontainers.artifactType": "application/vnd.cnab.manifest.v1",
			ocispec.AnnotationTitle:           b.Name,
			ocispec.AnnotationVersion:         b.Version,
		}}
	idx.SchemaVersion = 2
	if f.Index, err = json.Marshal(idx); err != nil {
		return nil, err
	}
	f.IndexDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(f.Index), Size: int64(len(f.Index))}
	return f, nil
}

// VersionTag is the tag a bundle version is pushed under: the version with
// '+' (build metadata, not allowed in a tag) spelled '_', as cnab-to-oci
// and Porter spell it.
func VersionTag(version string) string { return strings.ReplaceAll(version, "+", "_") }
