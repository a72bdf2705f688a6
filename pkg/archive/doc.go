// Package archive is the checked, offline model of a cnab-airgap archive
// (or a CNAB-104 thick bundle, or an archive of another tool that carries
// bundle.json and an OCI layout).
//
// [Load] opens an archive, verifies index.json, every manifest and
// bundle.json against their digests, closes the graph (every referenced
// blob present with its declared size, no entry that nothing references)
// and matches every image of bundle.json with a carried manifest, within
// bounds on the memory the model may take. The [Bundle] it returns is what
// import pushes, verify and inspect report on, and serve answers from;
// [Bundle.HashBlobs] re-hashes every blob and [Bundle.VerifySignatures]
// checks the signing evidence, both offline. Nothing is written but a
// decompressed copy of a compressed archive in a private temp directory.
package archive
