package content

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

// NewVerifyReader returns a reader over r that fails at its end, with an
// error wrapping errdefs.ErrDigestMismatch or errdefs.ErrSizeMismatch,
// unless the content has desc's size (any size when desc.Size < 0) and
// hashes to desc.Digest. It reads at most one byte past the size.
func NewVerifyReader(r io.Reader, desc ocispec.Descriptor) (io.Reader, error) {
	return verify.NewReader(r, desc.Digest, desc.Size)
}

// Open fetches desc from f and returns a reader that verifies it.
func Open(ctx context.Context, f Fetcher, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	vr, err := NewVerifyReader(rc, desc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{vr, rc}, nil
}

// ReadAll fetches desc from f into memory and verifies it. Content larger
// than limit bytes (or declared so) is refused with ErrTooLarge before
// more than limit+1 bytes are read.
func ReadAll(ctx context.Context, f Fetcher, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, desc.Digest, desc.Size, limit)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, desc.Digest, limit)
	}
	if err := verify.Bytes(raw, desc.Digest, desc.Size); err != nil {
		return nil, err
	}
	return raw, nil
}

// VerifyBytes checks in-memory content against desc (size < 0: any size).
func VerifyBytes(raw []byte, desc ocispec.Descriptor) error {
	return verify.Bytes(raw, desc.Digest, desc.Size)
}

// WithBytes returns a Fetcher that serves desc from raw, bytes already
// fetched (and verified) by the caller, and everything else from f: a walk
// from a manifest just resolved does not fetch it again.
func WithBytes(f Fetcher, desc ocispec.Descriptor, raw []byte) Fetcher {
	return withBytes{Fetcher: f, d: desc.Digest, raw: raw}
}

type withBytes struct {
	Fetcher
	d   digest.Digest
	raw []byte
}

func (w withBytes) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if desc.Digest == w.d {
		return io.NopCloser(bytes.NewReader(w.raw)), nil
	}
	return w.Fetcher.Fetch(ctx, desc)
}
