// Package e2e holds the end-to-end tests of cnab-airgap: real
// distribution registries started in-process on 127.0.0.1, bundles pushed
// with the real cnab-to-oci library, archives read by skopeo.
package e2e
