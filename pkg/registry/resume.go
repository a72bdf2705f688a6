package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/retry"
)

// resumingBody is a blob download that, when the connection breaks
// mid-body, continues from the next byte with a Range request, under the
// client's retry policy (every break is one attempt). A registry that
// answers the Range request with the whole blob is read past the bytes
// already delivered. The bytes handed on are the blob's, in order, once:
// the caller's verifying reader cannot tell a resumed download from an
// unbroken one.
type resumingBody struct {
	ctx    context.Context
	d      digest.Digest
	size   int64 // -1 when unknown
	open   func(ctx context.Context, from int64) (*http.Response, error)
	budget *retry.Budget
	body   io.ReadCloser
	n      int64 // bytes delivered
	// Resumes counts the Range requests made.
	resumes int
}

func (b *resumingBody) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			if err := b.reopen(); err != nil {
				return 0, err
			}
		}
		k, err := b.body.Read(p)
		b.n += int64(k)
		switch {
		case err == nil:
			return k, nil
		case errors.Is(err, io.EOF):
			if b.size >= 0 && b.n < b.size {
				err = io.ErrUnexpectedEOF // the connection closed early
				break
			}
			return k, io.EOF
		}
		b.body.Close()
		b.body = nil
		if werr := b.budget.Next(b.ctx, err); werr != nil {
			return k, fmt.Errorf("blob %s: broken after %d bytes: %w", b.d, b.n, werr)
		}
		if k > 0 {
			return k, nil // the next Read resumes
		}
	}
}

// reopen asks for the rest of the blob, from byte b.n.
func (b *resumingBody) reopen() error {
	b.resumes++
	resp, err := b.open(b.ctx, b.n)
	if err != nil {
		return fmt.Errorf("blob %s: resuming at byte %d: %w", b.d, b.n, err)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, err := contentRangeStart(resp.Header.Get("Content-Range"))
		if err != nil || start != b.n {
			resp.Body.Close()
			return fmt.Errorf("blob %s: asked for bytes from %d, the registry sent Content-Range %q", b.d, b.n, resp.Header.Get("Content-Range"))
		}
		b.body = resp.Body
	case http.StatusOK:
		// Range not honoured: skip what was delivered already.
		if _, err := io.CopyN(io.Discard, resp.Body, b.n); err != nil {
			resp.Body.Close()
			return fmt.Errorf("blob %s: resuming at byte %d without Range support: %w", b.d, b.n, err)
		}
		b.body = resp.Body
	default:
		err := transport.CheckError(resp, http.StatusPartialContent, http.StatusOK)
		resp.Body.Close()
		return fmt.Errorf("blob %s: resuming at byte %d: %w", b.d, b.n, err)
	}
	return nil
}

func (b *resumingBody) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}

// contentRangeStart parses the first byte of "bytes START-END/SIZE".
func contentRangeStart(h string) (int64, error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, fmt.Errorf("not a byte range: %q", h)
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, fmt.Errorf("not a byte range: %q", h)
	}
	return strconv.ParseInt(first, 10, 64)
}
