package layout

import (
	"bytes"
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

// An opened Archive is a read-only content store (content.ReadOnlyStorage)
// and a FileWriter a write-only one (content.Pusher and content.Exister):
// the methods below are that interface. Errors for content the archive does
// not hold wrap ErrBlobNotFound, which is errdefs.ErrNotFound.

// Fetch opens blob desc as stored in the archive, unverified (the
// content.Fetcher contract: the receiver verifies). The reader is an
// io.Seeker, so a failed upload can start over. A manifest or index (by
// media type) is read through Metadata instead, so it is capped, verified
// and its JSON nesting checked before its first byte is handed out. A size
// that disagrees with the archive's entry is refused before any byte is read.
func (a *Archive) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if IsManifestOrIndex(desc.MediaType) {
		raw, err := a.Metadata(desc.Digest, desc.Size)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	if err := ValidateDigest(desc.Digest); err != nil {
		return nil, err
	}
	e, ok := a.entries[a.prefix+BlobName(desc.Digest)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, desc.Digest)
	}
	if desc.Size >= 0 && e.size != desc.Size {
		return nil, fmt.Errorf("blob %s: %w: described as %d bytes, archive holds %d", desc.Digest, verify.ErrSizeMismatch, desc.Size, e.size)
	}
	return seekNopCloser{&dropBehind{r: io.NewSectionReader(a.f, e.offset, e.size), src: a.f, base: e.offset}}, nil
}

// seekNopCloser keeps a blob reader seekable, so that a store the blob is
// pushed to can send it again when an attempt fails.
type seekNopCloser struct{ io.ReadSeeker }

func (seekNopCloser) Close() error { return nil }

// Exists reports whether the archive holds desc with its size (any size
// when desc.Size < 0).
func (a *Archive) Exists(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	size, ok := a.Has(desc.Digest)
	return ok && (desc.Size < 0 || size == desc.Size), nil
}

// Push writes blob desc at its planned offset (WriteBlob): the content is
// verified as it streams and a blob that is not in the plan is refused.
func (w *FileWriter) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	i, ok := w.plan.blobs[desc.Digest]
	if !ok {
		return fmt.Errorf("blob %s: %w: not in the plan", desc.Digest, ErrInvalidArchive)
	}
	if desc.Size >= 0 && w.plan.entries[i].Size != desc.Size {
		return fmt.Errorf("blob %s: %w: described as %d bytes, planned as %d", desc.Digest, verify.ErrSizeMismatch, desc.Size, w.plan.entries[i].Size)
	}
	return w.WriteBlob(ctx, desc.Digest, r)
}

// Exists reports whether blob desc is already written (in this run or
// kept from the one a resume continues).
func (w *FileWriter) Exists(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	i, ok := w.plan.blobs[desc.Digest]
	if !ok {
		return false, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written[i], nil
}

// Path returns the final path of the archive being written.
func (w *FileWriter) Path() string { return w.path }
