// Package registry wraps go-containerregistry with what cnab-airgap needs
// from every registry conversation: per-host plain HTTP and TLS settings, a
// CA bundle, credentials from the docker config, one authenticated transport
// per repository, and raw blob streams whose verification is left to the
// caller (so every byte is hashed exactly once).
//
// Retries are owned by pkg/retry, in one place: every request of the
// client goes through a retry.Transport (backoff with jitter on 5xx, 408 and
// 429 honouring Retry-After, and on reset or refused connections, bounded in
// attempts and time, only for requests that are safe to repeat).
// go-containerregistry's per-request retries are switched off (no retried
// status codes; its predicate is retry.Temporary, which reports a request
// the transport gave up on as permanent), so attempts are never
// multiplied; blob data sent into an upload session is retried by the
// upload operation, with a new session (see RetryPolicy).
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/retry"
)

// Options configures a Client. The zero value talks TLS with the system
// roots to every registry and takes credentials from the docker config.
//
// Hosts are given as HOST or HOST:PORT (see ParseHost): HOST stands for
// every port of that host, HOST:PORT for that port only.
type Options struct {
	// PlainHTTP lists the registry hosts spoken to over plain HTTP. No
	// request of the client goes over plain HTTP to any other host (see
	// ErrPlainHTTP), whatever go-containerregistry's localhost and
	// private-address heuristics say.
	PlainHTTP []string
	// Insecure lists registry hosts whose TLS certificate is not verified.
	Insecure []string
	// CAFiles are PEM files of extra trusted CA certificates.
	CAFiles []string
	// Keychain resolves credentials for every host HostAuth does not
	// name. Default: authn.DefaultKeychain (docker config and credential
	// helpers).
	Keychain authn.Keychain
	// HostAuth gives explicit credentials per host (HOST or HOST:PORT):
	// they are sent to that registry (and its token service) only, never
	// to another registry the same operation talks to.
	HostAuth map[string]authn.Authenticator
	// Transport is the base transport. Default: a clone of
	// http.DefaultTransport with the TLS settings above.
	Transport http.RoundTripper
	// UserAgent is sent with every request.
	UserAgent string
	// Jobs bounds concurrent blob bodies inside go-containerregistry. Default 4.
	Jobs int
	// Retry bounds the retries of every request and upload. Zero fields
	// take retry.DefaultPolicy's values (5 attempts within 2 minutes).
	Retry retry.Policy
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	o         Options
	plain     hostSet
	keychain  authn.Keychain
	base      http.RoundTripper
	retry     retry.Policy
	remoteOps []remote.Option
	puller    *remote.Puller
	pusher    *remote.Pusher

	mu    sync.Mutex
	repos map[string]http.RoundTripper
}

// New builds a Client.
func New(o Options) (*Client, error) {
	c := &Client{o: o, repos: map[string]http.RoundTripper{}}
	var err error
	if c.plain, err = newHostSet(o.PlainHTTP); err != nil {
		return nil, fmt.Errorf("plain HTTP host: %w", err)
	}
	if c.keychain, err = newHostKeychain(o.HostAuth, o.Keychain); err != nil {
		return nil, err
	}
	if o.Jobs <= 0 {
		o.Jobs = 4
		c.o.Jobs = 4
	}
	if err := o.Retry.Validate(); err != nil {
		return nil, err
	}
	base := o.Transport
	if base == nil {
		base, err = newTransport(o)
		if err != nil {
			return nil, err
		}
	}
	base = &guardTransport{inner: base, plain: c.plain}
	rt := retry.NewTransport(base, o.Retry)
	c.retry = rt.Policy()
	base = rt
	c.base = base
	p := c.retry
	c.remoteOps = []remote.Option{remote.WithTransport(base), remote.WithJobs(o.Jobs),
		// The retry.Transport below retries requests; go-containerregistry
		// must not retry them again: no status codes of its own, and a
		// predicate (retry.Temporary) that treats a request the transport
		// gave up on as permanent. What it still retries with them is a
		// whole streamed blob upload, which it starts again from the
		// content, waiting as the same policy says.
		remote.WithRetryStatusCodes(), remote.WithRetryPredicate(retry.Temporary),
		remote.WithRetryBackoff(remote.Backoff{Duration: p.BaseDelay, Factor: 2, Jitter: 0.5, Steps: p.MaxAttempts, Cap: p.MaxDelay})}
	c.remoteOps = append(c.remoteOps, remote.WithAuthFromKeychain(c.keychain))
	if o.UserAgent != "" {
		c.remoteOps = append(c.remoteOps, remote.WithUserAgent(o.UserAgent))
	}
	c.remoteOps = append(c.remoteOps, remote.WithNondistributable)
	if c.puller, err = remote.NewPuller(c.remoteOps...); err != nil {
		return nil, err
	}
	if c.pusher, err = remote.NewPusher(c.remoteOps...); err != nil {
		return nil, err
	}
	return c, nil
}

func newTransport(o Options) (http.RoundTripper, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range o.CAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates found", f)
		}
	}
	mk := func(skip bool) *http.Transport {
		t := &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: 1 * time.Second,
			TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, InsecureSkipVerify: skip}, //nolint:gosec // only for hosts named with --insecure
		}
		return t
	}
	insecure, err := newHostSet(o.Insecure)
	if err != nil {
		return nil, fmt.Errorf("insecure host: %w", err)
	}
	ht := &hostTransport{secure: mk(false), insecureHosts: insecure}
	if !insecure.empty() {
		ht.insecure = mk(true)
	}
	return ht, nil
}

// hostTransport skips TLS verification only for the hosts named insecure.
type hostTransport struct {
	secure, insecure http.RoundTripper
	insecureHosts    hostSet
}

func (t *hostTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.insecure != nil && t.insecureHosts.match(r.URL.Host, r.URL.Scheme) {
		return t.insecure.RoundTrip(r)
	}
	return t.secure.RoundTrip(r)
}

// RetryPolicy returns the retry policy of the client's requests, with
// defaults applied, for operations that must be retried as a whole (a blob
// upload whose data broke off is started again in a new session with
// RetryPolicy().Do).
func (c *Client) RetryPolicy() retry.Policy { return c.retry }

// RemoteOptions returns the go-containerregistry options of this client.
func (c *Client) RemoteOptions() []remote.Option { return c.remoteOps }

// Puller returns the shared puller (it reuses authenticated transports).
func (c *Client) Puller() *remote.Puller { return c.puller }

// Pusher returns the shared pusher.
func (c *Client) Pusher() *remote.Pusher { return c.pusher }

// nameOptions returns the name options for a reference on host.
func (c *Client) nameOptions(host string) []name.Option {
	if c.plain.match(host, "http") {
		return []name.Option{name.Insecure}
	}
	return nil
}

// ParseReference parses a reference, applying the plain-HTTP setting of its
// host. References must be fully qualified or they resolve to Docker Hub.
func (c *Client) ParseReference(s string) (name.Reference, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", s, err)
	}
	return name.ParseReference(s, c.nameOptions(r.Context().RegistryStr())...)
}

// Repository parses a repository name, applying the plain-HTTP setting of its host.
func (c *Client) Repository(s string) (name.Repository, error) {
	r, err := name.NewRepository(s)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", s, err)
	}
	return name.NewRepository(s, c.nameOptions(r.RegistryStr())...)
}

// Digest returns repo@d as a name.Digest.
func (c *Client) Digest(repo name.Repository, d digest.Digest) (name.Digest, error) {
	return name.NewDigest(repo.Name()+"@"+d.String(), c.nameOptions(repo.RegistryStr())...)
}

// Tag returns repo:tag as a name.Tag.
func (c *Client) Tag(repo name.Repository, tag string) (name.Tag, error) {
	return name.NewTag(repo.Name()+":"+tag, c.nameOptions(repo.RegistryStr())...)
}

// repoTransport returns an authenticated transport for repo with the given
// scope, creating it (ping, token exchange) once.
func (c *Client) repoTransport(ctx context.Context, repo name.Repository, action string) (http.RoundTripper, error) {
	return c.scopedTransport(ctx, repo, repo.Name()+"|"+action, []string{repo.Scope(action)})
}

// scopedTransport returns an authenticated transport for repo's registry
// holding the given scopes, cached under key.
func (c *Client) scopedTransport(ctx context.Context, repo name.Repository, key string, scopes []string) (http.RoundTripper, error) {
	c.mu.Lock()
	rt, ok := c.repos[key]
	c.mu.Unlock()
	if ok {
		return rt, nil
	}
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	rt, err = transport.NewWithContext(ctx, repo.Registry, auth, c.base, scopes)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.repos[key] = rt
	c.mu.Unlock()
	return rt, nil
}

// FetchBlob opens the raw content of blob d in repo. The body is not
// verified here: the caller streams it through a verifying reader. A
// connection that breaks mid-body is resumed from the next byte with a
// Range request, under the client's retry policy.
func (c *Client) FetchBlob(ctx context.Context, repo name.Repository, d digest.Digest, size int64) (io.ReadCloser, error) {
	rt, err := c.repoTransport(ctx, repo, transport.PullScope)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d)
	open := func(ctx context.Context, from int64) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		if from > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
		}
		return (&http.Client{Transport: rt}).Do(req)
	}
	resp, err := open(ctx, 0)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s: registry announces %d bytes, descriptor says %d", d, resp.ContentLength, size)
	}
	return &resumingBody{ctx: ctx, d: d, size: size, open: open, budget: c.retry.Budget(), body: resp.Body}, nil
}

// FetchURL opens a foreign layer from one of its descriptor's URLs (http or
// https only), through the client's TLS settings and without credentials.
func (c *Client) FetchURL(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	if !strings.HasPrefix(rawURL, "https://") && !strings.HasPrefix(rawURL, "http://") {
		return nil, fmt.Errorf("foreign layer URL %q: only http and https are supported", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: c.base}).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("foreign layer URL %q: HTTP %d", rawURL, resp.StatusCode)
	}
	return resp.Body, nil
}

// IsNotFound reports whether err is a registry's 404 / MANIFEST_UNKNOWN /
// BLOB_UNKNOWN / NAME_UNKNOWN answer.
func IsNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
				return true
			}
		}
	}
	return false
}

// BlobExists asks repo whether it holds blob d (HEAD). A 404 is (false, nil).
func (c *Client) BlobExists(ctx context.Context, repo name.Repository, d digest.Digest) (bool, error) {
	rt, err := c.repoTransport(ctx, repo, transport.PullScope)
	if err != nil {
		if IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	base := fmt.Sprintf("%s://%s/v2/%s/blobs/", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr())
	return headBlob(ctx, &http.Client{Transport: rt}, base, d)
}
