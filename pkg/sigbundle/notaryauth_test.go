package sigbundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

const (
	authGUN  = "registry.test/team/app"
	authUser = "alice"
	authPass = "s3cret-pa55word"
)

// tokenService issues opaque tokens to alice (Basic auth) for the scope
// asked, and counts requests.
type tokenService struct {
	srv      *httptest.Server
	requests atomic.Int32
	anon     bool // also issue tokens without credentials
	field    string
}

func newTokenService(t *testing.T, tls bool) *tokenService {
	ts := &tokenService{field: "token"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		u, p, ok := r.BasicAuth()
		switch {
		case ok && (u != authUser || p != authPass), !ok && !ts.anon:
			w.Header().Set("WWW-Authenticate", `Basic realm="tokens"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		who := "anonymous"
		if ok {
			who = u
		}
		tok := fmt.Sprintf("tok|%s|%s|%s", who, r.URL.Query().Get("service"), r.URL.Query().Get("scope"))
		json.NewEncoder(w).Encode(map[string]any{ts.field: tok, "expires_in": 300})
	})
	if tls {
		ts.srv = httptest.NewTLSServer(h)
	} else {
		ts.srv = httptest.NewServer(h)
	}
	t.Cleanup(ts.srv.Close)
	return ts
}

// tufServer answers /v2/<gun>/_trust/tuf/* with 200 when the request
// carries the token that alice's pull (or pull,push) scope gets, and a
// Bearer challenge otherwise.
type tufServer struct {
	srv  *httptest.Server
	hits atomic.Int32
	// accept decides whether an Authorization header is good.
	accept func(auth string) bool
}

func newTUFServer(t *testing.T, tls bool, challenge func(*tufServer) string) *tufServer {
	s := &tufServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if !s.accept(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", challenge(s))
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "{}")
	})
	if tls {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(s.srv.Close)
	return s
}

func bearerChallenge(realm string) func(*tufServer) string {
	return func(*tufServer) string {
		return fmt.Sprintf(`Bearer realm="%s",service="notary-test",scope="repository:%s:pull"`, realm, authGUN)
	}
}

func aliceCreds(asked *[]string) CredentialFunc {
	return func(_ context.Context, host string) (string, string, error) {
		*asked = append(*asked, host)
		if host == "registry.test" { // only the GUN's registry has credentials
			return authUser, authPass, nil
		}
		return "", "", nil
	}
}

func authTransport(t *testing.T, server string, base http.RoundTripper, push bool, opts ...Option) http.RoundTripper {
	t.Helper()
	rt, err := NotaryTransport(server, authGUN, push, append([]Option{WithNotaryTransport(base)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func get(t *testing.T, rt http.RoundTripper, u string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func checkAuthError(t *testing.T, err error, server string, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !errors.Is(err, ErrNotaryAuth) || !strings.Contains(msg, server) || !strings.Contains(msg, authGUN) {
		t.Fatalf("error %q does not wrap ErrNotaryAuth or name the server %s and GUN %s", msg, server, authGUN)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Fatalf("error %q does not say %q", msg, w)
		}
	}
	if strings.Contains(msg, authPass) || strings.Contains(msg, "tok|") {
		t.Fatalf("error %q leaks a secret", msg)
	}
}

// The token flow with the registry's credentials, both token fields, the
// push scope, and caching: three requests, one token.
func TestNotaryAuthToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		field string
		push  bool
		scope string
	}{{"token", false, "pull"}, {"access_token", true, "pull,push"}} {
		t.Run(tc.field, func(t *testing.T) {
			tokens := newTokenService(t, true)
			tokens.field = tc.field
			want := fmt.Sprintf("Bearer tok|%s|notary-test|repository:%s:%s", authUser, authGUN, tc.scope)
			s := newTUFServer(t, true, bearerChallenge(tokens.srv.URL+"/token?account=x"))
			s.accept = func(a string) bool { return a == want }
			var asked []string
			rt := authTransport(t, s.srv.URL, s.srv.Client().Transport, tc.push, WithNotaryCredentials(aliceCreds(&asked)))
			for i := range 3 {
				resp, err := get(t, rt, s.srv.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
			}
			if n := tokens.requests.Load(); n != 1 {
				t.Fatalf("%d token requests for 3 requests, want 1 (cached)", n)
			}
			// 1 challenge + 1 retry + 2 with the cached token.
			if n := s.hits.Load(); n != 4 {
				t.Fatalf("%d server requests, want 4", n)
			}
			host := strings.TrimPrefix(s.srv.URL, "https://")
			if strings.Join(asked, " ") != host+" registry.test" {
				t.Fatalf("credentials asked for %q, want the Notary host then the GUN's registry", asked)
			}
		})
	}
}

// A Basic challenge is answered with Basic credentials, and sent up front
// afterwards.
func TestNotaryAuthBasic(t *testing.T) {
	t.Parallel()
	s := newTUFServer(t, true, func(*tufServer) string { return `Basic realm="notary"` })
	s.accept = func(a string) bool {
		r := &http.Request{Header: http.Header{"Authorization": {a}}}
		u, p, ok := r.BasicAuth()
		return ok && u == authUser && p == authPass
	}
	var asked []string
	rt := authTransport(t, s.srv.URL, s.srv.Client().Transport, false, WithNotaryCredentials(aliceCreds(&asked)))
	for i := range 2 {
		resp, err := get(t, rt, s.srv.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %v %v", i, resp, err)
		}
	}
	if n := s.hits.Load(); n != 3 {
		t.Fatalf("%d server requests, want 3 (challenge, retry, then up front)", n)
	}

	// Without credentials: a clear error, after one request.
	anon := authTransport(t, s.srv.URL, s.srv.Client().Transport, false)
	_, err := get(t, anon, s.srv.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
	checkAuthError(t, err, s.srv.URL, "credentials are required")
}

// Wrong credentials at the token service, and a token the server refuses,
// are errors naming the server and GUN and saying the credentials were
// refused, without the password or the token.
func TestNotaryAuthRefused(t *testing.T) {
	t.Parallel()
	tokens := newTokenService(t, true)
	s := newTUFServer(t, true, bearerChallenge(tokens.srv.URL+"/token"))
	s.accept = func(a string) bool { return a == "Bearer tok|"+authUser+"|notary-test|repository:"+authGUN+":pull" }
	wrong := func(context.Context, string) (string, string, error) { return authUser, "not-" + authPass, nil }
	rt := authTransport(t, s.srv.URL, s.srv.Client().Transport, false, WithNotaryCredentials(wrong))
	_, err := get(t, rt, s.srv.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
	checkAuthError(t, err, s.srv.URL, "refused", tokens.srv.URL+"/token")
	if strings.Contains(err.Error(), "not-"+authPass) {
		t.Fatalf("error %q shows the password", err)
	}
	// The notary client keeps only the message; the transport remembers.
	if f := notaryAuthFailure(rt); f == nil || f.Error() != err.Error() {
		t.Fatalf("notaryAuthFailure = %v, want %v", f, err)
	}
	if notaryAuthFailure(http.DefaultTransport) != nil {
		t.Fatal("a failure reported for a plain transport")
	}

	// The token service accepts, the server does not take the token.
	s.accept = func(string) bool { return false }
	var asked []string
	rt = authTransport(t, s.srv.URL, s.srv.Client().Transport, false, WithNotaryCredentials(aliceCreds(&asked)))
	before := s.hits.Load()
	_, err = get(t, rt, s.srv.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
	checkAuthError(t, err, s.srv.URL, "refused", authUser)
	if n := s.hits.Load() - before; n != 2 {
		t.Fatalf("%d server requests, want 2 (one retry only)", n)
	}

	// Anonymous: the token service issues an anonymous token the server
	// does not take: credentials are required.
	tokens.anon = true
	rt = authTransport(t, s.srv.URL, s.srv.Client().Transport, false)
	_, err = get(t, rt, s.srv.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
	checkAuthError(t, err, s.srv.URL, "credentials are required")
}

// Credentials never go to a plain-http token service on another host:port;
// they do go to the plain-http Notary server's own host:port.
func TestNotaryAuthPlainHTTPRealm(t *testing.T) {
	t.Parallel()
	tokens := newTokenService(t, false)
	s := newTUFServer(t, false, bearerChallenge(tokens.srv.URL+"/token"))
	s.accept = func(a string) bool { return strings.HasPrefix(a, "Bearer tok|"+authUser+"|") }
	var asked []string
	rt := authTransport(t, s.srv.URL, http.DefaultTransport, false, WithNotaryCredentials(aliceCreds(&asked)))
	_, err := get(t, rt, s.srv.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
	checkAuthError(t, err, s.srv.URL, "refusing to send credentials", tokens.srv.URL+"/token")
	if n := tokens.requests.Load(); n != 0 {
		t.Fatalf("the plain-http token service got %d requests", n)
	}

	// The same server as its own token service over plain http.
	var self *httptest.Server
	self = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokens.srv.Config.Handler.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok|"+authUser+"|notary-test|repository:"+authGUN+":pull" {
			w.Header().Set("WWW-Authenticate", bearerChallenge(self.URL+"/token")(nil))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "{}")
	}))
	defer self.Close()
	rt = authTransport(t, self.URL, http.DefaultTransport, false, WithNotaryCredentials(aliceCreds(&asked)))
	resp, err := get(t, rt, self.URL+"/v2/"+authGUN+"/_trust/tuf/root.json")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("own host:port over plain http: %v %v", resp, err)
	}
}

// A request whose body cannot be sent again is not retried; one with
// GetBody is, with its body.
func TestNotaryAuthNonReplayable(t *testing.T) {
	t.Parallel()
	tokens := newTokenService(t, true)
	s := newTUFServer(t, true, bearerChallenge(tokens.srv.URL+"/token"))
	var bodies []string
	s.accept = func(a string) bool { return strings.HasPrefix(a, "Bearer tok|"+authUser+"|") }
	var asked []string
	rt := authTransport(t, s.srv.URL, s.srv.Client().Transport, true, WithNotaryCredentials(aliceCreds(&asked)))
	u := s.srv.URL + "/v2/" + authGUN + "/_trust/tuf/"
	req, _ := http.NewRequest(http.MethodPost, u, io.NopCloser(strings.NewReader("metadata")))
	_, err := rt.RoundTrip(req)
	checkAuthError(t, err, s.srv.URL, "cannot be sent again")
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("%d server requests, want 1 (not retried)", n)
	}
	if n := tokens.requests.Load(); n != 0 {
		t.Fatalf("%d token requests for a request that cannot be retried", n)
	}

	check := newTUFServer(t, true, bearerChallenge(tokens.srv.URL+"/token"))
	check.accept = func(a string) bool { return strings.HasPrefix(a, "Bearer tok|"+authUser+"|") }
	inner := check.srv.Config.Handler
	check.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		inner.ServeHTTP(w, r)
	})
	rt = authTransport(t, check.srv.URL, check.srv.Client().Transport, true, WithNotaryCredentials(aliceCreds(&asked)))
	req, _ = http.NewRequest(http.MethodPost, check.srv.URL+"/v2/"+authGUN+"/_trust/tuf/", strings.NewReader("metadata"))
	resp, err := rt.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("replayable POST: %v %v", resp, err)
	}
	resp.Body.Close()
	if strings.Join(bodies, ",") != "metadata,metadata" {
		t.Fatalf("bodies %q, want the body twice", bodies)
	}
}

func TestParseChallenge(t *testing.T) {
	t.Parallel()
	c, ok := parseChallenge([]string{`Basic realm="x"`, `Bearer realm="https://a/t?x=1",service="svc, with comma",scope="repository:a/b:pull,push"`})
	if !ok || c.scheme != "bearer" || c.params["realm"] != "https://a/t?x=1" || c.params["service"] != "svc, with comma" || c.params["scope"] != "repository:a/b:pull,push" {
		t.Fatalf("%+v", c)
	}
	c, ok = parseChallenge([]string{`Basic realm=plain, charset="UTF-8"`})
	if !ok || c.scheme != "basic" || c.params["realm"] != "plain" || c.params["charset"] != "UTF-8" {
		t.Fatalf("%+v", c)
	}
	if _, ok := parseChallenge([]string{`Negotiate`}); ok {
		t.Fatal("Negotiate taken as a challenge")
	}
}
