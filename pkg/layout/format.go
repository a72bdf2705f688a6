package layout

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Names of the fixed files at the root of an archive.
const (
	OCILayoutFile = "oci-layout"
	IndexFile     = "index.json"
	BundleFile    = "bundle.json"
)

// DockerManifestFile is `docker save`'s index, which export writes beside
// index.json (FORMAT.md §5.4); readers of this package ignore it.
const DockerManifestFile = "manifest.json"

// OCILayoutContent is the exact content of the oci-layout file we write.
const OCILayoutContent = `{"imageLayoutVersion":"1.0.0"}`

// Annotations on index.json descriptors and on index.json itself.
const (
	// AnnotationRefName is the OCI reference name. For images it is the exact
	// `image` string of bundle.json. Format 1 also gave it to the bundle
	// entry (the bundle's reference) and to cosign tag objects (their tag);
	// format 2 names only images, so that container runtimes import the
	// images and nothing else (AnnotationReference, AnnotationCosignTag).
	AnnotationRefName = ocispec.AnnotationRefName
	// AnnotationImageName is containerd's image name annotation, written on
	// image entries (format 2): the full, normalized reference, which ctr,
	// k3s, Docker's containerd image store and podman name the image by.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationReference is the bundle entry's reference (format 2; format 1
	// put it in AnnotationRefName).
	AnnotationReference = "io.cnab.airgap.reference"
	// AnnotationCosignTag is a cosign tag object's original tag,
	// "sha256-<hex>.sig" (format 2; format 1 put it in AnnotationRefName).
	AnnotationCosignTag = "io.cnab.airgap.cosign.tag"
	// AnnotationRole says what a root descriptor is (see the Role constants).
	AnnotationRole = "io.cnab.airgap.role"
	// AnnotationSubject is the digest of the manifest a signing artifact is about.
	AnnotationSubject = "io.cnab.airgap.subject"
	// AnnotationComponent is the key of a component image in bundle.json `images`.
	AnnotationComponent = "io.cnab.airgap.component"
	// AnnotationInvocationIndex is the position of an invocation image in
	// bundle.json `invocationImages`.
	AnnotationInvocationIndex = "io.cnab.airgap.invocation.index"
	// AnnotationSource is the reference the content was read from at export.
	AnnotationSource = "io.cnab.airgap.source"
	// AnnotationDigestResolved marks an image whose bundle.json entry had no
	// contentDigest; the digest was resolved from its tag at export time
	// (only with --allow-missing-digest).
	AnnotationDigestResolved = "io.cnab.airgap.digest-resolved"

	// AnnotationFormatVersion on index.json names the archive format version.
	AnnotationFormatVersion = "io.cnab.airgap.format.version"
	// AnnotationBundleReference on index.json is the reference the bundle was
	// exported from (empty for a local bundle.json).
	AnnotationBundleReference = "io.cnab.airgap.bundle.reference"
	// AnnotationDependencies on a bundle entry of an archive of several
	// bundles lists the bundles it depends on that the archive carries, as
	// "ALIAS=DIGEST" (the dependency's bundle index) separated by commas,
	// sorted by alias.
	AnnotationDependencies = "io.cnab.airgap.dependencies"
	// AnnotationRequested on a bundle entry of an archive of several
	// bundles is "true" for a bundle the export was asked for, absent for
	// one carried only as a dependency.
	AnnotationRequested = "io.cnab.airgap.requested"
	// AnnotationBundleDigest on index.json is the sha256 digest of bundle.json.
	AnnotationBundleDigest = "io.cnab.airgap.bundle.digest"
	// AnnotationAllowMissingDigest on index.json records that the export was run
	// with --allow-missing-digest.
	AnnotationAllowMissingDigest = "io.cnab.airgap.allow-missing-digest"
)

// FormatVersion is the version of the archive format this package writes
// for one bundle. Version 2 moved the bundle entry's reference and cosign
// tags out of org.opencontainers.image.ref.name and added
// io.containerd.image.name to images; readers accept 1, 2 and 3.
const FormatVersion = "2"

// FormatVersionMulti is the version written for an archive of several
// bundles (export of several references, or of a bundle with its
// dependencies): version 2 with more than one bundle entry. An archive of
// one bundle stays version 2, so that earlier readers still read it.
const FormatVersionMulti = "3"

// KnownFormatVersion reports whether a reader of this package understands
// format version v ("" is an archive that does not say: a foreign one).
func KnownFormatVersion(v string) bool { return v == "" || v == "1" || v == "2" || v == "3" }

// BundleReference returns a bundle entry's reference, as format 2 or 1
// writes it.
func BundleReference(d ocispec.Descriptor) string {
	if v := d.Annotations[AnnotationReference]; v != "" {
		return v
	}
	return d.Annotations[AnnotationRefName]
}

// CosignTag returns a cosign tag object's original tag, as format 2 or 1
// writes it.
func CosignTag(d ocispec.Descriptor) string {
	if v := d.Annotations[AnnotationCosignTag]; v != "" {
		return v
	}
	return d.Annotations[AnnotationRefName]
}

// ContainerdName is the name containerd gives ref (its normalized form:
// docker.io/library/ for short names); "" when ref does not parse.
func ContainerdName(ref string) string {
	n, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ""
	}
	return n.String()
}

// Roles of root descriptors in index.json.
const (
	RoleBundle      = "bundle"
	RoleInvocation  = "invocation"
	RoleComponent   = "component"
	RoleSignature   = "signature"
	RoleAttestation = "attestation"
	RoleSBOM        = "sbom"
	RoleTrust       = "trust"
)

// CNAB media types and annotations used by cnab-to-oci and the CNAB registry spec.
const (
	// MediaTypeCNABConfig is what cnab-to-oci writes for the bundle.json blob.
	MediaTypeCNABConfig = "application/vnd.cnab.config.v1+json"
	// MediaTypeCNABBundleConfig is what CNAB spec 201 names for the bundle.json blob.
	MediaTypeCNABBundleConfig = "application/vnd.cnab.bundle.config.v1+json"
	// MediaTypeDockerConfig is the Docker image config type (cnab-to-oci fallback).
	MediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"

	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"

	// AnnotationCNABManifestType marks the descriptors of a CNAB bundle index.
	AnnotationCNABManifestType = "io.cnab.manifest.type"
	// AnnotationCNABComponentName names the component of a bundle index descriptor.
	AnnotationCNABComponentName = "io.cnab.component.name"
)

// IsBundleConfigMediaType reports whether mt is one of the media types a
// bundle.json config blob is stored under.
func IsBundleConfigMediaType(mt string) bool {
	switch mt {
	case MediaTypeCNABConfig, MediaTypeCNABBundleConfig, ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
		return true
	}
	return false
}

// IsIndex reports whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether mt is an OCI or Docker schema2 image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsManifestOrIndex reports whether content of type mt has children.
func IsManifestOrIndex(mt string) bool { return IsIndex(mt) || IsManifest(mt) }

var blobNameRE = regexp.MustCompile(`^blobs/(sha256/[a-f0-9]{64}|sha512/[a-f0-9]{128})$`)

// BlobName returns the path of a blob inside the layout. The digest must be valid.
func BlobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// DigestFromBlobName returns the digest named by a layout path, and false if
// the path is not a well-formed blob path.
func DigestFromBlobName(name string) (digest.Digest, bool) {
	m := blobNameRE.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	alg, enc := m[1][:6], m[1][7:]
	return digest.NewDigestFromEncoded(digest.Algorithm(alg), enc), true
}

// ValidateDigest checks that d is a supported, well-formed digest, so that a
// path can be built from it.
func ValidateDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrInvalidDigest, d, err)
	}
	if d.Algorithm() != digest.SHA256 && d.Algorithm() != digest.SHA512 {
		return fmt.Errorf("%w: %q: unsupported algorithm", ErrInvalidDigest, d)
	}
	return nil
}

// Fields are the fields of an OCI or Docker manifest or index that this
// tool reads, one struct for both shapes: decoding a manifest fills Config
// and Layers, an index Manifests.
type Fields struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	ArtifactType  string               `json:"artifactType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
	Subject       *ocispec.Descriptor  `json:"subject,omitempty"`
	Annotations   map[string]string    `json:"annotations,omitempty"`
}

// Children parses a manifest or index and returns the descriptors it
// references (an index's manifests; a manifest's config and layers), not
// its subject. mt is the media type the content was served or described
// with; a mediaType field inside the content must agree with it.
func Children(mt string, raw []byte) ([]ocispec.Descriptor, error) {
	var v Fields
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if v.MediaType != "" && mt != "" && v.MediaType != mt {
		return nil, fmt.Errorf("%w: described as %s but content says %s", ErrInvalidManifest, mt, v.MediaType)
	}
	if mt == "" {
		mt = v.MediaType
	}
	if v.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: schemaVersion %d is not supported (schema1 manifests are refused)", ErrInvalidManifest, v.SchemaVersion)
	}
	var out []ocispec.Descriptor
	switch {
	case IsIndex(mt):
		out = append(out, v.Manifests...)
	case IsManifest(mt):
		if v.Config == nil {
			return nil, fmt.Errorf("%w: manifest has no config", ErrInvalidManifest)
		}
		out = append(out, *v.Config)
		out = append(out, v.Layers...)
	default:
		return nil, fmt.Errorf("%w: media type %q is not a manifest or index", ErrInvalidManifest, mt)
	}
	for _, d := range out {
		if err := ValidateDigest(d.Digest); err != nil {
			return nil, err
		}
		if d.Size < 0 {
			return nil, fmt.Errorf("%w: descriptor %s has negative size", ErrInvalidManifest, d.Digest)
		}
	}
	return out, nil
}

// The outer compressions of an archive, as export writes them
// (export.WithCompression) and Open recognises them by their magic bytes.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// DetectMediaType returns the media type of a manifest or index: its
// mediaType field, or, where the field is absent (which only the OCI types
// allow, Docker's require it), the OCI index for content with a manifests
// list and the OCI image manifest for content with a config; "" otherwise.
func DetectMediaType(raw []byte) string {
	var v struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch {
	case v.MediaType != "":
		return v.MediaType
	case v.Manifests != nil && v.Config == nil:
		return ocispec.MediaTypeImageIndex
	case v.Config != nil && v.Manifests == nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}

// MediaTypeOf returns the mediaType field of a manifest or index, or "" if absent.
func MediaTypeOf(raw []byte) string {
	var v struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.MediaType
}

// FormatAnnotations writes annotations for a message: key=value pairs in
// key order, "no annotations" when there are none.
func FormatAnnotations(m map[string]string) string {
	if len(m) == 0 {
		return "no annotations"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}
