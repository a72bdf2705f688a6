package export

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// signingOptions are the export's signing settings (WithSignatures,
// WithNotaryServer, WithSigningOptions).
type signingOptions struct {
	off    bool
	notary string
	opts   []sigbundle.Option
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
	// Notary is the verified Notary trust data; RootKeyIDs is what the
	// importing side pins (confirm it with the publisher out of band).
	Notary *sigbundle.NotaryInfo `json:"notary,omitempty"`
}

// collectSignatures finds the signing evidence of every manifest in the
// bundle's graph and adds it to the archive: blobs through addBlob, one
// index.json entry per artifact.
func (e *exporter) collectSignatures(ctx context.Context, src *bundleSource, index *ocispec.Index, res *Result) error {
	so := e.o.signing
	if so.off && so.notary == "" {
		return nil
	}
	e.o.progress.Emit(progress.Event{Phase: progress.PhaseSignatures, State: progress.StateStarted})
	opts := append([]sigbundle.Option{sigbundle.WithJobs(e.o.jobs), sigbundle.WithMaxMetadata(e.o.maxMetadata), sigbundle.WithLogger(e.o.log)}, so.opts...)
	col := &sigbundle.Collection{}
	if !so.off {
		found, err := sigbundle.Collect(ctx, e.o.client, e.subjects(index, res), opts...)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", res.Bundle, err)
		}
		col.Merge(found)
	}
	if so.notary != "" {
		if src.index == nil {
			return errors.New("export: Notary trust data needs a bundle reference in a registry, not a bundle file")
		}
		if src.tag == "" {
			return fmt.Errorf("export: Notary trust data is signed for a tag, and %s has none", res.Reference)
		}
		found, err := sigbundle.CollectNotary(ctx, sigbundle.NotaryRequest{
			Server: so.notary, GUN: gunOf(src.repo), Target: src.tag,
			Signed:     ocispec.Descriptor{Digest: digest.FromBytes(src.bundleJSON), Size: int64(len(src.bundleJSON))},
			Object:     sigbundle.TargetObjectBundleJSON,
			Subject:    ocispec.Descriptor{MediaType: src.indexMT, Digest: src.indexDigest, Size: int64(len(src.indexRaw))},
			Repository: src.repo, BundleJSON: src.bundleJSON,
		}, opts...)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", res.Bundle, err)
		}
		col.Merge(found)
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
	res.Signatures = &Signatures{Artifacts: len(col.Roots), ByRole: col.Counts(), Notary: col.Notary}
	e.o.progress.Emit(progress.Event{Phase: progress.PhaseSignatures, State: progress.StateDone, Count: len(col.Roots)})
	return nil
}

// gunOf returns the Notary GUN of a repository: registry host and path,
// with Docker Hub spelled docker.io as Docker Content Trust does.
func gunOf(repo name.Repository) string {
	if repo.RegistryStr() == name.DefaultRegistry {
		return "docker.io/" + repo.RepositoryStr()
	}
	return repo.Name()
}

// subjects lists every manifest and index of the bundle's graph with the
// repositories that may hold its signing artifacts: those it is read from,
// then the repository of each image string whose closure holds it.
func (e *exporter) subjects(index *ocispec.Index, res *Result) []sigbundle.Subject {
	repos := map[digest.Digest][]name.Repository{}
	add := func(d digest.Digest, r name.Repository) {
		if r.RepositoryStr() == "" {
			return
		}
		if !slices.ContainsFunc(repos[d], func(x name.Repository) bool { return x.Name() == r.Name() }) {
			repos[d] = append(repos[d], r)
		}
	}
	var walk func(d ocispec.Descriptor, extra *name.Repository, depth int)
	walk = func(d ocispec.Descriptor, extra *name.Repository, depth int) {
		e.mu.Lock()
		s := e.blobs[d.Digest]
		e.mu.Unlock()
		if s == nil || s.data == nil || depth > 16 {
			return
		}
		mt := d.MediaType
		if m := layout.MediaTypeOf(s.data); m != "" {
			mt = m
		}
		if !layout.IsManifestOrIndex(mt) {
			return
		}
		for _, r := range s.repos {
			add(d.Digest, r)
		}
		if extra != nil {
			add(d.Digest, *extra)
		}
		children, err := layout.Children(mt, s.data)
		if err != nil {
			return
		}
		for _, c := range children {
			if layout.IsManifestOrIndex(c.MediaType) {
				walk(c, extra, depth+1)
			}
		}
	}
	for _, d := range index.Manifests {
		if d.Annotations[layout.AnnotationRole] == layout.RoleBundle {
			walk(d, nil, 0)
		}
	}
	for _, img := range res.Images {
		var extra *name.Repository
		if ref, err := e.o.client.ParseReference(img.Reference); err == nil {
			r := ref.Context()
			extra = &r
		}
		walk(ocispec.Descriptor{MediaType: img.MediaType, Digest: digest.Digest(img.Digest)}, extra, 0)
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
