package serve_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
)

// served is a Server answering on a real loopback listener through Serve,
// with the connection limits under test.
type served struct {
	a    *testarchive.Archive
	addr string
	logs *syncBuffer
}

func startServing(t *testing.T, opts ...serve.Option) *served {
	t.Helper()
	a, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts = append([]serve.Option{serve.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	s, err := serve.Open(t.Context(), a.Path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := serve.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.Close()
	})
	return &served{a: a, addr: ln.Addr().String(), logs: logs}
}

func (s *served) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *served) blobPath(d digest.Digest) string { return "/v2/library/web/blobs/" + d.String() }

// rawRequest sends one GET with the given extra header lines on a new
// connection (Connection: close) and returns the status code and every
// byte the server sent back.
func rawRequest(t *testing.T, s *served, path string, hdr ...string) (int, []byte) {
	t.Helper()
	c := s.dial(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + s.addr + "\r\nConnection: close\r\n" + strings.Join(hdr, "") + "\r\n"
	werr := make(chan error, 1)
	go func() { _, err := io.WriteString(c, req); werr <- err }()
	raw, err := io.ReadAll(c)
	if err != nil && len(raw) == 0 {
		t.Fatalf("no response: %v", err)
	}
	<-werr // the server may stop reading a refused request: ignore
	var code int
	if _, err := fmt.Sscanf(string(raw), "HTTP/1.1 %d", &code); err != nil {
		t.Fatalf("not an HTTP response: %q", raw[:min(len(raw), 200)])
	}
	return code, raw
}

func oneByteRanges(n int, step int64) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", int64(i)*step, int64(i)*step)
	}
	return b.String()
}

// A Range header cannot make a response larger than the blob plus the
// multipart headers of 16 parts: 100,000 one-byte ranges (400 KB of
// header, which used to return 14 MB) are refused before they are read,
// more than 16 or overlapping ranges get 416, and 16 ranges are served.
func TestRangeAmplificationRefused(t *testing.T) {
	s := startServing(t)
	layer := s.a.SharedLayer
	path := s.blobPath(layer.Digest)

	code, raw := rawRequest(t, s, path, "Range: bytes="+strings.Repeat("0-0,", 100_000)+"0-0\r\n")
	if code != http.StatusRequestHeaderFieldsTooLarge || len(raw) > 1024 {
		t.Fatalf("100,000 ranges: %d, %d bytes back", code, len(raw))
	}
	for _, tc := range []struct{ name, rng string }{
		{"10,000 ranges within the header limit", "bytes=" + strings.Repeat("0-0,", 10_000) + "0-0"},
		{"17 distinct ranges", oneByteRanges(serve.MaxRanges+1, 1000)},
		{"two overlapping ranges", "bytes=0-99,50-149"},
		{"a suffix overlapping a range", "bytes=262000-262100,-200"},
		{"the same range twice", "bytes=5-5,5-5"},
	} {
		code, raw := rawRequest(t, s, path, "Range: "+tc.rng+"\r\n")
		if code != http.StatusRequestedRangeNotSatisfiable || len(raw) > 1024 {
			t.Fatalf("%s: %d, %d bytes back", tc.name, code, len(raw))
		}
		if want := fmt.Sprintf("Content-Range: bytes */%d", layer.Size); !strings.Contains(string(raw), want) {
			t.Fatalf("%s: no %q in\n%s", tc.name, want, raw)
		}
	}
	// A manifest read as a blob has the same cap.
	code, raw = rawRequest(t, s, s.blobPath(s.a.Images[1].Digest), "Range: "+oneByteRanges(serve.MaxRanges+1, 10)+"\r\n")
	if code != http.StatusRequestedRangeNotSatisfiable || len(raw) > 1024 {
		t.Fatalf("17 ranges of a manifest: %d, %d bytes back", code, len(raw))
	}

	// 16 ranges that cover the whole blob: served as multipart, every part
	// right, the response no bigger than the blob plus 16 part headers.
	var full []byte
	{
		code, raw := rawRequest(t, s, path)
		if code != http.StatusOK {
			t.Fatalf("GET blob: %d", code)
		}
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
		if err != nil {
			t.Fatal(err)
		}
		full, _ = io.ReadAll(resp.Body)
	}
	step := layer.Size / serve.MaxRanges
	var spec []string
	for i := range int64(serve.MaxRanges) {
		end := (i+1)*step - 1
		if i == serve.MaxRanges-1 {
			end = layer.Size - 1
		}
		spec = append(spec, fmt.Sprintf("%d-%d", i*step, end))
	}
	code, raw = rawRequest(t, s, path, "Range: bytes="+strings.Join(spec, ",")+"\r\n")
	if code != http.StatusPartialContent {
		t.Fatalf("16 ranges: %d", code)
	}
	if bound := layer.Size + serve.MaxRanges*256 + 1024; int64(len(raw)) > bound {
		t.Fatalf("16 ranges: %d bytes back for a %d-byte blob (bound %d)", len(raw), layer.Size, bound)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var got []byte
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if parts != serve.MaxRanges {
				t.Fatalf("%d parts, want %d", parts, serve.MaxRanges)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		got = append(got, b...)
	}
	if digest.FromBytes(got) != layer.Digest || string(got) != string(full) {
		t.Fatalf("the 16 parts do not make up the blob")
	}
}

// A keep-alive connection is kept while requests come within the idle
// timeout, and closed by the server once it has been idle that long.
func TestIdleConnectionClosed(t *testing.T) {
	const idle = 400 * time.Millisecond
	s := startServing(t, serve.WithIdleTimeout(idle))
	c := s.dial(t)
	br := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for range 3 {
		if _, err := io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("keep-alive request: %s, close %v", resp.Status, resp.Close)
		}
		time.Sleep(idle / 4)
	}
	idleFrom := time.Now()
	n, err := br.Read(make([]byte, 1))
	waited := time.Since(idleFrom)
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d bytes, %v; want EOF", n, err)
	}
	if waited < idle-idle/4-100*time.Millisecond || waited > idle+3*time.Second {
		t.Fatalf("idle connection closed after %v, idle timeout %v", waited, idle)
	}
}

// A client that opens a connection and sends a partial request header
// is disconnected after the read-header timeout.
func TestSlowHeaderClosed(t *testing.T) {
	const rht = 300 * time.Millisecond
	s := startServing(t, serve.WithReadHeaderTimeout(rht))
	c := s.dial(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n")
	start := time.Now()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("slow header: read %d bytes, %v; want the connection closed", n, err)
	}
	if waited := time.Since(start); waited < rht-100*time.Millisecond || waited > rht+3*time.Second {
		t.Fatalf("closed after %v, read-header timeout %v", waited, rht)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pipelined writes n GETs of path on c at once (HTTP/1.1 pipelining): the
// server answers them back to back, more bytes than socket buffers hold.
func pipelined(t *testing.T, c net.Conn, path string, n int) {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := io.WriteString(c, strings.Repeat(req, n)); err != nil {
		t.Fatal(err)
	}
}

// The write timeout is a stall timeout: a client that stops reading is
// cut off once no write has progressed for that long, while a client that
// reads slowly but steadily (the transfer lasts several times the
// timeout) gets every byte.
func TestWriteStallTimeout(t *testing.T) {
	const stall = time.Second
	s := startServing(t, serve.WithWriteTimeout(stall))
	layer := s.a.SharedLayer
	const n = 100 // 100 x 256 KiB: far more than the socket buffers hold

	// Stops reading: cut off.
	c := s.dial(t)
	pipelined(t, c, s.blobPath(layer.Digest), n)
	time.Sleep(4 * stall)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.Copy(io.Discard, c)
	if isTimeout(err) || got >= n*layer.Size {
		t.Fatalf("a client that stopped reading got %d of %d bytes (%v); want it cut off", got, n*layer.Size, err)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "blob transfer interrupted") || !strings.Contains(logs, "i/o timeout") {
		t.Fatalf("the stalled transfer was not logged as a write timeout:\n%s", logs)
	}

	// Reads slowly but steadily: served in full.
	const m = 96 // 24 MiB at 8 MiB/s
	c = s.dial(t)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	pipelined(t, c, s.blobPath(layer.Digest), m)
	start := time.Now()
	br := bufio.NewReader(&throttled{r: c, rate: 8 << 20})
	for i := range m {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		dg := digest.Canonical.Digester()
		if _, err := io.Copy(dg.Hash(), resp.Body); err != nil || dg.Digest() != layer.Digest {
			t.Fatalf("response %d of a slow reader: %v, digest %s\n%s", i, err, dg.Digest(), s.logs.String())
		}
	}
	if took := time.Since(start); took < 2*stall {
		t.Fatalf("the slow transfer took %v, not several times the %v stall timeout: the test proves nothing", took, stall)
	}
}

// throttled reads at no more than rate bytes per second on average.
type throttled struct {
	r     io.Reader
	rate  int64
	start time.Time
	n     int64
}

func (t *throttled) Read(p []byte) (int, error) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	time.Sleep(time.Until(t.start.Add(time.Duration(t.n * int64(time.Second) / t.rate))))
	k, err := t.r.Read(p[:min(len(p), 16<<10)])
	t.n += int64(k)
	return k, err
}

// Above the connection limit, connections wait unanswered in the accept
// queue; one is served as soon as a served connection closes.
func TestConnectionLimitQueues(t *testing.T) {
	s := startServing(t, serve.WithMaxConnections(2))
	held := []net.Conn{s.dial(t), s.dial(t)} // accepted, sending nothing
	c := s.dial(t)
	if _, err := io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !isTimeout(err) {
		t.Fatalf("a third connection over a limit of 2 was answered: %d bytes, %v", n, err)
	}
	held[0].Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the queued connection was not served once a slot freed: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
}

// A busy address fails Listen at once, naming the address.
func TestListenBusyAddress(t *testing.T) {
	ln, err := serve.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, err = serve.Listen(t.Context(), addr)
	if !errors.Is(err, serve.ErrListen) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("listening twice on %s: %v", addr, err)
	}
}

func TestLimitOptionsValidated(t *testing.T) {
	a, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]serve.Option{
		"idle 0":             serve.WithIdleTimeout(0),
		"write -1s":          serve.WithWriteTimeout(-time.Second),
		"read header 0":      serve.WithReadHeaderTimeout(0),
		"max connections 0":  serve.WithMaxConnections(0),
		"TLS without a cert": serve.WithTLSConfig(nil),
	} {
		if s, err := serve.Open(t.Context(), a.Path, opt); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}
