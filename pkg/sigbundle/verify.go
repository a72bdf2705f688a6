package sigbundle

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Carried is the content Verify checks evidence against.
type Carried struct {
	// BundleJSON is the exact bundle.json.
	BundleJSON []byte
	// Index is the bundle's OCI index.
	Index ocispec.Descriptor
	// Manifests are the manifests and indexes of the bundle's graph, each
	// with a label for messages ("bundle index", "image web", ...).
	Manifests map[digest.Digest]string
	// Artifacts are the signing artifacts' index.json entries.
	Artifacts []ocispec.Descriptor
	// Names are the names the content is published under (names.go): when
	// set, Notary trust data must be for one of its subject's names, and a
	// cosign signature whose claimed name contradicts them does not make
	// the bundle signed. Nil binds evidence to digests only.
	Names *Names
	// Subjects are what image policies (WithPolicy) are evaluated for: the
	// bundle and each image, by reference and top manifest digest.
	Subjects []PolicySubject
}

// PolicySubject is an image (or the bundle) that policies may match.
type PolicySubject struct {
	Reference string
	Digest    digest.Digest
}

// ArtifactReport is the outcome for one artifact.
type ArtifactReport struct {
	Digest       digest.Digest `json:"digest"`
	Role         string        `json:"role"`
	Via          string        `json:"via,omitempty"`
	ArtifactType string        `json:"artifactType,omitempty"`
	Subject      digest.Digest `json:"subject"`
	SubjectLabel string        `json:"subjectLabel,omitempty"`
	Repository   string        `json:"repository,omitempty"`
	Tag          string        `json:"tag,omitempty"`
	// Bound is true when the artifact's binding to its subject checked out.
	Bound bool `json:"bound"`
	// Verified is true when its signature verified with a given key or,
	// keyless, for an accepted identity; Keys names those keys, or the
	// certificate's identity.
	Verified bool     `json:"verified"`
	Keys     []string `json:"keys,omitempty"`
	// Format is what was checked: cosign, cosign-attestation, notation,
	// notary, or subject (the subject field only).
	Format string `json:"format"`
	Note   string `json:"note,omitempty"`
	// ClaimedName is the name the signer claimed (a cosign payload's
	// docker-reference; notation signatures claim none), and NameMatch
	// how it compares with the names the subject is published under:
	// NameMatches, NameContradicts or NameRenamed ("" when nothing was
	// claimed or no names were given).
	ClaimedName string `json:"claimedName,omitempty"`
	NameMatch   string `json:"nameMatch,omitempty"`
	// Signer is who signed a cosign signature or attestation (key name,
	// or keyless identity and issuer, with its log entry), set when
	// sigstore-go verified the signature itself (and the signer when
	// Verified).
	Signer *Signer `json:"signer,omitempty"`
	// PredicateType is an attestation's in-toto predicate type.
	PredicateType string `json:"predicateType,omitempty"`

	// forName: a signature that verified and whose claim does not
	// contradict the subject's names (or WithAllowRename).
	forName bool
	// verifiedBy are the public keys that verified it: Keys names them,
	// but two keys may have one name (two files called cosign.pub).
	verifiedBy []crypto.PublicKey
}

// verifiedWith reports whether key verified ar (by the key itself, not
// its name).
func (ar *ArtifactReport) verifiedWith(key crypto.PublicKey) bool {
	return slices.ContainsFunc(ar.verifiedBy, func(k crypto.PublicKey) bool {
		eq, ok := k.(interface{ Equal(crypto.PublicKey) bool })
		return ok && eq.Equal(key)
	})
}

// Report is the result of Verify.
type Report struct {
	// Signed is true when the bundle has verified evidence (see
	// WithRequireSignatures).
	Signed bool          `json:"signed"`
	Notary []*NotaryInfo `json:"notary,omitempty"`
	// Sigstore describes the carried Sigstore trust material, if any.
	Sigstore *SigstoreTrustInfo `json:"sigstore,omitempty"`
	// Policy is the outcome per image a policy matched (WithPolicy).
	Policy    []PolicyResult   `json:"policy,omitempty"`
	Artifacts []ArtifactReport `json:"artifacts"`
	Warnings  []string         `json:"warnings,omitempty"`
}

// Verify checks every carried signing artifact offline: each artifact's
// bytes, its binding to a carried manifest, cosign signatures with the
// WithCosignKey keys, Notary v1 trust data against the operator's trust
// anchor (WithNotaryPin, WithNotaryCA or WithNotaryTOFU) with the expiry
// policy, and in-toto data. It returns the first failure as an *Error.
func Verify(ctx context.Context, st content.Fetcher, c Carried, opts ...Option) (*Report, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	v := &verifier{o: o, st: st, c: c, rep: &Report{Artifacts: []ArtifactReport{}}, carried: map[digest.Digest]bool{}}
	for d := range c.Manifests {
		v.carried[d] = true
	}
	for _, a := range c.Artifacts {
		v.carried[a.Digest] = true
	}
	arts := slices.Clone(c.Artifacts)
	sortRoots(arts)
	// The Sigstore trust material first: keyless signatures are checked
	// against the trusted root it yields.
	slices.SortStableFunc(arts, func(a, b ocispec.Descriptor) int {
		return compareBool(b.ArtifactType == ArtifactTypeSigstoreTrust, a.ArtifactType == ArtifactTypeSigstoreTrust)
	})
	type group struct {
		subject digest.Digest
		format  string
	}
	signed := map[group][]int{} // cosign signatures and attestations, notation signatures
	var trust []int
	for _, a := range arts {
		ar, err := v.artifact(ctx, a)
		if err != nil {
			return nil, err
		}
		v.rep.Artifacts = append(v.rep.Artifacts, *ar)
		i := len(v.rep.Artifacts) - 1
		switch ar.Format {
		case "cosign", "cosign-attestation", "notation":
			g := group{ar.Subject, ar.Format}
			signed[g] = append(signed[g], i)
		case "notary":
			trust = append(trust, i)
		}
	}
	// With cosign keys (for cosign signatures and attestations) or a
	// notation trust store (for notation signatures), every subject's
	// artifacts of that format need one that verifies.
	cosignAnchors := len(o.cosignKeys) > 0 || len(o.identities) > 0
	checked := map[string]bool{"cosign": cosignAnchors, "cosign-attestation": cosignAnchors, "notation": len(o.notationRoots) > 0}
	groups := slices.SortedFunc(maps.Keys(signed), func(a, b group) int { return strings.Compare(string(a.subject)+a.format, string(b.subject)+b.format) })
	for _, g := range groups {
		if !checked[g.format] {
			continue
		}
		ok := false
		var why []string
		for _, i := range signed[g] {
			a := v.rep.Artifacts[i]
			ok = ok || a.Verified
			why = append(why, a.Digest.String()+": "+a.Note)
		}
		if ok {
			continue
		}
		first := v.rep.Artifacts[signed[g][0]]
		if g.format == "notation" {
			return nil, &Error{Kind: "notation", Artifact: first.Digest, Subject: g.subject,
				Err: wrapf(ErrSignature, "none of the notation signatures of %s verifies against the trust store (%s)", v.label(g.subject), strings.Join(why, "; "))}
		}
		return nil, &Error{Kind: "cosign", Artifact: first.Digest, Subject: g.subject, Key: v.keyNames(),
			Err: wrapf(ErrSignature, "none of the %s artifacts of %s verifies with the given keys or identities (%s)", g.format, v.label(g.subject), strings.Join(why, "; "))}
	}
	for _, i := range trust {
		if err := v.notary(ctx, &v.rep.Artifacts[i]); err != nil {
			return nil, err
		}
	}
	var renamed []ArtifactReport // verified, but for another name
	for _, a := range v.rep.Artifacts {
		if a.Subject != c.Index.Digest || a.Role != layout.RoleSignature || !a.Verified {
			continue
		}
		if a.forName {
			v.rep.Signed = true
		} else {
			renamed = append(renamed, a)
		}
	}
	for _, a := range v.rep.Artifacts {
		if a.Verified && a.NameMatch == NameContradicts {
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s signature %s of %s claims %s, which contradicts %s: it does not count as a signature of this name (--allow-rename accepts the rename)",
				a.Format, a.Digest, v.label(a.Subject), a.ClaimedName, strings.Join(c.Names.Subjects[a.Subject], ", ")))
		}
		if a.NameMatch == NameRenamed {
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("%s signature %s of %s claims %s, not %s: accepted as a rename (--allow-rename)",
				a.Format, a.Digest, v.label(a.Subject), a.ClaimedName, strings.Join(c.Names.Subjects[a.Subject], ", ")))
		}
	}
	for _, n := range v.rep.Notary {
		if n.SHA256 == digest.FromBytes(c.BundleJSON).Encoded() {
			v.rep.Signed = true
		}
	}
	if t := v.rep.Sigstore; t != nil && (t.Anchor == "pin" || t.Anchor == "embedded") {
		for _, a := range v.rep.Artifacts {
			t.Used = t.Used || (a.Verified && a.Signer != nil && a.Signer.Identity != "")
		}
	}
	if err := v.evaluatePolicies(); err != nil {
		return nil, err
	}
	if !o.partOfArchive {
		if err := anchorsUsed(o, v.rep); err != nil {
			return nil, err
		}
	}
	if o.require && !v.rep.Signed {
		if len(renamed) > 0 {
			a := renamed[0]
			return nil, &Error{Kind: a.Format, Artifact: a.Digest, Subject: c.Index.Digest, Err: wrapf(ErrNameMismatch,
				"signatures are required; the bundle index's signature verified but claims %s, while the bundle is published as %s (pass --allow-rename if the rename is intended)",
				a.ClaimedName, strings.Join(c.Names.Subjects[c.Index.Digest], ", "))}
		}
		return nil, &Error{Kind: "bundle", Subject: c.Index.Digest, Err: wrapf(ErrUnsigned,
			"signatures are required, and the bundle has neither Notary trust data that verified nor a signature of its index that verified with a given key (--cosign-key), identity (--certificate-identity, --policy) or trust store (--notation-cert)")}
	}
	return v.rep, nil
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// WithArchiveOfSeveral says that Verify checks one bundle of an archive of
// several: a trust anchor (Notary pin, cosign key, identity, notation
// trust store) that verifies nothing in this bundle is not refused here,
// since it may be another bundle's; AnchorsUsed then checks the anchors
// over the reports of all the bundles.
func WithArchiveOfSeveral() Option {
	return func(o *options) error { o.partOfArchive = true; return nil }
}

// AnchorsUsed refuses, as Verify does for one bundle, trust anchors among
// opts that verified nothing in any of reports (the Verify reports of the
// bundles of one archive, made WithArchiveOfSeveral).
func AnchorsUsed(reports []*Report, opts ...Option) error {
	o, err := makeOptions(opts...)
	if err != nil {
		return err
	}
	all := &Report{}
	for _, r := range reports {
		if r != nil {
			all.Notary = append(all.Notary, r.Notary...)
			all.Artifacts = append(all.Artifacts, r.Artifacts...)
		}
	}
	return anchorsUsed(o, all)
}

// anchorsUsed refuses trust anchors given for evidence the archive does not
// carry: a Notary pin for a GUN without trust data, a cosign key that
// verified nothing, a notation trust store that verified nothing. An
// operator who pins a publisher expects that publisher's evidence; without
// it the content would pass as merely unsigned.
func anchorsUsed(o *options, rep *Report) error {
	gunsSeen := map[string]bool{}
	var carried []string
	for _, n := range rep.Notary {
		gunsSeen[n.GUN] = true
		carried = append(carried, n.GUN)
	}
	for _, g := range slices.Sorted(maps.Keys(o.pins)) {
		if gunsSeen[g] {
			continue
		}
		what := "no Notary trust data at all"
		if len(carried) > 0 {
			what = "trust data for " + strings.Join(carried, ", ") + " only"
		}
		return &Error{Kind: "notary", GUN: g, Err: wrapf(ErrTrustAnchor, "a pin was given for this GUN, but the archive carries %s", what)}
	}
	cosignArts, notationVerified := 0, false
	for _, a := range rep.Artifacts {
		switch a.Format {
		case "cosign", "cosign-attestation":
			cosignArts++
		case "notation":
			notationVerified = notationVerified || a.Verified
		}
	}
	keyless := false
	for _, a := range rep.Artifacts {
		keyless = keyless || (a.Verified && a.Signer != nil && a.Signer.Identity != "")
	}
	if len(o.identities) > 0 && !keyless {
		return &Error{Kind: "cosign", Key: strings.Join(o.identityNames, ", "), Err: wrapf(ErrTrustAnchor, "no keyless signature or attestation of the %d the archive carries was made by the given identities", cosignArts)}
	}
	for _, k := range o.cosignKeys {
		if !slices.ContainsFunc(rep.Artifacts, func(a ArtifactReport) bool { return a.verifiedWith(k.key) }) {
			return &Error{Kind: "cosign", Key: k.name, Err: wrapf(ErrTrustAnchor, "the key verified none of the %d cosign signatures and attestations the archive carries", cosignArts)}
		}
	}
	if len(o.notationRoots) > 0 && !notationVerified {
		return &Error{Kind: "notation", Err: wrapf(ErrTrustAnchor, "a notation trust store was given, but no notation signature the archive carries verifies against it")}
	}
	return nil
}

// claim records a signer's claimed name for one signature of ar and
// whether that signature, verified or not, is for the subject's name.
func (v *verifier) claim(ar *ArtifactReport, claim string, verified bool) {
	match := ""
	if claim != "" && v.c.Names != nil {
		var seen []string
		match, seen = v.c.Names.matchClaim(ar.Subject, claim)
		if match == NameContradicts && len(seen) == 0 {
			match = "" // the subject has no name to contradict
		}
		if match == NameContradicts && v.o.allowRename {
			match = NameRenamed
		}
	}
	// The report shows the claim of a verified signature first.
	if ar.ClaimedName == "" || (verified && !ar.forName) {
		ar.ClaimedName, ar.NameMatch = claim, match
	}
	if verified && match != NameContradicts {
		ar.forName = true
		ar.ClaimedName, ar.NameMatch = claim, match
	}
}

type verifier struct {
	o       *options
	st      content.Fetcher
	c       Carried
	rep     *Report
	carried map[digest.Digest]bool
	// trust-data manifests by artifact digest
	manifests map[digest.Digest]*manifest
}

func (v *verifier) keyNames() string {
	var n []string
	for _, k := range v.o.cosignKeys {
		n = append(n, k.name)
	}
	return strings.Join(append(n, v.o.identityNames...), ",")
}

func (v *verifier) label(d digest.Digest) string {
	if l := v.c.Manifests[d]; l != "" {
		return l + " " + d.String()
	}
	return d.String()
}

// read returns the exact bytes of a small carried object.
func (v *verifier) read(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	b, err := content.ReadAll(ctx, v.st, d, v.o.maxMetadata)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return b, nil
}

// drain reads a carried blob through the store's verification.
func (v *verifier) drain(ctx context.Context, d ocispec.Descriptor) error {
	rc, err := content.Open(ctx, v.st, d)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return nil
}

// artifact checks one artifact's content and binding.
func (v *verifier) artifact(ctx context.Context, a ocispec.Descriptor) (*ArtifactReport, error) {
	ar := &ArtifactReport{Digest: a.Digest, Role: a.Annotations[layout.AnnotationRole], Via: a.Annotations[AnnotationVia],
		ArtifactType: a.ArtifactType, Subject: digest.Digest(a.Annotations[layout.AnnotationSubject]),
		Repository: a.Annotations[AnnotationRepository], Format: "subject"}
	if ar.Via == ViaCosignTag {
		ar.Tag = layout.CosignTag(a)
	}
	fail := func(kind string, err error) (*ArtifactReport, error) {
		return nil, &Error{Kind: kind, Artifact: a.Digest, Subject: ar.Subject, Err: err}
	}
	if !layout.IsManifestOrIndex(a.MediaType) {
		return fail("referrer", wrapf(ErrBinding, "a signing artifact must be a manifest or index, this is %q", a.MediaType))
	}
	raw, err := v.read(ctx, a)
	if err != nil {
		return fail("referrer", fmt.Errorf("%w: %w", ErrBinding, err))
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fail("referrer", wrapf(ErrBinding, "manifest: %v", err))
	}
	if ar.ArtifactType == "" {
		ar.ArtifactType = artifactTypeOf(&m)
	}
	// The binding: the subject field (or, for cosign tag objects, the tag).
	switch {
	case m.Subject != nil:
		if ar.Subject != "" && ar.Subject != m.Subject.Digest {
			return fail("referrer", wrapf(ErrBinding, "index.json says the subject is %s, the manifest's subject field says %s", ar.Subject, m.Subject.Digest))
		}
		ar.Subject = m.Subject.Digest
	case ar.Via == ViaCosignTag:
		sd, ok := SubjectFromCosignTag(ar.Tag)
		if !ok || sd != ar.Subject {
			return fail("cosign", wrapf(ErrBinding, "cosign tag %q does not name subject %s", ar.Tag, ar.Subject))
		}
	default:
		return fail("referrer", wrapf(ErrBinding, "the manifest has no subject field and is not a cosign tag object"))
	}
	if !v.carried[ar.Subject] {
		return fail("referrer", wrapf(ErrBinding, "its subject %s is not a manifest this bundle carries", ar.Subject))
	}
	ar.SubjectLabel = v.c.Manifests[ar.Subject]
	if ar.SubjectLabel == "" {
		ar.SubjectLabel = "artifact"
	}
	children, err := layout.Children(a.MediaType, raw)
	if err != nil {
		return fail("referrer", fmt.Errorf("%w: %w", ErrBinding, err))
	}
	if layout.IsIndex(a.MediaType) {
		// An index artifact: its children are carried and verified, and
		// bound through the index.
		for _, c := range children {
			if err := v.drain(ctx, c); err != nil {
				return fail("referrer", fmt.Errorf("%w: %w", ErrBinding, err))
			}
		}
		ar.Bound = true
		return ar, nil
	}
	if m.Config != nil {
		if err := v.drain(ctx, *m.Config); err != nil {
			return fail("referrer", fmt.Errorf("%w: config: %w", ErrBinding, err))
		}
	}
	switch {
	case ar.ArtifactType == ArtifactTypeSigstoreTrust:
		ar.Format = "sigstore-trust"
		if ar.Subject != v.c.Index.Digest {
			return fail("sigstore", wrapf(ErrBinding, "Sigstore trust material is attached to %s, not to the bundle index %s", ar.Subject, v.c.Index.Digest))
		}
		if v.rep.Sigstore != nil {
			return fail("sigstore", wrapf(ErrTrustData, "a second Sigstore trust artifact (the first is %s)", v.rep.Sigstore.Artifact))
		}
		if err := v.sigstoreTrust(ctx, a, &m); err != nil {
			return nil, err
		}
		ar.Bound = true
		ar.Verified = v.rep.Sigstore.Anchor == "pin" || v.rep.Sigstore.Anchor == "embedded"
		ar.Note = v.rep.Sigstore.Note
		return ar, nil
	case ar.ArtifactType == ArtifactTypeNotary:
		ar.Format = "notary"
		if v.manifests == nil {
			v.manifests = map[digest.Digest]*manifest{}
		}
		v.manifests[a.Digest] = &m
		// Role files are read and checked by the notary step.
	case ar.ArtifactType == ArtifactTypeNotation || (m.Config != nil && m.Config.MediaType == ArtifactTypeNotation):
		ar.Format = "notation"
	}
	for _, l := range m.Layers {
		switch {
		case ar.Format == "notary":
			continue
		case l.MediaType == MediaTypeCosignSimpleSigning:
			ar.Format = "cosign"
			payload, err := v.read(ctx, l)
			if err != nil {
				return fail("cosign", fmt.Errorf("%w: payload: %w", ErrBinding, err))
			}
			claim, err := checkSimpleSigning(payload, ar.Subject)
			if err != nil {
				return fail("cosign", err)
			}
			ms, err := messageSignature(payload, l.Annotations[AnnotationCosignSignature])
			if err != nil {
				return fail("cosign", wrapf(ErrSignature, "%v", err))
			}
			st, err := legacyBundle(l.Annotations, ms)
			if err != nil {
				return fail("cosign", wrapf(ErrSignature, "%v", err))
			}
			st.artifact = payload
			v.claim(ar, claim, v.record(ar, v.o.verifySigned(st)))
		case l.MediaType == MediaTypeDSSE || strings.HasPrefix(l.MediaType, MediaTypeDSSE):
			ar.Format = "cosign-attestation"
			raw, err := v.read(ctx, l)
			if err != nil {
				return fail("cosign", fmt.Errorf("%w: envelope: %w", ErrBinding, err))
			}
			env, err := dsseEnvelope(raw) // read once: bound to the subject, then verified
			if err != nil {
				return fail("cosign", wrapf(ErrBinding, "%v", err))
			}
			if ar.PredicateType, err = checkStatement(env.GetPayloadType(), env.GetPayload(), ar.Subject); err != nil {
				return fail("cosign", err)
			}
			if len(env.GetSignatures()) == 0 {
				return fail("cosign", wrapf(ErrSignature, "DSSE envelope has no signature"))
			}
			st, err := legacyBundle(l.Annotations, env)
			if err != nil {
				return fail("cosign", wrapf(ErrSignature, "%v", err))
			}
			st.digest = ar.Subject
			if v.record(ar, v.o.verifySigned(st)) {
				ar.forName = true // an attestation claims no name
			}
		case strings.HasPrefix(l.MediaType, MediaTypeSigstoreBundlePrefix):
			raw, err := v.read(ctx, l)
			if err != nil {
				return fail("cosign", fmt.Errorf("%w: sigstore bundle: %w", ErrBinding, err))
			}
			st, err := sigstoreBundle(raw)
			if err != nil {
				return fail("cosign", wrapf(ErrSignature, "%v", err))
			}
			st.digest = ar.Subject
			ar.Format = "cosign"
			if env := st.pb.GetDsseEnvelope(); env != nil {
				if ar.PredicateType, err = checkStatement(env.GetPayloadType(), env.GetPayload(), ar.Subject); err != nil {
					return fail("cosign", err)
				}
				if ar.PredicateType != PredicateCosignSign {
					ar.Format = "cosign-attestation"
				}
			}
			if v.record(ar, v.o.verifySigned(st)) {
				ar.forName = true // a bundle claims no name
			}
		case ar.Format == "notation" && l.MediaType == MediaTypeJWS:
			env, err := v.read(ctx, l)
			if err != nil {
				return fail("notation", fmt.Errorf("%w: envelope: %w", ErrBinding, err))
			}
			if err := checkNotationJWS(env, ar.Subject); err != nil {
				return fail("notation", err)
			}
			if len(v.o.notationRoots) == 0 {
				ar.Note = "targetArtifact checked; the signer's certificate chain is not verified (no --notation-cert)"
				break
			}
			if name, when, err := v.o.verifyNotationJWS(env); err != nil {
				ar.Note = "not verified: " + err.Error()
			} else {
				ar.Verified = true
				ar.forName = true // a notation payload claims no name
				ar.Keys = append(ar.Keys, name)
				ar.Note = "certificate chain (valid " + when + ") and signature verified against the notation trust store"
			}
		default:
			if ar.Format == "notation" && l.MediaType == MediaTypeCOSE {
				ar.Note = "COSE envelope: subject field checked only (COSE signatures are not verified)"
			}
			if err := v.drain(ctx, l); err != nil {
				return fail("referrer", fmt.Errorf("%w: layer: %w", ErrBinding, err))
			}
		}
	}
	ar.Bound = true
	return ar, nil
}

// record adds a sigstore-go outcome to ar and reports whether the
// signature verified.
func (v *verifier) record(ar *ArtifactReport, out sigstoreOutcome) bool {
	if out.verified {
		ar.Verified = true
		for _, k := range out.keys {
			if !slices.Contains(ar.Keys, k) {
				ar.Keys = append(ar.Keys, k)
			}
		}
		ar.verifiedBy = append(ar.verifiedBy, out.pubs...)
	}
	if out.signer != nil && (ar.Signer == nil || out.verified) {
		ar.Signer = out.signer
	}
	if !ar.Verified && out.note != "" {
		ar.Note = out.note
	}
	if out.verified {
		ar.Note = ""
	}
	return out.verified
}

// notary verifies one trust-data artifact.
func (v *verifier) notary(ctx context.Context, ar *ArtifactReport) error {
	m := v.manifests[ar.Digest]
	fail := func(err error) error {
		var se *Error
		if errors.As(err, &se) {
			if se.Artifact == "" {
				se.Artifact = ar.Digest
			}
			if se.Subject == "" {
				se.Subject = ar.Subject
			}
			return se
		}
		return &Error{Kind: "notary", Artifact: ar.Digest, Subject: ar.Subject, Err: err}
	}
	files, err := notaryFilesFrom(m, func(d ocispec.Descriptor) ([]byte, error) {
		b, err := v.read(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTrustData, d.Annotations[AnnotationNotaryRole], err)
		}
		return b, nil
	})
	if err != nil {
		return fail(err)
	}
	var exported time.Time
	if t, err := time.Parse(time.RFC3339, m.Annotations[AnnotationCreated]); err == nil {
		exported = t
	}
	info, err := v.o.verifyNotary(ctx, files, false, exported)
	if err != nil {
		return fail(err)
	}
	info.Artifact = ar.Digest
	var signed ocispec.Descriptor
	object := m.Annotations[AnnotationNotaryTargetObject]
	switch object {
	case TargetObjectBundleJSON, "":
		if ar.Subject != v.c.Index.Digest {
			return fail(&Error{Kind: "notary", GUN: info.GUN, Err: wrapf(ErrBinding, "trust data for bundle.json is attached to %s, not to the bundle index %s", ar.Subject, v.c.Index.Digest)})
		}
		signed = ocispec.Descriptor{Digest: digest.FromBytes(v.c.BundleJSON), Size: int64(len(v.c.BundleJSON))}
		object = TargetObjectBundleJSON
	case TargetObjectManifest:
		if m.Subject == nil {
			return fail(wrapf(ErrBinding, "trust data for a manifest has no subject"))
		}
		signed = ocispec.Descriptor{Digest: m.Subject.Digest, Size: m.Subject.Size}
	default:
		return fail(wrapf(ErrTrustData, "unknown target object %q", object))
	}
	if err := checkTarget(info, signed, object); err != nil {
		return fail(&Error{Kind: "notary", GUN: info.GUN, Role: info.TargetRole, Err: err})
	}
	info.Object, info.Subject = object, ar.Subject
	// The name: trust data vouches for its GUN and target only (names.go).
	if v.c.Names != nil {
		renamed, err := v.c.Names.bindNotary(ar.Subject, info.GUN, info.Target, v.o.allowRename)
		if err != nil {
			return fail(&Error{Kind: "notary", GUN: info.GUN, Role: info.TargetRole, Err: err})
		}
		if renamed {
			info.Renamed = true
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("notary GUN %s target %s: accepted for %s under another registry or prefix (--allow-rename)",
				info.GUN, info.Target, strings.Join(v.c.Names.Subjects[ar.Subject], ", ")))
		}
	}
	// Offline rollback protection (truststate.go).
	if err := v.o.trustState.Check(info); err != nil {
		return fail(err)
	}
	if object == TargetObjectBundleJSON {
		it, err := v.o.verifyInTotoTarget(ctx, info, files.targets, v.c.BundleJSON, true)
		if err != nil {
			file := "root.layout"
			if it != nil && it.Form == InTotoForm301 {
				file = "" // the message names the target at fault
			}
			return fail(&Error{Kind: "in-toto", GUN: info.GUN, Role: info.TargetRole, File: file, Err: err})
		}
		info.InToto = it
		if it != nil && it.Form == InTotoForm301 && !it.Verified {
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("notary GUN %s: the target references in-toto metadata as separate targets (CNAB 301: %s); their bytes were not carried (export with --in-toto-dir) and were not verified", info.GUN, strings.Join(it.References, ", ")))
		}
	} else if len(files.targets) > 0 {
		return fail(&Error{Kind: "notary", GUN: info.GUN, Err: wrapf(ErrTrustData, "trust data for a manifest carries target files")})
	}
	if len(info.Expired) > 0 {
		v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("notary GUN %s: accepted expired roles %s (--allow-expired)", info.GUN, strings.Join(info.Expired, ", ")))
	}
	if info.Anchor == "tofu" {
		v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("notary GUN %s: root key %s trusted on first use: this proves the bundle is what that root's keys signed, not who holds them", info.GUN, strings.Join(info.RootKeyIDs, ",")))
	}
	ar.Bound = true
	ar.Verified = true
	ar.Keys = info.RootKeyIDs
	v.rep.Notary = append(v.rep.Notary, info)
	sort.Slice(v.rep.Notary, func(i, j int) bool { return v.rep.Notary[i].GUN < v.rep.Notary[j].GUN })
	return nil
}
