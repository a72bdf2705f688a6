package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
)

// HashBlobs reads every blob of the graph through a verifying reader (size
// and digest) with up to jobs readers at once, and reports every blob that
// fails. Import hashes this way every blob it is to upload before the
// first byte is uploaded; the upload verifies each blob again as it
// streams. Progress events are of progress.PhaseVerify.
func (b *Bundle) HashBlobs(ctx context.Context, jobs int, pf progress.Func) error {
	ds := make([]digest.Digest, 0, len(b.Blobs))
	for d := range b.Blobs { // a delta's omitted blobs are not among them
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return b.HashDigests(ctx, ds, jobs, pf)
}

// HashDigests is HashBlobs for the blobs ds only (import hashes those it
// is to upload).
func (b *Bundle) HashDigests(ctx context.Context, ds []digest.Digest, jobs int, pf progress.Func) error {
	var total int64
	for _, d := range ds {
		total += b.Blobs[d]
	}
	pf.Emit(progress.Event{Phase: progress.PhaseVerify, State: progress.StateTotal, Total: total, Count: len(ds)})
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for _, d := range ds {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := b.hashBlob(d); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("blob %s: %w", d, err))
				mu.Unlock()
				return nil
			}
			pf.Emit(progress.Event{Phase: progress.PhaseVerify, State: progress.StateDone, Item: d.String(), Bytes: b.Blobs[d]})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	pf.Emit(progress.Event{Phase: progress.PhaseVerify, State: progress.StateDone})
	return nil
}

// hashBlob checks one blob. Its pages stay in the page cache: the upload
// that follows reads them again (and drops them).
func (b *Bundle) hashBlob(d digest.Digest) error {
	sr, err := b.Archive.Section(d)
	if err != nil {
		return err
	}
	r, err := verify.NewReader(sr, d, b.Blobs[d])
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}
