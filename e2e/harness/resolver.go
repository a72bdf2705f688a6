package harness

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
)

// NewResolver returns a containerd resolver, as used by cnab-to-oci, that
// can talk to the given registries: plain HTTP or HTTPS trusting their CA,
// with their credentials (basic or token auth). Running harness registries
// not listed are configured on demand; any other host is refused, so a
// resolver from the harness never contacts anything but 127.0.0.1.
//
// This replaces cnab-to-oci's remotes.CreateResolver, which reads
// credentials from a Docker CLI config file and cannot trust a custom CA.
func NewResolver(regs ...*Registry) remotes.Resolver {
	var mu sync.Mutex
	hosts := map[string]docker.RegistryHost{}
	for _, r := range regs {
		hosts[r.Host] = r.registryHost()
	}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: func(host string) ([]docker.RegistryHost, error) {
			mu.Lock()
			defer mu.Unlock()
			if h, ok := hosts[host]; ok {
				return []docker.RegistryHost{h}, nil
			}
			if r := lookupRegistry(host); r != nil {
				// Keep the host (and its authorizer's token cache).
				hosts[host] = r.registryHost()
				return []docker.RegistryHost{hosts[host]}, nil
			}
			return nil, fmt.Errorf("harness: %q is not a running harness registry", host)
		},
	})
}

// Resolver returns NewResolver(r).
func (r *Registry) Resolver() remotes.Resolver { return NewResolver(r) }

func (r *Registry) registryHost() docker.RegistryHost {
	client := &http.Client{Transport: r.transport}
	authOpts := []docker.AuthorizerOpt{docker.WithAuthClient(client)}
	if r.Auth != AuthNone {
		host, user, pass := r.Host, r.Username, r.Password
		authOpts = append(authOpts, docker.WithAuthCreds(func(h string) (string, string, error) {
			if h == host {
				return user, pass, nil
			}
			return "", "", nil
		}))
	}
	scheme := "http"
	if r.TLS {
		scheme = "https"
	}
	return docker.RegistryHost{
		Client:       client,
		Authorizer:   docker.NewDockerAuthorizer(authOpts...),
		Host:         r.Host,
		Scheme:       scheme,
		Path:         "/v2",
		Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush,
	}
}
