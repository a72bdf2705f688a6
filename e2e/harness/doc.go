// Package harness provides reusable, in-process test infrastructure for
// cnab-airgap: real OCI registries, deterministic fixture images and CNAB
// bundles pushed the way users push them.
//
// The package is deliberately not tied to the testing package so that the
// same code can back end-to-end tests, the `make demo` program and
// benchmarks. Every function takes a context.Context and reports failures as
// errors; everything that holds resources has a Close method.
//
// # Registries
//
// StartRegistry runs a real github.com/distribution/distribution/v3 registry
// (the same code as the `registry` binary) inside the current process, storing
// content in a temporary directory (or in memory, see WithInMemoryStorage) and
// listening on 127.0.0.1 on a random port.
// Options add TLS with a CA generated at run time (WithTLS), htpasswd basic
// auth (WithBasicAuth), token auth backed by an in-process token server
// (WithTokenAuth), request counting (always on, see Registry.Counts) and
// arbitrary middleware such as fault injectors (WithMiddleware).
//
// Clients are configured for a Registry with Registry.RemoteOptions and
// Registry.NameOptions (go-containerregistry) or NewResolver (containerd, as
// used by cnab-to-oci).
//
// # Fixtures
//
// NewLayer, NewImage and NewIndex build images from pseudo-random,
// incompressible content derived from a seed, so the same inputs always give
// the same digests and nothing is downloaded. Layers are streamed: even a
// 100 MiB layer is never held in memory.
//
// # Bundles
//
// PushBundle pushes a CNAB bundle with the real cnab-to-oci library
// (remotes.FixupBundle followed by remotes.Push) and reads back what was
// stored. SampleBundle builds the canonical fixture used by the e2e tests and
// the demo. TamperBundleDigest and BundleJSONWithWrongDigest produce bundles
// whose bundle.json names a wrong contentDigest, for negative tests.
package harness
