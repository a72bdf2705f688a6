package layout

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// declaredBomb writes to w a zstd archive whose index.json names a manifest
// that declares a layer of layerSize bytes, followed by that layer: its
// header, then zeros (all of them, or up to the end of the stream). The
// manifest is honest about the layer's size, so nothing but the expansion
// ratio stops the copy.
func declaredBomb(t testing.TB, w io.Writer, layerSize int64) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgD := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(fmt.Sprintf("%d zeros", layerSize)), Size: layerSize}
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specsV2, MediaType: ocispec.MediaTypeImageManifest, Config: cfgD, Layers: []ocispec.Descriptor{layer}})
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}})
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range []tarEntry{reg(OCILayoutFile, []byte(OCILayoutContent)), reg(IndexFile, idx), reg(BlobName(md.Digest), m), reg(BlobName(cfgD.Digest), cfg)} {
		h := e.hdr
		h.Size = int64(len(e.data))
		tw.WriteHeader(&h)
		tw.Write(e.data)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: BlobName(layer.Digest), Size: layerSize, Mode: 0o644, Format: tar.FormatPAX})
	zero := make([]byte, 1<<20)
	for left := layerSize; left > 0; left -= int64(len(zero)) {
		if _, err := tw.Write(zero[:min(left, int64(len(zero)))]); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// peakSize polls the total size of the files under dir until stop is
// closed and returns the largest it saw.
func peakSize(dir string, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		for {
			var n int64
			filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if st, err := d.Info(); err == nil {
						n += st.Size()
					}
				}
				return nil
			})
			peak = max(peak, n)
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return out
}

// A small zstd archive that honestly declares a 3 GiB layer of zeros is
// refused after a bounded amount was written to the temporary directory:
// a size declared by a descriptor is no licence to fill the disk.
func TestDeclaredBlobBombIsCutOff(t *testing.T) {
	t.Parallel()
	dir, tmp := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "bomb.tar.zst")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	declaredBomb(t, f, 3<<30)
	f.Close()
	st, _ := os.Stat(path)
	stop := make(chan struct{})
	peak := peakSize(tmp, stop)
	start := time.Now()
	_, err = Open(context.Background(), path, OpenOptions{TempDir: tmp})
	close(stop)
	written := <-peak
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "declared blobs included") {
		t.Fatalf("want ErrTooLarge for a declared blob bomb, got %v", err)
	}
	bound := int64(expansionSlack) + DefaultLimits.MaxDeclaredExpansion*st.Size() + 2<<20 // + the write buffer
	t.Logf("%d compressed bytes: refused after %s, at most %d bytes written to the temporary directory (bound %d): %v", st.Size(), time.Since(start).Round(time.Millisecond), written, bound, err)
	if written > bound {
		t.Fatalf("%d bytes were written to the temporary directory, bound %d", written, bound)
	}
	assertNothingWritten(t, dir, tmp, "bomb.tar.zst")
}

// A tiny MaxArchiveBytes refuses the bomb at once, from the entry's header,
// before its data is decompressed.
func TestEntryLargerThanMaxArchiveBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bomb.tar.zst")
	f, _ := os.Create(path)
	declaredBomb(t, f, 256<<20)
	f.Close()
	_, err := Open(context.Background(), path, OpenOptions{TempDir: dir, Limits: Limits{MaxArchiveBytes: 100 << 20}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "announces 268435456 bytes") || !strings.Contains(err.Error(), "--max-archive-size") {
		t.Fatalf("want ErrTooLarge naming the entry and --max-archive-size, got %v", err)
	}
}

// An entry announcing more bytes than the temporary directory has free is
// refused from its header, naming the directory, the space needed and the
// space free, before any of its data is written.
func TestFreeSpaceCheckedBeforeWriting(t *testing.T) {
	t.Parallel()
	dir, tmp := t.TempDir(), t.TempDir()
	free := diskFree(tmp)
	if free < 0 {
		t.Fatalf("statfs %s failed", tmp)
	}
	huge := free + 1<<30
	v := newValidLayout(t)
	// The valid archive, then an undeclared blob announcing more than the
	// disk holds, then a little data and the stream's end.
	head := append(bytes.Clone(v.raw[:len(v.raw)-2*blockSize]), tarHeader(t, "blobs/sha256/"+strings.Repeat("cd", 32), huge)...)
	path := filepath.Join(dir, "a.tar.gz")
	os.WriteFile(path, gz(t, append(head, make([]byte, 4096)...)), 0o644)
	_, err := Open(context.Background(), path, OpenOptions{TempDir: tmp, Limits: Limits{MaxArchiveBytes: math.MaxInt64 / 2}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
	for _, want := range []string{tmp, fmt.Sprint(padded(huge)), "free", "--tmp-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("the error does not name %q: %v", want, err)
		}
	}
	t.Log(err)
	assertNothingWritten(t, dir, tmp, "a.tar.gz")
}

// The archive's sha256 is computed through the handle Open parses and given
// to OpenOptions.Verify before anything else happens; a file swapped at
// the path afterwards changes neither what is read nor FileDigest.
func TestVerifyHookSeesTheParsedBytes(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	other := newValidLayout(t) // same shape, other content
	for name, raw := range map[string][]byte{"plain": v.raw, "gzip": gz(t, v.raw)} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.tar")
			os.WriteFile(path, raw, 0o644)
			var got digest.Digest
			a, err := Open(context.Background(), path, OpenOptions{Verify: func(_ context.Context, d digest.Digest) error {
				got = d
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if want := digest.FromBytes(raw); got != want {
				t.Fatalf("Verify was given %s, the file is %s", got, want)
			}
			// Swap the file at the path, as an attacker racing the reader would.
			swapped := filepath.Join(dir, "other")
			os.WriteFile(swapped, other.raw, 0o644)
			if err := os.Rename(swapped, path); err != nil {
				t.Fatal(err)
			}
			if err := readEverything(a); err != nil {
				t.Fatalf("reading after the swap: %v", err)
			}
			if _, ok := a.Has(v.layers[0].Digest); !ok {
				t.Fatal("the archive no longer has the verified content")
			}
			if _, ok := a.Has(other.layers[0].Digest); ok {
				t.Fatal("the swapped file is being read")
			}
			if d, err := a.FileDigest(context.Background()); err != nil || d != got {
				t.Fatalf("FileDigest after the swap = %s, %v; verified %s", d, err, got)
			}
		})
	}
}

// Without a Verify hook, FileDigest hashes the handle Open read, not the
// path: a file swapped since is not what it reports.
func TestFileDigestHashesTheHeldHandle(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	other := newValidLayout(t)
	for name, raw := range map[string][]byte{"plain": v.raw, "zstd": zst(t, v.raw)} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.tar")
			os.WriteFile(path, raw, 0o644)
			a, err := Open(context.Background(), path, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			os.Remove(path)
			os.WriteFile(path, other.raw, 0o644)
			d, err := a.FileDigest(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d != digest.FromBytes(raw) {
				t.Fatalf("FileDigest = %s, the opened file was %s (the file now at the path is %s)", d, digest.FromBytes(raw), digest.FromBytes(other.raw))
			}
		})
	}
}

// A failing Verify stops Open before anything is decompressed: the hook
// runs while the temporary directory is still empty, its error is Open's,
// and nothing is ever written there.
func TestFailingVerifyStopsOpenFirst(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o755)
	path := filepath.Join(dir, "a.tar.zst")
	os.WriteFile(path, zst(t, v.raw), 0o644)
	refused := errors.New("signature does not verify")
	stop := make(chan struct{})
	peak := peakSize(tmp, stop)
	var calls atomic.Int32
	_, err := Open(context.Background(), path, OpenOptions{TempDir: tmp, Verify: func(context.Context, digest.Digest) error {
		calls.Add(1)
		if es, _ := os.ReadDir(tmp); len(es) != 0 {
			t.Errorf("Verify ran after %s was written to", tmp)
		}
		return refused
	}})
	close(stop)
	if !errors.Is(err, refused) || calls.Load() != 1 {
		t.Fatalf("want the hook's error after one call, got %v (%d calls)", err, calls.Load())
	}
	if n := <-peak; n != 0 {
		t.Fatalf("%d bytes were written to the temporary directory", n)
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Fatalf("the temporary directory was used: %v", es)
	}
}

// For a split archive, Verify is given the digest of the joined parts,
// computed over the part handles that are then read.
func TestVerifyHookSplitArchive(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	big := make([]byte, 3*MinPartSize)
	rand.Read(big)
	raw := writeTar(t, append(v.entries(t), reg(BlobName(digest.FromBytes(big)), big))) // spans 4 parts
	dir := t.TempDir()
	path := filepath.Join(dir, "a.tar")
	os.WriteFile(path, raw, 0o644)
	ps, err := Split(context.Background(), path, MinPartSize, digest.FromBytes(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Parts) < 2 {
		t.Fatalf("%d parts", len(ps.Parts))
	}
	var got []digest.Digest
	a, err := Open(context.Background(), path+PartsSuffix, OpenOptions{Verify: func(_ context.Context, d digest.Digest) error {
		got = append(got, d)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(got) != 1 || got[0] != digest.FromBytes(raw) {
		t.Fatalf("Verify was given %v, the joined parts are %s", got, digest.FromBytes(raw))
	}
	if d, err := a.FileDigest(context.Background()); err != nil || d != got[0] {
		t.Fatalf("FileDigest = %s, %v", d, err)
	}
	if err := readEverything(a); err != nil {
		t.Fatal(err)
	}
}

// An archive carrying two OCI layouts, at its root and under
// artifacts/layout/, is refused: readers would not agree on which to read.
func TestTwoLayoutsRefused(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	base := v.entries(t)
	var both []tarEntry
	for _, e := range base {
		both = append(both, e)
		if e.hdr.Name != BundleFile {
			e.hdr.Name = thickPrefix + e.hdr.Name
			both = append(both, e)
		}
	}
	// One stray blob of the other layout is enough.
	stray := append(append([]tarEntry{}, base...), reg(thickPrefix+BlobName(v.layers[0].Digest), mustBlobData(t, base, v.layers[0].Digest)))
	for name, raw := range map[string][]byte{
		"both complete": writeTar(t, both), "both complete, gzipped": gz(t, writeTar(t, both)), "a stray thick blob": writeTar(t, stray),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.tar")
			os.WriteFile(path, raw, 0o644)
			_, err := Open(context.Background(), path, OpenOptions{})
			if !errors.Is(err, ErrInvalidArchive) || !strings.Contains(err.Error(), "two OCI layouts") || !strings.Contains(err.Error(), thickPrefix+"blobs/sha256/") {
				t.Fatalf("want two layouts refused, naming the entries, got %v", err)
			}
		})
	}
}

// While a compressed archive streams, the descriptors of its manifests count
// towards Limits.MaxDescriptors.
func TestDescriptorBudgetWhileStreaming(t *testing.T) {
	t.Parallel()
	v := newValidLayout(t)
	path := filepath.Join(t.TempDir(), "a.tar.gz")
	os.WriteFile(path, gz(t, v.raw), 0o644)
	// index.json (1) + the manifest (config and 2 layers) = 4 descriptors.
	if a, err := Open(context.Background(), path, OpenOptions{Limits: Limits{MaxDescriptors: 4}}); err != nil {
		t.Fatalf("4 descriptors within a limit of 4: %v", err)
	} else {
		a.Close()
	}
	_, err := Open(context.Background(), path, OpenOptions{Limits: Limits{MaxDescriptors: 3}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "MaxDescriptors") || !strings.Contains(err.Error(), v.manifest.Digest.Encoded()) {
		t.Fatalf("want ErrTooLarge naming the manifest and the limit, got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"1": 1, "500GiB": 500 << 30, "1TiB": 1 << 40, "2TB": 2e12, "10kB": 10e3, "10KB": 10e3, "7B": 7, "3MiB": 3 << 20, "8PiB": 8 << 50,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0GiB", "-1", "+1", "1.5GiB", "1 GiB", "GiB", "1gib", "1GIB", "1G", "1Gi", "1XB", "9223372036854775808", "8192PiB", " 1", "1e3", "0x10"} {
		if n, err := ParseSize(in); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("ParseSize(%q) = %d, %v; want ErrInvalidSize", in, n, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"500GiB", "1TB", "0", "1.5GiB", "9223372036854775807", "8191PiB", "kB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSize) {
				t.Fatalf("ParseSize(%q): unclassified error %v", s, err)
			}
			return
		}
		if n <= 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		// The plain number of bytes parses back to the same size.
		if m, err := ParseSize(fmt.Sprint(n)); err != nil || m != n {
			t.Fatalf("ParseSize(%d) = %d, %v", n, m, err)
		}
	})
}
