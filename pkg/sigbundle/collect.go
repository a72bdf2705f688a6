package sigbundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// maxReferrerDepth bounds referrers of referrers.
const maxReferrerDepth = 8

// Subject is a manifest whose signing artifacts are collected, with the
// repositories that may hold them. The first repository is the one the
// export reads the subject from: an error there fails the collection; the
// others (an image's original repository) only give warnings.
type Subject struct {
	Digest digest.Digest
	Repos  []name.Repository
}

// Blob is content an artifact needs. Data holds manifests and anything
// already read while collecting; other blobs are to be streamed from Repo.
type Blob struct {
	Digest    digest.Digest
	Size      int64
	MediaType string
	Repo      name.Repository
	Data      []byte
}

// Collection is the signing evidence collected at export.
type Collection struct {
	// Roots are the index.json entries, one per artifact, annotated with
	// role, subject, repository and how it was found.
	Roots []ocispec.Descriptor
	// Blobs are the manifests and blobs of every artifact, each digest once.
	Blobs []Blob
	// Notary describes the Notary trust data collected, one per GUN and
	// target.
	Notary []*NotaryInfo
	// Sigstore describes the Sigstore trust material collected.
	Sigstore *SigstoreTrustInfo
	// Warnings are problems that did not stop the collection.
	Warnings []string
}

// Merge adds o's artifacts to c.
func (c *Collection) Merge(o *Collection) {
	if o == nil {
		return
	}
	c.Roots = append(c.Roots, o.Roots...)
	seen := map[digest.Digest]bool{}
	for _, b := range c.Blobs {
		seen[b.Digest] = true
	}
	for _, b := range o.Blobs {
		if !seen[b.Digest] {
			seen[b.Digest] = true
			c.Blobs = append(c.Blobs, b)
		}
	}
	c.Notary = append(c.Notary, o.Notary...)
	if o.Sigstore != nil {
		c.Sigstore = o.Sigstore
	}
	c.Warnings = append(c.Warnings, o.Warnings...)
	sortRoots(c.Roots)
}

// artifactBuilder makes one OCI artifact of files this tool collected
// (Notary role files, Sigstore trust material): its blobs, its manifest
// bound to a subject, and its index.json entry.
type artifactBuilder struct {
	col    *Collection
	cfg    ocispec.Descriptor
	layers []ocispec.Descriptor
}

// newArtifact starts an artifact whose config is the empty JSON object
// with media type cfgType.
func newArtifact(cfgType string) *artifactBuilder {
	cfg := ocispec.Descriptor{MediaType: cfgType, Digest: digest.FromBytes(emptyJSON), Size: int64(len(emptyJSON))}
	return &artifactBuilder{col: &Collection{Blobs: []Blob{{Digest: cfg.Digest, Size: cfg.Size, MediaType: cfg.MediaType, Data: emptyJSON}}}, cfg: cfg}
}

// layer adds a file as a layer.
func (b *artifactBuilder) layer(mediaType string, raw []byte, ann map[string]string) {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw)), Annotations: ann}
	b.layers = append(b.layers, d)
	b.col.Blobs = append(b.col.Blobs, Blob{Digest: d.Digest, Size: d.Size, MediaType: mediaType, Data: raw})
}

// finish writes the manifest (artifactType, subject, annotations) and the
// index.json entry: the manifest's annotations plus role, subject, via and
// repo (when set). It returns the collection and the manifest's digest.
func (b *artifactBuilder) finish(artifactType string, subject ocispec.Descriptor, ann map[string]string, role, via, repo string) (*Collection, digest.Digest, error) {
	sub := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Config: b.cfg, Layers: b.layers, Subject: &sub, Annotations: ann}
	m.SchemaVersion = 2
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, "", err
	}
	d := digest.FromBytes(raw)
	b.col.Blobs = append(b.col.Blobs, Blob{Digest: d, Size: int64(len(raw)), MediaType: ocispec.MediaTypeImageManifest, Data: raw})
	rootAnn := maps.Clone(ann)
	rootAnn[layout.AnnotationRole] = role
	rootAnn[layout.AnnotationSubject] = subject.Digest.String()
	rootAnn[AnnotationVia] = via
	if repo != "" {
		rootAnn[AnnotationRepository] = repo
	}
	b.col.Roots = []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(raw)), ArtifactType: artifactType, Annotations: rootAnn}}
	return b.col, d, nil
}

// Keyless counts the collected cosign signatures and attestations made
// keyless (with a certificate), which need Sigstore trust material.
func (c *Collection) Keyless() int {
	data := map[digest.Digest][]byte{}
	for _, b := range c.Blobs {
		data[b.Digest] = b.Data
	}
	n := 0
	for _, r := range c.Roots {
		var m manifest
		if json.Unmarshal(data[r.Digest], &m) != nil {
			continue
		}
		if describe(&m, func(l ocispec.Descriptor) []byte { return data[l.Digest] }).Keyless {
			n++
		}
	}
	return n
}

// Counts returns how many artifacts of each role were collected.
func (c *Collection) Counts() map[string]int {
	out := map[string]int{}
	for _, r := range c.Roots {
		out[r.Annotations[layout.AnnotationRole]]++
	}
	return out
}

func sortRoots(roots []ocispec.Descriptor) {
	sort.SliceStable(roots, func(i, j int) bool {
		a, b := roots[i], roots[j]
		ka := a.Annotations[layout.AnnotationSubject] + " " + a.Digest.String() + " " + layout.CosignTag(a)
		kb := b.Annotations[layout.AnnotationSubject] + " " + b.Digest.String() + " " + layout.CosignTag(b)
		return ka < kb
	})
}

// collector holds the state of one Collect.
// Repository is what signature collection reads of one repository:
// manifests and blobs, cosign tags, and referrers.
type Repository interface {
	content.Fetcher
	content.Resolver
	content.ReferrerLister
}

// Repositories opens the store of a repository for Collect.
type Repositories func(repo name.Repository) (Repository, error)

// RegistryRepositories reads repositories through the registry client
// (registry.Client.Store).
func RegistryRepositories(c *registry.Client) Repositories {
	return func(repo name.Repository) (Repository, error) { return c.Store(repo), nil }
}

type collector struct {
	o     *options
	repos Repositories
	mu    sync.Mutex
	// roots by key (digest + tag), blobs by digest.
	roots    map[string]ocispec.Descriptor
	blobs    map[digest.Digest]*Blob
	warnings []string
}

type probe struct {
	subject digest.Digest
	repo    name.Repository
	primary bool
}

type found struct {
	desc    ocispec.Descriptor // digest, size, media type
	raw     []byte             // when already fetched (cosign tags)
	subject digest.Digest
	repo    name.Repository
	via     string
	tag     string
	role    string
	kind    string
}

// Collect finds the OCI 1.1 referrers (Referrers API, or the fallback tag)
// and cosign tag-scheme objects of every subject, recursively (referrers of
// referrers), and returns them with every manifest byte-for-byte and the
// list of blobs to fetch. Nothing is re-serialized.
func Collect(ctx context.Context, repos Repositories, subjects []Subject, opts ...Option) (*Collection, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	col := &collector{o: o, repos: repos, roots: map[string]ocispec.Descriptor{}, blobs: map[digest.Digest]*Blob{}}
	var level []probe
	for _, s := range subjects {
		for i, r := range s.Repos {
			level = append(level, probe{subject: s.Digest, repo: r, primary: i == 0})
		}
	}
	seenProbe := map[string]bool{}
	for depth := 0; len(level) > 0; depth++ {
		if depth > maxReferrerDepth {
			return nil, fmt.Errorf("referrers nested more than %d deep", maxReferrerDepth)
		}
		var pending []probe
		for _, p := range level {
			k := p.subject.String() + "|" + p.repo.Name()
			if !seenProbe[k] {
				seenProbe[k] = true
				pending = append(pending, p)
			}
		}
		var mu sync.Mutex
		var hits []found
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(o.jobs)
		for _, p := range pending {
			g.Go(func() error {
				f, err := col.probe(gctx, p)
				if err != nil {
					if p.primary {
						return fmt.Errorf("signing artifacts of %s in %s: %w", p.subject, p.repo.Name(), err)
					}
					col.warn("signing artifacts of %s in %s not collected: %v", p.subject, p.repo.Name(), err)
					return nil
				}
				mu.Lock()
				hits = append(hits, f...)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		sort.Slice(hits, func(i, j int) bool {
			return hits[i].desc.Digest.String()+hits[i].tag+hits[i].repo.Name() < hits[j].desc.Digest.String()+hits[j].tag+hits[j].repo.Name()
		})
		g, gctx = errgroup.WithContext(ctx)
		g.SetLimit(o.jobs)
		var next []probe
		for _, h := range hits {
			key := h.desc.Digest.String() + "|" + h.tag
			col.mu.Lock()
			_, dup := col.roots[key]
			if !dup {
				col.roots[key] = ocispec.Descriptor{} // claimed
			}
			col.mu.Unlock()
			if dup {
				continue
			}
			next = append(next, probe{subject: h.desc.Digest, repo: h.repo, primary: true})
			g.Go(func() error { return col.take(gctx, h, key) })
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		level = next
	}
	out := &Collection{Warnings: col.warnings}
	for _, r := range col.roots {
		out.Roots = append(out.Roots, r)
	}
	sortRoots(out.Roots)
	for _, d := range slices.Sorted(maps.Keys(col.blobs)) {
		out.Blobs = append(out.Blobs, *col.blobs[d])
	}
	return out, nil
}

func (col *collector) warn(format string, args ...any) {
	col.mu.Lock()
	defer col.mu.Unlock()
	col.warnings = append(col.warnings, fmt.Sprintf(format, args...))
}

// probe lists the artifacts of one subject in one repository.
func (col *collector) probe(ctx context.Context, p probe) ([]found, error) {
	var out []found
	store, err := col.repos(p.repo)
	if err != nil {
		return nil, err
	}
	if col.o.referrers {
		refs, err := store.Referrers(ctx, ocispec.Descriptor{Digest: p.subject}, "")
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return nil, fmt.Errorf("referrers: %w", err)
		}
		for _, d := range refs {
			desc := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
			if err := layout.ValidateDigest(desc.Digest); err != nil {
				return nil, fmt.Errorf("referrers list: %w", err)
			}
			if !layout.IsManifestOrIndex(desc.MediaType) {
				col.warn("referrer %s of %s in %s has media type %q and is not carried", desc.Digest, p.subject, p.repo.Name(), desc.MediaType)
				continue
			}
			out = append(out, found{desc: desc, subject: p.subject, repo: p.repo, via: ViaReferrers})
		}
	}
	if col.o.cosignTags {
		for _, s := range cosignSuffixes {
			tag := p.subject.Algorithm().String() + "-" + p.subject.Encoded() + s.suffix
			td, err := store.Resolve(ctx, tag)
			if err != nil {
				if errors.Is(err, errdefs.ErrNotFound) {
					continue
				}
				return nil, fmt.Errorf("cosign tag %s: %w", tag, err)
			}
			raw, err := content.ReadAll(ctx, store, td, col.o.maxMetadata)
			if err != nil {
				return nil, fmt.Errorf("cosign tag %s: %w", tag, err)
			}
			mt := layout.MediaTypeOf(raw)
			if mt == "" {
				mt = td.MediaType
			}
			if !layout.IsManifestOrIndex(mt) {
				col.warn("cosign tag %s in %s is a %q and is not carried", tag, p.repo.Name(), mt)
				continue
			}
			desc := ocispec.Descriptor{MediaType: mt, Digest: td.Digest, Size: int64(len(raw))}
			out = append(out, found{desc: desc, raw: raw, subject: p.subject, repo: p.repo, via: ViaCosignTag, tag: tag, role: s.role, kind: s.kind})
		}
	}
	return out, nil
}

// take fetches one artifact's manifest and the closure below it, and
// records its index.json entry.
func (col *collector) take(ctx context.Context, f found, key string) error {
	raw := f.raw
	if raw == nil {
		var err error
		store, err := col.repos(f.repo)
		if err != nil {
			return err
		}
		raw, err = content.ReadAll(ctx, store, f.desc, col.o.maxMetadata)
		if err != nil {
			return fmt.Errorf("artifact %s of %s in %s: %w", f.desc.Digest, f.subject, f.repo.Name(), err)
		}
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("artifact %s of %s in %s: %w", f.desc.Digest, f.subject, f.repo.Name(), err)
	}
	if f.via == ViaReferrers && (m.Subject == nil || m.Subject.Digest != f.subject) {
		return fmt.Errorf("artifact %s listed as a referrer of %s in %s: %w", f.desc.Digest, f.subject, f.repo.Name(),
			wrapf(ErrBinding, "its subject field names %v", subjectDigest(&m)))
	}
	if err := col.closure(ctx, f.repo, f.desc, raw); err != nil {
		return fmt.Errorf("artifact %s of %s in %s: %w", f.desc.Digest, f.subject, f.repo.Name(), err)
	}
	ann := map[string]string{}
	maps.Copy(ann, m.Annotations)
	at := artifactTypeOf(&m)
	role := f.role
	if role == "" {
		role = roleFor(at, m.Annotations)
	}
	ann[layout.AnnotationRole] = role
	ann[layout.AnnotationSubject] = f.subject.String()
	ann[AnnotationRepository] = f.repo.Name()
	ann[AnnotationVia] = f.via
	// Only images are named in index.json (FORMAT.md): a name would make
	// container runtimes import the artifact as an image.
	delete(ann, layout.AnnotationRefName)
	delete(ann, layout.AnnotationImageName)
	if f.tag != "" {
		ann[layout.AnnotationCosignTag] = f.tag
		ann[AnnotationCosignKind] = f.kind
	}
	d := ocispec.Descriptor{MediaType: f.desc.MediaType, Digest: f.desc.Digest, Size: f.desc.Size, ArtifactType: at, Annotations: ann}
	col.mu.Lock()
	col.roots[key] = d
	col.mu.Unlock()
	return nil
}

func subjectDigest(m *manifest) string {
	if m.Subject == nil {
		return "nothing"
	}
	return m.Subject.Digest.String()
}

// closure records the artifact d (its bytes raw, already fetched) and
// everything below it, read from repo with the shared graph walk of
// pkg/content: every manifest verified and kept in memory, every blob
// recorded to be fetched. Signing artifacts may not point at foreign URLs.
func (col *collector) closure(ctx context.Context, repo name.Repository, d ocispec.Descriptor, raw []byte) error {
	wo := content.WalkOptions{Concurrency: 1, MaxDepth: 8, MaxManifestBytes: col.o.maxMetadata}
	store, err := col.repos(repo)
	if err != nil {
		return err
	}
	src := content.WithBytes(store, d, raw)
	return content.Walk(ctx, src, []ocispec.Descriptor{d}, wo, func(_ context.Context, n content.Node) error {
		if n.IsManifest() {
			col.addBlob(Blob{Digest: n.Desc.Digest, Size: int64(len(n.Raw)), MediaType: n.Desc.MediaType, Repo: repo, Data: n.Raw})
			return nil
		}
		if len(n.Desc.URLs) > 0 {
			return fmt.Errorf("blob %s has foreign URLs, which signing artifacts may not use", n.Desc.Digest)
		}
		col.addBlob(Blob{Digest: n.Desc.Digest, Size: n.Desc.Size, MediaType: n.Desc.MediaType, Repo: repo})
		return nil
	})
}

func (col *collector) addBlob(b Blob) {
	col.mu.Lock()
	defer col.mu.Unlock()
	if prev, ok := col.blobs[b.Digest]; ok {
		if prev.Data == nil && b.Data != nil {
			prev.Data = b.Data
		}
		return
	}
	col.blobs[b.Digest] = &b
}

// CosignTag returns the cosign tag of subject with suffix (".sig", ".att"
// or ".sbom").
func CosignTag(subject digest.Digest, suffix string) string {
	return subject.Algorithm().String() + "-" + subject.Encoded() + suffix
}

// SubjectFromCosignTag parses a cosign tag back into its subject digest.
func SubjectFromCosignTag(tag string) (digest.Digest, bool) {
	for _, s := range cosignSuffixes {
		if base, ok := strings.CutSuffix(tag, s.suffix); ok {
			alg, enc, ok := strings.Cut(base, "-")
			if !ok {
				return "", false
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
			if d.Validate() != nil {
				return "", false
			}
			return d, true
		}
	}
	return "", false
}
