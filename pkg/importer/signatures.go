package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// signingOptions are the import's signing settings.
type signingOptions struct {
	off    bool
	opts   []sigbundle.Option
	resign *NotaryResign
	// trustState is the file that remembers accepted Notary versions.
	trustState string
}

// WithTrustState keeps offline rollback protection in the file at path
// (sigbundle.TrustState): Notary trust data older than what an earlier
// import accepted for the same GUN is refused before anything is pushed,
// and after a successful import the file remembers the versions accepted.
// A file that does not exist yet starts empty. The default keeps no state.
func WithTrustState(path string) Option {
	return func(o *options) error {
		if path == "" {
			return errors.New("import: empty trust state path")
		}
		o.signing.trustState = path
		return nil
	}
}

// NotaryResign asks Import to publish the verified Notary target under the
// relocated bundle's GUN on a destination Notary server, with the keys in
// TrustDir (see sigbundle.ResignRequest).
type NotaryResign struct {
	Server     string
	TrustDir   string
	Passphrase func(role string) (string, error)
	// Options are sigbundle options for the destination (its transport).
	Options []sigbundle.Option
}

// WithSignatures turns offline verification and re-publication of the
// archive's signing evidence on or off. The default is on; off pushes the
// bundle without its signing artifacts and says so in the result.
func WithSignatures(b bool) Option {
	return func(o *options) error { o.signing.off = !b; return nil }
}

// WithSigningOptions passes options to sigbundle.Verify: trust anchors
// (WithNotaryPin, WithNotaryCA, WithNotaryTOFU), WithAllowExpired,
// WithInTotoInspections, WithCosignKey, WithRequireSignatures.
func WithSigningOptions(opts ...sigbundle.Option) Option {
	return func(o *options) error { o.signing.opts = append(o.signing.opts, opts...); return nil }
}

// WithNotaryResign re-signs the verified Notary target at a destination
// Notary server after the push. The default is none.
func WithNotaryResign(r NotaryResign) Option {
	return func(o *options) error {
		if r.Server == "" || r.TrustDir == "" {
			return errors.New("import: Notary re-signing needs a server and a trust directory")
		}
		o.signing.resign = &r
		return nil
	}
}

// SignatureResult describes what happened to the signing evidence.
type SignatureResult struct {
	// Skipped is true with WithSignatures(false): nothing was verified or
	// pushed.
	Skipped bool `json:"skipped,omitempty"`
	// Report is the offline verification.
	Report *sigbundle.Report `json:"report,omitempty"`
	// Pushed and Present count artifact manifests written to or found at
	// the target (one per artifact and repository); Tags counts cosign
	// tags written (a tag already naming the carried object, or one holding
	// all its signatures, is not written again), and TagsMerged those of
	// them that keep signatures the target already had.
	Pushed     int64 `json:"pushed"`
	Present    int64 `json:"present"`
	Tags       int64 `json:"tags"`
	TagsMerged int64 `json:"tagsMerged,omitempty"`
	// Resigned lists Notary targets re-signed at the destination.
	Resigned []*sigbundle.ResignResult `json:"resigned,omitempty"`
	// TrustState is the trust state file updated with the Notary versions
	// accepted (WithTrustState).
	TrustState string `json:"trustState,omitempty"`
}

// signingPlan is where each artifact goes at the target, parents first.
type signingPlan struct {
	res   *SignatureResult
	steps []signingStep
}

type signingStep struct {
	repo     string
	artifact ocispec.Descriptor
	children []*archive.Node // manifests inside an index artifact, deepest first
	tag      string          // cosign tag to recreate
}

// verifySignatures runs the offline verification before anything is
// pushed and plans where each artifact goes: into every repository that
// holds its subject, after it.
func verifySignatures(ctx context.Context, o *options, b *archive.Bundle, p *pushPlan, res *Result) (*signingPlan, error) {
	sp := &signingPlan{res: &SignatureResult{}}
	res.Signatures = sp.res
	arts := b.SigningArtifacts()
	if o.signing.off {
		sp.res.Skipped = true
		if len(arts) > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("signatures were not verified and %d signing artifacts were not pushed (--no-signatures)", len(arts)))
		}
		return sp, nil
	}
	o.Progress.Emit(progress.Event{Phase: progress.PhaseSignatures, State: progress.StateStarted, Count: len(arts)})
	opts := o.signing.opts
	if o.signing.trustState != "" {
		st, err := sigbundle.ReadTrustState(o.signing.trustState)
		if err != nil {
			return nil, err
		}
		opts = append(slices.Clone(opts), sigbundle.WithTrustState(st))
	}
	rep, err := b.VerifySignatures(ctx, opts...)
	if err != nil {
		return nil, err
	}
	sp.res.Report = rep
	res.Warnings = append(res.Warnings, rep.Warnings...)
	if o.signing.resign != nil && len(rep.Notary) == 0 {
		return nil, errors.New("notary re-sign: the archive carries no Notary trust data to re-sign")
	}

	// Place artifacts whose subject is placed, until none is left.
	holds := map[digest.Digest][]string{}
	for r, nodes := range p.repoNodes {
		for d := range nodes {
			holds[d] = append(holds[d], r)
		}
	}
	left := slices.Clone(arts)
	for len(left) > 0 {
		var next []ocispec.Descriptor
		progressed := false
		for _, a := range left {
			subject := digest.Digest(a.Annotations[layout.AnnotationSubject])
			repos := holds[subject]
			if len(repos) == 0 {
				next = append(next, a)
				continue
			}
			progressed = true
			sort.Strings(repos)
			for _, r := range repos {
				step := signingStep{repo: r, artifact: a}
				if a.Annotations[sigbundle.AnnotationVia] == sigbundle.ViaCosignTag {
					step.tag = layout.CosignTag(a)
				}
				all := &archive.ImageEntry{}
				b.Closure(all, a.Digest)
				for _, d := range all.Blobs {
					p.repoBlobs[r][d] = true
				}
				for _, d := range all.Manifests {
					if d != a.Digest {
						step.children = append(step.children, b.Nodes[d])
					}
				}
				sort.Slice(step.children, func(i, j int) bool { return step.children[i].Height < step.children[j].Height })
				sp.steps = append(sp.steps, step)
				if !slices.Contains(holds[a.Digest], r) {
					holds[a.Digest] = append(holds[a.Digest], r)
				}
			}
		}
		if !progressed {
			var ds []string
			for _, a := range next {
				ds = append(ds, a.Digest.String())
			}
			return nil, fmt.Errorf("%w: signing artifacts %s have subjects that are not pushed", archive.ErrInvalidArchive, strings.Join(ds, ", "))
		}
		left = next
	}
	o.Progress.Emit(progress.Event{Phase: progress.PhaseSignatures, State: progress.StateDone, Count: len(arts)})
	return sp, nil
}

// pushSignatures pushes each artifact after its subject, one at a time so
// that fallback tag indexes are updated without lost writes, and recreates
// cosign tags.
func (im *importer) pushSignatures(ctx context.Context) error {
	if im.sig == nil {
		return nil
	}
	for _, s := range im.sig.steps {
		repo, store := im.p.repos[s.repo].Name(), im.p.stores[s.repo]
		for _, c := range s.children {
			if err := im.putManifest(ctx, repo, store, c.Desc, c.Raw, ""); err != nil {
				return err
			}
		}
		n := im.b.Nodes[s.artifact.Digest]
		if n == nil {
			return fmt.Errorf("%w: signing artifact %s is not loaded", archive.ErrInvalidArchive, s.artifact.Digest)
		}
		if err := im.putManifest(ctx, repo, store, n.Desc, n.Raw, s.tag); err != nil {
			return err
		}
		im.o.Progress.Emit(progress.Event{Phase: progress.PhaseSignatures, State: progress.StateDone, Item: repo + "@" + s.artifact.Digest.String(), Bytes: n.Desc.Size})
	}
	return nil
}

// putManifest writes a manifest into the store of repository repo by
// digest (a registry's put of a referrer updates the subject's fallback tag
// when it has no Referrers API), or by tag.
func (im *importer) putManifest(ctx context.Context, repo string, store Repository, d ocispec.Descriptor, raw []byte, tag string) error {
	if tag != "" {
		return im.putCosignTag(ctx, repo, store, d, raw, tag) // cosigntag.go
	}
	ref := repo + "@" + d.Digest.String()
	exists, err := store.Exists(ctx, d)
	if err != nil {
		return fmt.Errorf("signing artifact %s: %w", ref, err)
	}
	if exists {
		// Present; but a run that stopped between the manifest and its
		// fallback tag update left it unlisted: then put it again (the
		// put updates the listing).
		listed, err := listed(ctx, store, raw, d.Digest)
		if err != nil {
			return fmt.Errorf("signing artifact %s: %w", ref, err)
		}
		if listed {
			atomic.AddInt64(&im.sig.res.Present, 1)
			return nil
		}
	}
	if err := store.Push(ctx, d, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("signing artifact %s: %w", ref, err)
	}
	atomic.AddInt64(&im.sig.res.Pushed, 1)
	return nil
}

// listed reports whether a manifest with a subject is in its subject's
// referrers listing in store (a registry's Referrers API or fallback tag).
// Manifests without a subject count as listed, and so does every manifest
// of a store that lists no referrers.
func listed(ctx context.Context, store Repository, raw []byte, d digest.Digest) (bool, error) {
	var m struct {
		Subject *ocispec.Descriptor `json:"subject"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Subject == nil {
		return true, nil //nolint:nilerr // not a manifest with a subject: nothing to list (the archive's check parsed it)
	}
	rl, ok := store.(content.ReferrerLister)
	if !ok {
		return true, nil
	}
	refs, err := rl.Referrers(ctx, *m.Subject, "")
	if err != nil {
		return false, err
	}
	for _, r := range refs {
		if r.Digest == d {
			return true, nil
		}
	}
	return false, nil
}

// resign publishes the verified Notary targets under the relocated GUNs:
// the bundle's target under the relocated bundle repository (named by the
// bundle tag there), each image's target under its relocated repository
// and tag (naming preserve or flatten; bundle-repo gives images no tag).
func (im *importer) resign(ctx context.Context) error {
	r := im.o.signing.resign
	if r == nil || im.sig == nil || im.sig.res.Report == nil {
		return nil
	}
	for _, n := range im.sig.res.Report.Notary {
		t := *n
		var repo name.Repository
		switch n.Object {
		case sigbundle.TargetObjectManifest:
			ref := ""
			for _, e := range im.b.Images {
				if e.Desc.Digest == n.Subject {
					ref = e.Ref
					break
				}
			}
			rs, ok := im.p.names.ImageRepos[ref]
			if !ok {
				return fmt.Errorf("notary re-sign: GUN %s target %s signs %s, which is no image of this bundle", n.GUN, n.Target, n.Subject)
			}
			// Notary targets are tags. Under bundle-repo naming images share
			// the bundle's repository without tags of their own, and their
			// tags would collide there.
			tag := im.p.names.ImageTags[ref]
			if tag == "" {
				im.res.Warnings = append(im.res.Warnings, fmt.Sprintf("notary re-sign: %s (GUN %s target %s) was not re-signed: with --naming %s the image keeps no tag of its own at the target; use --naming preserve or flatten", ref, n.GUN, n.Target, im.o.naming))
				continue
			}
			repo = im.p.repos[rs]
			t.Target = tag
		default:
			repo = im.p.bundleTag.Context()
			t.Target = im.p.bundleTag.TagStr()
		}
		out, err := sigbundle.Resign(ctx, sigbundle.ResignRequest{Server: r.Server, GUN: sigbundle.GUN(repo), TrustDir: r.TrustDir, Target: &t, Passphrase: r.Passphrase}, r.Options...)
		if err != nil {
			return err
		}
		im.sig.res.Resigned = append(im.sig.res.Resigned, out)
	}
	return nil
}

// recordTrust raises the trust state file to the Notary versions this
// import accepted, once everything is pushed and verified at the target.
func (im *importer) recordTrust() error {
	path := im.o.signing.trustState
	if path == "" || im.sig == nil || im.sig.res.Report == nil {
		return nil
	}
	if err := sigbundle.RecordTrustState(path, im.sig.res.Report, time.Now()); err != nil {
		return fmt.Errorf("the bundle was pushed, but the trust state was not updated: %w", err)
	}
	im.sig.res.TrustState = path
	return nil
}
