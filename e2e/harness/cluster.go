package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RegistryBinary is the name of distribution's registry program, which
// StartCluster looks up on PATH. `make tools` builds it at the version the
// module tools/registry pins (scripts/tools.sh).
const RegistryBinary = "registry"

// ClusterOptions configures StartCluster. The zero value gives two nodes
// behind a proxy that sends every request on a connection of its own.
type ClusterOptions struct {
	// Nodes is the number of registry processes (default 2).
	Nodes int
	// Binary is the registry program (default: RegistryBinary on PATH).
	Binary string
	// KeepAlive makes the proxy a plain TCP splice: each client
	// connection goes to the next node and stays there for as long as the
	// client keeps it open, the way an L4 load balancer works. Requests are
	// then not seen by the proxy: Counts, Exchanges, Before and After stay
	// empty or unused; only ClusterNode.Conns and ClusterNode.Served count.
	// Without KeepAlive the proxy reads one request from each client
	// connection, forwards it with "Connection: close" and closes the
	// client's connection after the response, so that every request goes
	// to the next node in turn. (A connection that opens with a TLS
	// handshake, a client trying https first, is spliced to the next node,
	// which refuses it at once as it refuses any TLS client.)
	KeepAlive bool
	// Before, if set, is called with the cluster and each request before
	// it is forwarded (without KeepAlive); returning false drops it: the
	// client's connection is closed and no node sees the request. It must
	// not read the body.
	Before func(c *Cluster, r *http.Request) bool
	// After, if set, is called once the response of a forwarded request
	// has been relayed to the client (or the client went away) and
	// counted, with the node that served it and the status it answered
	// (502 when it gave no response). The request's body has been
	// consumed.
	After func(c *Cluster, node int, r *http.Request, status int)
	// SecretPerNode gives every node its own http.secret (through
	// REGISTRY_HTTP_SECRET), as in a cluster configured by mistake: a
	// blob upload session can then only be continued on the node that
	// opened it; any other answers 404 BLOB_UPLOAD_INVALID.
	SecretPerNode bool
	// Log, if set, receives every line the nodes write (their access log
	// and their application log), prefixed with "node N: ". The lines are
	// always kept in Dir/node-N.log as well (see ClusterNode.Log).
	Log io.Writer
}

// Cluster is distribution scaled out: several `registry` processes sharing
// one filesystem storage directory and one http.secret (one configuration
// file for all of them), behind a round-robin proxy on 127.0.0.1.
// Distribution needs nothing else to serve one registry from several
// processes: a blob upload opened on one node (POST) may be continued and
// committed on another (PATCH, PUT) because the session's state travels in
// the upload URL's _state parameter, an HMAC token every node accepts when
// they share the secret, and the session's data lies in the shared storage
// (_uploads/<id>). Nodes keep no cache (no storage.cache), so none of them
// serves stale metadata another node has changed.
//
// Create one with StartCluster and stop it with Close.
type Cluster struct {
	// Registry is the clients' view of the cluster: its Host is the
	// proxy's address, and the helpers taking a *Registry (ReadBundle,
	// PullBundle, RemoteOptions, Tags, ...) work with it. Its Counts are
	// the requests the proxy forwarded, counted as an in-process
	// registry counts what it serves (without KeepAlive).
	Registry *Registry
	// Nodes are the registry processes.
	Nodes []*ClusterNode
	// Dir holds the configuration file, the shared storage (Dir/storage)
	// and the node logs. Close removes it.
	Dir string
	// ConfigFile is the configuration every node reads.
	ConfigFile string
	// Secret is the http.secret every node shares (in the configuration
	// file; without SecretPerNode).
	Secret string

	bin  string
	opts ClusterOptions
	ln   net.Listener

	mu        sync.Mutex
	next      int
	conns     map[net.Conn]struct{}
	exchanges []Exchange
	closed    bool
	wg        sync.WaitGroup
	logMu     sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// Exchange is one request the proxy forwarded (without KeepAlive).
type Exchange struct {
	// Node is the index of the node that served it.
	Node int
	// Method and Path are the request's; Status is the node's final
	// answer (502 if none arrived).
	Method, Path string
	Status       int
	// Location is the response's Location header, if any.
	Location string
}

// clusterConfig is the configuration file of every node. The listen
// address comes from REGISTRY_HTTP_ADDR, one per process. No debug server
// (it would listen on a second port), no upload purging (a node starting
// must not remove the sessions another is serving), no cache.
const clusterConfig = `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: %q
`

// StartCluster starts opts.Nodes registry processes on 127.0.0.1, each on
// a random port, with one configuration: filesystem storage in Dir/storage
// and the same http.secret. It then starts the round-robin proxy on
// 127.0.0.1. It fails, naming the missing program, when the registry binary
// is not on PATH. ctx bounds the start only.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 2
	}
	bin := opts.Binary
	if bin == "" {
		p, err := exec.LookPath(RegistryBinary)
		if err != nil {
			return nil, fmt.Errorf("harness: distribution's %q program is required for a registry cluster "+
				"(make tools builds it from tools/registry: scripts/tools.sh): %w", RegistryBinary, err)
		}
		bin = p
	}
	dir, err := os.MkdirTemp("", "cnab-airgap-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir:        dir,
		ConfigFile: filepath.Join(dir, "config.yml"),
		Secret:     randomHex(32),
		bin:        bin,
		opts:       opts,
		conns:      map[net.Conn]struct{}{},
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	cfg := fmt.Sprintf(clusterConfig, filepath.Join(dir, "storage"), c.Secret)
	if err := os.WriteFile(c.ConfigFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	for i := range opts.Nodes {
		n := &ClusterNode{Index: i, c: c, counter: &counter{}, logPath: filepath.Join(dir, fmt.Sprintf("node-%d.log", i))}
		c.Nodes = append(c.Nodes, n)
		if err := n.start(ctx); err != nil {
			return nil, err
		}
	}
	c.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("harness: cluster proxy: %w", err)
	}
	c.Registry, err = External(c.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	c.wg.Go(c.accept)
	ok = true
	return c, nil
}

// Close stops the proxy and every node (SIGKILL: the storage is thrown
// away) and removes Dir.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		for conn := range c.conns {
			conn.Close()
		}
		c.mu.Unlock()
		var errs []error
		if c.ln != nil {
			c.ln.Close()
		}
		c.wg.Wait()
		for _, n := range c.Nodes {
			n.Kill()
		}
		if c.Registry != nil {
			c.Registry.transport.CloseIdleConnections()
		}
		errs = append(errs, os.RemoveAll(c.Dir))
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Exchanges returns the requests the proxy forwarded, in the order they
// completed (without KeepAlive).
func (c *Cluster) Exchanges() []Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Exchange(nil), c.exchanges...)
}

// CrossNodeUploads counts the blob uploads committed (PUT answered 201)
// whose session another node opened (the POST that answered 202 with that
// upload's Location), and all the committed uploads whose opening the proxy
// saw.
func (c *Cluster) CrossNodeUploads() (crossed, total int) {
	opened := map[string]int{} // upload path -> node
	for _, e := range c.Exchanges() {
		if e.Method == http.MethodPost && e.Status == http.StatusAccepted && e.Location != "" {
			if u, err := url.Parse(e.Location); err == nil {
				opened[u.Path] = e.Node
			}
		}
	}
	for _, e := range c.Exchanges() {
		if e.Method != http.MethodPut || e.Status != http.StatusCreated || classify(e.Path) != routeUpload {
			continue
		}
		if n, ok := opened[e.Path]; ok {
			total++
			if n != e.Node {
				crossed++
			}
		}
	}
	return crossed, total
}

func (c *Cluster) accept() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			return
		}
		c.conns[conn] = struct{}{}
		c.mu.Unlock()
		c.wg.Go(func() {
			defer func() {
				conn.Close()
				c.mu.Lock()
				delete(c.conns, conn)
				c.mu.Unlock()
			}()
			if c.opts.KeepAlive {
				c.splice(conn, conn)
			} else {
				c.oneRequest(conn)
			}
		})
	}
}

// dial connects to the next running node in turn; a node that refuses is
// skipped, as a load balancer redispatches.
func (c *Cluster) dial() (*ClusterNode, net.Conn, error) {
	c.mu.Lock()
	start := c.next
	c.next++
	c.mu.Unlock()
	var errs []error
	for i := range c.Nodes {
		n := c.Nodes[(start+i)%len(c.Nodes)]
		addr := n.Addr()
		if addr == "" {
			continue
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			n.conns.Add(1)
			c.track(conn, true)
			return n, conn, nil
		}
		errs = append(errs, err)
	}
	return nil, nil, fmt.Errorf("no registry node answers: %w", errors.Join(errs...))
}

// track adds conn to (or removes it from) the connections Close closes.
func (c *Cluster) track(conn net.Conn, add bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if add {
		c.conns[conn] = struct{}{}
	} else {
		delete(c.conns, conn)
	}
}

// splice connects client to the next node; what the client sends is read
// from in (client, or a reader buffering its first bytes).
func (c *Cluster) splice(client net.Conn, in io.Reader) {
	_, be, err := c.dial()
	if err != nil {
		return
	}
	defer func() { be.Close(); c.track(be, false) }()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(be, in)
		closeWrite(be)
		close(done)
	}()
	_, _ = io.Copy(client, be)
	closeWrite(client)
	<-done
}

func closeWrite(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// oneRequest forwards the one request it reads from client to the next
// node with "Connection: close", relays the response byte for byte, and
// counts the exchange at the cluster and at the node the way an in-process
// Registry counts what it serves.
func (c *Cluster) oneRequest(client net.Conn) {
	br := bufio.NewReader(client)
	if b, err := br.Peek(1); err != nil {
		return
	} else if b[0] == 0x16 {
		// A TLS handshake: a client trying https first (go-containerregistry
		// pings https and http). It is no request; the node answers it as
		// it answers any TLS client on its plain HTTP port (at once, with
		// 400), where waiting for a request line would hold the client up.
		c.splice(client, br)
		return
	}
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if c.opts.Before != nil && !c.opts.Before(c, req) {
		return
	}
	n, be, err := c.dial()
	if err != nil {
		_, _ = io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	defer func() { be.Close(); c.track(be, false) }()
	var ex Exchange
	forward := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex = c.forward(client, be, r)
		w.WriteHeader(ex.Status)
	})
	n.counter.wrap(c.Registry.counter.wrap(forward)).ServeHTTP(discardResponse{}, req)
	ex.Node = n.Index
	c.mu.Lock()
	c.exchanges = append(c.exchanges, ex)
	c.mu.Unlock()
	if c.opts.After != nil {
		c.opts.After(c, n.Index, req, ex.Status)
	}
}

func (c *Cluster) forward(client, be net.Conn, r *http.Request) Exchange {
	ex := Exchange{Method: r.Method, Path: r.URL.Path, Status: http.StatusBadGateway}
	r.Close = true // the node closes the connection after its response
	bw := bufio.NewWriter(be)
	if r.Body != nil && r.Body != http.NoBody {
		// The headers go out before the body is read, so a client waiting
		// for "100 Continue" gets it.
		r.Body = &flushFirst{ReadCloser: r.Body, w: bw}
	}
	sn := &statusSniffer{w: client}
	relayed := make(chan struct{})
	go func() {
		_, _ = io.Copy(sn, be)
		close(relayed)
	}()
	err := r.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		be.Close() // a request cut short: the node must not wait for the rest
	}
	<-relayed
	if sn.status != 0 {
		ex.Status = sn.status
		ex.Location = sn.header.Get("Location")
	}
	return ex
}

// flushFirst flushes w before the first read of the body.
type flushFirst struct {
	io.ReadCloser
	w       *bufio.Writer
	flushed bool
}

func (f *flushFirst) Read(p []byte) (int, error) {
	if !f.flushed {
		f.flushed = true
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.ReadCloser.Read(p)
}

// statusSniffer passes a response through to w and parses its header
// block: the final status (after any 1xx) and headers.
type statusSniffer struct {
	w      io.Writer
	buf    []byte
	done   bool
	status int
	header http.Header
}

func (s *statusSniffer) Write(p []byte) (int, error) {
	if !s.done {
		s.buf = append(s.buf, p...)
		for !s.done {
			i := bytes.Index(s.buf, []byte("\r\n\r\n"))
			if i < 0 {
				s.done = len(s.buf) > 1<<16
				break
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(s.buf[:i+4])), nil)
			if err != nil {
				s.done = true
				break
			}
			if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
				s.buf = s.buf[i+4:]
				continue
			}
			s.status, s.header, s.done = resp.StatusCode, resp.Header, true
		}
		if s.done {
			s.buf = nil
		}
	}
	return s.w.Write(p)
}

// discardResponse is the ResponseWriter behind the proxy's counters: the
// response itself travels byte for byte.
type discardResponse struct{}

func (discardResponse) Header() http.Header         { return http.Header{} }
func (discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (discardResponse) WriteHeader(int)             {}

// ClusterNode is one registry process of a Cluster.
type ClusterNode struct {
	// Index is the node's position in Cluster.Nodes, and N in its log
	// lines ("node N: ").
	Index int

	c       *Cluster
	counter *counter
	conns   atomic.Int64
	served  atomic.Int64
	logPath string

	mu      sync.Mutex
	addr    string // "" while down
	cmd     *exec.Cmd
	exited  chan struct{}
	starts  int
	partial [2][]byte // stdout, stderr: the last unterminated line
}

// Addr is the node's own address, "127.0.0.1:PORT", or "" while it is down.
// A restarted node listens on a new port.
func (n *ClusterNode) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Counts returns the requests the proxy sent to this node, over all its
// lives (without KeepAlive).
func (n *ClusterNode) Counts() Counts { return n.counter.snapshot() }

// Conns is the number of connections the proxy opened to this node.
func (n *ClusterNode) Conns() int64 { return n.conns.Load() }

// Served is the number of requests the node's own access log records,
// over all its lives, leaving out the harness's readiness probes (GET /).
// A node writes the line after the response, so it may trail the proxy's
// counts for a moment.
func (n *ClusterNode) Served() int64 { return n.served.Load() }

// Log returns everything the node has written (its access log and its
// application log), over all its lives.
func (n *ClusterNode) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// Kill stops the node with SIGKILL and waits for it to exit; the proxy
// sends nothing more to it. Killing a node that is down does nothing.
func (n *ClusterNode) Kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.addr, n.cmd = "", nil
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	err := cmd.Process.Kill()
	<-exited
	if errors.Is(err, os.ErrProcessDone) {
		err = nil
	}
	return err
}

// Restart kills the node if it runs and starts it again, on a new port,
// with the same configuration (and so the same storage and secret).
func (n *ClusterNode) Restart(ctx context.Context) error {
	if err := n.Kill(); err != nil {
		return err
	}
	return n.start(ctx)
}

// accessLine matches a request line of the Apache combined log format the
// registry's access log uses.
var accessLine = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" ([0-9]{3}) `)

// start runs the registry on a free port of 127.0.0.1 and waits until it
// answers. The port is chosen here and handed over, so another program may
// take it first: then the start is tried again on another port.
func (n *ClusterNode) start(ctx context.Context) error {
	var errs []error
	for range 3 {
		err := n.startOnce(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("harness: cluster node %d: %w", n.Index, errors.Join(errs...))
}

func (n *ClusterNode) startOnce(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.c.bin, "serve", n.c.ConfigFile) //nolint:gosec // the harness's own program and file
	cmd.Dir = n.c.Dir
	cmd.Env = []string{
		"HOME=" + n.c.Dir,
		"REGISTRY_HTTP_ADDR=" + addr,
		// No traces, metrics or logs exported anywhere (the default OTLP
		// exporter would try localhost:4318).
		"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none",
		// Nothing leaves the machine even if something tried.
		"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost",
	}
	if n.c.opts.SecretPerNode {
		cmd.Env = append(cmd.Env, "REGISTRY_HTTP_SECRET="+randomHex(32))
	}
	cmd.Stdout = &nodeOutput{n: n, f: logf, stream: 0}
	cmd.Stderr = &nodeOutput{n: n, f: logf, stream: 1}
	n.mu.Lock()
	n.starts++
	n.partial = [2][]byte{} // a killed life's unfinished line ends there
	n.mu.Unlock()
	fmt.Fprintf(logf, "--- harness: start %d of node %d on %s\n", n.starts, n.Index, addr)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("the registry on %s exited (%v); its log ends:\n%s", addr, waitErr, tail(n.Log(), 10))
		case <-ctx.Done():
			cmd.Process.Kill()
			<-exited
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("the registry on %s did not answer within 30s; its log ends:\n%s", addr, tail(n.Log(), 10))
		}
	}
	n.mu.Lock()
	n.addr, n.cmd, n.exited = addr, cmd, exited
	n.mu.Unlock()
	return nil
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// nodeOutput receives one output stream of a node: it writes whole lines to
// the node's log file and to ClusterOptions.Log, and counts the access log's
// request lines.
type nodeOutput struct {
	n      *ClusterNode
	f      *os.File
	stream int
}

func (o *nodeOutput) Write(p []byte) (int, error) {
	n := o.n
	n.mu.Lock()
	buf := append(n.partial[o.stream], p...)
	i := bytes.LastIndexByte(buf, '\n')
	var lines []byte
	if i >= 0 {
		lines, n.partial[o.stream] = buf[:i+1], append([]byte(nil), buf[i+1:]...)
	} else {
		n.partial[o.stream] = buf
	}
	n.mu.Unlock()
	if lines == nil {
		return len(p), nil
	}
	c := n.c
	c.logMu.Lock()
	defer c.logMu.Unlock()
	_, _ = o.f.Write(lines)
	for line := range bytes.Lines(lines) {
		if o.stream == 0 {
			if m := accessLine.FindSubmatch(line); m != nil && string(m[2]) != "/" {
				n.served.Add(1)
			}
		}
		if c.opts.Log != nil {
			_, _ = fmt.Fprintf(c.opts.Log, "node %d: %s", n.Index, line)
		}
	}
	return len(p), nil
}
