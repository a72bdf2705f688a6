package layout

import "github.com/cnab-airgap/cnab-airgap/pkg/errdefs"

var (
	// ErrInvalidDigest is returned for malformed or unsupported digests.
	ErrInvalidDigest = errdefs.New("invalid digest", errdefs.ErrInvalidInput)
	// ErrInvalidManifest is returned for content that is not a valid manifest or index.
	ErrInvalidManifest = errdefs.New("invalid manifest", errdefs.ErrInvalidInput)
	// ErrUnsafeEntry is returned for a tar entry that is not allowed in an archive.
	ErrUnsafeEntry = errdefs.New("unsafe archive entry", errdefs.ErrInvalidInput)
	// ErrInvalidArchive is returned for an archive that is malformed or incomplete.
	ErrInvalidArchive = errdefs.New("invalid archive", errdefs.ErrInvalidInput)
	// ErrBlobNotFound is returned when an archive does not carry a blob.
	ErrBlobNotFound = errdefs.New("blob not in archive", errdefs.ErrNotFound, errdefs.ErrInvalidInput)
	// ErrTooLarge is returned when content exceeds a safety limit.
	ErrTooLarge = errdefs.New("exceeds limit", errdefs.ErrInvalidInput)
	// ErrIncomplete is returned when an archive is committed before all its blobs were written.
	ErrIncomplete = errdefs.New("archive incomplete", errdefs.ErrUnavailable)
)
