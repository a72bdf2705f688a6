package harness

import "github.com/distribution/distribution/v3/configuration"

// WithIndexValidation makes explicit what a distribution registry does by
// default (validation is on unless disabled, and
// validation.manifests.indexes.platforms defaults to "all"): it refuses an
// image index (or Docker manifest list) unless every manifest it lists is
// already in the repository, answering a sparse index with 400 and
// MANIFEST_BLOB_UNKNOWN. It is the configuration
//
//	validation:
//	  manifests:
//	    indexes:
//	      platforms: all
func WithIndexValidation() RegistryOption {
	return withIndexPlatforms("all")
}

// WithSparseIndexes makes the registry accept image indexes whose children
// are not all present (validation.manifests.indexes.platforms: none, which
// distribution calls experimental), as registries that do not check index
// children do.
func WithSparseIndexes() RegistryOption {
	return withIndexPlatforms("none")
}

func withIndexPlatforms(p configuration.Platforms) RegistryOption {
	return func(c *registryConfig) {
		c.configure = append(c.configure, func(cfg *configuration.Configuration) {
			cfg.Validation.Manifests.Indexes.Platforms = p
		})
	}
}
