package importer

import (
	"fmt"
	"strings"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// ErrSparseRefused: the target refused a sparse index (an index whose
// platforms were partly left out at export), typically because it checks
// that every child of an index exists.
var ErrSparseRefused = errdefs.New("target refused a sparse index", errdefs.ErrUnavailable)

// refused explains a failed manifest push. For a sparse index it names the
// images that use it, the platforms the archive leaves out and the
// registry's own answer; cnab-airgap never rewrites an index to make it
// acceptable (that would change its digest and break contentDigest).
func (im *importer) refused(ref string, n *archive.Node, err error) error {
	absent := im.b.AbsentBelow(n.Desc.Digest)
	if len(absent) == 0 {
		return fmt.Errorf("manifest %s: %w", ref, err)
	}
	var users []string
	for _, e := range im.b.Images {
		for _, d := range e.Manifests {
			if d == n.Desc.Digest {
				users = append(users, e.Label()+" ("+e.Ref+")")
				break
			}
		}
	}
	what := strings.Join(users, ", ")
	switch {
	case what != "":
	case n.Desc.Digest == im.b.Index.Digest:
		what = "the bundle index"
	default:
		what = "an index above the sparse images"
	}
	return fmt.Errorf("%w: %s: %s is a sparse index (the archive was exported with --platform %s and leaves out %s); the registry answered: %w",
		ErrSparseRefused, what, ref, im.b.Archive.Index.Annotations[layout.AnnotationPlatforms], strings.Join(absent, ", "), err)
}
