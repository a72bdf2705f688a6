// Package importer reads a cnab-airgap archive (or a CNAB-104 thick
// bundle), checks it completely before anything moves, and pushes it into a
// registry: blobs first (skipping what the target has, mounting across
// repositories), then manifests deepest first, byte-identical, then tags,
// the bundle's tag last. Only then is relocation-mapping.json written.
//
// [Load] is the checking half on its own: it opens an archive, verifies
// index.json, every manifest and bundle.json against their digests, closes
// the graph (every referenced blob present with its declared size) and
// matches every image of bundle.json with a carried manifest. inspect and
// verify are built on it.
package importer
