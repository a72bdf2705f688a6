package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultRoute selects a kind of registry API request for a Fault.
type FaultRoute string

// Routes a Fault can match.
const (
	// FaultAny matches every request.
	FaultAny FaultRoute = ""
	// FaultBlob matches /v2/<name>/blobs/<digest> (HEAD, GET).
	FaultBlob FaultRoute = "blob"
	// FaultUpload matches /v2/<name>/blobs/uploads/... (POST, PATCH, PUT).
	FaultUpload FaultRoute = "upload"
	// FaultManifest matches /v2/<name>/manifests/<reference>.
	FaultManifest FaultRoute = "manifest"
	// FaultToken matches the token endpoint (/auth/token).
	FaultToken FaultRoute = "token"
)

// Fault describes one kind of failure a FaultProxy injects. Every fault is
// bounded: at most PerKey times for one request key and Max times in all,
// so a client that retries eventually gets through.
type Fault struct {
	// Name labels the fault in FaultProxy.Injected and Events.
	Name string
	// Method and Route select the requests ("" and FaultAny: all).
	Method string
	Route  FaultRoute
	// Keys, if not empty, restricts the fault to requests whose key (see
	// FaultEvent.Key) contains one of these strings, such as a digest.
	Keys []string
	// Status answers the request with this status and a distribution-style
	// error body instead of forwarding it (a request body is read first).
	Status int
	// RetryAfter, with Status, sets a Retry-After header (whole seconds).
	RetryAfter time.Duration
	// Reset closes the client's connection with a TCP reset instead of
	// answering. A request with a body is first forwarded to the registry
	// with only the first ResetAfter bytes of its body (default: half of
	// it), so the registry sees a broken upload.
	Reset      bool
	ResetAfter int64
	// CutResponse forwards the request and resets the connection after
	// the response headers and the first ResetAfter bytes of its body
	// (default: half of it): a download broken mid-body.
	CutResponse bool
	// Every injects the fault into every Every-th matching request only.
	// Default 1.
	Every int
	// PerKey bounds the injections for one request key. Default 1.
	PerKey int
	// Max bounds the injections in all. Default 10.
	Max int
}

// FaultEvent is one request seen by a FaultProxy.
type FaultEvent struct {
	// Time is when the request arrived.
	Time time.Time
	// Method and Path describe the request.
	Method, Path string
	// Key identifies the request across retries: method, path with the
	// upload session replaced by the digest being uploaded.
	Key string
	// Fault is the Name of the fault injected, "" if forwarded.
	Fault string
	// Range and ContentRange are the request's Range and Content-Range
	// headers, if any.
	Range, ContentRange string
}

// FaultProxy is a reverse proxy in front of a Registry that injects
// faults. It listens on 127.0.0.1 (plain HTTP; it speaks TLS to a TLS
// registry) and keeps the client's Host header, so the registry's upload
// locations point back at the proxy. Create it with StartFaultProxy.
type FaultProxy struct {
	// Host is the proxy's address, "127.0.0.1:PORT": use it (with plain
	// HTTP) in place of the registry's Host.
	Host string

	target *Registry
	server *http.Server
	proxy  *httputil.ReverseProxy
	faults []Fault

	mu      sync.Mutex
	matched []int            // per fault: matching requests seen
	total   []int            // per fault: injections
	perKey  []map[string]int // per fault: injections per key
	events  []FaultEvent
}

// maxFaultEvents bounds the request log of a FaultProxy.
const maxFaultEvents = 100000

// StartFaultProxy starts a fault-injecting proxy in front of target. It
// runs until Close; ctx is used only while starting.
func StartFaultProxy(ctx context.Context, target *Registry, faults ...Fault) (*FaultProxy, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range faults {
		f := &faults[i]
		if f.Every <= 0 {
			f.Every = 1
		}
		if f.PerKey <= 0 {
			f.PerKey = 1
		}
		if f.Max <= 0 {
			f.Max = 10
		}
		if f.Status == 0 && !f.Reset && !f.CutResponse {
			return nil, fmt.Errorf("harness: fault %q injects nothing (set Status, Reset or CutResponse)", f.Name)
		}
	}
	u, err := url.Parse(target.URL())
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{target: target, faults: faults, matched: make([]int, len(faults)), total: make([]int, len(faults)),
		perKey: make([]map[string]int, len(faults))}
	for i := range p.perKey {
		p.perKey[i] = map[string]int{}
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the registry builds upload locations from it
		},
		Transport: target.Transport(),
		ErrorLog:  nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("harness: fault proxy: %w", err)
	}
	p.Host = ln.Addr().String()
	p.server = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.server.Serve(ln) }()
	return p, nil
}

// Close stops the proxy.
func (p *FaultProxy) Close() error { return p.server.Close() }

// Injected returns how many times each fault (by Name) was injected.
func (p *FaultProxy) Injected() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for i, f := range p.faults {
		out[f.Name] += p.total[i]
	}
	return out
}

// Events returns the requests the proxy has seen, in arrival order.
func (p *FaultProxy) Events() []FaultEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]FaultEvent(nil), p.events...)
}

func faultRoute(path string) FaultRoute {
	if path == tokenPath {
		return FaultToken
	}
	switch classify(path) {
	case routeUpload:
		return FaultUpload
	case routeBlob:
		return FaultBlob
	case routeManifest:
		return FaultManifest
	}
	return FaultAny
}

// faultKey identifies a request across retries.
func faultKey(r *http.Request) string {
	path := r.URL.Path
	if i := strings.Index(path, "/blobs/uploads/"); i >= 0 {
		path = path[:i] + "/blobs/uploads/"
		if d := r.URL.Query().Get("digest"); d != "" {
			path += d
		} else if m := r.URL.Query().Get("mount"); m != "" {
			path += "mount=" + m
		}
	}
	return r.Method + " " + path
}

// pick chooses the fault to inject into r, if any, and records the request.
func (p *FaultProxy) pick(r *http.Request) (*Fault, FaultEvent) {
	ev := FaultEvent{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Key: faultKey(r), Range: r.Header.Get("Range"), ContentRange: r.Header.Get("Content-Range")}
	route := faultRoute(r.URL.Path)
	p.mu.Lock()
	defer p.mu.Unlock()
	var chosen *Fault
	for i := range p.faults {
		f := &p.faults[i]
		if (f.Method != "" && f.Method != r.Method) || (f.Route != FaultAny && f.Route != route) {
			continue
		}
		if len(f.Keys) > 0 {
			hit := false
			for _, k := range f.Keys {
				hit = hit || strings.Contains(ev.Key, k)
			}
			if !hit {
				continue
			}
		}
		p.matched[i]++
		if chosen != nil || p.matched[i]%f.Every != 0 || p.total[i] >= f.Max || p.perKey[i][ev.Key] >= f.PerKey {
			continue
		}
		p.total[i]++
		p.perKey[i][ev.Key]++
		chosen = f
		ev.Fault = f.Name
	}
	if len(p.events) < maxFaultEvents {
		p.events = append(p.events, ev)
	}
	return chosen, ev
}

// ServeHTTP forwards r to the registry or injects a fault.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, _ := p.pick(r)
	switch {
	case f == nil:
		p.proxy.ServeHTTP(w, r)
	case f.Reset:
		p.reset(w, r, f)
	case f.CutResponse:
		p.cutResponse(w, r, f)
	default:
		if r.Body != nil {
			io.Copy(io.Discard, io.LimitReader(r.Body, 256<<20))
		}
		code := "UNAVAILABLE"
		if f.Status == http.StatusTooManyRequests {
			code = "TOOMANYREQUESTS"
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected fault %s"}]}`, code, f.Name)
	}
}

// errCut ends a request body the proxy cuts short.
var errCut = errors.New("harness: request body cut by a fault")

type cutBody struct {
	r    io.Reader
	left int64
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return nil }

// cutResponse forwards r, sends the response's headers and the first
// ResetAfter bytes of its body, then resets the client's connection.
func (p *FaultProxy) cutResponse(w http.ResponseWriter, r *http.Request, f *Fault) {
	resp, err := p.target.Transport().RoundTrip(p.forward(r))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer resp.Body.Close()
	n := f.ResetAfter
	if n <= 0 {
		n = max(resp.ContentLength/2, 1)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, n))
	http.NewResponseController(w).Flush()
	resetConn(w)
}

// forward returns r addressed to the registry.
func (p *FaultProxy) forward(r *http.Request) *http.Request {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = "http", p.target.Host
	if p.target.TLS {
		out.URL.Scheme = "https"
	}
	out.RequestURI = ""
	return out
}

// resetConn closes the client's connection with a TCP reset.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST, not FIN
	}
	conn.Close()
}

// reset forwards part of the request body (if any) to the registry, then
// resets the client's connection.
func (p *FaultProxy) reset(w http.ResponseWriter, r *http.Request, f *Fault) {
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		n := f.ResetAfter
		if n <= 0 {
			n = max(r.ContentLength/2, 1)
		}
		out := p.forward(r)
		out.Body = &cutBody{r: r.Body, left: n}
		if resp, err := p.target.Transport().RoundTrip(out); err == nil {
			resp.Body.Close()
		}
	}
	resetConn(w)
}
