package retry

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// maxDrain is how much of a failed response's body is read (to reuse the
// connection) before it is closed.
const maxDrain = 64 << 10

// Transport retries requests through Inner according to Policy. It is safe
// for concurrent use. Create it with NewTransport.
type Transport struct {
	inner  http.RoundTripper
	policy Policy
}

// NewTransport returns a Transport sending requests through inner with
// policy p (zero fields take DefaultPolicy's values).
func NewTransport(inner http.RoundTripper, p Policy) *Transport {
	if inner == nil {
		inner = http.DefaultTransport
	}
	return &Transport{inner: inner, policy: p.WithDefaults()}
}

// Policy returns the policy in use, with defaults applied.
func (t *Transport) Policy() Policy { return t.policy }

// RoundTrip sends req, and sends it again after a wait when it failed in a
// way Temporary accepts or was answered with a retryable status (honouring
// Retry-After), as long as Retryable(req) holds and the policy allows. When
// the policy is exhausted on a retryable status, the response is turned
// into an *Error carrying the registry's diagnosis.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !Retryable(req) {
		return t.inner.RoundTrip(req)
	}
	ctx := req.Context()
	start := time.Now()
	cur := req
	for attempt := 1; ; attempt++ {
		resp, err := t.inner.RoundTrip(cur)
		var wait time.Duration
		switch {
		case err != nil:
			if !Temporary(err) || ctx.Err() != nil {
				return nil, err
			}
			wait = t.policy.backoff(attempt)
		case RetryableStatus(resp.StatusCode):
			wait = t.policy.backoff(attempt)
			if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				if d > t.policy.MaxDelay {
					// The registry asks for more patience than we have:
					// give its answer to the caller now.
					return resp, nil
				}
				wait = d
			}
		default:
			return resp, nil
		}
		if attempt >= t.policy.MaxAttempts || time.Since(start)+wait > t.policy.MaxElapsed {
			if err == nil {
				err = transport.CheckError(resp) // reads at most 64 KiB, keeps the registry's codes
				resp.Body.Close()
			}
			return nil, &Error{Attempts: attempt, Elapsed: time.Since(start), Err: err}
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain)) // drained for connection reuse only
			resp.Body.Close()
		}
		if serr := sleep(ctx, wait); serr != nil {
			if err == nil {
				err = serr
			}
			return nil, err
		}
		next, rerr := rewind(req)
		if rerr != nil {
			return nil, rerr
		}
		cur = next
	}
}

// rewind returns a copy of req with a fresh body.
func rewind(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody || req.GetBody == nil {
		return r, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r.Body = body
	return r, nil
}

// Retryable reports whether the Transport may send req more than once:
//
//   - its body, if any, can be produced again (req.GetBody is set);
//   - its method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE), or it is a
//     registry POST that is safe to repeat: starting a blob upload session or
//     asking for a cross-repository mount (no body; a repeated start at
//     worst leaves an abandoned session the registry expires), or an OAuth2
//     token request (a form body);
//   - it is not a request carrying blob data into an upload session (PATCH,
//     or PUT with a body, on /v2/<name>/blobs/uploads/<id>): the registry
//     may have stored part of a broken body, so the data must be sent again
//     in a new session, which is the upload operation's job (Policy.Do).
func Retryable(req *http.Request) bool {
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody && req.GetBody == nil {
		return false
	}
	upload := strings.Contains(req.URL.Path, "/blobs/uploads/")
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
		return true
	case http.MethodPut:
		return !(upload && hasBody)
	case http.MethodPost:
		if upload {
			return !hasBody
		}
		return hasBody && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
	}
	return false
}
