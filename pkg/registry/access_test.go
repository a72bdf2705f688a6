package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

func start(t *testing.T, opts ...harness.RegistryOption) *harness.Registry {
	t.Helper()
	r, err := harness.StartRegistry(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// authSeen records the Authorization values a registry receives.
type authSeen struct {
	mu       sync.Mutex
	requests int
	values   []string
}

func (a *authSeen) hook(r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests++
	if v := r.Header.Get("Authorization"); v != "" {
		a.values = append(a.values, v)
	}
}

func (a *authSeen) snapshot() (int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests, append([]string(nil), a.values...)
}

// Explicit credentials go to their host only: a second registry the same
// client talks to gets the keychain's credentials, never those.
func TestHostAuthGoesToItsHostOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var seenA, seenB authSeen
	a := start(t, harness.WithBasicAuth("alice", "alice-pw-1234"), harness.WithRequestHook(seenA.hook))
	b := start(t, harness.WithBasicAuth("carol", "carol-pw-5678"), harness.WithRequestHook(seenB.hook))
	kc := staticKeychain{b.Host: authn.FromConfig(authn.AuthConfig{Username: "carol", Password: "carol-pw-5678"})}
	c, err := registry.New(registry.Options{PlainHTTP: []string{"127.0.0.1"}, Keychain: kc,
		HostAuth: map[string]authn.Authenticator{a.Host: authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "alice-pw-1234"})}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*harness.Registry{a, b} {
		if err := c.Check(ctx, r.Host); err != nil {
			t.Fatalf("%s: %v", r.Host, err)
		}
		repo, _ := c.Repository(r.Host + "/app")
		if _, err := c.BlobExists(ctx, repo, digest.FromString("x")); err != nil {
			t.Fatalf("%s: %v", r.Host, err)
		}
	}
	alice := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-pw-1234"))
	nA, valsA := seenA.snapshot()
	nB, valsB := seenB.snapshot()
	if nA == 0 || nB == 0 || len(valsA) == 0 || len(valsB) == 0 {
		t.Fatalf("the registries were not both spoken to with credentials: %d/%d requests, %d/%d authorized", nA, nB, len(valsA), len(valsB))
	}
	for _, v := range valsB {
		if v == alice {
			t.Fatalf("the second registry received alice's credentials")
		}
	}
	if !contains(valsA, alice) {
		t.Fatalf("the first registry did not receive alice's credentials: %v", valsA)
	}
}

type staticKeychain map[string]authn.Authenticator

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a, ok := k[r.RegistryStr()]; ok {
		return a, nil
	}
	return authn.Anonymous, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// go-containerregistry falls back to plain HTTP for 127.0.0.1; the client
// refuses the fallback for a host not named in PlainHTTP: no request,
// credentials least of all, reaches the TLS-less registry. Naming another
// port of the same host does not name it; naming the host alone does.
func TestPlainHTTPOnlyToNamedHosts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var seen authSeen
	reg := start(t, harness.WithBasicAuth("alice", "alice-pw-1234"), harness.WithRequestHook(seen.hook))
	alice := map[string]authn.Authenticator{reg.Host: authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "alice-pw-1234"})}
	for _, plain := range [][]string{nil, {"127.0.0.1:1"}, {"localhost"}} {
		c, err := registry.New(registry.Options{PlainHTTP: plain, HostAuth: alice})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Check(ctx, reg.Host)
		var ae *registry.AccessError
		if !errors.Is(err, registry.ErrPlainHTTP) || !errors.As(err, &ae) {
			t.Fatalf("PlainHTTP %v: %v", plain, err)
		}
		if h := registry.Hint(err); !strings.Contains(h, "--plain-http "+reg.Host) {
			t.Fatalf("hint %q", h)
		}
		repo, _ := c.Repository(reg.Host + "/app")
		if _, err := c.BlobExists(ctx, repo, digest.FromString("x")); !errors.Is(err, registry.ErrPlainHTTP) {
			t.Fatalf("PlainHTTP %v: blob check: %v", plain, err)
		}
	}
	if n, _ := seen.snapshot(); n != 0 {
		t.Fatalf("%d requests reached the registry over plain HTTP without it being named", n)
	}
	c, err := registry.New(registry.Options{PlainHTTP: []string{"127.0.0.1"}, HostAuth: alice})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, reg.Host); err != nil {
		t.Fatalf("the host named without a port: %v", err)
	}
	if n, vals := seen.snapshot(); n == 0 || len(vals) == 0 {
		t.Fatal("the named registry was not spoken to with credentials")
	}
}

// A registry whose challenge sends the client to a token service on
// another host over plain HTTP is refused before anything is sent there,
// even when both hosts are named with PlainHTTP.
func TestTokenRealmOnAnotherPlainHost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var tokenRequests atomic.Int64
	other := start(t, harness.WithTokenAuth("bob", "bob-pw-1234"), harness.WithRequestHook(func(*http.Request) { tokenRequests.Add(1) }))
	port := other.Host[strings.LastIndex(other.Host, ":")+1:]
	elsewhere := fmt.Sprintf("http://localhost:%s/auth/token", port)
	reg := start(t, harness.WithTokenAuth("bob", "bob-pw-1234"), harness.WithMiddleware(rewriteRealm(elsewhere)))
	c, err := registry.New(registry.Options{PlainHTTP: []string{"127.0.0.1", "localhost"},
		HostAuth: map[string]authn.Authenticator{"127.0.0.1": authn.FromConfig(authn.AuthConfig{Username: "bob", Password: "bob-pw-1234"})}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Check(ctx, reg.Host)
	if !errors.Is(err, registry.ErrInsecureRealm) || !strings.Contains(err.Error(), "localhost:"+port) {
		t.Fatalf("realm elsewhere over plain HTTP: %v", err)
	}
	repo, _ := c.Repository(reg.Host + "/app")
	if _, err := c.BlobExists(ctx, repo, digest.FromString("x")); !errors.Is(err, registry.ErrInsecureRealm) {
		t.Fatalf("blob check: %v", err)
	}
	if n := tokenRequests.Load(); n != 0 {
		t.Fatalf("%d requests went to the token service on the other host", n)
	}
	// The registry's own token service on its own host:port is fine.
	if err := c.Check(ctx, other.Host); err != nil {
		t.Fatalf("own realm: %v", err)
	}
}

// rewriteRealm makes a registry's Bearer challenges name realm.
func rewriteRealm(realm string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&realmWriter{ResponseWriter: w, realm: realm}, r)
		})
	}
}

type realmWriter struct {
	http.ResponseWriter
	realm string
}

func (w *realmWriter) WriteHeader(code int) {
	if v := w.Header().Get("WWW-Authenticate"); strings.HasPrefix(v, "Bearer ") {
		i := strings.Index(v, `realm="`)
		j := strings.Index(v[i+7:], `"`)
		w.Header().Set("WWW-Authenticate", v[:i+7]+w.realm+v[i+7+j:])
	}
	w.ResponseWriter.WriteHeader(code)
}

func TestParseHost(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"127.0.0.1", "127.0.0.1:5000", "Registry.Example.com", "localhost:443", "[::1]", "[::1]:5000", "my_host"} {
		if _, err := registry.ParseHost(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "http://127.0.0.1:5000", "127.0.0.1:5000/v2", "alice@host", "host:port", "host:0", "host:70000", "::1", ":5000", "a b", "host=x"} {
		if _, err := registry.ParseHost(bad); !errors.Is(err, registry.ErrHostSyntax) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}
