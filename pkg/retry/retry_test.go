package retry

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// fast is a policy that keeps the tests quick but still waits.
var fast = Policy{MaxAttempts: 4, MaxElapsed: 10 * time.Second, BaseDelay: 5 * time.Millisecond, MaxDelay: 2 * time.Second}

// script serves the i-th request with steps[i] (the last step repeats) and
// records what it received.
type script struct {
	mu     sync.Mutex
	steps  []func(w http.ResponseWriter, r *http.Request)
	n      int
	bodies []string
	times  []time.Time
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := min(s.n, len(s.steps)-1)
	s.n++
	s.bodies = append(s.bodies, string(body))
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	s.steps[i](w, r)
}

func (s *script) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.n }

func status(code int, hdr ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"status %d"}]}`, code)
	}
}

// reset closes the connection with RST instead of answering.
func reset(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "fine") }

func serve(t *testing.T, steps ...func(http.ResponseWriter, *http.Request)) (*script, *httptest.Server) {
	t.Helper()
	s := &script{steps: steps}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func client(p Policy) *http.Client {
	return &http.Client{Transport: NewTransport(&http.Transport{}, p)}
}

func TestTransportRetriesServerErrorsThenSucceeds(t *testing.T) {
	s, srv := serve(t, status(500), status(503), ok)
	resp, err := client(fast).Get(srv.URL + "/v2/repo/blobs/sha256:x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "fine" || s.count() != 3 {
		t.Fatalf("status %d body %q after %d requests", resp.StatusCode, b, s.count())
	}
}

func TestTransportHonoursRetryAfter(t *testing.T) {
	s, srv := serve(t, status(429, "Retry-After", "1"), ok)
	start := time.Now()
	resp, err := client(fast).Get(srv.URL + "/v2/repo/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.count() != 2 || resp.StatusCode != 200 {
		t.Fatalf("%d requests, status %d", s.count(), resp.StatusCode)
	}
	if gap := s.times[1].Sub(s.times[0]); gap < time.Second {
		t.Fatalf("retried %s after a 429 asking for 1s", gap)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("waited far longer than asked")
	}

	// An HTTP date works too.
	s2, srv2 := serve(t, status(503, "Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat)), ok)
	resp, err = client(fast).Get(srv2.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gap := s2.times[1].Sub(s2.times[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried %s after a 503 with a Retry-After date 2s ahead", gap)
	}
}

func TestTransportDoesNotWaitLongerThanMaxDelay(t *testing.T) {
	s, srv := serve(t, status(429, "Retry-After", "3600"), ok)
	start := time.Now()
	resp, err := client(fast).Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || s.count() != 1 || time.Since(start) > time.Second {
		t.Fatalf("status %d after %d requests in %s: want the 429 at once", resp.StatusCode, s.count(), time.Since(start))
	}
}

func TestTransportGivesUpWithRegistryDiagnosis(t *testing.T) {
	s, srv := serve(t, status(503))
	_, err := client(fast).Get(srv.URL + "/v2/repo/blobs/sha256:x")
	var re *Error
	if !errors.As(err, &re) || re.Attempts != fast.MaxAttempts || s.count() != fast.MaxAttempts {
		t.Fatalf("want *Error after %d attempts, got %v (%d requests)", fast.MaxAttempts, err, s.count())
	}
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != 503 || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("the registry's diagnosis is lost: %v", err)
	}
	if Temporary(err) {
		t.Fatal("an exhausted request is reported as temporary: an outer layer would multiply the attempts")
	}
}

func TestTransportRetriesConnectionResets(t *testing.T) {
	s, srv := serve(t, reset, reset, ok)
	resp, err := client(fast).Get(srv.URL + "/v2/repo/blobs/sha256:x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.count() != 3 {
		t.Fatalf("%d requests, want 3", s.count())
	}
	// Exhausted resets name the attempts and keep the network error.
	s2, srv2 := serve(t, reset)
	_, err = client(fast).Head(srv2.URL + "/v2/repo/blobs/sha256:x")
	var re *Error
	if !errors.As(err, &re) || s2.count() != fast.MaxAttempts {
		t.Fatalf("want *Error after %d resets, got %v (%d requests)", fast.MaxAttempts, err, s2.count())
	}
}

func TestTransportRewindsBodies(t *testing.T) {
	s, srv := serve(t, status(500), reset, ok)
	body := strings.Repeat("manifest bytes ", 1000)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/repo/manifests/sha256:x", strings.NewReader(body))
	resp, err := client(fast).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s.count() != 3 {
		t.Fatalf("%d requests, want 3", s.count())
	}
	for i, b := range s.bodies {
		if b != body && !(i == 1 && len(b) <= len(body)) {
			t.Fatalf("attempt %d sent %d bytes, want %d", i+1, len(b), len(body))
		}
	}
	if s.bodies[2] != body {
		t.Fatal("the successful attempt did not carry the whole body")
	}
}

func TestTransportLeavesUploadDataToTheUploadLevel(t *testing.T) {
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		form   bool
		want   int // requests seen
	}{
		{"PATCH blob data", http.MethodPatch, "/v2/r/blobs/uploads/abc", "data", false, 1},
		{"PUT blob data", http.MethodPut, "/v2/r/blobs/uploads/abc?digest=sha256:x", "data", false, 1},
		{"final PUT without data", http.MethodPut, "/v2/r/blobs/uploads/abc?digest=sha256:x", "", false, fast.MaxAttempts},
		{"start upload session", http.MethodPost, "/v2/r/blobs/uploads/", "", false, fast.MaxAttempts},
		{"POST with other body", http.MethodPost, "/v2/r/other", "x", false, 1},
		{"token POST", http.MethodPost, "/auth/token", "grant_type=password", true, fast.MaxAttempts},
		{"manifest DELETE", http.MethodDelete, "/v2/r/manifests/sha256:x", "", false, fast.MaxAttempts},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := serve(t, status(500))
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, body)
			if tc.form {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := client(fast).Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if s.count() != tc.want {
				t.Fatalf("%d requests, want %d (err %v)", s.count(), tc.want, err)
			}
		})
	}
	// A body that cannot be produced again is sent once.
	s, srv := serve(t, status(500))
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/r/manifests/x", io.NopCloser(strings.NewReader("x")))
	req.GetBody = nil
	if resp, err := client(fast).Do(req); err == nil {
		resp.Body.Close()
	}
	if s.count() != 1 {
		t.Fatalf("a non-rewindable body was sent %d times", s.count())
	}
}

func TestTransportStopsWhenCancelled(t *testing.T) {
	// The server asks for a 2 s wait; the context ends after 200 ms.
	_, srv := serve(t, status(503, "Retry-After", "2"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/", nil)
	start := time.Now()
	_, err := client(fast).Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("want the deadline, not the 2 s wait, got %v after %s", err, time.Since(start))
	}
}

func TestTransportBoundedInTime(t *testing.T) {
	p := Policy{MaxAttempts: 100, MaxElapsed: 300 * time.Millisecond, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	s, srv := serve(t, status(502))
	start := time.Now()
	_, err := client(p).Get(srv.URL + "/v2/")
	var re *Error
	// 100 attempts would take far longer; the margin is for a loaded machine.
	if !errors.As(err, &re) || time.Since(start) > p.MaxElapsed+2*time.Second || s.count() >= 10 {
		t.Fatalf("got %v after %s and %d requests", err, time.Since(start), s.count())
	}
}

func TestDo(t *testing.T) {
	ctx := context.Background()
	// Temporary failures are retried, then success.
	n := 0
	err := fast.Do(ctx, func(_ context.Context, attempt int) error {
		n++
		if attempt != n {
			t.Fatalf("attempt %d, call %d", attempt, n)
		}
		if n < 3 {
			return &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("err %v after %d calls", err, n)
	}
	// A permanent failure is returned at once, as it is.
	perm := errors.New("digest mismatch")
	n = 0
	err = fast.Do(ctx, func(context.Context, int) error { n++; return perm })
	if err != perm || n != 1 {
		t.Fatalf("permanent error: %v after %d calls", err, n)
	}
	// An inner layer that already gave up is not retried again.
	n = 0
	err = fast.Do(ctx, func(context.Context, int) error {
		n++
		return &Error{Attempts: 5, Err: &transport.Error{StatusCode: 503}}
	})
	if n != 1 || err == nil {
		t.Fatalf("an exhausted inner error was retried %d times (err %v)", n, err)
	}
	// Exhaustion wraps the last error.
	n = 0
	err = fast.Do(ctx, func(context.Context, int) error { n++; return &transport.Error{StatusCode: 500} })
	var re *Error
	var te *transport.Error
	if !errors.As(err, &re) || !errors.As(err, &te) || n != fast.MaxAttempts {
		t.Fatalf("exhaustion: %v after %d calls", err, n)
	}
}

func TestTemporary(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{&transport.Error{StatusCode: 429}, true},
		{&transport.Error{StatusCode: 503}, true},
		{&transport.Error{StatusCode: 404}, false},
		{&transport.Error{StatusCode: 401}, false},
		{&url.Error{Op: "Get", URL: "https://r", Err: syscall.ECONNRESET}, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{io.ErrUnexpectedEOF, true},
		{&url.Error{Op: "Get", URL: "https://r", Err: x509.UnknownAuthorityError{}}, false},
		{&url.Error{Op: "Get", URL: "https://r", Err: x509.HostnameError{Host: "r"}}, false},
		{&Error{Attempts: 3, Err: io.ErrUnexpectedEOF}, false},
		{&url.Error{Op: "Get", URL: "https://r", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "r", IsNotFound: true}}}, false},
		{&url.Error{Op: "Get", URL: "https://r", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "timeout", Name: "r", IsTimeout: true}}}, true},
	}
	for _, tc := range cases {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	p := Policy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.WithDefaults()
	for n := 1; n <= 12; n++ {
		ceil := min(p.BaseDelay<<(n-1), p.MaxDelay)
		for range 50 {
			d := p.backoff(n)
			if d < ceil/2 || d > ceil {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", n, d, ceil/2, ceil)
			}
		}
	}
	if err := (Policy{MaxAttempts: -1}).Validate(); err == nil {
		t.Fatal("a negative bound is accepted")
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tc := range cases {
		got, ok := retryAfter(tc.h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %s, %v; want %s, %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

// The transport counts as one client of a real server under concurrency:
// every request eventually succeeds and none is lost.
func TestTransportConcurrent(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			status(503)(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	defer srv.Close()
	c := client(fast)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte(i)}, 1000+i)
			req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/r/manifests/m", bytes.NewReader(body))
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, body) {
				errs <- fmt.Errorf("request %d: echoed %d bytes", i, len(got))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A Budget allows MaxAttempts-1 continuations, waiting between them;
// Next refuses permanent errors, Again takes them; ErrAgain makes an error
// temporary.
func TestBudget(t *testing.T) {
	ctx := context.Background()
	b := Policy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}.Budget()
	permanent := errors.New("permanent")
	if err := b.Next(ctx, permanent); err != permanent {
		t.Fatalf("a permanent error was continued: %v", err)
	}
	if !Temporary(fmt.Errorf("x: %w", ErrAgain)) {
		t.Fatal("ErrAgain is not temporary")
	}
	if err := b.Again(ctx, permanent); err != nil {
		t.Fatalf("first continuation: %v", err)
	}
	if err := b.Next(ctx, io.ErrUnexpectedEOF); err != nil {
		t.Fatalf("second continuation: %v", err)
	}
	var re *Error
	if err := b.Next(ctx, io.ErrUnexpectedEOF); !errors.As(err, &re) || re.Attempts != 3 {
		t.Fatalf("a third continuation was allowed: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := (Policy{}).Budget().Again(cctx, permanent); err != permanent {
		t.Fatalf("continued after cancellation: %v", err)
	}
}
