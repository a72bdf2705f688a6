package serve

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/net/netutil"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// ErrVerification is returned by New and Open when a blob of the archive
// does not match its digest or size.
var ErrVerification = errdefs.New("archive content does not verify", errdefs.ErrVerification)

// ErrListen is returned by Listen when the address cannot be listened on
// (in use, not local, not permitted).
var ErrListen = errdefs.New("cannot listen on", errdefs.ErrUnavailable)

// Defaults of the connection limits (see the package documentation).
const (
	DefaultReadHeaderTimeout = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultWriteTimeout      = time.Minute
	DefaultMaxConnections    = 256
)

// MaxHeaderBytes caps the size of a request's header block; a larger one
// is answered 431 Request Header Fields Too Large.
const MaxHeaderBytes = 64 << 10

// Option configures a Server.
type Option func(*options) error

type options struct {
	log               *slog.Logger
	progress          progress.Func
	shutdownWait      time.Duration
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	writeTimeout      time.Duration
	maxConns          int
	tls               *tls.Config
	open              layout.OpenOptions
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{log: slog.New(slog.DiscardHandler), shutdownWait: 5 * time.Second,
		readHeaderTimeout: DefaultReadHeaderTimeout, idleTimeout: DefaultIdleTimeout,
		writeTimeout: DefaultWriteTimeout, maxConns: DefaultMaxConnections}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithLogger sets the logger. Every request is logged at debug level
// (method, path, status, bytes, duration, client address); failures to
// serve content are logged at error level. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("serve: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithProgress receives the progress of the verification at startup, as
// PhaseBlobs events (one item per blob). The default is none.
func WithProgress(f progress.Func) Option {
	return func(o *options) error { o.progress = f; return nil }
}

// WithShutdownTimeout bounds how long Serve waits for requests in flight
// once its context is cancelled before it closes their connections. The
// default is 5 seconds.
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return errors.New("serve: negative shutdown timeout")
		}
		o.shutdownWait = d
		return nil
	}
}

func positive(what string, d time.Duration, dst *time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("serve: %s must be positive, not %v", what, d)
	}
	*dst = d
	return nil
}

// WithReadHeaderTimeout bounds the time a client has, from the moment its
// connection is accepted (or its previous response ended), to send the
// headers of a request (TLS handshake included). A client that is slower is
// disconnected. The default is DefaultReadHeaderTimeout.
func WithReadHeaderTimeout(d time.Duration) Option {
	return func(o *options) error { return positive("read header timeout", d, &o.readHeaderTimeout) }
}

// WithIdleTimeout bounds how long a keep-alive connection may wait for its
// next request; then the server closes it. The default is
// DefaultIdleTimeout.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) error { return positive("idle timeout", d, &o.idleTimeout) }
}

// WithWriteTimeout bounds how long a response may make no progress: before
// each write to the connection (at most 32 KiB) the write deadline moves to
// now plus d, and a write that has not completed by then closes the
// connection. It is a stall timeout, not a deadline for the whole
// response: a large blob downloaded slowly keeps going as long as it keeps
// moving. "Moving" is seen through the kernel's socket send buffer (a few
// MiB on Linux, where a blocked writer resumes once about half of it has
// drained), so a client is cut off when it stops reading, or reads so
// slowly that it drains less than that within d. The default is
// DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return func(o *options) error { return positive("write timeout", d, &o.writeTimeout) }
}

// WithMaxConnections caps the connections served at once (keep-alive
// connections waiting for their next request count). Above the cap, new
// connections are not refused: they wait, unanswered, in the listener's
// accept queue until a served connection closes. The default is
// DefaultMaxConnections.
func WithMaxConnections(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("serve: max connections must be at least 1, not %d", n)
		}
		o.maxConns = n
		return nil
	}
}

// WithTLSConfig makes Serve answer HTTPS only, with cfg (which must hold
// a certificate); Serve then expects a plain TCP listener.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil) {
			return errors.New("serve: TLS configuration without a certificate")
		}
		o.tls = cfg
		return nil
	}
}

// Listen binds addr (host:port; port 0 picks a free port) for Serve. Bind
// first and verify (Open, New) second: a busy address then fails at once,
// before any verification work. Until Serve is called, connections wait
// unanswered in the accept queue, so no client ever sees content that has
// not been verified.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrListen, addr, err)
	}
	return ln, nil
}

// WithOpenOptions sets the archive limits and temporary directory Open
// reads the archive with (see layout.OpenOptions). The default is the
// zero OpenOptions: the default limits under os.TempDir().
func WithOpenOptions(oo layout.OpenOptions) Option {
	return func(o *options) error { o.open = oo; return nil }
}

// Image is an image of the bundle as the server offers it.
type Image struct {
	// Role is "invocation" or "component"; Name is the component name or
	// the invocation image's position.
	Role string `json:"role"`
	Name string `json:"name"`
	// Reference is the exact `image` string of bundle.json.
	Reference string `json:"reference"`
	// Repository is the repository path the image is served under (its
	// original path, without the registry host).
	Repository string `json:"repository"`
	// Tag is the tag it is served under in Repository ("" when bundle.json
	// names it by digest only).
	Tag string `json:"tag,omitempty"`
	// Digest and MediaType are those of its top manifest or index.
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
}

// Server is a read-only OCI distribution registry over one archive. It is
// an http.Handler and is safe for concurrent use.
type Server struct {
	o         *options
	b         *archive.Bundle
	own       bool
	manifests map[digest.Digest]*archive.Node
	blobs     map[digest.Digest]int64
	tags      map[string]map[string]digest.Digest // repository -> tag -> digest
	referrers map[digest.Digest][]ocispec.Descriptor
	images    []Image
	warnings  []string
}

// Open loads and checks the archive at path (archive.Load), verifies
// every blob and returns a Server that owns the archive: Close releases it.
func Open(ctx context.Context, path string, opts ...Option) (*Server, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	b, err := archive.Load(ctx, path, o.open)
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, b, opts...)
	if err != nil {
		b.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// New verifies every blob of a loaded archive (see the package
// documentation) and prepares its namespace. The caller keeps ownership of
// b and must not close it while the server runs.
func New(ctx context.Context, b *archive.Bundle, opts ...Option) (*Server, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, b: b, manifests: b.Nodes, blobs: map[digest.Digest]int64{},
		tags: map[string]map[string]digest.Digest{}, referrers: map[digest.Digest][]ocispec.Descriptor{}}
	if err := s.verifyBlobs(ctx); err != nil {
		return nil, err
	}
	s.buildNamespace()
	s.buildReferrers()
	return s, nil
}

// verifyBlobs reads every blob the archive carries through a verifying
// reader; only verified blobs are served.
func (s *Server) verifyBlobs(ctx context.Context) error {
	var ds []digest.Digest
	var total int64
	for d, size := range s.b.Blobs {
		if _, ok := s.b.Archive.Has(d); !ok {
			continue // left out of a delta or sparse archive: not served
		}
		ds = append(ds, d)
		total += size
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	p := s.o.progress
	p.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateTotal, Total: total, Count: len(ds)})
	var errs []error
	for _, d := range ds {
		if err := ctx.Err(); err != nil {
			return err
		}
		size := s.b.Blobs[d]
		p.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateStarted, Item: d.String(), Bytes: size})
		r, err := s.b.Archive.Blob(d, size)
		if err == nil {
			item := &progress.Item{F: p, Phase: progress.PhaseBlobs, Name: d.String()}
			_, err = io.Copy(io.Discard, item.Reader(r))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("blob %s: %w", d, err))
			continue
		}
		p.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone, Item: d.String(), Bytes: size})
		s.blobs[d] = size
	}
	if len(errs) > 0 {
		return fmt.Errorf("archive %s: %w: %w", s.b.Archive.Path(), ErrVerification, errors.Join(errs...))
	}
	p.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone})
	return nil
}

// buildNamespace derives repositories and tags from the bundle and its images.
func (s *Server) buildNamespace() {
	// Every bundle of the archive (several in format 3), each at its own
	// repository and tag; an image two bundles share is served once.
	var entries []archive.ImageEntry
	for _, x := range s.b.All() {
		s.tag(x.RepoPath, x.Tag, x.Index.Digest)
		for _, e := range x.Images {
			if !slices.ContainsFunc(entries, func(y archive.ImageEntry) bool { return y.Ref == e.Ref && y.Desc.Digest == e.Desc.Digest }) {
				entries = append(entries, e)
			}
		}
	}
	for _, e := range entries {
		img := Image{Role: e.Role, Name: e.Name, Reference: e.Ref, Digest: e.Desc.Digest, MediaType: e.Desc.MediaType}
		ref, err := name.ParseReference(e.Ref)
		if err != nil {
			s.warnings = append(s.warnings, fmt.Sprintf("%s (%s): not a reference (%v); served by digest in %s only", e.Label(), e.Ref, err, s.b.RepoPath))
			img.Repository = s.b.RepoPath
			s.images = append(s.images, img)
			continue
		}
		img.Repository = ref.Context().RepositoryStr()
		if t, ok := ref.(name.Tag); ok {
			img.Tag = t.TagStr()
		}
		if img.Tag != "" {
			if !s.tag(img.Repository, img.Tag, e.Desc.Digest) {
				s.warnings = append(s.warnings, fmt.Sprintf("%s (%s): tag %s:%s already names another image; served by digest", e.Label(), e.Ref, img.Repository, img.Tag))
				img.Tag = ""
			}
		} else if _, ok := s.tags[img.Repository]; !ok {
			s.tags[img.Repository] = map[string]digest.Digest{}
		}
		s.images = append(s.images, img)
	}
	// cosign's tag scheme: objects that kept their tag ("sha256-<hex>.sig")
	// are tagged in every repository, where cosign looks for them.
	for _, x := range s.extra() {
		t := layout.CosignTag(x)
		if t == "" || x.Annotations[layout.AnnotationSubject] == "" {
			continue
		}
		if _, err := name.NewTag("example.com/x:" + t); err != nil || strings.ContainsAny(t, "/:@") {
			continue
		}
		for repo := range s.tags {
			s.tag(repo, t, x.Digest)
		}
	}
}

// extra returns the other index.json entries of every bundle, each once.
func (s *Server) extra() []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, x := range s.b.All() {
		for _, a := range x.Extra {
			if !slices.ContainsFunc(out, func(y ocispec.Descriptor) bool { return y.Digest == a.Digest }) {
				out = append(out, a)
			}
		}
	}
	return out
}

// tag records repo:tag -> d unless the tag names another digest already.
func (s *Server) tag(repo, tag string, d digest.Digest) bool {
	m, ok := s.tags[repo]
	if !ok {
		m = map[string]digest.Digest{}
		s.tags[repo] = m
	}
	if prev, ok := m[tag]; ok && prev != d {
		return false
	}
	m[tag] = d
	return true
}

// manifestFields is what the referrers API reports of a manifest.
type manifestFields struct {
	ArtifactType string              `json:"artifactType"`
	Config       *ocispec.Descriptor `json:"config"`
	Subject      *ocispec.Descriptor `json:"subject"`
	Annotations  map[string]string   `json:"annotations"`
}

// buildReferrers indexes every manifest with a subject, and every
// index.json entry annotated with a subject.
func (s *Server) buildReferrers() {
	seen := map[digest.Digest]map[digest.Digest]bool{}
	add := func(subject digest.Digest, d ocispec.Descriptor) {
		if seen[subject] == nil {
			seen[subject] = map[digest.Digest]bool{}
		}
		if seen[subject][d.Digest] {
			return
		}
		seen[subject][d.Digest] = true
		s.referrers[subject] = append(s.referrers[subject], d)
	}
	describe := func(n *archive.Node) (ocispec.Descriptor, *manifestFields) {
		var f manifestFields
		if err := json.Unmarshal(n.Raw, &f); err != nil {
			return ocispec.Descriptor{}, nil
		}
		d := ocispec.Descriptor{MediaType: n.Desc.MediaType, Digest: n.Desc.Digest, Size: n.Desc.Size,
			ArtifactType: f.ArtifactType, Annotations: f.Annotations}
		if d.ArtifactType == "" && f.Config != nil && layout.IsManifest(n.Desc.MediaType) {
			d.ArtifactType = f.Config.MediaType
		}
		return d, &f
	}
	for _, d := range sortedDigests(s.manifests) {
		n := s.manifests[d]
		desc, f := describe(n)
		if f != nil && f.Subject != nil {
			add(f.Subject.Digest, desc)
		}
	}
	for _, x := range s.extra() {
		sub := digest.Digest(x.Annotations[layout.AnnotationSubject])
		n, ok := s.manifests[x.Digest]
		if sub == "" || sub.Validate() != nil || !ok {
			continue
		}
		desc, _ := describe(n)
		add(sub, desc)
	}
	for sub := range s.referrers {
		rs := s.referrers[sub]
		sort.Slice(rs, func(i, j int) bool { return rs[i].Digest < rs[j].Digest })
	}
}

func sortedDigests[V any](m map[digest.Digest]V) []digest.Digest {
	out := make([]digest.Digest, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Bundle returns the loaded archive the server serves.
func (s *Server) Bundle() *archive.Bundle { return s.b }

// BundleRepository returns the repository path the bundle is served under.
func (s *Server) BundleRepository() string { return s.b.RepoPath }

// BundleTag returns the tag of the bundle in BundleRepository.
func (s *Server) BundleTag() string { return s.b.Tag }

// Images returns the bundle's images as served, in bundle.json order.
func (s *Server) Images() []Image { return append([]Image(nil), s.images...) }

// Repositories returns the repository paths the server knows, sorted.
func (s *Server) Repositories() []string {
	out := make([]string, 0, len(s.tags))
	for r := range s.tags {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Warnings returns findings about the namespace (a tag two images claim,
// an image string that is not a reference) and the archive's own warnings.
func (s *Server) Warnings() []string {
	return append(append([]string(nil), s.b.Warnings...), s.warnings...)
}

// Served says where a client pulls the bundle and its images from a
// server reachable at a host (Server.Served).
type Served struct {
	// Reference is the bundle's tag at the server, HOST/PATH:TAG;
	// DigestReference the same pinned by the bundle index's digest.
	Reference       string `json:"reference"`
	DigestReference string `json:"digestReference"`
	// Images are the bundle's images, in bundle.json order (then those of
	// the other bundles of an archive of several).
	Images []ServedImage `json:"images"`
	// OtherBundles are the tags of the other bundles of an archive of
	// several (format 3), HOST/PATH:TAG each.
	OtherBundles []string `json:"otherBundles,omitempty"`
}

// ServedImage is where a client pulls one image of the bundle.
type ServedImage struct {
	// Role, Name and Reference are those of the Image.
	Role      string `json:"role"`
	Name      string `json:"name"`
	Reference string `json:"reference"`
	// Served is HOST/PATH:TAG, or HOST/PATH@DIGEST when bundle.json names
	// the image by digest only.
	Served string `json:"served"`
	Digest string `json:"digest"`
}

// Served returns where a client pulls the bundle and its images from the
// server at host (host[:port]), under the names the server answers for.
func (s *Server) Served(host string) Served {
	out := Served{Reference: host + "/" + s.b.RepoPath + ":" + s.b.Tag, DigestReference: host + "/" + s.b.RepoPath + "@" + s.b.Index.Digest.String()}
	for _, img := range s.images {
		served := host + "/" + img.Repository + "@" + img.Digest.String()
		if img.Tag != "" {
			served = host + "/" + img.Repository + ":" + img.Tag
		}
		out.Images = append(out.Images, ServedImage{Role: img.Role, Name: img.Name, Reference: img.Reference, Served: served, Digest: img.Digest.String()})
	}
	for _, x := range s.b.Others {
		out.OtherBundles = append(out.OtherBundles, host+"/"+x.RepoPath+":"+x.Tag)
	}
	return out
}

// Mapping returns the relocation mapping a runtime needs to run the bundle
// from the server at host (host[:port]): every image string of bundle.json
// mapped to host/<bundle repository>@<contentDigest>, the form cnab-to-oci
// gives after a pull.
func (s *Server) Mapping(host string) relocate.Mapping {
	m := relocate.Mapping{}
	for _, img := range s.images {
		m[img.Reference] = host + "/" + s.b.RepoPath + "@" + img.Digest.String()
	}
	return m
}

// Close releases the archive if the server opened it (Open).
func (s *Server) Close() error {
	if s.own {
		return s.b.Close()
	}
	return nil
}

// Serve answers requests on ln until ctx is cancelled, then stops
// accepting connections, waits for requests in flight (see
// WithShutdownTimeout) and returns nil. Any other failure of the listener
// is returned. ln is a plain TCP listener (Listen); for HTTPS, use
// WithTLSConfig. Serve applies the connection limits of the package
// documentation.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ln = netutil.LimitListener(ln, s.o.maxConns)
	if s.o.tls != nil {
		// Inside the limit, so that the HTTP server sees *tls.Conn.
		ln = tls.NewListener(ln, s.o.tls)
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.o.readHeaderTimeout,
		IdleTimeout:       s.o.idleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		// No WriteTimeout: every write extends the connection's write
		// deadline by the write timeout (ServeHTTP), a stall timeout.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:    slog.NewLogLogger(s.o.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.o.shutdownWait)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
