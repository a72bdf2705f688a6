package layout_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// benchContent is a set of random blobs held in memory (benchmarks only),
// so the measurements see the archive code and the file system, not a
// network or a generator.
type benchContent struct {
	blobs []layout.Blob
	data  map[digest.Digest][]byte
	total int64
}

func newBenchContent(b *testing.B, n int, size int) *benchContent {
	b.Helper()
	c := &benchContent{data: map[digest.Digest][]byte{}}
	rng := rand.NewChaCha8([32]byte{9})
	for range n {
		buf := make([]byte, size)
		rng.Read(buf)
		d := digest.FromBytes(buf)
		c.data[d] = buf
		c.blobs = append(c.blobs, layout.Blob{Digest: d, Size: int64(size)})
		c.total += int64(size)
	}
	return c
}

func (c *benchContent) plan(b *testing.B) *layout.Plan {
	b.Helper()
	files := []layout.File{
		{Name: layout.OCILayoutFile, Data: []byte(layout.OCILayoutContent)},
		{Name: layout.IndexFile, Data: []byte(`{"schemaVersion":2,"manifests":[]}`)},
	}
	p, err := layout.NewPlan(files, c.blobs)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func (c *benchContent) fetch(_ context.Context, bl layout.Blob) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c.data[bl.Digest])), nil
}

// BenchmarkFill measures the parallel export path: every blob verified and
// written at its offset in the staging file, the archive hashed in order,
// written back and committed (fsync, rename), with 1, 4 and 8 writers.
func BenchmarkFill(b *testing.B) {
	c := newBenchContent(b, 32, 4<<20)
	p := c.plan(b)
	for _, jobs := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(c.total)
			b.ResetTimer()
			for i := range b.N {
				out := filepath.Join(dir, fmt.Sprintf("a%d.tar", i))
				fw, err := layout.Create(out, p, layout.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if err := fw.Fill(context.Background(), jobs, c.fetch); err != nil {
					b.Fatal(err)
				}
				if _, err := fw.Commit(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.Remove(out)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkWriteStream measures the sequential path (standard output and
// compressed archives) without compression.
func BenchmarkWriteStream(b *testing.B) {
	c := newBenchContent(b, 32, 4<<20)
	p := c.plan(b)
	b.SetBytes(c.total)
	b.ResetTimer()
	for range b.N {
		if _, err := p.WriteStream(context.Background(), io.Discard, c.fetch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArchiveBlobs measures the import's read side: open an archive,
// index it and stream every blob through its verifying reader, four at a
// time as an import does.
func BenchmarkArchiveBlobs(b *testing.B) {
	c := newBenchContent(b, 32, 4<<20)
	p := c.plan(b)
	out := filepath.Join(b.TempDir(), "a.tar")
	fw, err := layout.Create(out, p, layout.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := fw.Fill(context.Background(), 4, c.fetch); err != nil {
		b.Fatal(err)
	}
	if _, err := fw.Commit(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(c.total)
	b.ResetTimer()
	for range b.N {
		a, err := layout.Open(context.Background(), out, layout.OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var g errgroup.Group
		g.SetLimit(4)
		for _, bl := range c.blobs {
			g.Go(func() error {
				r, err := a.Blob(bl.Digest, bl.Size)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, r)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		a.Close()
	}
}
