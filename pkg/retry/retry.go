// Package retry owns cnab-airgap's retry policy for registry traffic, in one
// place: which failures are worth another try, how long to wait (exponential
// backoff with jitter, or what the registry asks for with Retry-After), and
// how many tries and how much time one request or one operation may take.
//
// Two layers use the same Policy:
//
//   - Transport wraps an http.RoundTripper and retries a single request when
//     that is safe: the request is idempotent (GET, HEAD, OPTIONS, PUT,
//     DELETE, or a registry POST without side effects worth protecting) and
//     its body, if any, can be produced again (http.Request.GetBody). A blob
//     upload request that carries data (PATCH or PUT on an upload session)
//     is never retried here: the registry may have kept part of the broken
//     body, so sending it again to the same session would corrupt it.
//   - Policy.Do retries a whole operation, such as a blob upload, which opens
//     a fresh upload session and re-reads the content from the start.
//
// A request the Transport has given up on fails with an *Error, which
// Temporary reports as permanent, so an outer Policy.Do does not multiply
// the attempts of an inner Transport.
package retry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// Policy bounds retries. The zero value means DefaultPolicy; a field left at
// zero takes its default.
type Policy struct {
	// MaxAttempts is the most times a request or an operation is tried,
	// the first try included. Default 5.
	MaxAttempts int
	// MaxElapsed bounds the time spent on one request or operation, waits
	// included: no new attempt starts after it, and a wait that would end
	// after it is not begun. Default 2 minutes.
	MaxElapsed time.Duration
	// BaseDelay is the wait before the first retry; each further retry
	// doubles it, up to MaxDelay. A random part of up to half of each wait
	// (jitter) keeps concurrent clients from retrying in lockstep.
	// Default 250 milliseconds.
	BaseDelay time.Duration
	// MaxDelay caps every single wait, including one asked for by a
	// Retry-After header: a registry asking for longer is not retried.
	// Default 30 seconds.
	MaxDelay time.Duration
}

// DefaultPolicy is the policy used for a zero Policy: 5 attempts within 2
// minutes, waiting 250ms, 500ms, 1s, 2s (plus jitter), never more than 30s.
var DefaultPolicy = Policy{MaxAttempts: 5, MaxElapsed: 2 * time.Minute, BaseDelay: 250 * time.Millisecond, MaxDelay: 30 * time.Second}

// WithDefaults returns p with every zero field set from DefaultPolicy.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultPolicy.MaxAttempts
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = DefaultPolicy.MaxElapsed
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = DefaultPolicy.BaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = DefaultPolicy.MaxDelay
	}
	return p
}

// Validate rejects negative bounds.
func (p Policy) Validate() error {
	if p.MaxAttempts < 0 || p.MaxElapsed < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 {
		return fmt.Errorf("retry policy: negative bound in %+v", p)
	}
	return nil
}

// backoff returns the wait before retry number n (1 for the first retry):
// BaseDelay doubled n-1 times, capped at MaxDelay, of which a random part of
// up to one half is dropped.
func (p Policy) backoff(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if half := int64(d / 2); half > 0 {
		d = time.Duration(half + rand.Int64N(half+1))
	}
	return d
}

// Error is returned when retries were exhausted: the request or operation
// failed Attempts times, the last time with Err. Temporary reports it as
// permanent, so it is not retried again by an outer layer.
type Error struct {
	// Attempts is how many times it was tried.
	Attempts int
	// Elapsed is the time spent, waits included.
	Elapsed time.Duration
	// Err is the last failure. For a response with a retryable status it is
	// the registry's diagnosis (a *transport.Error from go-containerregistry).
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("gave up after %d attempts in %s: %v", e.Attempts, e.Elapsed.Round(time.Millisecond), e.Err)
}

// Unwrap returns the last failure.
func (e *Error) Unwrap() error { return e.Err }

// RetryableStatus reports whether a response status says the request may
// succeed later: 408, 429, 500, 502, 503 and 504.
func RetryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// ErrAgain marks a failure that the operation that saw it knows may pass
// when it starts over (an upload whose resumed session turned out not to
// hold what it said). Temporary reports errors wrapping it as temporary.
var ErrAgain = errdefs.New("worth starting over", errdefs.ErrUnavailable)

// Temporary reports whether err may pass if the request or operation is
// tried again: a retryable registry status (see RetryableStatus), a reset,
// refused, aborted or broken connection, a connection closed before the
// response was complete, or a network timeout. Cancellation, deadlines,
// TLS certificate problems, unknown host names and an *Error (retries
// already exhausted) are permanent.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	var exhausted *Error
	if errors.As(err, &exhausted) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrAgain) {
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return RetryableStatus(te.StatusCode)
	}
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verifyErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid) || errors.As(err, &verifyErr) || errors.As(err, &recordErr) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false // a name that does not exist will not start to
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// Do runs op until it succeeds, fails with an error Temporary reports as
// permanent, or the policy's attempts or time are used up; it waits between
// attempts as Transport does. op receives the attempt number, from 1. When
// retries are exhausted the last error is returned inside an *Error; a
// permanent error is returned as it is.
func (p Policy) Do(ctx context.Context, op func(ctx context.Context, attempt int) error) error {
	b := p.Budget()
	for attempt := 1; ; attempt++ {
		err := op(ctx, attempt)
		if err == nil {
			return nil
		}
		if err := b.Next(ctx, err); err != nil {
			return err
		}
	}
}

// Budget is what an operation that continues where it broke off (a
// download resumed from its last byte) may still spend under a policy:
// each break is one more attempt, and the waits are those of Do.
type Budget struct {
	p        Policy
	start    time.Time
	attempts int
}

// Budget starts a budget for one operation.
func (p Policy) Budget() *Budget {
	return &Budget{p: p.WithDefaults(), start: time.Now(), attempts: 1}
}

// Next is called after the operation broke with err. It waits as Do would
// and returns nil when the operation may continue; otherwise it returns
// err (permanent, or the context's end) or an *Error when the attempts or
// time are used up.
func (b *Budget) Next(ctx context.Context, err error) error {
	if !Temporary(err) {
		return err
	}
	return b.Again(ctx, err)
}

// Again is Next for a failure the caller knows to be passing although
// Temporary would not say so (an upload offset the registry has moved
// past meanwhile, say).
func (b *Budget) Again(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	wait := b.p.backoff(b.attempts)
	if b.attempts >= b.p.MaxAttempts || time.Since(b.start)+wait > b.p.MaxElapsed {
		return &Error{Attempts: b.attempts, Elapsed: time.Since(b.start), Err: err}
	}
	b.attempts++
	return sleep(ctx, wait)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
// ok is false when the header is absent or malformed.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
