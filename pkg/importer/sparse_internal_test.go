package importer

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// A registry that refuses the bundle index above a sparse image index is
// reported with a label, not an empty one ("target refused a sparse
// index: : ..."), and so is an image's own index.
func TestSparseRefusalNamesWhatWasRefused(t *testing.T) {
	t.Parallel()
	arm := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("arm"), Size: 1,
		Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}}
	amd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("amd"), Size: 1}
	web := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("web"), Size: 1}
	bundle := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("bundle"), Size: 1}
	a := &layout.Archive{}
	a.Index.Annotations = map[string]string{layout.AnnotationPlatforms: "linux/amd64"}
	b := &archive.Bundle{Archive: a, Index: bundle,
		Nodes: map[digest.Digest]*archive.Node{
			bundle.Digest: {Desc: bundle, Children: []ocispec.Descriptor{web}},
			web.Digest:    {Desc: web, Children: []ocispec.Descriptor{amd, arm}},
			amd.Digest:    {Desc: amd},
		},
		Absent: map[digest.Digest]ocispec.Descriptor{arm.Digest: arm},
		Images: []archive.ImageEntry{{Image: relocate.Image{Role: relocate.RoleComponent, Name: "web", Ref: "example.com/web:1"},
			Desc: web, Manifests: []digest.Digest{web.Digest, amd.Digest}}},
	}
	im := &importer{b: b}
	cause := errors.New("EOF")
	for n, want := range map[digest.Digest]string{bundle.Digest: ": the bundle index: ", web.Digest: ": component web (example.com/web:1): "} {
		err := im.refused("r@"+n.String(), b.Nodes[n], cause)
		if !errors.Is(err, ErrSparseRefused) || !errors.Is(err, cause) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), ": : ") {
			t.Errorf("refusal of %s: %v, want %q", n, err, want)
		}
	}
}
