package layout

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

type fixture struct {
	files []File
	blobs []Blob
	data  map[digest.Digest][]byte
}

func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	f := &fixture{data: map[digest.Digest][]byte{}}
	var descs []ocispec.Descriptor
	for i := range n {
		b := make([]byte, r.IntN(3000)+i) // includes a 0-byte blob
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		d := digest.FromBytes(b)
		f.data[d] = b
		f.blobs = append(f.blobs, Blob{Digest: d, Size: int64(len(b))})
		descs = append(descs, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(b))})
	}
	idx := fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":%q,"size":%d}]}`, descs[0].Digest, descs[0].Size)
	f.files = []File{
		{Name: OCILayoutFile, Data: []byte(OCILayoutContent)},
		{Name: IndexFile, Data: []byte(idx)},
		{Name: BundleFile, Data: []byte(`{"name":"x"}`)},
	}
	return f
}

func (f *fixture) fetch(_ context.Context, b Blob) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(f.data[b.Digest])), nil
}

func TestPlanWriteReadRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, 40)
	// A blob listed twice is stored once.
	blobs := append(f.blobs, f.blobs[3])
	p, err := NewPlan(f.files, blobs)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Blobs()); got != 40 {
		t.Fatalf("planned %d blobs, want 40", got)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "a.tar")
	w, err := Create(out, p, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Fill(ctx, 8, f.fetch); err != nil {
		t.Fatal(err)
	}
	d, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(onDisk)) != p.Size() {
		t.Fatalf("archive is %d bytes, plan says %d", len(onDisk), p.Size())
	}
	if got := digest.FromBytes(onDisk); got != d {
		t.Fatalf("Commit digest %s, file hashes to %s", d, got)
	}
	if _, err := os.Stat(out + PartialSuffix); !os.IsNotExist(err) {
		t.Fatalf("staging file left behind: %v", err)
	}
	// The sequential writer produces the same bytes.
	var buf bytes.Buffer
	d2, err := p.WriteStream(ctx, &buf, f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if d2 != d || !bytes.Equal(buf.Bytes(), onDisk) {
		t.Fatal("stream and file writers differ")
	}
	// The standard tar reader reads it, in the deterministic order.
	tr := tar.NewReader(bytes.NewReader(onDisk))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 || h.Mode != 0o644 {
			t.Fatalf("%s: non-deterministic header %+v", h.Name, h)
		}
		names = append(names, h.Name)
	}
	if names[0] != OCILayoutFile || names[1] != IndexFile || names[2] != BundleFile {
		t.Fatalf("root files out of order: %v", names[:3])
	}
	for i := 4; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("blobs not sorted: %s before %s", names[i-1], names[i])
		}
	}
	// Reading back through Open verifies every blob.
	a, err := Open(ctx, out, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if string(a.BundleJSON) != `{"name":"x"}` {
		t.Fatalf("bundle.json = %q", a.BundleJSON)
	}
	for dg, want := range f.data {
		r, err := a.Blob(dg, int64(len(want)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("blob %s differs", dg)
		}
	}
}

func TestWriteBlobRejectsWrongContent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	p, err := NewPlan(f.files, f.blobs)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a.tar")
	w, err := Create(out, p, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	b := f.blobs[1]
	bad := bytes.Repeat([]byte{'x'}, int(b.Size))
	err = w.WriteBlob(context.Background(), b.Digest, bytes.NewReader(bad))
	if !errors.Is(err, verify.ErrDigestMismatch) {
		t.Fatalf("want digest mismatch, got %v", err)
	}
	err = w.WriteBlob(context.Background(), b.Digest, bytes.NewReader(append(f.data[b.Digest], 'x')))
	if !errors.Is(err, verify.ErrSizeMismatch) {
		t.Fatalf("want size mismatch, got %v", err)
	}
	if _, err := w.Commit(); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("commit of an incomplete archive: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("incomplete archive appeared under the final name")
	}
}

func TestResumeKeepsVerifiedBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, 20)
	p, err := NewPlan(f.files, f.blobs)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a.tar")
	w, err := Create(out, p, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kept int64
	for i, b := range p.Blobs() {
		if i%2 == 0 {
			if err := w.WriteBlob(ctx, b.Digest, bytes.NewReader(f.data[b.Digest])); err != nil {
				t.Fatal(err)
			}
			kept += b.Size
		}
	}
	w.Close() // interrupted
	// Corrupt one kept blob: resume must not keep it.
	first := p.Blobs()[0]
	var firstEntry Entry
	for _, e := range p.Entries() {
		if e.Digest == first.Digest {
			firstEntry = e
		}
	}
	if first.Size > 0 {
		fh, _ := os.OpenFile(out+PartialSuffix, os.O_RDWR, 0)
		fh.WriteAt([]byte{0xff ^ f.data[first.Digest][0]}, firstEntry.DataOffset)
		fh.Close()
		kept -= first.Size
	}
	w2, err := Create(out, p, CreateOptions{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if w2.Resumed() != kept {
		t.Fatalf("resumed %d bytes, want %d", w2.Resumed(), kept)
	}
	var fetched atomic.Int64
	if err := w2.Fill(ctx, 4, func(ctx context.Context, b Blob) (io.ReadCloser, error) {
		fetched.Add(1)
		return f.fetch(ctx, b)
	}); err != nil {
		t.Fatal(err)
	}
	d, err := w2.Commit()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	want, _ := p.WriteStream(ctx, &buf, f.fetch)
	if d != want {
		t.Fatalf("resumed archive digest %s, fresh %s", d, want)
	}
	if n := fetched.Load(); n >= int64(len(p.Blobs())) {
		t.Fatalf("fetched %d of %d blobs: nothing was resumed", n, len(p.Blobs()))
	}
}

func TestOpenRejectsUnsafeEntries(t *testing.T) {
	t.Parallel()
	good := func(tw *tar.Writer) {
		add(tw, tar.TypeReg, OCILayoutFile, OCILayoutContent)
		add(tw, tar.TypeReg, IndexFile, `{"schemaVersion":2,"manifests":[]}`)
	}
	cases := []struct {
		name  string
		build func(tw *tar.Writer)
		want  error
	}{
		{"traversal", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeReg, "../evil", "x") }, ErrUnsafeEntry},
		{"absolute", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeReg, "/etc/passwd", "x") }, ErrUnsafeEntry},
		{"symlink", func(tw *tar.Writer) { good(tw); addLink(tw, tar.TypeSymlink, "bundle.json", "/etc/passwd") }, ErrUnsafeEntry},
		{"hardlink", func(tw *tar.Writer) { good(tw); addLink(tw, tar.TypeLink, "bundle.json", "index.json") }, ErrUnsafeEntry},
		{"fifo", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeFifo, "bundle.json", "") }, ErrUnsafeEntry},
		{"device", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeChar, "bundle.json", "") }, ErrUnsafeEntry},
		{"unknown file", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeReg, "notes.txt", "x") }, ErrUnsafeEntry},
		{"bad blob name", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeReg, "blobs/sha256/abc", "x") }, ErrUnsafeEntry},
		{"duplicate", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeReg, IndexFile, `{}`) }, ErrUnsafeEntry},
		{"non-utf8", func(tw *tar.Writer) { good(tw); add(tw, tar.TypeReg, "blobs/\xff", "x") }, ErrUnsafeEntry},
		{"no index", func(tw *tar.Writer) { add(tw, tar.TypeReg, OCILayoutFile, OCILayoutContent) }, ErrInvalidArchive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.tar")
			fh, _ := os.Create(path)
			tw := tar.NewWriter(fh)
			tc.build(tw)
			tw.Close()
			fh.Close()
			_, err := Open(context.Background(), path, OpenOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}
}

func add(tw *tar.Writer, typ byte, name, data string) {
	tw.WriteHeader(&tar.Header{Typeflag: typ, Name: name, Size: int64(len(data)), Mode: 0o644, Format: tar.FormatPAX})
	io.WriteString(tw, data)
}

func addLink(tw *tar.Writer, typ byte, name, target string) {
	tw.WriteHeader(&tar.Header{Typeflag: typ, Name: name, Linkname: target, Mode: 0o777})
}

func TestDigestFromBlobName(t *testing.T) {
	t.Parallel()
	hex := fmt.Sprintf("%x", sha256.Sum256(nil))
	if d, ok := DigestFromBlobName("blobs/sha256/" + hex); !ok || d.String() != "sha256:"+hex {
		t.Fatalf("got %v %v", d, ok)
	}
	for _, bad := range []string{"blobs/sha256/" + strings.ToUpper(hex), "blobs/md5/" + hex, "blobs/sha256/" + hex + "/x", "blobs/sha256/../" + hex} {
		if _, ok := DigestFromBlobName(bad); ok {
			t.Fatalf("%q accepted", bad)
		}
	}
}
