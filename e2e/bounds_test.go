package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// runMeasured runs the CLI binary under GNU time and returns its exit
// code, stderr, and peak resident set size in bytes. (The rusage of a
// child forked from this test process would count this process's own
// memory, which holds the forged archives.)
func runMeasured(t *testing.T, args ...string) (int, string, int64) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rss")
	var stderr bytes.Buffer
	cmd := exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", out, cliBinary(t)}, args...)...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("/usr/bin/time is needed to measure the peak RSS: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	kb, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		t.Fatalf("GNU time wrote %q", raw)
	}
	return cmd.ProcessState.ExitCode(), stderr.String(), kb * 1024
}

// zstdArchive writes a.bytes() zstd-compressed, then (if tail is set)
// whatever tail writes into the same stream.
func zstdArchive(t *testing.T, path string, tarBytes []byte, tail func(w io.Writer)) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := zstd.NewWriter(f, zstd.WithEncoderConcurrency(1))
	zw.Write(tarBytes)
	if tail != nil {
		tail(zw)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// addRoots names manifests as extra roots of index.json and carries them.
func addRoots(t *testing.T, a *hostileArchive, ms [][]byte) {
	var idx ocispec.Index
	if err := json.Unmarshal(a.get(layout.IndexFile), &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))})
	}
	raw, _ := json.Marshal(idx)
	a.set(layout.IndexFile, raw)
	for _, m := range ms {
		a.set(layout.BlobName(digest.FromBytes(m)), m)
	}
}

// Many large manifests, each within the per-document limit, cannot take
// the memory of verify: 150 manifests of 8 MiB (a zstd file of a few
// hundred kilobytes) and 24 of them uncompressed (192 MiB) are refused
// with a peak RSS of at most 256 MiB.
func TestHostileManyLargeManifests(t *testing.T) {
	valid, _ := exportedSample(t, harness.SampleOptions{})
	base := readHostileArchive(t, valid)
	var some digest.Digest
	var size int64
	for _, e := range base.entries {
		if d, ok := layout.DigestFromBlobName(e.hdr.Name); ok && !bytes.HasPrefix(e.data, []byte("{")) {
			some, size = d, int64(len(e.data))
			break
		}
	}
	mk := func(i int) []byte {
		blob := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: some, Size: size}
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: blob, Layers: []ocispec.Descriptor{}}
		m.SchemaVersion = 2
		m.Annotations = map[string]string{"pad": fmt.Sprint(i) + strings.Repeat("x", 8<<20-1024)}
		b, _ := json.Marshal(m)
		return b
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		n    int
		zst  bool
	}{{"150 manifests of 8 MiB, zstd", 150, true}, {"24 manifests of 8 MiB, plain", 24, false}} {
		t.Run(tc.name, func(t *testing.T) {
			a := base.clone()
			ms := make([][]byte, tc.n)
			for i := range ms {
				ms[i] = mk(i)
			}
			addRoots(t, a, ms)
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".tar")
			if tc.zst {
				zstdArchive(t, path, a.bytes(), nil)
			} else if err := os.WriteFile(path, a.bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(path)
			code, stderr, rss := runMeasured(t, "verify", "--tmp-dir", t.TempDir(), path)
			t.Logf("%d bytes on disk: exit %d, peak RSS %d MiB: %s", st.Size(), code, rss>>20, strings.TrimSpace(stderr))
			if code == 0 || !strings.Contains(stderr, layout.ErrTooLarge.Error()) {
				t.Fatalf("verify did not refuse with %v: exit %d: %s", layout.ErrTooLarge, code, stderr)
			}
			if rss > 256<<20 {
				t.Fatalf("verify peaked at %d MiB RSS, limit 256 MiB", rss>>20)
			}
		})
	}
}

// A valid export followed by a manifest that honestly declares a 3 GiB
// layer of zeros, all zstd-compressed (a few hundred kilobytes), is refused
// by verify after writing a bounded amount to --tmp-dir.
func TestHostileDeclaredLayerBomb(t *testing.T) {
	valid, _ := exportedSample(t, harness.SampleOptions{})
	a := readHostileArchive(t, valid)
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("3 GiB of zeros"), Size: 3 << 30}
	var cfg ocispec.Descriptor
	for _, e := range a.entries {
		if d, ok := layout.DigestFromBlobName(e.hdr.Name); ok {
			cfg = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: d, Size: int64(len(e.data))}
			break
		}
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	raw, _ := json.Marshal(m)
	addRoots(t, a, [][]byte{raw})
	body := a.bytes()
	body = body[:len(body)-1024] // without the end-of-archive marker: the layer follows
	path := filepath.Join(t.TempDir(), "bomb.tar.zst")
	zstdArchive(t, path, body, func(w io.Writer) {
		tw := tar.NewWriter(w)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: layout.BlobName(layer.Digest), Size: layer.Size, Mode: 0o644, Format: tar.FormatPAX})
		zero := make([]byte, 1<<20)
		for range 3 << 10 {
			tw.Write(zero)
		}
		tw.Close()
	})
	st, _ := os.Stat(path)
	tmp := t.TempDir()
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var max int64
		for {
			var n int64
			filepath.WalkDir(tmp, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if i, err := d.Info(); err == nil {
						n += i.Size()
					}
				}
				return nil
			})
			if n > max {
				max = n
			}
			select {
			case <-stop:
				peak <- max
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	code, stderr, _ := runMeasured(t, "verify", "--tmp-dir", tmp, path)
	close(stop)
	written := <-peak
	t.Logf("%d compressed bytes: exit %d, at most %d bytes written to --tmp-dir: %s", st.Size(), code, written, strings.TrimSpace(stderr))
	if code == 0 || !strings.Contains(stderr, "decompression bomb") || !strings.Contains(stderr, layout.ErrTooLarge.Error()) {
		t.Fatalf("verify did not refuse the bomb: exit %d: %s", code, stderr)
	}
	if bound := int64(64<<20) + 100*st.Size() + 2<<20; written > bound {
		t.Fatalf("%d bytes written to --tmp-dir, bound %d", written, bound)
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Fatalf("left in --tmp-dir: %v", es)
	}
}
