package export

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// signingOptions are the export's signing settings (WithSignatures,
// WithNotaryServer, WithSigningOptions).
type signingOptions struct {
	off          bool
	notary       string
	notaryImages bool
	opts         []sigbundle.Option
	archive      crypto.Signer              // WithArchiveSigner
	sigstore     *sigbundle.SigstoreRequest // WithSigstoreTrust
	verify       []sigbundle.Option         // WithVerify; nil: off
}

// WithSignatures turns the collection of OCI referrers and cosign tags of
// every manifest on or off. The default is on. Notary trust data is
// collected only with WithNotaryServer, whatever this says.
func WithSignatures(b bool) Option {
	return func(o *options) error { o.signing.off = !b; return nil }
}

// WithNotaryServer collects the bundle tag's Notary v1 (CNAB-Security)
// trust data from the Notary server at url, verifies it online and carries
// it. The default is none. Needs a bundle reference with a tag.
func WithNotaryServer(url string) Option {
	return func(o *options) error { o.signing.notary = url; return nil }
}

// WithNotaryImages also collects, with WithNotaryServer, the Notary v1
// trust data of every image reference that has a tag (GUN = the image's
// registry host and repository, target = the tag, signing the manifest's
// digest and size, as Docker Content Trust and `signy image push` do). It
// is attached to the image manifest it signs. An image whose trust data is
// missing or does not sign the carried manifest fails the export, every
// such image named; a digest-only reference has no Notary target and is
// reported. The default is off.
func WithNotaryImages(b bool) Option {
	return func(o *options) error { o.signing.notaryImages = b; return nil }
}

// WithArchiveSigner signs the archive file as `cosign sign-blob --key`
// does and writes the signature beside it, ARCHIVE.sig (sigbundle.
// SignArchive; ECDSA or RSA keys). `cosign verify-blob`, and cnab-airgap
// verify and import with the public key, check it. It needs an archive
// file (not standard output). The default is none.
func WithArchiveSigner(s crypto.Signer) Option {
	return func(o *options) error {
		if s == nil {
			return errors.New("export: nil archive signer")
		}
		if err := sigbundle.CheckArchiveSigner(s); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		o.signing.archive = s
		return nil
	}
}

// WithSigstoreTrust carries the Sigstore trust material that keyless
// signatures are verified against on the other side: the trusted root
// fetched through TUF from req.URL (pinned by req.Root; nil pins
// sigstore-go's embedded root, for sigbundle.DefaultSigstoreTUFURL) with
// the TUF metadata that proves it, or req.TrustedRoot as given. It is
// attached to the bundle index (req.Subject is set by the export). The
// default carries none.
func WithSigstoreTrust(req sigbundle.SigstoreRequest) Option {
	return func(o *options) error {
		if (req.URL == "") == (req.TrustedRoot == nil) {
			return errors.New("export: Sigstore trust needs a TUF URL or a trusted root, not both")
		}
		o.signing.sigstore = &req
		return nil
	}
}

// WithVerify verifies the written archive's signing evidence as import
// will (archive.Bundle.VerifySignatures with opts: keys, identities, image
// policies, the Sigstore trust material it carries), so that an image that
// would be refused on the other side is found before it crosses. On
// failure the archive is removed and the error returned. It needs an
// archive file. The default does not verify.
func WithVerify(opts ...sigbundle.Option) Option {
	return func(o *options) error {
		o.signing.verify = append([]sigbundle.Option{}, opts...)
		return nil
	}
}

// WithSigningOptions passes options to pkg/sigbundle: the Notary transport
// (TLS, credentials), a pin to check the online root against, limits.
func WithSigningOptions(opts ...sigbundle.Option) Option {
	return func(o *options) error { o.signing.opts = append(o.signing.opts, opts...); return nil }
}

// Signatures summarizes the signing evidence an export carries.
type Signatures struct {
	// Artifacts is the number of signing artifacts, and ByRole their
	// count per role (signature, attestation, sbom, trust, referrer).
	Artifacts int            `json:"artifacts"`
	ByRole    map[string]int `json:"byRole,omitempty"`
	// Notary is the bundle's verified Notary trust data; RootKeyIDs is what
	// the importing side pins (confirm it with the publisher out of band).
	Notary *sigbundle.NotaryInfo `json:"notary,omitempty"`
	// NotaryBundles is the verified Notary trust data of the other bundles
	// of an archive of several, in the order of Result.Bundles.
	NotaryBundles []*sigbundle.NotaryInfo `json:"notaryBundles,omitempty"`
	// NotaryImages is the verified Notary trust data of images
	// (WithNotaryImages), one per GUN and tag.
	NotaryImages []*sigbundle.NotaryInfo `json:"notaryImages,omitempty"`
	// Sigstore is the carried Sigstore trust material (WithSigstoreTrust).
	Sigstore *sigbundle.SigstoreTrustInfo `json:"sigstore,omitempty"`
	// Report is the verification of the written archive (WithVerify).
	Report *sigbundle.Report `json:"report,omitempty"`
}

// collectSignatures finds the signing evidence of every manifest in the
// bundle's graph and adds it to the archive: blobs through addBlob, one
// index.json entry per artifact.
func (e *exporter) collectSignatures(ctx context.Context, srcs []*bundleSource, index *ocispec.Index, res *Result) error {
	so := e.o.signing
	if so.off && so.notary == "" && so.sigstore == nil {
		return nil
	}
	e.o.Progress.Emit(progress.Event{Phase: progress.PhaseSignatures, State: progress.StateStarted})
	opts := append([]sigbundle.Option{sigbundle.WithJobs(e.o.Jobs), sigbundle.WithMaxMetadata(e.o.maxMetadata), sigbundle.WithLogger(e.o.Log)}, so.opts...)
	col := &sigbundle.Collection{}
	if !so.off {
		found, err := sigbundle.Collect(ctx, e.repositories, e.subjects(index), opts...)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", res.Bundle, err)
		}
		col.Merge(found)
	}
	if so.notary != "" {
		// Each bundle's target: the Notary trust data that signs its bundle.json.
		for _, src := range srcs {
			if src.index == nil {
				return errors.New("export: Notary trust data needs a bundle reference in a registry, not a bundle file")
			}
			if src.tag == "" {
				return fmt.Errorf("export: Notary trust data is signed for a tag, and %s has none", src.ref)
			}
			found, err := sigbundle.CollectNotary(ctx, sigbundle.NotaryRequest{
				Server: so.notary, GUN: sigbundle.GUN(src.repo), Target: src.tag,
				Signed:     ocispec.Descriptor{Digest: digest.FromBytes(src.bundleJSON), Size: int64(len(src.bundleJSON))},
				Object:     sigbundle.TargetObjectBundleJSON,
				Subject:    ocispec.Descriptor{MediaType: src.indexMT, Digest: src.indexDigest, Size: int64(len(src.indexRaw))},
				Repository: src.repo, BundleJSON: src.bundleJSON,
			}, opts...)
			if err != nil {
				return fmt.Errorf("bundle %s: %w", bundleLabel(src), err)
			}
			col.Merge(found)
		}
		if so.notaryImages {
			found, err := e.collectImageNotary(ctx, opts)
			if err != nil {
				return fmt.Errorf("bundle %s: %w", res.Bundle, err)
			}
			col.Merge(found)
		}
	} else if so.notaryImages {
		return errors.New("export: Notary trust data of images needs a Notary server")
	}
	if so.sigstore != nil {
		// Fetched once; one trust artifact per bundle, about its index, so
		// that each bundle is verified with the material that travels with
		// it (the trusted root and TUF metadata are stored once).
		req := *so.sigstore
		for _, src := range srcs {
			req.Subjects = append(req.Subjects, ocispec.Descriptor{MediaType: src.root.MediaType, Digest: src.root.Digest, Size: src.root.Size})
		}
		found, err := sigbundle.CollectSigstoreTrust(ctx, req, opts...)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", res.Bundle, err)
		}
		col.Merge(found)
	} else if n := col.Keyless(); n > 0 {
		e.warn("%d keyless signatures or attestations are carried without Sigstore trust material: the importing side needs --trusted-root, or export with --sigstore-trust", n)
	}
	for _, b := range col.Blobs {
		if err := e.addBlob(b.Digest, b.Size, b.Repo, nil, b.Data); err != nil {
			return err
		}
	}
	index.Manifests = append(index.Manifests, col.Roots...)
	for _, w := range col.Warnings {
		e.warn("%s", w)
	}
	res.Signatures = &Signatures{Artifacts: len(col.Roots), ByRole: col.Counts(), Sigstore: col.Sigstore}
	for _, n := range col.Notary {
		switch {
		case n.Object != sigbundle.TargetObjectBundleJSON:
			res.Signatures.NotaryImages = append(res.Signatures.NotaryImages, n)
		case res.Signatures.Notary == nil:
			res.Signatures.Notary = n // the primary bundle's, collected first
		default:
			res.Signatures.NotaryBundles = append(res.Signatures.NotaryBundles, n)
		}
	}
	e.o.Progress.Emit(progress.Event{Phase: progress.PhaseSignatures, State: progress.StateDone, Count: len(col.Roots)})
	return nil
}

// collectImageNotary collects the Notary trust data of every tagged image
// reference, each (GUN, tag) once, with up to jobs requests at a time. All
// failures are reported together.
func (e *exporter) collectImageNotary(ctx context.Context, opts []sigbundle.Option) (*sigbundle.Collection, error) {
	type job struct {
		ref  name.Reference
		tag  string
		desc ocispec.Descriptor
		who  string
	}
	var jobs []job
	seen := map[string]bool{}
	col := &sigbundle.Collection{}
	for _, img := range e.images {
		who := fmt.Sprintf("%s %s (%s)", img.Role, img.Name, img.Reference)
		ref, err := e.o.Client.ParseReference(img.Reference)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", who, err)
		}
		tag := tagOf(img.Reference)
		if tag == "" {
			col.Warnings = append(col.Warnings, fmt.Sprintf("%s has no tag, and Notary v1 signs tags: no image trust data collected for it", who))
			continue
		}
		key := sigbundle.GUN(ref.Context()) + ":" + tag + "@" + img.Digest
		if seen[key] {
			continue
		}
		seen[key] = true
		e.mu.Lock()
		s := e.blobs[digest.Digest(img.Digest)]
		e.mu.Unlock()
		if s == nil || s.data == nil {
			return nil, fmt.Errorf("%s: manifest %s is not held", who, img.Digest)
		}
		jobs = append(jobs, job{ref: ref, tag: tag, who: who,
			desc: ocispec.Descriptor{MediaType: img.MediaType, Digest: digest.Digest(img.Digest), Size: int64(len(s.data))}})
	}
	found := make([]*sigbundle.Collection, len(jobs))
	errs := make([]error, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.o.Jobs)
	for i, j := range jobs {
		g.Go(func() error {
			c, err := sigbundle.CollectNotary(gctx, sigbundle.NotaryRequest{
				Server: e.o.signing.notary, GUN: sigbundle.GUN(j.ref.Context()), Target: j.tag,
				Signed: j.desc, Object: sigbundle.TargetObjectManifest, Subject: j.desc, Repository: j.ref.Context(),
			}, opts...)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				errs[i] = fmt.Errorf("%s: %w", j.who, err)
				return nil
			}
			found[i] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("notary trust data of images: %w", err)
	}
	for _, c := range found {
		col.Merge(c)
	}
	return col, nil
}

// tagOf returns the tag of an image reference, also of one that pins a
// digest too (repo:tag@sha256:...), or "".
func tagOf(ref string) string {
	base, _, _ := strings.Cut(ref, "@")
	i := strings.LastIndex(base, ":")
	if i < 0 || i < strings.LastIndex(base, "/") {
		return ""
	}
	return base[i+1:]
}

// subjects lists every manifest and index of the bundle's graph with the
// repositories that may hold its signing artifacts: those it is read from,
// then the repository of each image string whose closure holds it.
func (e *exporter) subjects(index *ocispec.Index) []sigbundle.Subject {
	repos := map[digest.Digest][]name.Repository{}
	add := func(d digest.Digest, r name.Repository) {
		if r.RepositoryStr() == "" {
			return
		}
		if !slices.ContainsFunc(repos[d], func(x name.Repository) bool { return x.Name() == r.Name() }) {
			repos[d] = append(repos[d], r)
		}
	}
	// The graph as the export holds it in memory (the shared graph walk of
	// pkg/content, over manifests only): each manifest is a subject in the
	// repositories it was read from, and in extra, the repository of the
	// image string whose closure reaches it.
	walk := func(root ocispec.Descriptor, extra *name.Repository) {
		wo := content.WalkOptions{
			Concurrency: 1,
			Successors:  content.ChildrenByContent,
			PreVisit: func(_ context.Context, d ocispec.Descriptor, depth int) error {
				if depth > 0 && !layout.IsManifestOrIndex(d.MediaType) {
					return content.ErrSkip
				}
				return nil
			},
			OnError: func(ocispec.Descriptor, error) error { return nil }, // not held in memory: not a subject
		}
		_ = content.Walk(context.Background(), heldInMemory{e}, []ocispec.Descriptor{root}, wo, func(_ context.Context, n content.Node) error {
			e.mu.Lock()
			repos := slices.Clone(e.blobs[n.Desc.Digest].repos)
			e.mu.Unlock()
			for _, r := range repos {
				add(n.Desc.Digest, r)
			}
			if extra != nil {
				add(n.Desc.Digest, *extra)
			}
			return nil
		})
	}
	for _, d := range index.Manifests {
		if d.Annotations[layout.AnnotationRole] == layout.RoleBundle {
			walk(d, nil)
		}
	}
	for _, img := range e.images {
		var extra *name.Repository
		if ref, err := e.o.Client.ParseReference(img.Reference); err == nil {
			r := ref.Context()
			extra = &r
		}
		walk(ocispec.Descriptor{MediaType: img.MediaType, Digest: digest.Digest(img.Digest), Size: -1}, extra)
	}
	var out []sigbundle.Subject
	for _, d := range slices.Sorted(func(yield func(digest.Digest) bool) {
		for d := range repos {
			if !yield(d) {
				return
			}
		}
	}) {
		out = append(out, sigbundle.Subject{Digest: d, Repos: repos[d]})
	}
	return out
}

// heldInMemory serves the manifests the export holds in memory; anything
// else is not found.
// manifestCount counts the manifests and indexes reachable from index.json,
// as archive.Load will find them (they are all held in memory).
func (e *exporter) manifestCount(ctx context.Context, index *ocispec.Index) int {
	n := 0
	wo := content.WalkOptions{
		Concurrency: 1,
		Successors:  content.ChildrenByContent,
		PreVisit: func(_ context.Context, d ocispec.Descriptor, _ int) error {
			if !layout.IsManifestOrIndex(d.MediaType) {
				return content.ErrSkip
			}
			return nil
		},
		OnError: func(ocispec.Descriptor, error) error { return nil },
	}
	_ = content.Walk(ctx, heldInMemory{e}, index.Manifests, wo, func(context.Context, content.Node) error {
		n++
		return nil
	})
	return n
}

type heldInMemory struct{ e *exporter }

func (h heldInMemory) Fetch(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	h.e.mu.Lock()
	s := h.e.blobs[d.Digest]
	h.e.mu.Unlock()
	if s == nil || s.data == nil {
		return nil, fmt.Errorf("%s: %w", d.Digest, content.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(s.data)), nil
}

// verifyWritten checks the archive at path with the WithVerify options,
// read back as import reads it; on failure the archive is removed.
func (e *exporter) verifyWritten(ctx context.Context, path string, res *Result) error {
	b, err := archive.Load(ctx, path, layout.OpenOptions{})
	if err == nil {
		defer b.Close()
		// Every bundle of the archive with its own evidence; the report is
		// the primary bundle's.
		var rep *sigbundle.Report
		var reports []*sigbundle.Report
		each := e.o.signing.verify // a trust anchor need only verify something in one bundle
		if len(b.Others) > 0 {
			each = append(slices.Clone(each), sigbundle.WithArchiveOfSeveral())
		}
		for _, x := range b.All() {
			r, verr := x.VerifySignatures(ctx, each...)
			if verr != nil {
				if len(b.Others) > 0 {
					verr = fmt.Errorf("bundle %s: %w", x.Bundle.Name, verr)
				}
				err = verr
				break
			}
			if x == b {
				rep = r
			}
			reports = append(reports, r)
		}
		if err == nil && len(b.Others) > 0 {
			err = sigbundle.AnchorsUsed(reports, e.o.signing.verify...)
		}
		if err == nil {
			if res.Signatures == nil {
				res.Signatures = &Signatures{}
			}
			res.Signatures.Report = rep
			return nil
		}
	}
	if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		e.warn("the archive %s that failed verification could not be removed: %v", path, rmErr)
	}
	return fmt.Errorf("export of bundle %s: the written archive does not verify, so it was removed: %w", res.Bundle, err)
}
