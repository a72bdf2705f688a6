package export

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// Source is where an export reads content: one store per repository. The
// default is the registries the references name, through the registry
// client (registry.Client.Store); WithSource replaces it, with memory in
// tests or any other store.
type Source interface {
	// Repository returns the store of repository name (REGISTRY/PATH).
	Repository(name string) (SourceRepository, error)
}

// SourceRepository is one repository of a Source: content by descriptor
// and tags. When it is also a content.ReferrerLister, the referrers of the
// bundle's manifests are collected from it.
type SourceRepository interface {
	content.Fetcher
	content.Resolver
}

// WithSource makes the export read from s instead of the registries the
// references name. Notary trust data (WithNotaryServer) and a delta base
// inventory (WithBase) still come from a server.
func WithSource(s Source) Option {
	return func(o *options) error {
		if s == nil {
			return fmt.Errorf("%w: export: nil source", errdefs.ErrUsage)
		}
		o.source = s
		return nil
	}
}

// registrySource is the default Source: the registry client's stores.
type registrySource struct{ c *registry.Client }

func (s registrySource) Repository(n string) (SourceRepository, error) {
	repo, err := s.c.Repository(n)
	if err != nil {
		return nil, err
	}
	return s.c.Store(repo), nil
}

// store returns the source's store of repo, opened once per repository:
// every blob of the export is fetched through it.
func (e *exporter) store(repo name.Repository) (SourceRepository, error) {
	if s, ok := e.stores.Load(repo.Name()); ok {
		return s.(SourceRepository), nil
	}
	src := e.o.source
	if src == nil {
		src = registrySource{e.o.Client}
	}
	s, err := src.Repository(repo.Name())
	if err != nil {
		return nil, err
	}
	actual, _ := e.stores.LoadOrStore(repo.Name(), s)
	return actual.(SourceRepository), nil
}

// repositories opens repositories for signature collection; a store that
// lists no referrers has none.
func (e *exporter) repositories(repo name.Repository) (sigbundle.Repository, error) {
	s, err := e.store(repo)
	if err != nil {
		return nil, err
	}
	if r, ok := s.(sigbundle.Repository); ok {
		return r, nil
	}
	return noReferrers{s}, nil
}

type noReferrers struct{ SourceRepository }

func (noReferrers) Referrers(context.Context, ocispec.Descriptor, string) ([]ocispec.Descriptor, error) {
	return nil, nil
}
