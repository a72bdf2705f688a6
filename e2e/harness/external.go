package harness

import (
	"context"
	"fmt"
	"net"

	"github.com/cnabio/cnab-go/bundle"
	"github.com/cnabio/cnab-to-oci/remotes"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// External describes a registry the harness did not start, such as
// `cnab-airgap serve`, listening with plain HTTP and no authentication on
// the loopback interface, so that the helpers taking a *Registry
// (ReadBundle, NewResolver, PullBundle, Ref, RemoteOptions) can talk to
// it. host is "127.0.0.1:PORT", "[::1]:PORT" or "localhost:PORT"; any
// other host is refused, so a test never reaches beyond the machine.
// Close releases only the client side (idle connections).
func External(host string) (*Registry, error) {
	h, port, err := net.SplitHostPort(host)
	if err != nil || port == "" {
		return nil, fmt.Errorf("harness: external registry %q: want HOST:PORT", host)
	}
	if h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("harness: external registry %q is not on the loopback interface", host)
		}
	}
	return &Registry{Host: host, Auth: AuthNone, transport: newTransport(nil), counter: &counter{}}, nil
}

// PulledBundle is what cnab-to-oci's remotes.Pull returns.
type PulledBundle struct {
	// Bundle is the bundle.json cnab-to-oci decoded, and BundleJSON its
	// canonical form (bundle.Marshal), which equals the stored bytes for a
	// bundle pushed by cnab-to-oci.
	Bundle     *bundle.Bundle
	BundleJSON []byte
	// RelocationMap maps every image string to its digest-pinned reference
	// in the bundle repository.
	RelocationMap map[string]string
	// Digest is the bundle index digest.
	Digest digest.Digest
}

// PullBundle pulls the bundle at ref (a tag or digest reference on reg)
// with cnab-to-oci's remotes.Pull, the way Porter and the cnab-to-oci CLI
// read a bundle, through a resolver for reg (NewResolver).
func PullBundle(ctx context.Context, reg *Registry, ref string) (*PulledBundle, error) {
	named, err := reference.ParseNormalizedNamed(reg.Ref(ref))
	if err != nil {
		return nil, fmt.Errorf("harness: bundle reference %q: %w", ref, err)
	}
	b, reloc, d, err := remotes.Pull(ctx, named, NewResolver(reg))
	if err != nil {
		return nil, fmt.Errorf("harness: cnab-to-oci pull of %s: %w", named, err)
	}
	raw, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	return &PulledBundle{Bundle: b, BundleJSON: raw, RelocationMap: map[string]string(reloc), Digest: d}, nil
}
