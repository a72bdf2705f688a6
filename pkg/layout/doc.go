// Package layout owns the cnab-airgap archive format: an uncompressed,
// deterministic tar whose root is an OCI image layout (oci-layout,
// index.json, blobs/<alg>/<hex>) plus the exact bytes of bundle.json.
//
// Writing starts from a [Plan]: every entry and its size is known before a
// byte of content is fetched, so every entry's offset in the tar is known.
// [Create] lays the archive out in a staging file and accepts blobs in any
// order and in parallel ([FileWriter.WriteBlob] writes at the blob's offset,
// verifying size and digest as it streams); [NewStreamWriter] writes the
// same bytes sequentially to any io.Writer (stdout, a compressor).
//
// Reading never extracts: [Open] indexes the tar's entries (only regular
// files whose names match the layout grammar), and every blob is served as a
// verifying section reader over the archive file.
//
// The format is specified in docs/FORMAT.md.
package layout
