// Package export builds a cnab-airgap archive from a CNAB bundle: the exact
// bytes of bundle.json, the bundle's OCI index as stored by cnab-to-oci or
// Porter, and the full closure of every invocation and component image
// (every platform of an index, every config and layer, foreign layers
// included), each blob once.
//
// Every manifest must hash to the `contentDigest` bundle.json gives for it;
// every blob is verified as it streams into the archive. Blobs are fetched
// in parallel and written at their final offsets, so the archive is
// deterministic: exporting the same bundle twice gives the same bytes.
package export
