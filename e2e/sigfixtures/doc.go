// Package sigfixtures builds signing evidence for end-to-end tests at run
// time, with real tools: a Notary v1 server (Debian's notary-server
// binary, run as a process on 127.0.0.1) populated with the notary client
// library, cosign-format signatures and attestations, notation-format
// signatures, SBOMs and OCI 1.1 referrers pushed with go-containerregistry,
// and in-toto layouts and links signed with in-toto-golang. Nothing is
// committed: keys, certificates and metadata are generated each run,
// because signed metadata expires.
package sigfixtures
