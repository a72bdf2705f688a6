package harness

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	// Register the access controllers and the storage driver used by the
	// in-process registries.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// AuthMode says how a Registry authenticates clients.
type AuthMode string

const (
	// AuthNone means the registry accepts anonymous requests.
	AuthNone AuthMode = "none"
	// AuthBasic means the registry uses htpasswd basic authentication.
	AuthBasic AuthMode = "basic"
	// AuthToken means the registry uses distribution's bearer token
	// authentication, with tokens issued by an in-process token server.
	AuthToken AuthMode = "token"
)

// RegistryOption configures StartRegistry.
type RegistryOption func(*registryConfig)

type registryConfig struct {
	inMemory   bool
	tls        bool
	auth       AuthMode
	user, pass string
	logOutput  io.Writer
	middleware []func(http.Handler) http.Handler
	configure  []func(*configuration.Configuration) // applied last (validation.go)
}

// WithInMemoryStorage stores content in memory (distribution's inmemory
// driver) instead of the default filesystem driver rooted in Registry.Dir.
// The inmemory driver's writer grows its buffer by exactly the size of each
// write, so uploads take time quadratic in the blob size: fine for blobs of a
// few MiB, but a 100 MiB blob takes tens of seconds. Use the default for
// large fixtures and benchmarks.
func WithInMemoryStorage() RegistryOption {
	return func(c *registryConfig) { c.inMemory = true }
}

// WithTLS serves the registry over HTTPS with a certificate for 127.0.0.1
// and localhost, signed by an ECDSA CA generated at run time. The CA is
// exposed as Registry.CACertPEM, Registry.CAFile and Registry.CertPool. With
// WithTokenAuth, the token endpoint is served over HTTPS too.
func WithTLS() RegistryOption {
	return func(c *registryConfig) { c.tls = true }
}

// WithBasicAuth protects the registry with htpasswd basic authentication
// accepting only user/pass. The bcrypt hash is generated at run time.
// Basic credentials travel in clear text unless WithTLS is used as well,
// which is acceptable on loopback.
func WithBasicAuth(user, pass string) RegistryOption {
	return func(c *registryConfig) {
		c.auth, c.user, c.pass = AuthBasic, user, pass
	}
}

// WithTokenAuth protects the registry with distribution's token
// authentication. An in-process token server issues ES256 JWTs (signed with a
// key generated at run time and trusted by the registry through a JWKS file)
// to clients presenting user/pass, granting whatever scope they ask for. It
// is served at /auth/token on the registry's own host:port (see
// Registry.TokenRealm): go-containerregistry refuses token realms on other
// loopback addresses. Token requests go through WithMiddleware middlewares
// but are not counted in Counts, except as TokensIssued.
func WithTokenAuth(user, pass string) RegistryOption {
	return func(c *registryConfig) {
		c.auth, c.user, c.pass = AuthToken, user, pass
	}
}

// WithLogging sends the registry's logs (and the HTTP server's error log)
// to w instead of discarding them. distribution logs through the process-wide
// logrus standard logger, so while any registry started with WithLogging is
// running, all logrus output of the process is copied to its writer.
func WithLogging(w io.Writer) RegistryOption {
	return func(c *registryConfig) { c.logOutput = w }
}

// WithMiddleware puts mw in front of the registry, e.g. a fault injector.
// Middlewares given first are outermost. They run outside the request
// counter, so requests they answer themselves are not counted in
// Registry.Counts.
func WithMiddleware(mw func(http.Handler) http.Handler) RegistryOption {
	return func(c *registryConfig) { c.middleware = append(c.middleware, mw) }
}

// WithRequestHook calls hook for every request that reaches the registry's
// HTTP server, before any middleware. The hook must not consume the body.
func WithRequestHook(hook func(*http.Request)) RegistryOption {
	return WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hook(r)
			next.ServeHTTP(w, r)
		})
	})
}

// Registry is a running in-process distribution registry. Create one with
// StartRegistry and stop it with Close.
type Registry struct {
	// Host is the registry's address, "127.0.0.1:PORT". Image references
	// on this registry start with Host + "/".
	Host string
	// TLS reports whether the registry is served over HTTPS.
	TLS bool
	// CACertPEM is the PEM-encoded CA certificate that signed the server
	// certificate (nil without WithTLS).
	CACertPEM []byte
	// CAFile is the path of a file holding CACertPEM ("" without WithTLS).
	// It lives in a temporary directory removed by Close.
	CAFile string
	// CertPool trusts CACertPEM (nil without WithTLS).
	CertPool *x509.CertPool
	// Auth is the authentication mode.
	Auth AuthMode
	// Username and Password are the accepted credentials (empty with
	// AuthNone).
	Username, Password string
	// TokenRealm is the URL of the token endpoint, URL() + "/auth/token"
	// (AuthToken only).
	TokenRealm string
	// TokenService is the service name the registry expects in tokens
	// (AuthToken only).
	TokenService string
	// Dir is a temporary directory owned by the registry (stored content,
	// htpasswd file, CA file, JWKS, ...). It is removed by Close.
	Dir string

	app       *handlers.App
	server    *http.Server
	token     *tokenServer
	transport *http.Transport
	counter   *counter

	closeOnce sync.Once
	closeErr  error
}

// StartRegistry starts a distribution registry on 127.0.0.1 with a random
// port, storing content with the filesystem driver in a temporary directory
// (Dir) that Close removes, or in memory with WithInMemoryStorage. Its logs
// are discarded unless WithLogging is given. The registry runs until Close is
// called; ctx is used only while starting.
func StartRegistry(ctx context.Context, opts ...RegistryOption) (*Registry, error) {
	cfg := registryConfig{auth: AuthNone}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.auth != AuthNone && cfg.user == "" {
		return nil, errors.New("harness: registry credentials need a non-empty user name")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r := &Registry{
		TLS:      cfg.tls,
		Auth:     cfg.auth,
		Username: cfg.user,
		Password: cfg.pass,
		counter:  &counter{},
	}
	ok := false
	defer func() {
		if !ok {
			_ = r.Close()
		}
	}()

	dir, err := os.MkdirTemp("", "cnab-airgap-registry-*")
	if err != nil {
		return nil, fmt.Errorf("harness: creating registry directory: %w", err)
	}
	r.Dir = dir

	var serverTLS *tls.Config
	if cfg.tls {
		ca, err := newTestCA()
		if err != nil {
			return nil, err
		}
		r.CACertPEM = ca.certPEM
		r.CertPool = ca.pool
		r.CAFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(r.CAFile, ca.certPEM, 0o644); err != nil {
			return nil, fmt.Errorf("harness: writing CA file: %w", err)
		}
		serverTLS, err = ca.serverTLSConfig()
		if err != nil {
			return nil, err
		}
	}

	r.transport = newTransport(r.CertPool)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("harness: listening on 127.0.0.1: %w", err)
	}
	r.Host = ln.Addr().String()

	errLog := log.New(io.Discard, "", 0)
	if cfg.logOutput != nil {
		errLog = log.New(cfg.logOutput, "registry "+r.Host+": ", log.LstdFlags)
	}

	config := &configuration.Configuration{}
	config.Storage = configuration.Storage{
		"maintenance": configuration.Parameters{
			"uploadpurging": map[any]any{"enabled": false},
		},
		"delete": configuration.Parameters{"enabled": true},
	}
	if cfg.inMemory {
		config.Storage["inmemory"] = configuration.Parameters{}
	} else {
		config.Storage["filesystem"] = configuration.Parameters{"rootdirectory": filepath.Join(dir, "storage")}
	}
	config.HTTP.Secret = randomHex(16)
	config.HTTP.Addr = r.Host
	config.Catalog.MaxEntries = 1000
	config.Log.AccessLog.Disabled = true

	switch cfg.auth {
	case AuthBasic:
		path, err := writeHtpasswd(dir, cfg.user, cfg.pass)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		config.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "cnab-airgap-harness",
			"path":  path,
		}}
	case AuthToken:
		ts, err := newTokenServer(dir, r.URL(), cfg.user, cfg.pass, r.counter)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		r.token = ts
		r.TokenRealm = ts.realm
		r.TokenService = ts.service
		config.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm":   ts.realm,
			"service": ts.service,
			"issuer":  ts.issuer,
			"jwks":    ts.jwksFile,
		}}
	}

	for _, f := range cfg.configure {
		f(config)
	}

	acquireLogging(r, cfg.logOutput)

	app, err := newApp(context.WithoutCancel(ctx), config)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	r.app = app

	h := r.counter.wrap(app)
	if r.token != nil {
		mux := http.NewServeMux()
		mux.Handle(tokenPath, r.token)
		mux.Handle("/", h)
		h = mux
	}
	for i := len(cfg.middleware) - 1; i >= 0; i-- {
		h = cfg.middleware[i](h)
	}

	r.server = &http.Server{
		Handler:           h,
		ErrorLog:          errLog,
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         serverTLS,
	}
	go func() {
		if serverTLS != nil {
			_ = r.server.ServeTLS(ln, "", "")
		} else {
			_ = r.server.Serve(ln)
		}
	}()

	registerLive(r)
	ok = true
	return r, nil
}

// newApp creates the distribution application, turning its panics on bad
// configuration into errors.
func newApp(ctx context.Context, config *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("harness: starting distribution registry: %v", p)
		}
	}()
	return handlers.NewApp(ctx, config), nil
}

// Close stops the registry and its token server, and removes Dir. Stored
// content is lost. Close is safe to call more than once.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		unregisterLive(r)
		var errs []error
		if r.server != nil {
			errs = append(errs, r.server.Close())
		}
		if r.app != nil {
			errs = append(errs, r.app.Shutdown())
		}
		if r.transport != nil {
			r.transport.CloseIdleConnections()
		}
		releaseLogging(r)
		if r.Dir != "" {
			errs = append(errs, os.RemoveAll(r.Dir))
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// URL returns the registry's base URL, "http://127.0.0.1:PORT" or
// "https://127.0.0.1:PORT".
func (r *Registry) URL() string {
	if r.TLS {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// Ref turns a repository path such as "library/web:1.0" into a reference on
// this registry ("127.0.0.1:PORT/library/web:1.0"). A reference that already
// starts with Host + "/" is returned unchanged.
func (r *Registry) Ref(path string) string {
	if strings.HasPrefix(path, r.Host+"/") {
		return path
	}
	return r.Host + "/" + strings.TrimPrefix(path, "/")
}

// Reference parses Ref(path) with NameOptions.
func (r *Registry) Reference(path string) (name.Reference, error) {
	return name.ParseReference(r.Ref(path), r.NameOptions()...)
}

// Repository parses Ref(repo) as a repository with NameOptions.
func (r *Registry) Repository(repo string) (name.Repository, error) {
	return name.NewRepository(r.Ref(repo), r.NameOptions()...)
}

// NameOptions returns the go-containerregistry name options needed to
// address this registry: name.Insecure (plain HTTP) unless it uses TLS.
func (r *Registry) NameOptions() []name.Option {
	if r.TLS {
		return nil
	}
	return []name.Option{name.Insecure}
}

// Authenticator returns the go-containerregistry authenticator holding the
// registry's credentials (authn.Anonymous with AuthNone).
func (r *Registry) Authenticator() authn.Authenticator {
	if r.Auth == AuthNone {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// RemoteOptions returns go-containerregistry remote options for this
// registry: a transport trusting its CA and its credentials. Add
// remote.WithContext for cancellation.
func (r *Registry) RemoteOptions() []remote.Option {
	return []remote.Option{
		remote.WithTransport(r.transport),
		remote.WithAuth(r.Authenticator()),
	}
}

// Transport returns the registry's base HTTP transport: no proxy, trusting
// the registry's CA (if any), no authentication.
func (r *Registry) Transport() http.RoundTripper { return r.transport }

// Client returns an HTTP client that trusts the registry's CA but sends no
// credentials; handy to check that anonymous requests are refused.
func (r *Registry) Client() *http.Client { return &http.Client{Transport: r.transport} }

// DockerConfigJSON returns a Docker CLI config.json holding the registry's
// credentials under its Host (an empty "auths" map with AuthNone).
func (r *Registry) DockerConfigJSON() []byte {
	type authEntry struct {
		Auth string `json:"auth"`
	}
	cfg := struct {
		Auths map[string]authEntry `json:"auths"`
	}{Auths: map[string]authEntry{}}
	if r.Auth != AuthNone {
		cfg.Auths[r.Host] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))}
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n')
}

// WriteDockerConfig writes DockerConfigJSON to dir/config.json (creating
// dir), so that a program run with DOCKER_CONFIG=dir finds the credentials.
// It returns the file's path.
func (r *Registry) WriteDockerConfig(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config.json")
	return path, os.WriteFile(path, r.DockerConfigJSON(), 0o600)
}

// Repositories lists the repositories the registry holds, via /v2/_catalog.
func (r *Registry) Repositories(ctx context.Context) ([]string, error) {
	reg, err := name.NewRegistry(r.Host, r.NameOptions()...)
	if err != nil {
		return nil, err
	}
	return remote.Catalog(ctx, reg, r.RemoteOptions()...)
}

// Tags lists the tags of repo (a path such as "library/web" or a full
// repository name on this registry). It is counted in Counts.TagLists.
func (r *Registry) Tags(ctx context.Context, repo string) ([]string, error) {
	rp, err := r.Repository(repo)
	if err != nil {
		return nil, err
	}
	return remote.List(rp, append(r.RemoteOptions(), remote.WithContext(ctx))...)
}

// newTransport returns an HTTP transport that never uses a proxy and trusts
// pool (or the system roots when pool is nil).
func newTransport(pool *x509.CertPool) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// live maps the Host of every running Registry to it, so that helpers such
// as PushBundle can find credentials for image references.
var live sync.Map

func registerLive(r *Registry)   { live.Store(r.Host, r) }
func unregisterLive(r *Registry) { live.CompareAndDelete(r.Host, r) }

// lookupRegistry returns the running Registry serving host, or nil.
func lookupRegistry(host string) *Registry {
	if v, ok := live.Load(host); ok {
		return v.(*Registry)
	}
	return nil
}

// UploadSessions counts the blob upload sessions the registry holds open
// (with the filesystem driver: the directories under each repository's
// _uploads that have a startedat file, which is what makes distribution
// know a session). An import that fails must leave none behind. (A request
// that was still writing when its session was cancelled can leave a
// hash-state file behind, in a directory that is no session: the registry's
// upload purging removes those.)
func (r *Registry) UploadSessions() (int, error) {
	root := filepath.Join(r.Dir, "storage")
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && filepath.Base(filepath.Dir(p)) == "_uploads" {
			if _, err := os.Stat(filepath.Join(p, "startedat")); err == nil {
				n++
			}
			return filepath.SkipDir
		}
		return nil
	})
	return n, err
}
