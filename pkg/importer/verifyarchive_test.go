package importer_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
)

// Verify reports what it checked, hashes every blob once (progress counts
// each), and refuses an archive with one flipped byte in a blob, naming it,
// as a verification failure with no report.
func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	done := map[string]int64{}
	var total progress.Event
	rec := func(e progress.Event) {
		if e.Phase != progress.PhaseVerify {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case e.State == progress.StateTotal:
			total = e
		case e.State == progress.StateDone && e.Item != "":
			done[e.Item] += e.Bytes
		}
	}
	r, err := importer.Verify(ctx, importer.VerifyRequest{Archive: fx.Path}, importer.WithJobs(3), importer.WithProgress(rec))
	if err != nil {
		t.Fatal(err)
	}
	var bytes int64
	for _, s := range fx.Blobs {
		bytes += s
	}
	if !r.OK || r.Bundle != "app" || r.Blobs != len(fx.Blobs) || r.Bytes != bytes || r.Archive != fx.Path || r.Relocation != nil || r.Signatures == nil {
		t.Fatalf("report %+v; want ok, bundle app, %d blobs of %d bytes, signatures checked, no audit", r, len(fx.Blobs), bytes)
	}
	if total.Count != len(fx.Blobs) || total.Total != bytes || len(done) != len(fx.Blobs) {
		t.Fatalf("progress: total %+v, %d blobs done; want %d blobs, %d bytes", total, len(done), len(fx.Blobs), bytes)
	}
	for d, s := range fx.Blobs {
		if done[d.String()] != s {
			t.Errorf("blob %s reported %d bytes, want %d", d, done[d.String()], s)
		}
	}

	// One flipped byte in the shared layer.
	forged, err := fx.Tampered(fx.SharedLayer.Digest, "forged.tar")
	if err != nil {
		t.Fatal(err)
	}
	r, err = importer.Verify(ctx, importer.VerifyRequest{Archive: forged})
	if r != nil || !errors.Is(err, errdefs.ErrDigestMismatch) || !errors.Is(err, errdefs.ErrVerification) {
		t.Fatalf("tampered archive: report %v, err %v; want no report and a digest mismatch", r, err)
	}
	if want := fx.SharedLayer.Digest.String(); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v does not name %s", err, want)
	}

	// An audit needs both a target and a mapping.
	if _, err := importer.Verify(ctx, importer.VerifyRequest{Archive: fx.Path, Target: "registry.example/mirror"}); !errors.Is(err, errdefs.ErrUsage) {
		t.Fatalf("target without mapping: %v", err)
	}
}
