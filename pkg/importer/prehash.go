package importer

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
)

// checkBeforeUpload asks the target, for every blob job, whether the
// repository already holds the blob (the HEAD an upload would send; a
// registry store passes its answer on to the upload, so no request is
// added), then hashes every blob that
// is to be sent anywhere. A tampered blob thus stops the import before the
// target has received a byte, and a re-import of content the target has
// reads nothing from the archive. A blob the target holds is not read: what
// is pushed is then the target's own copy, which its digest names.
func (im *importer) checkBeforeUpload(ctx context.Context) error {
	send, err := im.probe(ctx)
	if err != nil {
		return err
	}
	return im.b.HashDigests(ctx, send, im.o.Jobs, im.o.Progress)
}

// probe asks the target about every blob job, records the answers for the
// uploads, and returns the digests that are to be sent somewhere, sorted.
func (im *importer) probe(ctx context.Context) ([]digest.Digest, error) {
	first, second, _ := im.blobJobs()
	jobs := append(first, second...)
	answers := make([]bool, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(im.o.Jobs, 1))
	for i, j := range jobs {
		if _, omitted := im.b.Omitted[j.d]; omitted {
			continue // a delta's blob: checked at the target (delta.go)
		}
		g.Go(func() error {
			present, err := im.p.stores[j.repo].Exists(gctx, content.BlobDescriptor(j.d, im.b.Blobs[j.d]))
			if err != nil {
				return fmt.Errorf("blob %s at %s: %w", j.d, j.repo, err)
			}
			answers[i] = present
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	im.present = make(map[blobJob]bool, len(jobs))
	send := map[digest.Digest]bool{}
	for i, j := range jobs {
		if _, omitted := im.b.Omitted[j.d]; omitted {
			continue
		}
		im.present[j] = answers[i]
		if !answers[i] {
			send[j.d] = true
		}
	}
	return slices.Sorted(maps.Keys(send)), nil
}

// heldAfterRun marks the blob jobs of im that a finished import of
// another bundle, done, put into the same repository: they are present
// now, without asking the target again.
func (im *importer) heldAfterRun(done *importer) {
	type at struct {
		repo string
		d    digest.Digest
	}
	held := map[at]bool{}
	for j := range done.present { // every blob job of a finished run is at the target
		held[at{j.repo, j.d}] = true
	}
	for j, ok := range im.present {
		if !ok && held[at{j.repo, j.d}] {
			im.present[j] = true
		}
	}
}
