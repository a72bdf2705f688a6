package layout

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

var specsV2 = specs.Versioned{SchemaVersion: 2}

// tinyEntries writes a tar of n empty blob entries (n*512 bytes), streamed.
func tinyEntries(w io.Writer, n int) {
	tw := tar.NewWriter(w)
	for i := range n {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("blobs/sha256/%064x", i), Mode: 0o644})
	}
	tw.Close()
}

// tarEntry is one entry of an archive held in memory while a test forges it.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

// validLayout is a small, valid archive written by the real writer: one
// image (config, two layers) named in index.json, plus bundle.json.
type validLayout struct {
	raw      []byte // the archive bytes
	manifest ocispec.Descriptor
	layers   []ocispec.Descriptor
	config   ocispec.Descriptor
}

func newValidLayout(t *testing.T) *validLayout {
	t.Helper()
	v := &validLayout{}
	var blobs []Blob
	mk := func(mt string, b []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		blobs = append(blobs, Blob{Digest: d.Digest, Size: d.Size, Data: b})
		return d
	}
	v.config = mk(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	for i := range 2 {
		b := make([]byte, 64<<10+i)
		rand.Read(b)
		v.layers = append(v.layers, mk(ocispec.MediaTypeImageLayerGzip, b))
	}
	m, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: v.config, Layers: v.layers, Versioned: specsV2})
	v.manifest = mk(ocispec.MediaTypeImageManifest, m)
	idx, _ := json.Marshal(ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{v.manifest}})
	files := []File{{Name: OCILayoutFile, Data: []byte(OCILayoutContent)}, {Name: IndexFile, Data: idx}, {Name: BundleFile, Data: []byte(`{"name":"x"}`)}}
	p, err := NewPlan(files, blobs)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := p.WriteStream(context.Background(), &buf, nil); err != nil {
		t.Fatal(err)
	}
	v.raw = buf.Bytes()
	return v
}

func (v *validLayout) entries(t *testing.T) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(v.raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, tarEntry{hdr: *h, data: b})
	}
}

// writeTar renders entries as a tar (with its end-of-archive marker).
func writeTar(t *testing.T, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == tar.TypeReg || h.Typeflag == 0 {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name string, data []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Format: tar.FormatPAX}, data: data}
}

func special(typ byte, name, link string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644, Devmajor: 1, Devminor: 3}}
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// tarHeader renders the header block(s) of one entry, without data.
func tarHeader(t *testing.T, name string, size int64) []byte {
	t.Helper()
	h, err := headerBytes(name, size)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// zeroGzip returns a gzip member holding prefix followed by n MiB of
// zeros, built by repeating one deflate block that expands to 1 MiB of
// zeros (about 1 KiB each), so that even a huge bomb is cheap to build.
// The member's trailer is not valid: a reader that stops early never
// reaches it, one that does not fails on it much later.
func zeroGzip(t *testing.T, prefix []byte, n int) []byte {
	t.Helper()
	var body bytes.Buffer
	fw, _ := flate.NewWriter(&body, flate.BestCompression)
	zero := make([]byte, 1<<20)
	fw.Write(prefix)
	fw.Write(zero)
	fw.Flush()
	head := body.Len()
	fw.Write(zero)
	fw.Flush()
	block := append([]byte(nil), body.Bytes()[head:]...)
	var out bytes.Buffer
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // gzip header, no flags
	out.Write(body.Bytes()[:head])
	for range n - 1 {
		out.Write(block)
	}
	out.Write([]byte{3, 0})    // a final, empty block
	out.Write(make([]byte, 8)) // CRC-32 and size, deliberately wrong
	return out.Bytes()
}

// hostileMarker is part of every hostile entry name, so a test can prove
// no file of that name was created anywhere.
var hostileMarker = "hostile-" + hex.EncodeToString(func() []byte { b := make([]byte, 6); rand.Read(b); return b }())

func TestHostileArchives(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	base := v.entries(t)
	with := func(extra ...tarEntry) []byte { return writeTar(t, append(append([]tarEntry{}, base...), extra...)) }
	replace := func(name string, data []byte) []tarEntry {
		out := append([]tarEntry{}, base...)
		for i := range out {
			if out[i].hdr.Name == name {
				out[i].data = data
			}
		}
		return out
	}
	blobEntry := func(d digest.Digest) string { return BlobName(d) }
	flipped := bytes.Clone(v.raw)
	// Flip a byte in the middle of the first layer (same size, wrong digest).
	off := bytes.Index(flipped, mustBlobData(t, base, v.layers[0].Digest))
	flipped[off+1000] ^= 0xff

	// The manifest with a layer described as one byte shorter than it is,
	// index.json updated so the manifest itself is consistent.
	short := v.layers[0]
	short.Size--
	m2, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: v.config, Layers: []ocispec.Descriptor{short, v.layers[1]}, Versioned: specsV2})
	m2d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m2), Size: int64(len(m2))}
	idx2, _ := json.Marshal(ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m2d}})
	shortDesc := append(replace(IndexFile, idx2), reg(BlobName(m2d.Digest), m2))

	// index.json naming a manifest the archive does not carry.
	var missing []tarEntry
	for _, e := range base {
		if e.hdr.Name != blobEntry(v.manifest.Digest) {
			missing = append(missing, e)
		}
	}
	// A truncated tar: cut inside the last blob; and cut at an entry
	// boundary, where only the end-of-archive marker is missing.
	cutInBlob := v.raw[:len(v.raw)-2*blockSize-700]
	cutAtEntry := v.raw[:len(v.raw)-2*blockSize]

	deep := func(n int) []byte { return append(bytes.Repeat([]byte("["), n), bytes.Repeat([]byte("]"), n)...) }
	tiny := func(w io.Writer) { tinyEntries(w, 200_000) }
	tinyGz := func(w io.Writer) { zw := gzip.NewWriter(w); tinyEntries(zw, 200_000); zw.Close() }
	// A gzip bomb: a valid start, then a blob header announcing 2 GiB
	// that no descriptor declares, then zeros. (2 GiB: far above the
	// expansion cap, yet below the free space of any test machine, so the
	// free-space check, which would also refuse it, does not answer first.)
	bombHead := append(bytes.Clone(v.raw[:len(v.raw)-2*blockSize]), tarHeader(t, "blobs/sha256/"+strings.Repeat("ab", 32), 2<<30)...)
	// zstd of 1 GiB of zeros after the same start.
	var zbomb bytes.Buffer
	{
		zw, _ := zstd.NewWriter(&zbomb)
		zw.Write(bombHead)
		zero := make([]byte, 1<<20)
		for range 1024 {
			zw.Write(zero)
		}
		zw.Close()
	}
	// A blob whose tar header disagrees with the size index.json declares,
	// in a compressed archive: caught from the header, before its data.
	bigger := append(bytes.Clone(mustBlobData(t, base, v.manifest.Digest)), ' ')
	liar := replace(blobEntry(v.manifest.Digest), bigger)

	cases := []struct {
		name    string
		archive []byte
		want    error
		mention string // the error must name this (the entry at fault)
		onRead  bool   // Open succeeds; reading the content fails
		stream  func(io.Writer)
	}{
		{"path traversal", with(reg("../"+hostileMarker, []byte("x"))), ErrUnsafeEntry, "../" + hostileMarker, false, nil},
		{"path traversal inside blobs", with(reg("blobs/sha256/../../"+hostileMarker, []byte("x"))), ErrUnsafeEntry, hostileMarker, false, nil},
		{"absolute path", with(reg("/tmp/"+hostileMarker, []byte("x"))), ErrUnsafeEntry, "/tmp/" + hostileMarker, false, nil},
		{"symlink", with(special(tar.TypeSymlink, "relocation-mapping.json", "/etc/passwd")), ErrUnsafeEntry, "symlink", false, nil},
		{"hardlink", with(special(tar.TypeLink, "relocation-mapping.json", "/etc/passwd")), ErrUnsafeEntry, "hardlink", false, nil},
		{"character device", with(special(tar.TypeChar, "relocation-mapping.json", "")), ErrUnsafeEntry, "character device", false, nil},
		{"block device", with(special(tar.TypeBlock, "relocation-mapping.json", "")), ErrUnsafeEntry, "block device", false, nil},
		{"fifo", with(special(tar.TypeFifo, "relocation-mapping.json", "")), ErrUnsafeEntry, "fifo", false, nil},
		{"unknown directory", with(special(tar.TypeDir, hostileMarker+"/", "")), ErrUnsafeEntry, hostileMarker, false, nil},
		{"wrong blob digest", flipped, verify.ErrDigestMismatch, v.layers[0].Digest.String(), true, nil},
		{"descriptor size smaller than blob", writeTar(t, shortDesc), verify.ErrSizeMismatch, v.layers[0].Digest.String(), true, nil},
		{"index.json references a missing blob", writeTar(t, missing), ErrBlobNotFound, v.manifest.Digest.String(), true, nil},
		{"duplicate entries with different contents", with(reg(BundleFile, []byte(`{"name":"y"}`))), ErrUnsafeEntry, "duplicate", false, nil},
		{"50 MB of JSON nesting in index.json", writeTar(t, replace(IndexFile, deep(25<<20))), ErrTooLarge, "index.json", false, nil},
		{"deep JSON under the size limit", writeTar(t, replace(IndexFile, deep(2<<20))), ErrTooLarge, "index.json", false, nil},
		{"deep JSON in bundle.json", writeTar(t, replace(BundleFile, deep(1000))), ErrTooLarge, "bundle.json", false, nil},
		{"50 MB of JSON nesting, gzipped", gz(t, writeTar(t, replace(IndexFile, deep(25<<20)))), ErrTooLarge, "index.json", false, nil},
		{"gzip bomb", zeroGzip(t, bombHead, 1024), ErrTooLarge, "decompression bomb", false, nil},
		{"zstd bomb", zbomb.Bytes(), ErrTooLarge, "decompression bomb", false, nil},
		{"gzip of zeros", zeroGzip(t, nil, 1024), ErrInvalidArchive, "end of the archive", false, nil},
		{"declared size disagrees, gzipped", gz(t, writeTar(t, liar)), ErrInvalidArchive, v.manifest.Digest.Encoded(), false, nil},
		{"truncated tar inside a blob", cutInBlob, ErrInvalidArchive, "truncated", false, nil},
		{"truncated tar at an entry boundary", cutAtEntry, ErrInvalidArchive, "end-of-archive marker", false, nil},
		{"truncated gzip", gz(t, v.raw)[:len(gz(t, v.raw))*2/3], ErrInvalidArchive, "truncated", false, nil},
		{"trailing garbage", append(bytes.Clone(v.raw), []byte("#!/bin/sh\nrm -rf /\n")...), ErrInvalidArchive, "trailing data", false, nil},
		{"trailing garbage after gzip", append(gz(t, v.raw), []byte("garbage after the compressed stream")...), ErrInvalidArchive, "after the end of the archive", false, nil},
		{"trailing garbage, zstd", append(zst(t, v.raw), []byte("garbage")...), ErrInvalidArchive, "end of the archive", false, nil},
		{"200,000 tiny entries", nil, ErrTooLarge, "100000 entries", false, tiny},
		{"200,000 tiny entries, gzipped", nil, ErrTooLarge, "100000 entries", false, tinyGz},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			work := filepath.Join(dir, "work")
			tmp := filepath.Join(dir, "tmp")
			os.Mkdir(work, 0o755)
			os.Mkdir(tmp, 0o755)
			path := filepath.Join(work, "archive.tar")
			f, ferr := os.Create(path)
			if ferr != nil {
				t.Fatal(ferr)
			}
			if tc.stream != nil {
				bw := bufio.NewWriter(f)
				tc.stream(bw)
				bw.Flush()
			} else {
				f.Write(tc.archive)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			a, err := Open(context.Background(), path, OpenOptions{TempDir: tmp})
			if err == nil {
				err = readEverything(a)
				if !tc.onRead {
					t.Errorf("Open accepted the archive (reading it gave %v)", err)
				}
				a.Close()
			} else if tc.onRead {
				t.Errorf("Open refused the archive, the content check was expected to: %v", err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			if !strings.Contains(strings.ReplaceAll(err.Error(), path, "ARCHIVE"), tc.mention) {
				t.Fatalf("the error does not name %q: %v", tc.mention, err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %s: the reader did not stop early", d)
			}
			assertNothingWritten(t, work, tmp, "archive.tar")
		})
	}
}

// readEverything reads what an import would: every root's manifest and
// each blob it names, through the verifying readers.
func readEverything(a *Archive) error {
	for _, root := range a.Index.Manifests {
		raw, err := a.Metadata(root.Digest, root.Size)
		if err != nil {
			return err
		}
		children, err := Children(root.MediaType, raw)
		if err != nil {
			return err
		}
		for _, c := range children {
			r, err := a.Blob(c.Digest, c.Size)
			if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// assertNothingWritten checks that work holds only the archive, that the
// reader's temporary directory is empty again, and that no file named
// after a hostile entry exists next to the archive, in the working
// directory or in the system temporary directory.
func assertNothingWritten(t *testing.T, work, tmp string, keep string) {
	t.Helper()
	for _, dir := range []string{work, tmp} {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Name() != keep || dir == tmp {
				t.Errorf("%s was left in %s", e.Name(), dir)
			}
		}
	}
	cwd, _ := os.Getwd()
	for _, dir := range []string{filepath.Dir(work), filepath.Dir(filepath.Dir(work)), cwd, filepath.Dir(cwd), os.TempDir()} {
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if strings.Contains(e.Name(), hostileMarker) {
				t.Errorf("a hostile entry was written: %s", filepath.Join(dir, e.Name()))
			}
		}
	}
}

func mustBlobData(t *testing.T, es []tarEntry, d digest.Digest) []byte {
	t.Helper()
	for _, e := range es {
		if e.hdr.Name == BlobName(d) {
			return e.data
		}
	}
	t.Fatalf("no blob %s", d)
	return nil
}

// The defences do not refuse what the writer produces, compressed or not,
// including the CNAB-104 thick form and padding to a tar record size.
func TestValidArchivesStillOpen(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	var thick []tarEntry
	for _, e := range v.entries(t) {
		if e.hdr.Name != BundleFile {
			e.hdr.Name = thickPrefix + e.hdr.Name
		}
		thick = append(thick, e)
	}
	padded := append(bytes.Clone(v.raw), make([]byte, 10240-len(v.raw)%10240)...)
	for name, b := range map[string][]byte{
		"plain": v.raw, "gzip": gz(t, v.raw), "zstd": zst(t, v.raw), "record padding": padded,
		"gzip record padding": gz(t, padded), "thick gzip": gz(t, writeTar(t, thick)),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.tar")
			os.WriteFile(path, b, 0o644)
			a, err := Open(context.Background(), path, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := readEverything(a); err != nil {
				t.Fatal(err)
			}
			if len(a.Blobs()) != 4 {
				t.Fatalf("%d blobs", len(a.Blobs()))
			}
		})
	}
}

// A compressed archive whose blobs come before the manifest declaring them
// (our writer sorts blobs by digest) is checked at the end of the stream.
func TestCompressedSizeCheckedAfterTheFact(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	es := v.entries(t)
	// Move the manifest to the end and make a layer entry one byte longer
	// than the manifest declares: index.json is read first, the layer
	// before the manifest that declares it.
	var layerFirst []tarEntry
	var man tarEntry
	for _, e := range es {
		switch e.hdr.Name {
		case BlobName(v.manifest.Digest):
			man = e
		case BlobName(v.layers[1].Digest):
			e.data = append(bytes.Clone(e.data), 0)
			layerFirst = append(layerFirst, e)
		default:
			layerFirst = append(layerFirst, e)
		}
	}
	layerFirst = append(layerFirst, man)
	path := filepath.Join(t.TempDir(), "a.tar.gz")
	os.WriteFile(path, gz(t, writeTar(t, layerFirst)), 0o644)
	_, err := Open(context.Background(), path, OpenOptions{})
	if !errors.Is(err, ErrInvalidArchive) || !strings.Contains(err.Error(), v.layers[1].Digest.Encoded()) {
		t.Fatalf("want a size error naming the layer, got %v", err)
	}
}

func TestCheckJSONDepth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		max  int
		fail bool
	}{
		{`{"a":[1,2,{"b":3}]}`, 3, false},
		{`{"a":[1,2,{"b":3}]}`, 2, true},
		{`{"a":"[[[[[[[[[["}`, 1, false},
		{`{"a":"\"[[[[[["}`, 1, false},
		{`[[]]`, 1, true},
		{``, 1, false},
	}
	for _, tc := range cases {
		if err := checkJSONDepth([]byte(tc.in), tc.max); (err != nil) != tc.fail {
			t.Errorf("checkJSONDepth(%q, %d) = %v", tc.in, tc.max, err)
		}
	}
}
