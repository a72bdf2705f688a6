package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// push copies the bundle's graph (the bundle index and every image) from
// the archive to the target with the copy engine of pkg/content: every
// blob, a few at once, then every manifest, children before parents. The
// target is one store to the engine (pushTarget): each blob goes to every
// repository that needs it, uploaded into the first and mounted into the
// others, each manifest to every repository that needs it. A failure does
// not stop the others: every manifest whose children are all in place is
// still pushed (a re-run then has less to do), the parents of a failed one
// are not tried, and every failure is reported, one line per cause.
func (im *importer) push(ctx context.Context) error {
	if err := im.pushOmittedBlobs(ctx); err != nil { // a delta's blobs, mounted or present (delta.go)
		return err
	}
	t := newPushTarget(im)
	roots := []ocispec.Descriptor{im.b.Index}
	for _, e := range im.b.Images {
		roots = append(roots, e.Desc)
	}
	// Blobs planned outside the bundle's graph (those of signing artifacts,
	// whose manifests pushSignatures puts after) are copied as they are.
	for _, d := range sortedKeys(t.blobs) {
		if _, omitted := im.b.Omitted[d]; !omitted {
			roots = append(roots, content.BlobDescriptor(d, im.b.Blobs[d]))
		}
	}
	opts := content.CopyOptions{
		WalkOptions: content.WalkOptions{
			Concurrency: im.o.Jobs,
			// Content the archive leaves out is not walked: a delta's
			// blobs (pushOmittedBlobs put them in place) and the platforms
			// of a sparse index.
			PreVisit: func(_ context.Context, d ocispec.Descriptor, _ int) error {
				if _, omitted := im.b.Omitted[d.Digest]; omitted {
					return content.ErrSkip
				}
				if _, absent := im.b.Absent[d.Digest]; absent {
					if _, carried := im.b.Nodes[d.Digest]; !carried {
						return content.ErrSkip
					}
				}
				return nil
			},
		},
		KeepGoing: true,
		// Blob events come from the engine, each digest once; manifest
		// events from the target, one per repository with the image it
		// completes. The engine's announcement of its manifests ends the
		// blob phase.
		Progress: func(e progress.Event) {
			switch {
			case e.Phase == progress.PhaseBlobs:
				im.o.Progress.Emit(e)
			case e.Phase == progress.PhaseManifests && e.State == progress.StateTotal:
				im.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone})
				im.o.Progress.Emit(progress.Event{Phase: progress.PhaseManifests, State: progress.StateTotal, Count: t.manifestJobs()})
			}
		},
	}
	if _, err := content.Copy(ctx, im.b, t, roots, opts); err != nil {
		return err
	}
	im.o.Progress.Emit(progress.Event{Phase: progress.PhaseManifests, State: progress.StateDone})
	return nil
}

// pushTarget is the import's destination as one content store: a blob or
// manifest is held when every repository that needs it holds it.
type pushTarget struct {
	im *importer
	// blobs lists, per digest, its jobs: the upload first, then the
	// mounts from the repository it was uploaded to (blobJobs).
	blobs map[digest.Digest][]blobJob
	// nodes lists, per manifest, the repositories that need it.
	nodes map[digest.Digest][]string
	// users names, per blob, the images that need it, for messages.
	users map[digest.Digest]string
	// tops names the image whose top manifest is repo@digest.
	tops map[string]string

	mu sync.Mutex
	// lacking lists, per manifest, the repositories Exists found without it.
	lacking map[digest.Digest][]string
}

func newPushTarget(im *importer) *pushTarget {
	t := &pushTarget{im: im, blobs: map[digest.Digest][]blobJob{}, nodes: map[digest.Digest][]string{},
		users: map[digest.Digest]string{}, tops: map[string]string{}, lacking: map[digest.Digest][]string{}}
	first, second, _ := im.blobJobs()
	for _, j := range append(first, second...) {
		t.blobs[j.d] = append(t.blobs[j.d], j)
	}
	for _, r := range sortedKeys(im.p.repoNodes) {
		for _, d := range sortedKeys(im.p.repoNodes[r]) {
			t.nodes[d] = append(t.nodes[d], r)
		}
	}
	users := map[digest.Digest][]string{}
	for _, e := range im.b.Images {
		for _, d := range e.Blobs {
			if !slices.Contains(users[d], e.Label()) {
				users[d] = append(users[d], e.Label())
			}
		}
		k := im.p.names.ImageRepos[e.Ref] + "@" + e.Desc.Digest.String()
		if _, ok := t.tops[k]; !ok {
			t.tops[k] = e.Ref
		}
	}
	for d, u := range users {
		t.users[d] = "for " + strings.Join(u, ", ") + ", "
	}
	return t
}

// manifestJobs counts the (repository, manifest) pairs to push.
func (t *pushTarget) manifestJobs() int {
	n := 0
	for _, rs := range t.nodes {
		n += len(rs)
	}
	return n
}

// Exists implements content.Exister. For a blob it answers from the probe
// made before the hashing (prehash.go), sending nothing; for a manifest it
// asks each repository that needs it.
func (t *pushTarget) Exists(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	if layout.IsManifestOrIndex(d.MediaType) {
		return t.manifestHeld(ctx, d)
	}
	jobs := t.blobs[d.Digest]
	for _, j := range jobs {
		if !t.im.present[j] {
			return false, nil
		}
	}
	for _, j := range jobs {
		t.im.countBlob(registry.BlobPresent, d.Digest, j.mount)
	}
	return true, nil
}

// Push implements content.Pusher: a blob is uploaded (verified as it
// streams) into its first repository unless it is there, then mounted into
// every other repository that lacks it; a manifest is put, byte for byte,
// into every repository that lacks it.
func (t *pushTarget) Push(ctx context.Context, d ocispec.Descriptor, r io.Reader) error {
	if layout.IsManifestOrIndex(d.MediaType) {
		return t.pushManifest(ctx, d)
	}
	var errs []error
	for _, j := range t.blobs[d.Digest] {
		if err := t.pushBlob(ctx, j, d, r); err != nil {
			errs = append(errs, fmt.Errorf("%sto %s: %w", t.users[d.Digest], j.repo, err))
			if j.mount == "" {
				break // the mounts need the upload
			}
		}
	}
	return errors.Join(errs...)
}

func (t *pushTarget) pushBlob(ctx context.Context, j blobJob, d ocispec.Descriptor, r io.Reader) error {
	im := t.im
	present, probed := im.present[j]
	if probed && present {
		im.countBlob(registry.BlobPresent, d.Digest, j.mount)
		return nil
	}
	store := im.p.stores[j.repo]
	if j.mount != "" {
		// Where the store can, the blob is mounted from the repository it
		// was uploaded to; otherwise it is sent again from the archive,
		// verified by the store as it streams.
		if m, ok := store.(content.Mounter); ok {
			err := m.Mount(ctx, d, im.p.repos[j.mount].Name())
			if err == nil {
				im.countBlob(registry.BlobMounted, d.Digest, j.mount)
				return nil
			}
			if !errors.Is(err, content.ErrUnsupported) {
				return err
			}
		}
		rc, err := im.b.Archive.Fetch(ctx, d)
		if err != nil {
			return err
		}
		defer rc.Close()
		r = rc
	}
	if err := store.Push(ctx, d, r); err != nil {
		return err
	}
	im.countBlob(registry.BlobUploaded, d.Digest, "")
	return nil
}

// manifestHeld asks every repository that needs manifest d whether it
// holds it, counts and reports those that do, and remembers the others
// for pushManifest.
func (t *pushTarget) manifestHeld(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	var lacking []string
	for _, repo := range t.nodes[d.Digest] {
		ref := t.im.p.repos[repo].Name() + "@" + d.Digest.String()
		exists, err := t.im.p.stores[repo].Exists(ctx, d)
		if err != nil {
			return false, fmt.Errorf("manifest %s: %w", ref, err)
		}
		if !exists {
			lacking = append(lacking, repo)
			continue
		}
		atomic.AddInt64(&t.im.res.ManifestsSkipped, 1)
		t.im.o.Progress.Emit(progress.Event{Phase: progress.PhaseManifests, State: progress.StateSkipped, Item: ref,
			Bytes: d.Size, Image: t.tops[repo+"@"+d.Digest.String()]})
	}
	t.mu.Lock()
	t.lacking[d.Digest] = lacking
	t.mu.Unlock()
	return len(lacking) == 0, nil
}

// pushManifest puts manifest d into each repository that lacks it; every
// repository is tried and every failure reported.
func (t *pushTarget) pushManifest(ctx context.Context, d ocispec.Descriptor) error {
	im := t.im
	n := im.b.Nodes[d.Digest]
	if n == nil {
		return fmt.Errorf("%w: manifest %s is not loaded", archive.ErrInvalidArchive, d.Digest)
	}
	t.mu.Lock()
	repos, asked := t.lacking[d.Digest]
	t.mu.Unlock()
	if !asked {
		repos = t.nodes[d.Digest]
	}
	var errs []error
	for _, repo := range repos {
		ref := im.p.repos[repo].Name() + "@" + d.Digest.String()
		if err := im.p.stores[repo].Push(ctx, n.Desc, bytes.NewReader(n.Raw)); err != nil {
			errs = append(errs, im.refused(ref, n, err)) // names the image of a sparse index (sparse.go)
			continue
		}
		atomic.AddInt64(&im.res.ManifestsPushed, 1)
		im.o.Progress.Emit(progress.Event{Phase: progress.PhaseManifests, State: progress.StateDone, Item: ref,
			Bytes: n.Desc.Size, Image: t.tops[repo+"@"+d.Digest.String()]})
	}
	return errors.Join(errs...)
}

// pushOmittedBlobs puts in place, in every repository that needs one, the
// blobs a delta archive leaves to its base: nothing to do where present, a
// cross-repository mount where checkDelta found one elsewhere.
func (im *importer) pushOmittedBlobs(ctx context.Context) error {
	var errs []error
	for _, r := range sortedKeys(im.p.repoBlobs) {
		for _, d := range sortedKeys(im.p.repoBlobs[r]) {
			if _, err := im.pushOmitted(ctx, r, d); err != nil {
				errs = append(errs, fmt.Errorf("blob %s to %s: %w", d, r, err))
			}
		}
	}
	return errors.Join(errs...)
}
