package layout

import "errors"

var (
	// ErrInvalidDigest is returned for malformed or unsupported digests.
	ErrInvalidDigest = errors.New("invalid digest")
	// ErrInvalidManifest is returned for content that is not a valid manifest or index.
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrUnsafeEntry is returned for a tar entry that is not allowed in an archive.
	ErrUnsafeEntry = errors.New("unsafe archive entry")
	// ErrInvalidArchive is returned for an archive that is malformed or incomplete.
	ErrInvalidArchive = errors.New("invalid archive")
	// ErrBlobNotFound is returned when an archive does not carry a blob.
	ErrBlobNotFound = errors.New("blob not in archive")
	// ErrTooLarge is returned when content exceeds a safety limit.
	ErrTooLarge = errors.New("exceeds limit")
	// ErrIncomplete is returned when an archive is committed before all its blobs were written.
	ErrIncomplete = errors.New("archive incomplete")
)
