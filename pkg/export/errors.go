package export

import "github.com/cnab-airgap/cnab-airgap/pkg/errdefs"

var (
	// ErrDigestMismatch: an image's manifest does not hash to its contentDigest,
	// or the bundle index points at another digest than bundle.json.
	ErrDigestMismatch = errdefs.ErrDigestMismatch
	// ErrMissingDigest: an image has no contentDigest and missing digests are not allowed.
	ErrMissingDigest = errdefs.New("image has no contentDigest", errdefs.ErrInvalidInput)
	// ErrNotBundle: the reference is not a CNAB bundle in the cnab-to-oci layout.
	ErrNotBundle = errdefs.New("not a CNAB bundle", errdefs.ErrNotFound)
)
