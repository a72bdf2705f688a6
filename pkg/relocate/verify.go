package relocate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/internal/opts"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// ErrRelocation is returned (wrapped, with every problem found) when a
// relocation does not verify: a mapping key or value is missing or wrong,
// a reference does not resolve to its contentDigest, a manifest does not
// hash to its digest, or a blob is missing or has the wrong size.
var ErrRelocation = errdefs.New("relocation does not verify", errdefs.ErrVerification)

// AuditRequest says what Audit checks.
type AuditRequest struct {
	// Images are the images of bundle.json (see ParseBundle). Every
	// relocatable image needs a mapping key; its ContentDigest is what the
	// mapped reference must resolve to. An image without ContentDigest
	// (exported with --allow-missing-digest) must be given the digest the
	// archive carries.
	Images []Image
	// Mapping is the relocation mapping under audit.
	Mapping Mapping
	// Target, when its Registry is set, is where every mapped reference
	// must live (REGISTRY/PREFIX).
	Target Target
	// Bundle, when set, is the bundle index expected at the target.
	Bundle *AuditBundle
	// Absent are the manifests the relocation deliberately left out (the
	// platforms an export with --platform did not carry): an index's
	// children named here are not looked for at the target.
	Absent map[digest.Digest]bool
}

// AuditBundle is the bundle's own index at the target.
type AuditBundle struct {
	// Repository is the full repository name (registry/path).
	Repository string
	// Tag, if set, must resolve to Digest.
	Tag string
	// Digest is the bundle index digest.
	Digest digest.Digest
}

// AuditImage is the result for one image.
type AuditImage struct {
	// Reference is the exact `image` string of bundle.json.
	Reference string `json:"reference"`
	// Relocated is the mapped reference ("" when the key is missing).
	Relocated string `json:"relocated"`
	// Digest is the contentDigest the relocated reference must resolve to.
	Digest string `json:"digest"`
	// Manifests, Blobs and Bytes describe the closure found at the target.
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	// OK is true when the image verified; Problems says what did not.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// AuditReport is the result of Audit.
type AuditReport struct {
	// Target is REGISTRY[/PREFIX] ("" when not given).
	Target string       `json:"target,omitempty"`
	Images []AuditImage `json:"images"`
	// Bundle is the bundle index reference checked ("" when not asked).
	Bundle string `json:"bundle,omitempty"`
	// Manifests, Blobs and Bytes count distinct content checked, each
	// (repository, digest) pair once.
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	// OK is true when everything verified. Problems lists every failure,
	// each naming the image, reference or blob at fault.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// AuditOption configures Audit.
type AuditOption func(*auditOptions) error

type auditOptions struct {
	opts.Common // client, jobs, logger, progress
	maxMetadata int64
}

// WithAuditClient sets the registry client. The default verifies TLS and
// takes credentials from the docker config.
func WithAuditClient(c *registry.Client) AuditOption {
	return func(o *auditOptions) error { return o.SetClient("audit", c) }
}

// WithAuditJobs bounds concurrent blob checks. The default is 6.
func WithAuditJobs(n int) AuditOption {
	return func(o *auditOptions) error { return o.SetJobs("audit", n) }
}

// WithAuditLogger sets the logger. The default discards.
func WithAuditLogger(l *slog.Logger) AuditOption {
	return func(o *auditOptions) error { o.SetLogger(l); return nil }
}

// WithAuditProgress receives progress events: PhaseManifests for each
// manifest read, PhaseBlobs for each blob checked (its size counts as
// done). The default is none.
func WithAuditProgress(f progress.Func) AuditOption {
	return func(o *auditOptions) error { o.Progress = f; return nil }
}

// Audit checks a relocation at the registry, typically any day after an
// import: the mapping has a key for every relocatable image of bundle.json
// and no other; every value lies under the target (when given) and
// resolves to the image's contentDigest; every manifest and index below it
// is served with bytes hashing to its digest; every blob is present with
// its declared size. With req.Bundle, the bundle's index (and its tag)
// is checked the same way.
//
// It returns a report whenever the audit could run. Problems are collected,
// not fatal: the error then wraps ErrRelocation. Failures that are not about
// the content (network, authentication) are returned as they are.
func Audit(ctx context.Context, req AuditRequest, opts ...AuditOption) (*AuditReport, error) {
	o := &auditOptions{maxMetadata: 8 << 20}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if err := o.Defaults(); err != nil {
		return nil, err
	}
	a := &auditor{o: o, rep: &AuditReport{Target: req.Target.String()}, manifests: map[string]bool{}, blobs: map[string]blobCheck{}, absent: req.Absent}
	if req.Target.Registry == "" {
		a.rep.Target = ""
	}

	// The key set: every relocatable image string, nothing else.
	want := map[string]bool{}
	for _, img := range req.Images {
		if img.Relocatable() {
			want[img.Ref] = true
		}
	}
	for _, k := range sortedMapKeys(req.Mapping) {
		if !want[k] {
			a.problem(nil, "mapping key %q is not an image of bundle.json", k)
		}
	}
	seen := map[string]bool{}
	var pending []Image
	for _, img := range req.Images {
		if !img.Relocatable() || seen[img.Ref] {
			continue
		}
		seen[img.Ref] = true
		pending = append(pending, img)
		a.rep.Images = append(a.rep.Images, AuditImage{Reference: img.Ref, Relocated: req.Mapping[img.Ref], Digest: img.ContentDigest.String()})
	}
	for i, img := range pending {
		if err := a.image(ctx, req, img, &a.rep.Images[i]); err != nil {
			return nil, err
		}
	}
	if req.Bundle != nil {
		if err := a.bundle(ctx, *req.Bundle); err != nil {
			return nil, err
		}
	}
	if err := a.checkBlobs(ctx); err != nil {
		return nil, err
	}
	a.rep.OK = len(a.rep.Problems) == 0
	for i := range a.rep.Images {
		a.rep.Images[i].OK = len(a.rep.Images[i].Problems) == 0
	}
	if !a.rep.OK {
		return a.rep, fmt.Errorf("%w: %d problems, first: %s", ErrRelocation, len(a.rep.Problems), a.rep.Problems[0])
	}
	return a.rep, nil
}

type blobCheck struct {
	repo   name.Repository
	d      digest.Digest
	size   int64
	owners []*AuditImage
}

type auditor struct {
	o         *auditOptions
	mu        sync.Mutex
	rep       *AuditReport
	manifests map[string]bool      // repo@digest walked
	blobs     map[string]blobCheck // repo@digest to HEAD
	absent    map[digest.Digest]bool
}

// problem records a failure, on the image when one is given.
func (a *auditor) problem(owners []*AuditImage, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rep.Problems = append(a.rep.Problems, msg)
	for _, ir := range owners {
		ir.Problems = append(ir.Problems, msg)
	}
}

func (a *auditor) image(ctx context.Context, req AuditRequest, img Image, ir *AuditImage) error {
	owner := []*AuditImage{ir}
	label := fmt.Sprintf("%s (%s)", img.Label(), img.Ref)
	if ir.Relocated == "" {
		a.problem(owner, "%s: no mapping key", label)
		return nil
	}
	if img.ContentDigest == "" {
		a.problem(owner, "%s: no contentDigest to check %s against", label, ir.Relocated)
		return nil
	}
	ref, err := a.o.Client.ParseReference(ir.Relocated)
	if err != nil {
		a.problem(owner, "%s: mapped to %q: %v", label, ir.Relocated, err)
		return nil
	}
	if req.Target.Registry != "" && !under(ref.Context(), req.Target) {
		a.problem(owner, "%s: %s is not under the target %s", label, ir.Relocated, req.Target)
	}
	if dref, ok := ref.(name.Digest); ok && dref.DigestStr() != img.ContentDigest.String() {
		a.problem(owner, "%s: mapped to %s, whose digest is not the contentDigest %s", label, ir.Relocated, img.ContentDigest)
		return nil
	}
	if tag, ok := ref.(name.Tag); ok {
		// A tag value (allowed by CNAB 103) must resolve to contentDigest.
		got, err := a.o.Client.Puller().Head(ctx, tag)
		if err != nil {
			if registry.IsNotFound(err) {
				a.problem(owner, "%s: %s not found at the target", label, ir.Relocated)
				return nil
			}
			return fmt.Errorf("%s: %s: %w", label, ir.Relocated, err)
		}
		if got.Digest.String() != img.ContentDigest.String() {
			a.problem(owner, "%s: %s resolves to %s, contentDigest is %s", label, ir.Relocated, got.Digest, img.ContentDigest)
			return nil
		}
	}
	return a.walk(ctx, ref.Context(), ocispec.Descriptor{MediaType: img.MediaType, Digest: img.ContentDigest, Size: -1}, owner, label)
}

func (a *auditor) bundle(ctx context.Context, b AuditBundle) error {
	repo, err := a.o.Client.Repository(b.Repository)
	if err != nil {
		return err
	}
	a.rep.Bundle = repo.Name() + "@" + b.Digest.String()
	label := "bundle " + a.rep.Bundle
	if b.Tag != "" {
		tag, err := a.o.Client.Tag(repo, b.Tag)
		if err != nil {
			return err
		}
		a.rep.Bundle = tag.String()
		got, err := a.o.Client.Puller().Head(ctx, tag)
		switch {
		case registry.IsNotFound(err):
			a.problem(nil, "bundle tag %s not found at the target", tag)
		case err != nil:
			return fmt.Errorf("bundle tag %s: %w", tag, err)
		case got.Digest.String() != b.Digest.String():
			a.problem(nil, "bundle tag %s resolves to %s, the archive's bundle index is %s", tag, got.Digest, b.Digest)
		}
	}
	return a.walk(ctx, repo, ocispec.Descriptor{Digest: b.Digest, Size: -1}, nil, label)
}

// walk reads the graph below root in repo through the registry store:
// every manifest and index is fetched and checked against its digest (the
// shared graph walk of pkg/content), its children visited; blobs are queued
// for checkBlobs. What the target serves wrong, or not at all, is a problem
// of the images in owners; a failure to talk to the target is returned.
func (a *auditor) walk(ctx context.Context, repo name.Repository, root ocispec.Descriptor, owners []*AuditImage, label string) error {
	store := a.o.Client.Store(repo)
	opts := content.WalkOptions{
		Concurrency:      1,
		MaxManifestBytes: a.o.maxMetadata,
		// Children are read by the media type the content declares; a
		// disagreement with the descriptor is reported by visit.
		Successors: content.ChildrenByContent,
		// A manifest is walked once per repository, whichever image reaches it first.
		PreVisit: func(_ context.Context, d ocispec.Descriptor, depth int) error {
			if depth > 0 && a.absent[d.Digest] {
				return content.ErrSkip // left out by design
			}
			if depth > 0 && !layout.IsManifestOrIndex(d.MediaType) {
				return nil
			}
			key := repo.Name() + "@" + d.Digest.String()
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.manifests[key] {
				return content.ErrSkip
			}
			a.manifests[key] = true
			return nil
		},
		OnError: func(d ocispec.Descriptor, err error) error {
			ref := repo.Name() + "@" + d.Digest.String()
			switch {
			case errors.Is(err, errdefs.ErrNotFound):
				a.problem(owners, "%s: manifest %s not found at the target", label, ref)
			case errors.Is(err, errdefs.ErrVerification), errors.Is(err, errdefs.ErrInvalidInput):
				a.problem(owners, "%s: %s: %v", label, ref, err)
			default:
				return fmt.Errorf("%s: manifest %s: %w", label, ref, err)
			}
			return nil
		},
	}
	return content.Walk(ctx, store, []ocispec.Descriptor{root}, opts, func(_ context.Context, n content.Node) error {
		if !n.IsManifest() {
			a.queueBlob(repo, n.Desc, owners)
			return nil
		}
		ref := repo.Name() + "@" + n.Desc.Digest.String()
		a.o.Progress.Emit(progress.Event{Phase: progress.PhaseManifests, State: progress.StateDone, Item: ref, Bytes: int64(len(n.Raw))})
		if actual := layout.MediaTypeOf(n.Raw); actual != "" && n.Desc.MediaType != actual {
			a.problem(owners, "%s: manifest %s is a %s, expected %s", label, ref, actual, n.Desc.MediaType)
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.rep.Manifests++
		a.rep.Bytes += int64(len(n.Raw))
		for _, ir := range owners {
			ir.Manifests++
			ir.Bytes += int64(len(n.Raw))
		}
		return nil
	})
}

// queueBlob records that blob d must be in repo, for the images in owners.
func (a *auditor) queueBlob(repo name.Repository, d ocispec.Descriptor, owners []*AuditImage) {
	bkey := repo.Name() + "@" + d.Digest.String()
	a.mu.Lock()
	defer a.mu.Unlock()
	bc, ok := a.blobs[bkey]
	if !ok {
		bc = blobCheck{repo: repo, d: d.Digest, size: d.Size}
	}
	bc.owners = append(bc.owners, owners...)
	a.blobs[bkey] = bc
}

// checkBlobs asks the target for every queued blob, in parallel.
func (a *auditor) checkBlobs(ctx context.Context) error {
	keys := sortedMapKeys(a.blobs)
	var total int64
	for _, k := range keys {
		total += a.blobs[k].size
	}
	a.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateTotal, Total: total, Count: len(keys)})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.o.Jobs)
	for _, k := range keys {
		bc := a.blobs[k]
		g.Go(func() error {
			size, ok, err := a.o.Client.StatBlob(gctx, bc.repo, bc.d)
			if err != nil {
				return fmt.Errorf("blob %s in %s: %w", bc.d, bc.repo, err)
			}
			a.mu.Lock()
			a.rep.Blobs++
			for _, ir := range uniqueOwners(bc.owners) {
				ir.Blobs++
				ir.Bytes += bc.size
			}
			if ok {
				a.rep.Bytes += bc.size
			}
			a.mu.Unlock()
			switch {
			case !ok:
				a.problem(uniqueOwners(bc.owners), "blob %s is missing from %s", bc.d, bc.repo)
			case size >= 0 && size != bc.size:
				a.problem(uniqueOwners(bc.owners), "blob %s in %s is %d bytes, its descriptor says %d", bc.d, bc.repo, size, bc.size)
			}
			a.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone, Item: bc.d.String(), Bytes: bc.size})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	a.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone})
	sort.Strings(a.rep.Problems)
	return nil
}

func uniqueOwners(in []*AuditImage) []*AuditImage {
	var out []*AuditImage
	for _, ir := range in {
		dup := false
		for _, o := range out {
			if o == ir {
				dup = true
			}
		}
		if !dup {
			out = append(out, ir)
		}
	}
	return out
}

// under reports whether repo lies under the target REGISTRY/PREFIX.
func under(repo name.Repository, t Target) bool {
	if repo.RegistryStr() != t.Registry && repo.Registry.Name() != t.Registry {
		return false
	}
	return t.Prefix == "" || strings.HasPrefix(repo.RepositoryStr()+"/", t.Prefix+"/")
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
