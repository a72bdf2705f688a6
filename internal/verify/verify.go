// Package verify provides a reader that checks size and digest of a stream
// while it is being read, so content is hashed exactly once on its way
// through the tool.
package verify

import (
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// ErrDigestMismatch is matched (errors.Is) by every *Error caused by content
// whose digest differs from the expected one.
var ErrDigestMismatch = errdefs.ErrDigestMismatch

// ErrSizeMismatch is matched by every *Error caused by content whose length
// differs from the expected size.
var ErrSizeMismatch = errdefs.ErrSizeMismatch

// Error describes content that failed verification.
type Error struct {
	Want     digest.Digest
	Got      digest.Digest // empty when the size was wrong
	WantSize int64
	Read     int64
	kind     error
}

func (e *Error) Error() string {
	if errors.Is(e.kind, ErrSizeMismatch) {
		if e.Read > e.WantSize {
			return fmt.Sprintf("%s: size mismatch: want %d bytes, got more", e.Want, e.WantSize)
		}
		return fmt.Sprintf("%s: size mismatch: want %d bytes, got %d", e.Want, e.WantSize, e.Read)
	}
	return fmt.Sprintf("%s: digest mismatch: content hashes to %s", e.Want, e.Got)
}

// Unwrap lets errors.Is match ErrDigestMismatch or ErrSizeMismatch.
func (e *Error) Unwrap() error { return e.kind }

// Reader reads at most size bytes from an underlying reader, hashes them,
// and reports an *Error instead of io.EOF when the content does not match.
// A size below zero means the size is not known in advance.
type Reader struct {
	r    io.Reader
	want digest.Digest
	size int64
	h    hash.Hash
	n    int64
	err  error
}

// NewReader returns a Reader that verifies r against want and size.
// It fails for digests whose algorithm is not available.
func NewReader(r io.Reader, want digest.Digest, size int64) (*Reader, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w", want, err)
	}
	return &Reader{r: r, want: want, size: size, h: want.Algorithm().Hash()}, nil
}

// Read implements io.Reader. At the end of the content it returns io.EOF
// only when both size and digest match. When the size is known, the chunk
// that completes the content is held back until the end is confirmed (one
// more read finds nothing) and the digest checks out: a consumer that sends
// bytes on as they come (an HTTP upload whose length is declared) never
// sends the whole of content that fails, so the receiver cannot complete it.
func (v *Reader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.size >= 0 {
		// Read one byte past the expected size so extra content is noticed.
		if rem := v.size - v.n + 1; int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = &Error{Want: v.want, WantSize: v.size, Read: v.n, kind: ErrSizeMismatch}
		return 0, v.err
	}
	v.h.Write(p[:n])
	complete := v.size >= 0 && v.n == v.size // this chunk ends the content
	if err == nil && complete {
		err = v.probeEnd()
	}
	if errors.Is(err, io.EOF) {
		v.err = v.check()
		if !errors.Is(v.err, io.EOF) {
			return 0, v.err
		}
		return n, v.err
	}
	if err != nil {
		v.err = err
		if complete {
			return 0, err // the completing chunk is not given out unconfirmed
		}
	}
	return n, err
}

// probeEnd reads past the declared size: io.EOF when there is nothing more,
// a size error when there is.
func (v *Reader) probeEnd() error {
	var one [1]byte
	for range 100 {
		m, err := v.r.Read(one[:])
		if m > 0 {
			v.n += int64(m)
			return &Error{Want: v.want, WantSize: v.size, Read: v.n, kind: ErrSizeMismatch}
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

func (v *Reader) check() error {
	if v.size >= 0 && v.n != v.size {
		return &Error{Want: v.want, WantSize: v.size, Read: v.n, kind: ErrSizeMismatch}
	}
	got := digest.NewDigest(v.want.Algorithm(), v.h)
	if got != v.want {
		return &Error{Want: v.want, Got: got, WantSize: v.size, Read: v.n, kind: ErrDigestMismatch}
	}
	return io.EOF
}

// N returns the number of bytes read so far.
func (v *Reader) N() int64 { return v.n }

// Bytes checks in-memory content against a digest and size (size < 0: any).
func Bytes(b []byte, want digest.Digest, size int64) error {
	if err := want.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", want, err)
	}
	if size >= 0 && int64(len(b)) != size {
		return &Error{Want: want, WantSize: size, Read: int64(len(b)), kind: ErrSizeMismatch}
	}
	if got := want.Algorithm().FromBytes(b); got != want {
		return &Error{Want: want, Got: got, WantSize: size, Read: int64(len(b)), kind: ErrDigestMismatch}
	}
	return nil
}
