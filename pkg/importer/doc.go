// Package importer pushes a cnab-airgap archive (or a CNAB-104 thick
// bundle), checked completely beforehand by pkg/archive, into a registry:
// every blob to be sent is hashed first; then the copy engine of pkg/content
// puts blobs (skipping what the target has, mounting across repositories)
// and manifests, children before parents, byte-identical; then signing
// artifacts and tags, the bundle's tag last. Only then is
// relocation-mapping.json written. [Verify] is the verify command as one
// call: the archive checked offline, and optionally the relocation audited
// at the target.
package importer
