package layout_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// trickle hands out data in small pieces with pauses, so writing a blob
// overlaps with the archive hasher's work.
type trickle struct {
	data []byte
	off  int
}

func (t *trickle) Read(p []byte) (int, error) {
	if t.off == len(t.data) {
		return 0, io.EOF
	}
	time.Sleep(200 * time.Microsecond)
	n := copy(p[:min(len(p), 64<<10)], t.data[t.off:])
	t.off += n
	return n, nil
}

// TestArchiveDigestAfterFailedAttempt checks the archive digest the writer
// computes while blobs are being written (the hasher runs concurrently with
// the writers): a blob whose first attempt streams wrong bytes, fails its
// digest check and is written again; blobs written out of archive order;
// every blob trickling in. The digest must be the sha256 of the committed
// file, and the file the same bytes as the sequential stream of the plan.
func TestArchiveDigestAfterFailedAttempt(t *testing.T) {
	t.Parallel()
	rng := rand.NewChaCha8([32]byte{7})
	var blobs []layout.Blob
	data := map[digest.Digest][]byte{}
	for range 4 {
		b := make([]byte, 1<<20+int(rng.Uint64()%4096))
		rng.Read(b)
		d := digest.FromBytes(b)
		data[d] = b
		blobs = append(blobs, layout.Blob{Digest: d, Size: int64(len(b))})
	}
	p, err := layout.NewPlan([]layout.File{
		{Name: layout.OCILayoutFile, Data: []byte(layout.OCILayoutContent)},
		{Name: layout.IndexFile, Data: []byte(`{"schemaVersion":2,"manifests":[]}`)},
	}, blobs)
	if err != nil {
		t.Fatal(err)
	}
	order := p.Blobs() // archive order
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		bad   int   // index in archive order of the blob first written wrong
		order []int // write order, in archive-order indexes
	}{
		{"first blob bad, in order", 0, []int{0, 1, 2, 3}},
		{"middle blob bad, reversed", 2, []int{3, 2, 1, 0}},
		{"last blob bad, interleaved", 3, []int{1, 3, 0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "a.tar")
			fw, err := layout.Create(out, p, layout.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer fw.Abort()
			for _, i := range tc.order {
				b := order[i]
				if i == tc.bad {
					wrong := bytes.Clone(data[b.Digest])
					wrong[0] ^= 0xff // early, so the hasher has read it before the check fails
					err := fw.WriteBlob(ctx, b.Digest, &trickle{data: wrong})
					if !errors.Is(err, verify.ErrDigestMismatch) {
						t.Fatalf("wrong content: error %v, want a digest mismatch", err)
					}
					time.Sleep(5 * time.Millisecond) // give the hasher time to read it, if it would
				}
				if err := fw.WriteBlob(ctx, b.Digest, &trickle{data: data[b.Digest]}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := fw.Commit()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if want := digest.FromBytes(raw); got != want {
				t.Fatalf("writer computed %s, the archive hashes to %s", got, want)
			}
			var ref bytes.Buffer
			if _, err := p.WriteStream(ctx, &ref, func(_ context.Context, b layout.Blob) (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(data[b.Digest])), nil
			}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, ref.Bytes()) {
				t.Fatal("the archive differs from the sequential stream of the same plan")
			}
		})
	}
}
