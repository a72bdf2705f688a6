package sigbundle

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Annotations on index.json descriptors of signing artifacts, beside
// layout.AnnotationRole and layout.AnnotationSubject. They are hints for
// import (where to push) and for people; verification never trusts them.
const (
	// AnnotationRepository is the repository the artifact was read from.
	AnnotationRepository = "io.cnab.airgap.repository"
	// AnnotationVia says how the artifact was found: ViaReferrers,
	// ViaCosignTag or ViaNotary.
	AnnotationVia = "io.cnab.airgap.signing.via"
	// AnnotationCosignKind is cosign save's "kind" annotation, kept for
	// `cosign load` compatibility on tag-scheme objects.
	AnnotationCosignKind = "kind"
)

// Values of AnnotationVia.
const (
	ViaReferrers = "referrers"
	ViaCosignTag = "cosign-tag"
	ViaNotary    = "notary"
)

// RoleReferrer is the index.json role of a referrer that is neither a
// signature, an attestation, an SBOM nor trust data.
const RoleReferrer = "referrer"

// Notary v1 trust-data artifact (one per GUN and target).
const (
	// ArtifactTypeNotary is the artifact type, and the config media type,
	// of the manifest holding Notary v1 role files.
	ArtifactTypeNotary = "application/vnd.cnab.airgap.notary-v1.trust-data"
	// MediaTypeNotaryRole is the media type of each role file layer.
	MediaTypeNotaryRole = "application/vnd.cnab.airgap.notary-v1.role+json"

	// MediaTypeNotaryTargetFile is the media type of a layer holding the
	// bytes of a TUF target the trust data signs (the CNAB 301 in-toto
	// root layout, its public keys and links).
	MediaTypeNotaryTargetFile = "application/vnd.cnab.airgap.notary-v1.target-file"
	// AnnotationNotaryTargetName on a target-file layer is its TUF target
	// name.
	AnnotationNotaryTargetName = "io.cnab.airgap.notary.target-name"

	// AnnotationNotaryRole on a layer names its TUF role ("root",
	// "targets/releases", ...).
	AnnotationNotaryRole = "io.cnab.airgap.notary.role"
	// AnnotationNotaryGUN is the Globally Unique Name the data was read for.
	AnnotationNotaryGUN = "io.cnab.airgap.notary.gun"
	// AnnotationNotaryTarget is the target name (the bundle tag).
	AnnotationNotaryTarget = "io.cnab.airgap.notary.target"
	// AnnotationNotaryTargetRole is the role the target was found in at export.
	AnnotationNotaryTargetRole = "io.cnab.airgap.notary.target-role"
	// AnnotationNotaryTargetSHA256 is the hex sha256 the target signs.
	AnnotationNotaryTargetSHA256 = "io.cnab.airgap.notary.target-sha256"
	// AnnotationNotaryTargetObject says what the target hash is of:
	// TargetObjectBundleJSON or TargetObjectManifest.
	AnnotationNotaryTargetObject = "io.cnab.airgap.notary.target-object"
	// AnnotationNotaryServer is the server the data was read from.
	AnnotationNotaryServer = "io.cnab.airgap.notary.server"
	// AnnotationNotaryRootKeyID is the root key ID seen at export
	// (informational: pin the value you confirmed out of band).
	AnnotationNotaryRootKeyID = "io.cnab.airgap.notary.root-key-id"
	// AnnotationCreated is the export time (RFC 3339).
	AnnotationCreated = ocispec.AnnotationCreated
)

// Values of AnnotationNotaryTargetObject.
const (
	TargetObjectBundleJSON = "bundle-config-blob"
	TargetObjectManifest   = "manifest"
)

// Media types and annotations of the signature formats this package reads.
const (
	MediaTypeCosignSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	AnnotationCosignSignature    = "dev.cosignproject.cosign/signature"
	ArtifactTypeCosignSignature  = "application/vnd.dev.cosign.artifact.sig.v1+json"
	MediaTypeDSSE                = "application/vnd.dsse.envelope.v1+json"
	MediaTypeInTotoStatement     = "application/vnd.in-toto+json"
	ArtifactTypeNotation         = "application/vnd.cncf.notary.signature"
	MediaTypeJWS                 = "application/jose+json"
	MediaTypeCOSE                = "application/cose"
	ArtifactTypeSigstoreBundle   = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// MediaTypeSigstoreBundlePrefix starts the media type of every
	// Sigstore bundle version's layer.
	MediaTypeSigstoreBundlePrefix = "application/vnd.dev.sigstore.bundle"
)

// Cosign tag-scheme suffixes and their roles.
var cosignSuffixes = []struct {
	suffix, role, kind string
}{
	{".sig", layout.RoleSignature, "dev.cosignproject.cosign/sigs"},
	{".att", layout.RoleAttestation, "dev.cosignproject.cosign/atts"},
	{".sbom", layout.RoleSBOM, "dev.cosignproject.cosign/sboms"},
}

// IsSigningRole reports whether an index.json role is one this package
// writes.
func IsSigningRole(role string) bool {
	switch role {
	case layout.RoleSignature, layout.RoleAttestation, layout.RoleSBOM, layout.RoleTrust, RoleReferrer:
		return true
	}
	return false
}

// roleFor classifies a referrer by its artifact type and, for a Sigstore
// bundle, the predicate type its annotations name.
func roleFor(artifactType string, ann map[string]string) string {
	t := strings.ToLower(artifactType)
	switch {
	case t == ArtifactTypeNotary:
		return layout.RoleTrust
	case strings.HasPrefix(t, MediaTypeSigstoreBundlePrefix):
		// A Sigstore bundle holds a signature or an attestation: cosign
		// says which predicate type it carries in an annotation.
		if pt := ann[AnnotationSigstoreBundlePredicate]; pt != "" && pt != PredicateCosignSign {
			return layout.RoleAttestation
		}
		return layout.RoleSignature
	case t == ArtifactTypeNotation, t == ArtifactTypeCosignSignature, strings.Contains(t, "signature"):
		return layout.RoleSignature
	case strings.Contains(t, "in-toto"), strings.Contains(t, "dsse"), strings.Contains(t, "attestation"),
		strings.Contains(t, "provenance"), strings.Contains(t, "vex"):
		return layout.RoleAttestation
	case strings.Contains(t, "spdx"), strings.Contains(t, "cyclonedx"), strings.Contains(t, "sbom"), strings.Contains(t, "syft"):
		return layout.RoleSBOM
	}
	return RoleReferrer
}

// artifactTypeOf returns a manifest's artifactType, or its config media
// type when it has none (OCI 1.1 rule).
func artifactTypeOf(m *manifest) string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}

// manifest is what this package reads of a manifest or index.
type manifest = layout.Fields
