package export

import "errors"

var (
	// ErrDigestMismatch: an image's manifest does not hash to its contentDigest,
	// or the bundle index points at another digest than bundle.json.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrMissingDigest: an image has no contentDigest and missing digests are not allowed.
	ErrMissingDigest = errors.New("image has no contentDigest")
	// ErrNotBundle: the reference is not a CNAB bundle in the cnab-to-oci layout.
	ErrNotBundle = errors.New("not a CNAB bundle")
)
