// Package sigbundle carries a bundle's signing evidence across an air gap.
//
// It knows three kinds of evidence, all stored in the archive as OCI 1.1
// artifacts (manifests with a subject) so that oras, regctl and cosign can
// see them too:
//
//   - OCI referrers of every manifest of the bundle's graph: cosign
//     signatures and attestations pushed in OCI 1.1 mode, notation
//     signatures, SBOMs, sigstore bundles, and referrers of those
//     (a signature on an SBOM). Found through the Referrers API, or the
//     "sha256-<hex>" fallback tag when a registry has no API.
//   - cosign's tag scheme: "sha256-<hex>.sig", ".att" and ".sbom" objects in
//     the subject's repository. They keep their tag in index.json.
//   - Notary v1 (Docker Content Trust, CNAB-Security 301) trust data of the
//     bundle tag: root, timestamp, snapshot, targets and every delegation,
//     stored unmodified as the layers of one artifact whose subject is the
//     bundle index, with the in-toto layout, key and links Signy puts in the
//     target's custom field.
//
// Collect and CollectNotary fetch evidence at export; Verify checks it
// offline before an import pushes anything, against trust anchors supplied
// by the operator (never read from the archive); Resign publishes a
// verified Notary target under the relocated name with the destination's
// own keys.
//
// Verification never trusts an annotation: subjects, GUNs and roles written
// in index.json or in a manifest's annotations only say where to look, and
// every conclusion rests on digests and signatures.
package sigbundle
