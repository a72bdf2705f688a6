// Command demo runs the whole cnab-airgap story on one machine with no
// network (`make demo`): it generates sample images, starts two real
// registries in-process on 127.0.0.1 (the connected side and the air-gapped
// side), pushes a sample bundle with cnab-to-oci, signs its index with a
// fresh cosign key and attaches an SBOM to an image, exports it all into
// one archive, verifies the archive and the signature offline, imports it
// into the second
// registry, audits the relocation, pulls the bundle back with cnab-to-oci,
// serves the archive as a read-only registry and pulls it from there too,
// then prints a summary. Everything it writes goes under ./demo-out/.
//
// It uses the library (pkg/export, pkg/importer, pkg/relocate, pkg/serve,
// pkg/sigbundle):
// the same calls the cnab-airgap commands make.
package main
