package importer

import (
	"fmt"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// Target is where an import puts content: one store per repository. The
// default is the registry the request names, through the registry client
// (registry.Client.Store); WithTarget replaces it, with memory in tests or
// any other store.
type Target interface {
	// Repository returns the store of repository name (REGISTRY/PATH, as
	// the naming strategy planned it).
	Repository(name string) (Repository, error)
}

// Repository is one repository of a Target. When it is also a
// content.Mounter, blobs another repository of the import holds are
// mounted instead of sent again.
type Repository interface {
	content.Storage
	content.Tagger
	content.Resolver
}

// WithTarget makes the import write to t instead of the registry the
// request names (whose name still plans the repositories): blobs,
// manifests, signing artifacts (listed as referrers where the store is a
// content.ReferrerLister) and tags. Notary re-signing (WithNotaryResign)
// needs a registry.
func WithTarget(t Target) Option {
	return func(o *options) error {
		if t == nil {
			return fmt.Errorf("%w: import: nil target", errdefs.ErrUsage)
		}
		o.target = t
		return nil
	}
}

// registryTarget is the default Target: the registry client's stores.
type registryTarget struct{ c *registry.Client }

func (t registryTarget) Repository(name string) (Repository, error) {
	repo, err := t.c.Repository(name)
	if err != nil {
		return nil, err
	}
	return t.c.Store(repo), nil
}
