package layout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPartsSourceReads checks reads across part boundaries against the
// concatenation, at random offsets and lengths, through ReadAt, Read and
// Seek.
func TestPartsSourceReads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	var whole []byte
	src := &partsSource{}
	for i, n := range []int{7, 1, 4096, 3, 10000} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		p := filepath.Join(dir, "p"+string(rune('0'+i)))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		src.parts = append(src.parts, f)
		src.starts = append(src.starts, int64(len(whole)))
		whole = append(whole, b...)
	}
	src.starts = append(src.starts, int64(len(whole)))
	defer src.Close()
	for range 500 {
		off := r.IntN(len(whole) + 10)
		n := r.IntN(5000)
		got := make([]byte, n)
		m, err := src.ReadAt(got, int64(off))
		want := whole[min(off, len(whole)):min(off+n, len(whole))]
		if !bytes.Equal(got[:m], want) {
			t.Fatalf("ReadAt(%d, %d) gave other bytes", off, n)
		}
		if m < n && err != io.EOF {
			t.Fatalf("short ReadAt(%d, %d) = %d without EOF: %v", off, n, m, err)
		}
	}
	if _, err := src.Seek(5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(src)
	if err != nil || !bytes.Equal(rest, whole[5:]) {
		t.Fatalf("Read after Seek: %v", err)
	}
	if size, _ := src.Size(); size != int64(len(whole)) {
		t.Fatalf("size %d", size)
	}
	// A part that shrinks after it was verified is an error, not a short read.
	if err := os.Truncate(src.parts[2].Name(), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ReadAt(make([]byte, 200), src.starts[2]); !errors.Is(err, ErrParts) || !strings.Contains(err.Error(), "shrank") {
		t.Fatalf("read of a shrunk part: %v", err)
	}
}

// TestOpenSplitInPlace opens a split archive whose blobs straddle part
// boundaries: it is read in place (nothing is written to the temporary
// directory), every blob verifies; with more parts than are kept open it
// is joined into a copy instead, with the same result.
func TestOpenSplitInPlace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, 1500)
	p, err := NewPlan(f.files, f.blobs)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "a.tar")
	w, err := Create(out, p, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Fill(ctx, 4, f.fetch); err != nil {
		t.Fatal(err)
	}
	d, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Split(ctx, out, MinPartSize, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Parts) < 3 {
		t.Fatalf("only %d parts", len(ps.Parts))
	}
	check := func(t *testing.T, wantInPlace bool) {
		tmp := t.TempDir()
		a, err := Open(ctx, PartName(out, 0, len(ps.Parts)), OpenOptions{TempDir: tmp})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if _, inPlace := a.f.(*partsSource); inPlace != wantInPlace {
			t.Fatalf("read in place: %v, want %v", inPlace, wantInPlace)
		}
		if es, _ := os.ReadDir(tmp); len(es) != 0 {
			t.Fatalf("%d files written to the temporary directory", len(es))
		}
		if a.Parts == nil || a.Parts.Digest != d {
			t.Fatalf("parts %+v", a.Parts)
		}
		for dg, size := range a.Blobs() {
			rd, err := a.Blob(dg, size)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rd)
			if err != nil || !bytes.Equal(got, f.data[dg]) {
				t.Fatalf("blob %s: %v", dg, err)
			}
		}
	}
	t.Run("in place", func(t *testing.T) { check(t, true) })
	t.Run("joined", func(t *testing.T) {
		defer func(n int) { maxInPlaceParts = n }(maxInPlaceParts)
		maxInPlaceParts = 1
		check(t, false)
	})
}
