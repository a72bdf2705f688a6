package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cnab-airgap/cnab-airgap/pkg/retry"
)

// ResumableUploadSize is the blob size from which UploadBlob streams the
// content with PATCH and resumes a broken upload at the offset the registry
// has, instead of sending it again from the start: for a large layer the
// one extra request is nothing next to re-sending gigabytes. A variable for
// tests.
var ResumableUploadSize int64 = 64 << 20

// uploadResumable sends u's content into the upload session at loc with
// PATCH requests and completes it with PUT ?digest=. When a PATCH breaks
// (the connection, not the content), it asks the session how much arrived
// (GET: 204 with Range: 0-N) and sends the rest from there, with
// Content-Range, under the client's retry policy (each break is one
// attempt). The content is re-opened and read from its start each time, so
// its verification still covers every byte. A session the registry has
// lost fails the attempt, and UploadBlob's retry starts over.
func (c *Client) uploadResumable(ctx context.Context, hc *http.Client, u Upload, sess *uploadSession) (UploadResult, bool, error) {
	budget := c.retry.Budget()
	loc := sess.loc
	var off int64
	resumed := false // after a break: every PATCH then says where it starts
	for {
		next, sent, bodyErr, err := c.patchFrom(ctx, hc, u, loc, off, resumed)
		if bodyErr {
			return 0, true, err
		}
		if err == nil && sent == u.Size {
			loc = next
			sess.loc = loc
			break
		}
		if err == nil {
			err = fmt.Errorf("blob %s: the registry has %d of %d bytes after the upload", u.Digest, sent, u.Size)
		}
		// A refused Content-Range means the session holds other than we
		// were told: still writing what a broken request sent, or one byte
		// where distribution says "0-0". Ask again.
		var te *transport.Error
		rangeRefused := errors.As(err, &te) && te.StatusCode == http.StatusRequestedRangeNotSatisfiable
		var werr error
		if rangeRefused {
			werr = budget.Again(ctx, err)
		} else {
			werr = budget.Next(ctx, err)
		}
		if werr != nil {
			return 0, false, werr
		}
		// How much did the registry keep?
		status, got, serr := uploadStatus(ctx, hc, loc)
		if serr != nil {
			return 0, false, fmt.Errorf("blob %s: resuming the upload: %w", u.Digest, serr)
		}
		if rangeRefused && off == 0 && got == 0 {
			got = 1 // "0-0" again, and offset 0 refused: it holds one byte
		}
		loc, off, resumed = status, got, true
		sess.loc = loc
	}
	q := loc.Query()
	q.Set("digest", u.Digest.String())
	loc.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), http.NoBody)
	if err != nil {
		return 0, false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated); err != nil {
		if resumed {
			// The session may have taken bytes from the broken request
			// after it answered how much it held (a proxy that kept it
			// going): start the upload over rather than give up.
			return 0, false, fmt.Errorf("blob %s: completing the resumed upload: %w (%w)", u.Digest, err, retry.ErrAgain)
		}
		return 0, false, err
	}
	return BlobUploaded, false, nil
}

// patchFrom sends the content from byte off to the end in one PATCH. It
// returns the session's next location and the bytes the registry reports
// holding, and whether a failure was the content's own.
func (c *Client) patchFrom(ctx context.Context, hc *http.Client, u Upload, loc *url.URL, off int64, withRange bool) (*url.URL, int64, bool, error) {
	body, err := u.Open()
	if err != nil {
		return nil, 0, true, err
	}
	tb := &trackedBody{rc: body}
	defer tb.Close()
	// Read past what the registry has, through the content's own checks.
	if off > 0 {
		if _, err := io.CopyN(io.Discard, tb, off); err != nil {
			return nil, 0, true, fmt.Errorf("blob %s: reading up to the resume offset %d: %w", u.Digest, off, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), io.NopCloser(tb))
	if err != nil {
		return nil, 0, false, err
	}
	req.ContentLength = u.Size - off
	req.Header.Set("Content-Type", "application/octet-stream")
	if withRange {
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, u.Size-1))
	}
	resp, err := hc.Do(req)
	if tb.err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, 0, true, tb.err
	}
	if err != nil {
		return nil, 0, false, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted, http.StatusNoContent); err != nil {
		return nil, 0, false, err
	}
	next, err := resp.Location()
	if err != nil {
		return nil, 0, false, fmt.Errorf("blob %s: upload answer without a usable Location: %w", u.Digest, err)
	}
	end, err := rangeEnd(resp.Header.Get("Range"))
	if err != nil {
		return nil, 0, false, fmt.Errorf("blob %s: %w", u.Digest, err)
	}
	return next, end + 1, false, nil
}

// uploadStatus asks an upload session how much it holds: its location and
// the next offset.
func uploadStatus(ctx context.Context, hc *http.Client, loc *url.URL) (*url.URL, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusNoContent); err != nil {
		return nil, 0, err
	}
	next := loc
	if l, err := resp.Location(); err == nil {
		next = l
	}
	end, err := rangeEnd(resp.Header.Get("Range"))
	if err != nil {
		return nil, 0, err
	}
	return next, end + 1, nil
}

// rangeEnd parses an upload's Range header, "0-N" (also "bytes=0-N"): the
// last byte held, or -1 when the header is absent. distribution answers
// "0-0" for an empty session as for one holding a byte; it is read as
// empty (uploadResumable corrects that when the registry refuses it).
func rangeEnd(h string) (int64, error) {
	if h == "" {
		return -1, nil
	}
	h = strings.TrimPrefix(h, "bytes=")
	first, last, ok := strings.Cut(h, "-")
	if !ok || first != "0" {
		return 0, fmt.Errorf("upload Range %q is not 0-N", h)
	}
	n, err := strconv.ParseInt(last, 10, 64)
	if err != nil || n < -1 {
		return 0, errors.Join(fmt.Errorf("upload Range %q is not 0-N", h), err)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}
