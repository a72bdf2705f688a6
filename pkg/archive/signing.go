package archive

import (
	"context"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// SigningArtifacts returns the index.json entries of the archive's signing
// artifacts.
func (b *Bundle) SigningArtifacts() []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, x := range b.Extra {
		if sigbundle.IsSigningRole(x.Annotations[layout.AnnotationRole]) && x.Annotations[layout.AnnotationSubject] != "" {
			out = append(out, x)
		}
	}
	return out
}

// Labels names every manifest of the bundle's graph for messages: "bundle
// index", "image web", "image web linux/arm64", ... (sigbundle.LabelManifests
// over the checked model).
func (b *Bundle) Labels() map[digest.Digest]string {
	var roots []ocispec.Descriptor
	var labels []string
	for _, e := range b.Images {
		l := "image " + e.Name
		if e.Role == "invocation" {
			l = "invocation image " + e.Name
		}
		roots = append(roots, e.Desc)
		labels = append(labels, l)
	}
	roots = append(roots, b.Index)
	labels = append(labels, "bundle index")
	// Content Load did not model (a platform left out) has no label.
	forgive := content.WalkOptions{OnError: func(ocispec.Descriptor, error) error { return nil }}
	out, _ := sigbundle.LabelManifests(context.Background(), b, roots, labels, forgive, nil)
	return out
}

// VerifySignatures checks the archive's signing evidence offline with
// sigbundle.Verify. Nothing is written anywhere.
func (b *Bundle) VerifySignatures(ctx context.Context, opts ...sigbundle.Option) (*sigbundle.Report, error) {
	c := sigbundle.Carried{BundleJSON: b.BundleJSON, Index: b.Index, Manifests: b.Labels(), Artifacts: b.SigningArtifacts(), Names: b.Names(), Subjects: b.PolicySubjects()}
	return sigbundle.Verify(ctx, b.Archive, c, opts...)
}

// PolicySubjects are the bundle (by its reference) and every image (by its
// reference in bundle.json), each with its top manifest digest: what image
// policies are evaluated for.
func (b *Bundle) PolicySubjects() []sigbundle.PolicySubject {
	var out []sigbundle.PolicySubject
	if b.Reference != "" {
		out = append(out, sigbundle.PolicySubject{Reference: b.Reference, Digest: b.Index.Digest})
	}
	for _, e := range b.Images {
		out = append(out, sigbundle.PolicySubject{Reference: e.Ref, Digest: e.Desc.Digest})
	}
	return out
}

// Names are the publisher's names of the bundle's content, the ones Import
// pushes it under (the registry and prefix aside): the bundle index and
// config manifest under the bundle's reference with the tag that is
// pushed, and every manifest of an image under that image's reference from
// bundle.json. Signing evidence is bound to them (sigbundle.Names): trust
// data for another repository or tag is refused, whatever index.json says.
func (b *Bundle) Names() *sigbundle.Names {
	n := &sigbundle.Names{}
	if b.Reference != "" {
		ref := b.Reference
		if r, err := name.ParseReference(ref); err == nil && strings.Contains(ref, "/") {
			// The tag pushed, spelled out even where the reference had none.
			ref = r.Context().Name() + ":" + b.Tag
		}
		n.Add(b.Index.Digest, ref)
		n.Add(b.ConfigManifest, ref)
	}
	for _, e := range b.Images {
		for _, d := range e.Manifests {
			n.Add(d, e.Ref)
		}
	}
	return n
}
