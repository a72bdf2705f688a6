package sigbundle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// CredentialFunc returns the username and password to present to a Notary
// server (or its token service) for host. Empty strings mean anonymous.
type CredentialFunc func(ctx context.Context, host string) (username, password string, err error)

// ErrNotaryAuth: the Notary server (or its token service) wants
// credentials that were not given, refused the ones given, or would have
// received them over an unprotected connection.
var ErrNotaryAuth = errdefs.New("notary authentication failed", errdefs.ErrUnavailable)

// WithNotaryCredentials sets where credentials for the Notary server come
// from. f is asked for the Notary server's host[:port] first and, when it
// gives no username, for the registry host of the GUN (its first path
// segment), as Docker's trust client uses the registry's credentials for
// its Notary server. They answer a 401 of the server: Basic credentials
// for a Basic challenge, or a token obtained from the Bearer challenge's
// realm with HTTP Basic credentials. Credentials are only ever sent over
// https, or over plain http to the exact host:port of the Notary server
// URL itself; a token service elsewhere over plain http is refused. The
// default is anonymous (tokens are still fetched, without credentials).
func WithNotaryCredentials(f CredentialFunc) Option {
	return func(o *options) error { o.notaryCreds = f; return nil }
}

// NotaryTransport returns the transport the options give to the Notary
// server at server for gun (WithNotaryTransport wrapped in the
// authentication of WithNotaryCredentials), for callers that drive the
// notary client library themselves. push asks tokens for pull and push.
func NotaryTransport(server, gun string, push bool, opts ...Option) (http.RoundTripper, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	return o.notaryRoundTripper(server, gun, push), nil
}

// maxTokenResponse caps the token service's answer.
const maxTokenResponse = 1 << 20

// notaryRoundTripper wraps o.transport with Notary authentication for gun
// at server (see WithNotaryCredentials).
func (o *options) notaryRoundTripper(server, gun string, push bool) http.RoundTripper {
	a := &notaryAuth{base: o.transport, creds: o.notaryCreds, server: strings.TrimSuffix(server, "/"), gun: gun,
		scope: "repository:" + gun + ":pull", tokens: map[tokenKey]cachedToken{}}
	if push {
		a.scope += ",push"
	}
	if u, err := url.Parse(a.server); err == nil {
		a.serverURL = u
	}
	return a
}

type tokenKey struct{ realm, service, scope string }

type cachedToken struct {
	token   string
	expires time.Time
}

type notaryAuth struct {
	base      http.RoundTripper
	creds     CredentialFunc
	server    string
	serverURL *url.URL
	gun       string
	scope     string

	mu     sync.Mutex
	tokens map[tokenKey]cachedToken
	bearer *tokenKey // the last Bearer challenge: its cached token is sent up front
	basic  bool      // the server asked for Basic: send it up front
	user   string    // resolved credentials (resolved once)
	pass   string
	looked bool

	failMu sync.Mutex
	failed error // the last ErrNotaryAuth error returned
}

// notaryAuthFailure returns the last authentication error rt (from
// notaryRoundTripper) returned, or nil. The notary client library keeps
// only the message of a transport's error; with this, callers still
// report ErrNotaryAuth rather than a verification failure.
func notaryAuthFailure(rt http.RoundTripper) error {
	a, ok := rt.(*notaryAuth)
	if !ok {
		return nil
	}
	a.failMu.Lock()
	defer a.failMu.Unlock()
	return a.failed
}

// RoundTrip sends req, answering a 401 once with credentials or a token.
func (a *notaryAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	first := req.Clone(ctx)
	usedCached, err := a.authorize(ctx, first)
	if err != nil {
		return nil, err
	}
	resp, err := a.base.RoundTrip(first)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	ch, ok := parseChallenge(resp.Header.Values("WWW-Authenticate"))
	if !ok {
		return resp, nil // not a challenge we answer: the caller sees the 401
	}
	if !replayable(req) {
		drain(resp)
		return nil, a.errorf("%s %s needs authentication and its body cannot be sent again", req.Method, redactURL(req.URL))
	}
	drain(resp)
	retry, err := a.replay(req)
	if err != nil {
		return nil, err
	}
	user, pass, err := a.credentials(ctx)
	if err != nil {
		return nil, err
	}
	switch ch.scheme {
	case "bearer":
		k := tokenKey{ch.params["realm"], ch.params["service"], a.scope}
		if k.realm == "" {
			return nil, a.errorf("the server's Bearer challenge names no realm")
		}
		a.mu.Lock()
		if usedCached {
			delete(a.tokens, k) // the cached token was refused: get a fresh one
		}
		a.mu.Unlock()
		tok, err := a.token(ctx, k, user, pass)
		if err != nil {
			return nil, err
		}
		retry.Header.Set("Authorization", "Bearer "+tok)
	case "basic":
		if user == "" {
			return nil, a.required()
		}
		if !a.mayCarryCredentials(retry.URL) {
			return nil, a.errorf("refusing to send credentials to %s over plain HTTP", redactURL(retry.URL))
		}
		a.mu.Lock()
		a.basic = true
		a.mu.Unlock()
		retry.SetBasicAuth(user, pass)
	}
	resp, err = a.base.RoundTrip(retry)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	drain(resp)
	if user == "" {
		return nil, a.required()
	}
	return nil, a.refused(user, "the server answered 401 to them")
}

// authorize sets what is known to be wanted up front: Basic credentials,
// or the cached token of the last Bearer challenge. It reports whether a
// cached token was used.
func (a *notaryAuth) authorize(ctx context.Context, req *http.Request) (bool, error) {
	if req.Header.Get("Authorization") != "" {
		return false, nil
	}
	a.mu.Lock()
	basic, k := a.basic, a.bearer
	var tok cachedToken
	var ok bool
	if k != nil {
		tok, ok = a.tokens[*k]
		ok = ok && time.Now().Before(tok.expires)
	}
	a.mu.Unlock()
	switch {
	case ok:
		req.Header.Set("Authorization", "Bearer "+tok.token)
		return true, nil
	case basic && a.mayCarryCredentials(req.URL):
		user, pass, err := a.credentials(ctx)
		if err != nil || user == "" {
			return false, err
		}
		req.SetBasicAuth(user, pass)
	}
	return false, nil
}

// token returns a token for k from the cache or the token service.
func (a *notaryAuth) token(ctx context.Context, k tokenKey, user, pass string) (string, error) {
	a.mu.Lock()
	a.bearer = &k
	if t, ok := a.tokens[k]; ok && time.Now().Before(t.expires) {
		a.mu.Unlock()
		return t.token, nil
	}
	a.mu.Unlock()
	realm, err := url.Parse(k.realm)
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", a.errorf("the token service realm %q is not an http or https URL", k.realm)
	}
	if user != "" && !a.mayCarryCredentials(realm) {
		return "", a.errorf("refusing to send credentials to the token service %s over plain HTTP (only https, or the Notary server's own host:port)", redactURL(realm))
	}
	q := realm.Query()
	if k.service != "" {
		q.Set("service", k.service)
	}
	q.Set("scope", k.scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", a.errorf("token service %s: %v", redactURL(realm), err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := a.base.RoundTrip(req)
	if err != nil {
		return "", a.errorf("token service %s: %v", redactURL(realm), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return "", a.errorf("token service %s: %v", redactURL(realm), err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		if user == "" {
			return "", a.required()
		}
		return "", a.refused(user, fmt.Sprintf("the token service %s answered %d", redactURL(realm), resp.StatusCode))
	case resp.StatusCode != http.StatusOK:
		return "", a.errorf("token service %s answered %d", redactURL(realm), resp.StatusCode)
	case len(body) > maxTokenResponse:
		return "", a.errorf("token service %s: answer larger than %d bytes", redactURL(realm), maxTokenResponse)
	}
	var tr struct {
		Token       string    `json:"token"`
		AccessToken string    `json:"access_token"`
		ExpiresIn   int       `json:"expires_in"`
		IssuedAt    time.Time `json:"issued_at"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", a.errorf("token service %s: malformed answer: %v", redactURL(realm), err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", a.errorf("token service %s answered without a token", redactURL(realm))
	}
	// The token specification's default lifetime is 60 s. Keep a margin
	// for the time the request takes to reach the server.
	life := time.Duration(tr.ExpiresIn) * time.Second
	if tr.ExpiresIn <= 0 {
		life = 60 * time.Second
	}
	issued := time.Now()
	if !tr.IssuedAt.IsZero() && tr.IssuedAt.Before(issued) {
		issued = tr.IssuedAt
	}
	a.mu.Lock()
	a.tokens[k] = cachedToken{token: tok, expires: issued.Add(life - min(10*time.Second, life/4))}
	a.mu.Unlock()
	return tok, nil
}

// credentials resolves the username and password once: for the Notary
// server's host first, then for the registry host of the GUN.
func (a *notaryAuth) credentials(ctx context.Context) (string, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.looked || a.creds == nil {
		return a.user, a.pass, nil
	}
	var hosts []string
	if a.serverURL != nil && a.serverURL.Host != "" {
		hosts = append(hosts, a.serverURL.Host)
	}
	if reg, _, _ := strings.Cut(a.gun, "/"); reg != "" && !slices.Contains(hosts, reg) {
		hosts = append(hosts, reg)
	}
	for _, h := range hosts {
		u, p, err := a.creds(ctx, h)
		if err != nil {
			return "", "", a.errorf("credentials for %s: %v", h, err)
		}
		if u != "" {
			a.user, a.pass = u, p
			break
		}
	}
	a.looked = true
	return a.user, a.pass, nil
}

// mayCarryCredentials: https, or plain http to the Notary server's own
// host:port.
func (a *notaryAuth) mayCarryCredentials(u *url.URL) bool {
	switch {
	case u.Scheme == "https":
		return true
	case u.Scheme != "http" || a.serverURL == nil || a.serverURL.Scheme != "http":
		return false
	}
	return hostPort(u) == hostPort(a.serverURL)
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// replay returns a copy of req to send again, with a fresh body.
func (a *notaryAuth) replay(req *http.Request) (*http.Request, error) {
	r := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody && req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, a.errorf("%s %s: %v", req.Method, redactURL(req.URL), err)
		}
		r.Body = b
	}
	return r, nil
}

func (a *notaryAuth) errorf(format string, args ...any) error {
	err := fmt.Errorf("notary server %s, GUN %s: %w: %s", a.server, a.gun, ErrNotaryAuth, fmt.Sprintf(format, args...))
	a.failMu.Lock()
	a.failed = err
	a.failMu.Unlock()
	return err
}

func (a *notaryAuth) required() error {
	return a.errorf("credentials are required and none were given for it (nor for the GUN's registry)")
}

func (a *notaryAuth) refused(user, why string) error {
	return a.errorf("the credentials of user %q were refused: %s", user, why)
}

// replayable: a request that can be sent twice.
func replayable(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	return req.GetBody != nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drained for connection reuse only
	resp.Body.Close()
}

// redactURL drops userinfo and the query (it may hold tokens).
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

type challenge struct {
	scheme string
	params map[string]string
}

// parseChallenge picks a Bearer challenge, else a Basic one, from
// WWW-Authenticate values (RFC 7235: scheme, then comma-separated
// name=value pairs, values as tokens or quoted strings).
func parseChallenge(values []string) (challenge, bool) {
	var basic *challenge
	for _, v := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		c := challenge{scheme: strings.ToLower(scheme), params: parseParams(rest)}
		switch c.scheme {
		case "bearer":
			return c, true
		case "basic":
			basic = &c
		}
	}
	if basic != nil {
		return *basic, true
	}
	return challenge{}, false
}

func parseParams(s string) map[string]string {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return out
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, `"`) {
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			s = s[min(i+1, len(s)):]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val.WriteString(strings.TrimSpace(s[:end]))
			s = s[end:]
		}
		out[key] = val.String()
	}
}
