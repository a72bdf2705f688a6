package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
)

// Upload describes one blob to push with UploadBlob.
type Upload struct {
	// Repo receives the blob.
	Repo name.Repository
	// Digest and Size describe the blob.
	Digest digest.Digest
	Size   int64
	// MountFrom, if not nil, is a repository of the same registry that
	// holds the blob: a cross-repository mount is asked for first, and the
	// content is uploaded only if the registry declines.
	MountFrom *name.Repository
	// Open returns the content. It is called once per attempt and only
	// when content has to be sent. A read error (a verifying reader's
	// digest mismatch, say) fails the upload and is never retried.
	Open func() (io.ReadCloser, error)
	// Absent says that the caller has just asked (Store.Exists, BlobExists)
	// and the repository did not hold the blob: the first attempt skips its
	// HEAD, so asking first costs no extra request. A retry asks again.
	Absent bool
}

// UploadResult says what UploadBlob did.
type UploadResult int

// Outcomes of UploadBlob.
const (
	// BlobPresent: the repository already had the blob (HEAD); nothing was sent.
	BlobPresent UploadResult = iota
	// BlobMounted: the registry linked the blob from Upload.MountFrom.
	BlobMounted
	// BlobUploaded: the content was sent.
	BlobUploaded
)

// UploadBlob makes sure u.Repo holds blob u.Digest with the fewest requests
// the distribution spec allows: HEAD (present: done); POST, with a mount
// request when u.MountFrom is set (mounted: done); then one PUT carrying the
// whole body with its digest, the monolithic upload every registry must
// support. Compared with a streamed PATCH followed by an empty PUT this
// saves a request and the registry's intermediate upload state per blob,
// which is most of the per-blob cost for small blobs. Blobs of
// ResumableUploadSize or more are streamed with PATCH instead, so that a
// connection that breaks mid-body continues from the offset the registry
// reports (uploadResumable). Transient failures are retried under the
// client's retry policy, re-opening the content.
func (c *Client) UploadBlob(ctx context.Context, u Upload) (UploadResult, error) {
	var res UploadResult
	var bodyFailure error
	err := c.retry.Do(ctx, func(ctx context.Context, attempt int) error {
		r, bodyErr, err := c.uploadOnce(ctx, u, attempt)
		if err != nil && bodyErr {
			// The content itself failed (verification, archive read):
			// sending it again cannot help.
			bodyFailure = err
			return errUploadContent
		}
		res = r
		return err
	})
	if bodyFailure != nil {
		return 0, bodyFailure
	}
	return res, err
}

// errUploadContent stops the retry policy when the content, not the
// registry, failed.
var errUploadContent = errors.New("upload content failed")

// uploadClient returns the HTTP client scoped for uploading u (push, and
// pull on the mount source), the repository's blob URL prefix, and whether
// a mount is to be asked for.
func (c *Client) uploadClient(ctx context.Context, u Upload) (*http.Client, string, bool, error) {
	scopes := []string{u.Repo.Scope(transport.PushScope)}
	key := u.Repo.Name() + "|push"
	mount := u.MountFrom != nil && u.MountFrom.RegistryStr() == u.Repo.RegistryStr() && u.MountFrom.Name() != u.Repo.Name()
	if mount {
		scopes = append(scopes, u.MountFrom.Scope(transport.PullScope))
		key += "|" + u.MountFrom.Name()
	}
	rt, err := c.scopedTransport(ctx, u.Repo, key, scopes)
	if err != nil {
		return nil, "", false, err
	}
	base := fmt.Sprintf("%s://%s/v2/%s/blobs/", u.Repo.Scheme(), u.Repo.RegistryStr(), u.Repo.RepositoryStr())
	return &http.Client{Transport: rt}, base, mount, nil
}

// headBlob asks for base+d: present (200) or not (404).
func headBlob(ctx context.Context, hc *http.Client, base string, d digest.Digest) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, base+d.String(), nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, transport.CheckError(resp, http.StatusOK, http.StatusNotFound)
}

func (c *Client) uploadOnce(ctx context.Context, u Upload, attempt int) (res UploadResult, bodyErr bool, err error) {
	hc, base, mount, err := c.uploadClient(ctx, u)
	if err != nil {
		return 0, false, err
	}

	// HEAD: a re-run skips what is there (unless the caller just asked).
	if !u.Absent || attempt > 1 {
		present, err := headBlob(ctx, hc, base, u.Digest)
		if err != nil {
			return 0, false, err
		}
		if present {
			return BlobPresent, false, nil
		}
	}

	// POST: open an upload session, or mount.
	start := base + "uploads/"
	if mount {
		start += "?" + url.Values{"mount": {u.Digest.String()}, "from": {u.MountFrom.RepositoryStr()}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, start, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false, err
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated, http.StatusAccepted); err != nil {
		return 0, false, err
	}
	if resp.StatusCode == http.StatusCreated {
		return BlobMounted, false, nil
	}
	loc, err := resp.Location()
	if err != nil {
		return 0, false, fmt.Errorf("blob %s: upload session without a usable Location: %w", u.Digest, err)
	}
	// From here on a session exists at the registry: one that does not end
	// in a committed blob is cancelled, so that no partial data stays
	// behind (a failed verification, a refused PUT, a cancelled import).
	sess := &uploadSession{loc: loc}
	defer func() {
		if err != nil {
			c.cancelUpload(ctx, hc, sess.loc)
		}
	}()
	if u.Size >= ResumableUploadSize {
		return c.uploadResumable(ctx, hc, u, sess)
	}
	put := *loc // the session's own location stays as it is, for cancelUpload
	q := put.Query()
	q.Set("digest", u.Digest.String())
	put.RawQuery = q.Encode()

	// PUT: the whole content, with its digest.
	body, err := u.Open()
	if err != nil {
		return 0, true, err
	}
	if u.Size == 0 {
		// net/http would send an empty body of length 0 as chunked:
		// check the content (a verifying reader fails on extra bytes) and
		// send none.
		_, err := io.Copy(io.Discard, body)
		body.Close()
		if err != nil {
			return 0, true, err
		}
		body = http.NoBody
	}
	tb := &trackedBody{rc: body}
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, put.String(), tb)
	if err != nil {
		body.Close()
		return 0, false, err
	}
	req.ContentLength = u.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.GetBody = func() (io.ReadCloser, error) {
		rc, err := u.Open()
		if err != nil {
			return nil, err
		}
		tb = &trackedBody{rc: rc}
		return tb, nil
	}
	resp, err = hc.Do(req)
	if tb.err != nil {
		// The content itself is at fault (it failed verification or could
		// not be read): report that, whatever the transport made of it.
		if resp != nil {
			resp.Body.Close()
		}
		return 0, true, tb.err
	}
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated); err != nil {
		return 0, false, err
	}
	return BlobUploaded, false, nil
}

// trackedBody remembers the first read error other than io.EOF, so an
// upload that failed because of its content says so.
type trackedBody struct {
	rc  io.ReadCloser
	err error
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *trackedBody) Close() error { return b.rc.Close() }

// uploadSession is an open upload session: its latest location.
type uploadSession struct{ loc *url.URL }

// cancelUpload deletes an upload session that will not be completed
// (DELETE on its current location, as the distribution spec provides),
// even when ctx was cancelled, within a few seconds. distribution ties a
// location to the bytes the session held when it was issued: after data
// reached the session (a PUT whose content failed its verification at the
// end, a broken connection) the location is stale, and even a fresh one
// is refused (416) while the registry is still writing what arrived. So
// each try first asks for the current location (GET), and a refusal is
// tried again after a short pause. It is best effort: a registry that
// keeps refusing keeps the session until its own expiry (distribution
// purges abandoned uploads after a week by default).
func (c *Client) cancelUpload(ctx context.Context, hc *http.Client, loc *url.URL) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pause := 20 * time.Millisecond
	for try := 0; try < 6; try++ {
		if next, _, err := uploadStatus(ctx, hc, loc); err == nil {
			loc = next
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc.String(), nil)
		if err != nil {
			return
		}
		resp, err := hc.Do(req)
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) //nolint:errcheck // drained for reuse only
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			return // cancelled, unknown (gone already), or refused for good
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause *= 2
	}
}
