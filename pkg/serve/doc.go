// Package serve serves a cnab-airgap archive read-only as an OCI
// distribution registry, straight from the archive file, so that
// cnab-to-oci, Porter, crane, skopeo or a container runtime can pull the
// bundle inside an air gap that has no registry.
//
// Nothing is extracted. Manifests and indexes (already read and checked by
// [archive.Load]) are served from memory; blobs are served from their
// sections of the archive file.
//
// # What is verified, and when
//
// Verify-once at startup: [New] reads every blob the archive carries through
// a verifying reader (size and digest) before the server answers a single
// request, and refuses an archive with any mismatch. Manifests, indexes and
// bundle.json are checked by [archive.Load] (digest, size, graph closure,
// bundle.json matched by its images).
//
// After startup, a whole-blob GET is streamed through a verifying reader
// again, holding back its last chunk until the digest has checked out: if
// the archive file was changed after startup the connection is cut short,
// so a client never receives a complete body that does not match its
// digest. A GET with a Range header is served from the content verified at
// startup (a byte range cannot be verified on its own).
//
// # Bounded cost per client
//
// [Serve] bounds what a client can hold or make the server send:
//
//   - at most [WithMaxConnections] connections are served at once
//     (DefaultMaxConnections); more wait unanswered in the listener's accept
//     queue (not refused) until a served connection closes;
//   - a request's headers (and a TLS handshake) must arrive within
//     [WithReadHeaderTimeout] (DefaultReadHeaderTimeout) and fit in
//     [MaxHeaderBytes] (else 431);
//   - a keep-alive connection with no request for [WithIdleTimeout]
//     (DefaultIdleTimeout) is closed;
//   - a response that makes no progress for [WithWriteTimeout]
//     (DefaultWriteTimeout) is cut off: a stall timeout, so a slow download
//     that keeps moving is never cut;
//   - a Range header with more than [MaxRanges] ranges, or with ranges that
//     overlap, is refused with 416 Range Not Satisfiable (RFC 9110 allows
//     rejecting such sets; registry clients send one range), so a response
//     is never larger than the blob plus MaxRanges multipart part headers;
//   - a request body is never read: the connection is closed after the
//     answer (405 for every write).
//
// [Listen] binds the address before the archive is verified, so a busy
// address fails at once; connections made while [Open] verifies wait in
// the accept queue, and nothing is answered before Serve.
//
// # The namespace
//
// Every manifest and blob of the archive can be read through any
// repository the server knows: the bundle's repository (as recorded at
// export, for example bundles/app) and the repository path of every image
// reference of bundle.json (library/web for example.com/library/web:1.0).
// Tags are the bundle's tag in its repository and each image's tag in its
// repository. Other repositories answer NAME_UNKNOWN.
//
// Implemented endpoints (distribution spec v1.1): GET /v2/, GET and HEAD
// of manifests by tag or digest (with the stored media type as
// Content-Type and Docker-Content-Digest), GET and HEAD of blobs (with
// Range support), the tag list, the referrers API (from manifests' subject
// fields and index.json subject annotations), and the catalog. Every write
// is refused with 405 UNSUPPORTED.
package serve
