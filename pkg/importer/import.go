package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/internal/opts"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// ErrVerification: after pushing, the target does not serve what was pushed.
var ErrVerification = errdefs.New("relocation verification failed", errdefs.ErrVerification)

// Option configures an import.
type Option func(*options) error

type options struct {
	opts.Common // client, jobs, logger, progress
	naming      relocate.Naming
	limits      relocate.Limits
	dryRun      bool
	open        layout.OpenOptions
	signing     signingOptions // verification and re-publication of signing artifacts (signatures.go)
	// archiveKey checks the archive's own signature first (archivesig.go).
	archiveKey *ArchiveKey
	// target replaces the registry as the destination (target.go).
	target Target
}

// WithClient sets the registry client. Default: TLS verified, docker config credentials.
func WithClient(c *registry.Client) Option {
	return func(o *options) error { return o.SetClient("import", c) }
}

// WithJobs bounds concurrent uploads. The default is 6.
func WithJobs(n int) Option {
	return func(o *options) error { return o.SetJobs("import", n) }
}

// WithProgress receives progress events. The default is none.
func WithProgress(f progress.Func) Option {
	return func(o *options) error { o.Progress = f; return nil }
}

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.SetLogger(l); return nil }
}

// WithNaming chooses the naming strategy. The default is bundle-repo.
func WithNaming(n relocate.Naming) Option { return func(o *options) error { o.naming = n; return nil } }

// WithNameLimits constrains target repository names.
func WithNameLimits(l relocate.Limits) Option {
	return func(o *options) error { o.limits = l; return nil }
}

// WithDryRun plans the import and asks the target what it already has, but
// pushes nothing and writes no mapping.
func WithDryRun(b bool) Option { return func(o *options) error { o.dryRun = b; return nil } }

// WithOpenOptions sets archive limits and the temporary directory.
func WithOpenOptions(oo layout.OpenOptions) Option {
	return func(o *options) error { o.open = oo; return nil }
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{naming: relocate.NamingBundleRepo}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if err := o.Defaults(); err != nil {
		return nil, err
	}
	return o, nil
}

// destination returns the target: WithTarget's, or the registry's.
func (o *options) destination() Target {
	if o.target != nil {
		return o.target
	}
	return registryTarget{o.Client}
}

// load opens and checks the archive at path (Load) with the open options;
// with WithArchiveKey its signature is checked first, over the bytes Load
// then parses (archivesig.go).
func (o *options) load(ctx context.Context, path string) (*archive.Bundle, *ArchiveSignature, error) {
	oo := o.open
	var as *ArchiveSignature
	if o.archiveKey != nil {
		var err error
		if oo, as, err = o.archiveKey.CheckOnOpen(path, oo); err != nil {
			return nil, nil, err
		}
	}
	b, err := archive.Load(ctx, path, oo)
	if err != nil {
		return nil, nil, err
	}
	return b, as, nil
}

// Request says what to import where.
type Request struct {
	// Archive is the path of the archive.
	Archive string
	// Target is REGISTRY[/PREFIX].
	Target string
	// MappingPath is where relocation-mapping.json is written ("" : none).
	MappingPath string
}

// Image is one relocated image.
type Image struct {
	Role      string `json:"role"`
	Name      string `json:"name"`
	Reference string `json:"reference"`
	Relocated string `json:"relocated"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
}

// Result describes an import.
type Result struct {
	archive.BundleID
	// BundleReference is the bundle's tag at the target.
	BundleReference string           `json:"bundleReference"`
	Images          []Image          `json:"images"`
	Mapping         relocate.Mapping `json:"mapping"`
	MappingFile     string           `json:"mappingFile,omitempty"`
	// ArchiveSignature is the archive signature checked (WithArchiveKey).
	ArchiveSignature *ArchiveSignature `json:"archiveSignature,omitempty"`
	Counts
	DryRun   bool          `json:"dryRun,omitempty"`
	Duration time.Duration `json:"duration"`
	Warnings []string      `json:"warnings,omitempty"`
	// Signatures reports the verification and re-publication of signing
	// artifacts (signatures.go).
	Signatures *SignatureResult `json:"signatures,omitempty"`
	// Bundles reports every bundle of an archive of several, the primary
	// first; the fields above are then the primary's, with the transfer
	// counts and warnings of the whole import (bundles.go).
	Bundles []BundleResult `json:"bundles,omitempty"`
}

// Counts say what an import did with each blob and manifest.
type Counts struct {
	// BlobsUploaded and BytesUploaded: blobs sent (with WithDryRun, that
	// would be sent), and their size.
	BlobsUploaded int64 `json:"blobsUploaded"`
	BytesUploaded int64 `json:"bytesUploaded"`
	// BlobsSkipped and BytesSkipped: blobs the target already had.
	BlobsSkipped int64 `json:"blobsSkipped"`
	BytesSkipped int64 `json:"bytesSkipped"`
	// BlobsMounted: blobs linked from another repository of the target
	// instead of sent.
	BlobsMounted int64 `json:"blobsMounted"`
	// ManifestsPushed and ManifestsSkipped: manifests and indexes written
	// (one per repository), and those already present.
	ManifestsPushed  int64 `json:"manifestsPushed"`
	ManifestsSkipped int64 `json:"manifestsSkipped"`
}

// add adds o to c.
func (c *Counts) add(o Counts) {
	c.BlobsUploaded += o.BlobsUploaded
	c.BytesUploaded += o.BytesUploaded
	c.BlobsSkipped += o.BlobsSkipped
	c.BytesSkipped += o.BytesSkipped
	c.BlobsMounted += o.BlobsMounted
	c.ManifestsPushed += o.ManifestsPushed
	c.ManifestsSkipped += o.ManifestsSkipped
}

// Import checks the archive completely, then pushes it to the target and
// writes the relocation mapping. A failure at any point leaves no tag that
// points at incomplete content and no mapping file.
func Import(ctx context.Context, req Request, opts ...Option) (*Result, error) {
	start := time.Now()
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	target, err := relocate.ParseTarget(req.Target)
	if err != nil {
		return nil, err
	}
	o.Progress.Emit(progress.Event{Phase: progress.PhasePlan, State: progress.StateStarted})
	b, as, err := o.load(ctx, req.Archive)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if len(b.Others) > 0 {
		res, err := importAll(ctx, o, b, target, req.MappingPath) // bundles.go
		if err != nil {
			return nil, err
		}
		res.ArchiveSignature = as
		res.Duration = time.Since(start)
		return res, nil
	}
	im, err := planBundle(ctx, o, b, target)
	if err == nil {
		err = im.run(ctx, req.MappingPath)
	}
	if err != nil {
		return nil, fmt.Errorf("import of bundle %s into %s: %w", b.Bundle.Name, target, err)
	}
	im.res.ArchiveSignature = as
	im.res.Duration = time.Since(start)
	return im.res, nil
}

type pushPlan struct {
	names *relocate.Plan
	// repoBlobs and repoNodes: what each repository must hold.
	repoBlobs map[string]map[digest.Digest]bool
	repoNodes map[string]map[digest.Digest]bool
	repos     map[string]name.Repository
	// stores are the target's stores of those repositories (target.go).
	stores map[string]Repository
	// tags per repository: tag -> manifest digest, bundle tag kept apart.
	tags      map[string]map[string]digest.Digest
	bundleTag name.Tag
	// delta says, per repository, where each blob a delta archive does not
	// carry comes from: "" (present) or a repository to mount it from (delta.go).
	delta map[string]map[digest.Digest]string
}

// planBundle plans the import of one bundle: the target's names, what each
// repository must hold, the offline verification of its signing evidence
// and a delta's base; with WithDryRun also what the target lacks. Nothing
// is pushed.
func planBundle(ctx context.Context, o *options, b *archive.Bundle, target relocate.Target) (*importer, error) {
	var imgs []relocate.Image
	for _, e := range b.Images {
		imgs = append(imgs, e.Image)
	}
	names, err := relocate.PlanNames(target, o.naming, b.RepoPath, imgs, o.limits)
	if err != nil {
		return nil, err
	}
	// One conversation with the target before any blob (TLS, plain HTTP,
	// credentials): a registry that refuses the client fails here once,
	// not once per blob. Names are refused before, without contacting it.
	if o.target == nil {
		if err := o.Client.Check(ctx, target.Registry); err != nil {
			return nil, err
		}
	}
	dest := o.destination()
	p := &pushPlan{names: names, repoBlobs: map[string]map[digest.Digest]bool{}, repoNodes: map[string]map[digest.Digest]bool{},
		repos: map[string]name.Repository{}, stores: map[string]Repository{}, tags: map[string]map[string]digest.Digest{}}
	addRepo := func(r string) error {
		if _, ok := p.repos[r]; ok {
			return nil
		}
		repo, err := o.Client.Repository(r)
		if err != nil {
			return err
		}
		if p.stores[r], err = dest.Repository(repo.Name()); err != nil {
			return err
		}
		p.repos[r] = repo
		p.repoBlobs[r] = map[digest.Digest]bool{}
		p.repoNodes[r] = map[digest.Digest]bool{}
		p.tags[r] = map[string]digest.Digest{}
		return nil
	}
	if err := addRepo(names.BundleRepo); err != nil {
		return nil, err
	}
	// The bundle repository holds everything: the bundle index refers to
	// every image by digest, and registries resolve children per repository.
	all := &archive.ImageEntry{}
	b.Closure(all, b.Index.Digest)
	for _, e := range b.Images {
		b.Closure(all, e.Desc.Digest)
	}
	for _, d := range all.Manifests {
		p.repoNodes[names.BundleRepo][d] = true
	}
	for _, d := range all.Blobs {
		p.repoBlobs[names.BundleRepo][d] = true
	}
	for _, e := range b.Images {
		r := names.ImageRepos[e.Ref]
		if err := addRepo(r); err != nil {
			return nil, err
		}
		for _, d := range e.Manifests {
			p.repoNodes[r][d] = true
		}
		for _, d := range e.Blobs {
			p.repoBlobs[r][d] = true
		}
		if t, ok := names.ImageTags[e.Ref]; ok && r != names.BundleRepo {
			if prev, dup := p.tags[r][t]; dup && prev != e.Desc.Digest {
				return nil, fmt.Errorf("%w: tag %s:%s would point at both %s and %s", relocate.ErrNaming, r, t, prev, e.Desc.Digest)
			}
			p.tags[r][t] = e.Desc.Digest
		}
	}
	if p.bundleTag, err = o.Client.Tag(p.repos[names.BundleRepo], b.Tag); err != nil {
		return nil, err
	}

	res := &Result{BundleID: b.ID(), BundleReference: p.bundleTag.String(), Mapping: relocate.Mapping{}, Warnings: b.Warnings}
	for _, e := range b.Images {
		rel := names.ImageRepos[e.Ref] + "@" + e.Desc.Digest.String()
		res.Mapping[e.Ref] = rel
		res.Images = append(res.Images, Image{Role: e.Role, Name: e.Name, Reference: e.Ref, Relocated: rel, Digest: e.Desc.Digest.String(), MediaType: e.Desc.MediaType})
	}
	o.Progress.Emit(progress.Event{Phase: progress.PhasePlan, State: progress.StateDone})
	// Signing evidence is verified offline before anything is pushed, and
	// its artifacts are planned into the repositories of their subjects (signatures.go).
	sig, err := verifySignatures(ctx, o, b, p, res)
	if err != nil {
		return nil, err
	}
	if o.target != nil && o.signing.resign != nil {
		return nil, fmt.Errorf("%w: Notary trust data is re-signed only at a registry's Notary server, not for the target given with WithTarget", errdefs.ErrUsage)
	}
	// A delta's blobs must all be at the target before anything moves (delta.go).
	if err := checkDelta(ctx, o, b, p); err != nil {
		return nil, err
	}

	im := &importer{o: o, b: b, p: p, res: res, sig: sig}
	if o.dryRun {
		res.DryRun = true
		return im, dryRun(ctx, o, b, p, res)
	}
	return im, nil
}

// run pushes the planned bundle, verifies the target and writes the
// relocation mapping to mappingPath ("": none). With WithDryRun it does
// nothing.
func (im *importer) run(ctx context.Context, mappingPath string) error {
	if im.o.dryRun {
		return nil
	}
	// Every byte that is to be uploaded is checked before the first one is
	// (prehash.go); an import of several bundles did that for all of them
	// at once (bundles.go).
	if im.present == nil {
		if err := im.checkBeforeUpload(ctx); err != nil {
			return err
		}
	}
	if err := im.push(ctx); err != nil { // blobs, then manifests, with the copy engine (push.go)
		return err
	}
	if err := im.pushSignatures(ctx); err != nil { // after their subjects, before the tags (signatures.go)
		return err
	}
	if err := im.pushTags(ctx); err != nil {
		return err
	}
	if err := im.verify(ctx); err != nil {
		return err
	}
	if err := im.resign(ctx); err != nil { // --notary-resign (signatures.go)
		return err
	}
	if err := im.recordTrust(); err != nil { // --trust-state (signatures.go)
		return err
	}
	if mappingPath != "" {
		if err := im.res.Mapping.WriteFile(mappingPath); err != nil {
			return fmt.Errorf("writing %s: %w", mappingPath, err)
		}
		im.res.MappingFile = mappingPath
	}
	return nil
}

type importer struct {
	o   *options
	b   *archive.Bundle
	p   *pushPlan
	res *Result
	sig *signingPlan // signing artifacts to push (signatures.go)
	// present says, for each blob job the probe asked about, whether the
	// target held the blob then (prehash.go).
	present map[blobJob]bool
}

// blobJob is one blob wanted in one repository: uploaded there, or mounted
// from the repository that got it first.
type blobJob struct {
	repo  string
	d     digest.Digest
	mount string
}

// blobJobs plans one upload per digest, into the first repository that
// needs it (first), and a mount from there for every other repository
// (second). total is the size of the first uploads.
func (im *importer) blobJobs() (first, second []blobJob, total int64) {
	primary := map[digest.Digest]string{}
	for _, r := range sortedKeys(im.p.repoBlobs) {
		for _, d := range sortedKeys(im.p.repoBlobs[r]) {
			if from, ok := primary[d]; ok {
				second = append(second, blobJob{repo: r, d: d, mount: from})
				continue
			}
			primary[d] = r
			first = append(first, blobJob{repo: r, d: d})
			total += im.b.Blobs[d]
		}
	}
	return first, second, total
}

// countBlob accounts for what became of one blob job. Progress is the
// copy engine's, per digest (push.go).
func (im *importer) countBlob(res registry.UploadResult, d digest.Digest, mountFrom string) {
	size := im.b.Blobs[d]
	switch {
	case res == registry.BlobUploaded:
		atomic.AddInt64(&im.res.BlobsUploaded, 1)
		atomic.AddInt64(&im.res.BytesUploaded, size)
	case mountFrom != "":
		atomic.AddInt64(&im.res.BlobsMounted, 1)
	default:
		atomic.AddInt64(&im.res.BlobsSkipped, 1)
		atomic.AddInt64(&im.res.BytesSkipped, size)
	}
}

// pushTags tags image manifests (preserve/flatten naming), then the bundle.
func (im *importer) pushTags(ctx context.Context) error {
	put := func(repo, tag string, d digest.Digest) error {
		n := im.b.Nodes[d]
		ref := im.p.repos[repo].Name() + ":" + tag
		if err := im.p.stores[repo].Tag(ctx, n.Desc, tag); err != nil {
			return fmt.Errorf("tag %s: %w", ref, err)
		}
		im.o.Progress.Emit(progress.Event{Phase: progress.PhaseTags, State: progress.StateDone, Item: ref})
		return nil
	}
	count := 1 // the bundle tag
	for _, ts := range im.p.tags {
		count += len(ts)
	}
	im.o.Progress.Emit(progress.Event{Phase: progress.PhaseTags, State: progress.StateTotal, Count: count})
	for _, r := range sortedKeys(im.p.tags) {
		for _, t := range sortedKeys(im.p.tags[r]) {
			if err := put(r, t, im.p.tags[r][t]); err != nil {
				return err
			}
		}
	}
	if err := put(im.p.names.BundleRepo, im.b.Tag, im.b.Index.Digest); err != nil {
		return err
	}
	im.o.Progress.Emit(progress.Event{Phase: progress.PhaseTags, State: progress.StateDone})
	return nil
}

// verify checks that the bundle tag and every mapped reference resolve at
// the target to the digests carried by the archive.
func (im *importer) verify(ctx context.Context) error {
	var errs []error
	bundle := im.p.names.BundleRepo
	if d, err := im.p.stores[bundle].Resolve(ctx, im.b.Tag); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", im.p.bundleTag, err))
	} else if d.Digest != im.b.Index.Digest {
		errs = append(errs, fmt.Errorf("%s resolves to %s, want %s", im.p.bundleTag, d.Digest, im.b.Index.Digest))
	}
	for _, e := range im.b.Images {
		repo := im.p.names.ImageRepos[e.Ref]
		held, err := im.p.stores[repo].Exists(ctx, e.Desc)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", im.res.Mapping[e.Ref], err))
		case !held:
			errs = append(errs, fmt.Errorf("%s: not found at the target", im.res.Mapping[e.Ref]))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrVerification, errors.Join(errs...))
	}
	return nil
}

// dryRun asks the target which blobs it already holds and reports what an
// import would upload, without pushing anything.
func dryRun(ctx context.Context, o *options, b *archive.Bundle, p *pushPlan, res *Result) error {
	seen := map[digest.Digest]bool{}
	for _, r := range sortedKeys(p.repoBlobs) {
		for _, d := range sortedKeys(p.repoBlobs[r]) {
			if seen[d] {
				continue
			}
			seen[d] = true
			if _, omitted := b.Omitted[d]; omitted {
				continue // a delta's base: checked by checkDelta
			}
			ok, err := p.stores[r].Exists(ctx, content.BlobDescriptor(d, b.Blobs[d]))
			if err != nil {
				return fmt.Errorf("blob %s at %s: %w", d, r, err)
			}
			if ok {
				res.BlobsSkipped++
				res.BytesSkipped += b.Blobs[d]
			} else {
				res.BlobsUploaded++
				res.BytesUploaded += b.Blobs[d]
			}
		}
	}
	return nil
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
