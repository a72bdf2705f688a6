// Package testarchive writes a small cnab-airgap archive without a registry
// or a network: a bundle with an invocation image and a multi-platform
// component that share a layer, and a signature attached to the component
// as an OCI 1.1 referrer. The content is derived from fixed seeds, so every
// run writes the same bytes; tests and runnable examples use it where a
// real export would need registries.
package testarchive
