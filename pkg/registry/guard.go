package registry

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// The plain-HTTP rules (guardTransport) refuse with these.
var (
	// ErrPlainHTTP is returned for a plain-HTTP request to a host that is
	// not named in Options.PlainHTTP. go-containerregistry treats
	// localhost, 127.0.0.0/8 and the RFC 1918 ranges as registries that may
	// speak plain HTTP and falls back to it when HTTPS fails, sending Basic
	// credentials in clear; the client refuses that fallback for every host
	// not named.
	ErrPlainHTTP = errdefs.New("plain HTTP refused", errdefs.ErrUnavailable)

	// ErrInsecureRealm is returned when a registry sends the client to a
	// token service on another host over plain HTTP: credentials (Basic
	// auth to the token service) would cross the network in clear to a
	// host nobody named.
	ErrInsecureRealm = errdefs.New("token service over plain HTTP on another host refused", errdefs.ErrUnavailable)
)

// PlainHTTPError is a refused plain-HTTP request. errors.Is(err,
// ErrPlainHTTP) holds.
type PlainHTTPError struct {
	// Host is the host:port the request was for.
	Host string
}

func (e *PlainHTTPError) Error() string {
	return fmt.Sprintf("plain HTTP to %s refused: that host is not named with --plain-http", e.Host)
}

// Is makes errors.Is(err, ErrPlainHTTP) hold.
func (e *PlainHTTPError) Is(target error) bool { return target == ErrPlainHTTP }

// guardTransport enforces the plain-HTTP rules under every request of the
// client (registries, token services, foreign layer URLs):
//   - a request over plain HTTP goes only to a host named in PlainHTTP
//     (credentials included: nothing is sent to an unnamed host in clear);
//   - a registry's Bearer challenge naming a token service over plain HTTP
//     on another host:port is refused before anything is sent there.
type guardTransport struct {
	inner http.RoundTripper
	plain hostSet
}

func (g *guardTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.plain.match(r.URL.Host, "http") {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, &PlainHTTPError{Host: r.URL.Host}
	}
	resp, err := g.inner.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		realm := bearerRealm(h)
		if realm == "" {
			continue
		}
		u, perr := url.Parse(realm)
		if perr != nil || u.Scheme != "http" || sameHost(u.Host, "http", r.URL.Host, r.URL.Scheme) {
			continue
		}
		resp.Body.Close()
		return nil, fmt.Errorf("%w: registry %s names the token service %s://%s%s", ErrInsecureRealm, r.URL.Host, u.Scheme, u.Host, u.Path)
	}
	return resp, nil
}

// bearerRealm returns the realm parameter of a Bearer challenge, or "".
func bearerRealm(h string) string {
	scheme, params, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	for params != "" {
		var kv string
		kv, params = nextParam(params)
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(strings.TrimSpace(k), "realm") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// nextParam splits off the first comma-separated parameter, honouring
// quoted strings.
func nextParam(s string) (string, string) {
	quoted := false
	for i, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
