package registry

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// hostKeychain gives the explicit credentials of Options.HostAuth to the
// host they were given for, and asks the fallback keychain (docker config,
// credential helpers) for every other host.
type hostKeychain struct {
	anyPort  map[string]authn.Authenticator // host
	exact    map[string]authn.Authenticator // host:port
	fallback authn.Keychain
}

func newHostKeychain(auth map[string]authn.Authenticator, fallback authn.Keychain) (authn.Keychain, error) {
	if fallback == nil {
		fallback = authn.DefaultKeychain
	}
	k := &hostKeychain{anyPort: map[string]authn.Authenticator{}, exact: map[string]authn.Authenticator{}, fallback: fallback}
	for h, a := range auth {
		p, err := ParseHost(h)
		if err != nil {
			return nil, fmt.Errorf("credentials host: %w", err)
		}
		if host, port, err := net.SplitHostPort(p); err == nil {
			k.exact[net.JoinHostPort(host, port)] = a
		} else {
			k.anyPort[strings.Trim(p, "[]")] = a
		}
	}
	return k, nil
}

// Resolve implements authn.Keychain. A registry reference carries no
// scheme, so HOST:443 given explicitly matches a registry written HOST.
func (k *hostKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain.
func (k *hostKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	host, port := splitHostPort(r.RegistryStr(), "https")
	if a, ok := k.exact[net.JoinHostPort(host, port)]; ok {
		return a, nil
	}
	if a, ok := k.anyPort[host]; ok {
		return a, nil
	}
	return authn.Resolve(ctx, k.fallback, r)
}
