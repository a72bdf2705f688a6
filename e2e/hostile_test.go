package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/flate"
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

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// hostileEntry is one entry of an archive being forged.
type hostileEntry struct {
	hdr  tar.Header
	data []byte
}

// hostileArchive is a valid export held in memory, to be forged.
type hostileArchive struct {
	t       *testing.T
	entries []hostileEntry
}

func readHostileArchive(t *testing.T, path string) *hostileArchive {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := &hostileArchive{t: t}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return a
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		a.entries = append(a.entries, hostileEntry{hdr: *h, data: b})
	}
}

func (a *hostileArchive) clone() *hostileArchive {
	c := &hostileArchive{t: a.t}
	for _, e := range a.entries {
		c.entries = append(c.entries, hostileEntry{hdr: e.hdr, data: bytes.Clone(e.data)})
	}
	return c
}

func (a *hostileArchive) get(name string) []byte {
	for _, e := range a.entries {
		if e.hdr.Name == name {
			return e.data
		}
	}
	a.t.Fatalf("the archive has no %s", name)
	return nil
}

func (a *hostileArchive) set(name string, data []byte) {
	for i := range a.entries {
		if a.entries[i].hdr.Name == name {
			a.entries[i].data = data
			return
		}
	}
	a.entries = append(a.entries, hostileEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Format: tar.FormatPAX}, data: data})
}

func (a *hostileArchive) remove(name string) {
	out := a.entries[:0]
	for _, e := range a.entries {
		if e.hdr.Name != name {
			out = append(out, e)
		}
	}
	a.entries = out
}

func (a *hostileArchive) add(e hostileEntry) *hostileArchive {
	a.entries = append(a.entries, e)
	return a
}

// bytes renders the archive as a tar.
func (a *hostileArchive) bytes() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range a.entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			a.t.Fatal(err)
		}
		tw.Write(e.data)
	}
	tw.Close()
	return buf.Bytes()
}

// replaceBlob puts content in place of blob old and re-seals every
// document that refers to it (manifests, indexes, index.json, bundle.json
// and, through bundle.json, the bundle's config blob), so that the archive
// stays consistent except for what the test changed on purpose.
func (a *hostileArchive) replaceBlob(old digest.Digest, content []byte) digest.Digest {
	nd := digest.FromBytes(content)
	a.remove(layout.BlobName(old))
	a.set(layout.BlobName(nd), content)
	// Re-seal one referring document at a time: re-sealing one can rename
	// another (a parent), so look again after each.
	for {
		n := ""
		for _, e := range a.entries {
			if e.hdr.Typeflag == tar.TypeReg && len(e.data) < 1<<20 && bytes.HasPrefix(e.data, []byte("{")) && bytes.Contains(e.data, []byte(old)) {
				n = e.hdr.Name
				break
			}
		}
		if n == "" {
			break
		}
		before := a.get(n)
		after := redescribe(a.t, before, old, nd, int64(len(content)))
		switch n {
		case layout.IndexFile:
			a.set(n, after)
		case layout.BundleFile:
			a.set(n, after)
			a.replaceBlob(digest.FromBytes(before), after) // the bundle's config blob is bundle.json
		default:
			d, _ := layout.DigestFromBlobName(n)
			a.replaceBlob(d, after)
		}
	}
	return nd
}

// redescribe rewrites a JSON document so that every descriptor (digest,
// contentDigest) naming old names nd with size instead, and every other
// mention of old (annotations) names nd.
func redescribe(t *testing.T, doc []byte, old, nd digest.Digest, size int64) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var walk func(x any) any
	walk = func(x any) any {
		switch y := x.(type) {
		case map[string]any:
			for _, k := range []string{"digest", "contentDigest"} {
				if y[k] == old.String() {
					y[k] = nd.String()
					if _, ok := y["size"]; ok {
						y["size"] = size
					}
				}
			}
			for k, v := range y {
				y[k] = walk(v)
			}
		case []any:
			for i := range y {
				y[i] = walk(y[i])
			}
		case string:
			// Annotations such as the source reference name it inside
			// a longer string.
			return strings.ReplaceAll(y, old.String(), nd.String())
		}
		return x
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(walk(v)); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// hostileZeroGzip is a gzip member of prefix followed by n MiB of zeros,
// built from one repeated deflate block (see the layout package's tests).
// Its trailer is deliberately wrong: a reader that stops early never
// reaches it.
func hostileZeroGzip(prefix []byte, n int) []byte {
	var body bytes.Buffer
	fw, _ := flate.NewWriter(&body, flate.BestCompression)
	zero := make([]byte, 1<<20)
	fw.Write(prefix)
	fw.Write(zero)
	fw.Flush()
	head := body.Len()
	fw.Write(zero)
	fw.Flush()
	block := bytes.Clone(body.Bytes()[head:])
	var out bytes.Buffer
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	out.Write(body.Bytes()[:head])
	for range n - 1 {
		out.Write(block)
	}
	out.Write([]byte{3, 0})
	out.Write(make([]byte, 8))
	return out.Bytes()
}

// Every hostile archive of issue 4, built at test time from a valid
// export, is refused with a clear error naming what is at fault; nothing
// is written outside the temporary directory, no tag appears at the
// target and no mapping is written.
func TestHostileArchivesAreRefused(t *testing.T) {
	ctx := context.Background()
	valid, _ := exportedSample(t, harness.SampleOptions{})
	base := readHostileArchive(t, valid)
	b, err := archive.Load(ctx, valid, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var worker, db archive.ImageEntry
	for _, e := range b.Images {
		switch e.Label() {
		case "component worker":
			worker = e
		case "component db":
			db = e
		}
	}
	var biggest digest.Digest
	for d, s := range b.Blobs {
		if s > b.Blobs[biggest] {
			biggest = d
		}
	}
	workerManifest := b.Nodes[worker.Desc.Digest]
	b.Close()

	marker := "hostile-" + hex.EncodeToString(func() []byte { x := make([]byte, 6); rand.Read(x); return x }())
	reg := func(name string, data string) hostileEntry {
		return hostileEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Format: tar.FormatPAX}, data: []byte(data)}
	}
	special := func(typ byte, name, link string) hostileEntry {
		return hostileEntry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644, Devmajor: 1, Devminor: 3}}
	}
	forge := func(f func(a *hostileArchive)) []byte {
		a := base.clone()
		f(a)
		return a.bytes()
	}
	deep := func(n int) []byte { return append(bytes.Repeat([]byte("["), n), bytes.Repeat([]byte("]"), n)...) }
	raw, err := os.ReadFile(valid)
	if err != nil {
		t.Fatal(err)
	}
	// A gzip bomb: the valid archive's first entries, then a blob header
	// announcing 2 GiB that no descriptor declares, then zeros. (2 GiB: far
	// above the expansion cap, below any test machine's free space, so the
	// free-space check, which would refuse it too, does not answer first.)
	var bombHead bytes.Buffer
	{
		tw := tar.NewWriter(&bombHead)
		for _, e := range base.entries[:3] {
			h := e.hdr
			tw.WriteHeader(&h)
			tw.Write(e.data)
		}
		tw.Flush()
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "blobs/sha256/" + strings.Repeat("ab", 32), Size: 2 << 30, Mode: 0o644, Format: tar.FormatPAX})
		tw.Flush()
	}

	cases := []struct {
		name    string
		archive func(w io.Writer)
		want    error
		mention string
	}{
		{"path traversal", bytesOf(forge(func(a *hostileArchive) { a.add(reg("../"+marker, "x")) })), layout.ErrUnsafeEntry, "../" + marker},
		{"absolute path", bytesOf(forge(func(a *hostileArchive) { a.add(reg("/tmp/"+marker, "x")) })), layout.ErrUnsafeEntry, "/tmp/" + marker},
		{"symlink", bytesOf(forge(func(a *hostileArchive) { a.add(special(tar.TypeSymlink, "relocation-mapping.json", "/etc/passwd")) })), layout.ErrUnsafeEntry, "symlink"},
		{"hardlink", bytesOf(forge(func(a *hostileArchive) { a.add(special(tar.TypeLink, "relocation-mapping.json", layout.BundleFile)) })), layout.ErrUnsafeEntry, "hardlink"},
		{"device", bytesOf(forge(func(a *hostileArchive) { a.add(special(tar.TypeChar, "relocation-mapping.json", "")) })), layout.ErrUnsafeEntry, "character device"},
		{"fifo", bytesOf(forge(func(a *hostileArchive) { a.add(special(tar.TypeFifo, "relocation-mapping.json", "")) })), layout.ErrUnsafeEntry, "fifo"},
		{"wrong blob digest", bytesOf(forge(func(a *hostileArchive) {
			d := bytes.Clone(a.get(layout.BlobName(biggest)))
			d[len(d)/2] ^= 0xff
			a.set(layout.BlobName(biggest), d)
		})), verify.ErrDigestMismatch, biggest.String()},
		{"truncated blob", bytesOf(forge(func(a *hostileArchive) {
			d := a.get(layout.BlobName(biggest))
			a.set(layout.BlobName(biggest), d[:len(d)/2])
		})), archive.ErrInvalidArchive, biggest.String()},
		{"descriptor size smaller than the blob", bytesOf(forge(func(a *hostileArchive) {
			var m map[string]any
			json.Unmarshal(workerManifest.Raw, &m)
			l := m["layers"].([]any)[0].(map[string]any)
			l["size"] = l["size"].(float64) - 1
			shorter, _ := json.Marshal(m)
			a.replaceBlob(worker.Desc.Digest, shorter)
		})), archive.ErrInvalidArchive, "described as"},
		{"index.json references a missing blob", bytesOf(forge(func(a *hostileArchive) { a.remove(layout.BlobName(worker.Desc.Digest)) })), layout.ErrBlobNotFound, worker.Desc.Digest.String()},
		{"duplicate entries with different contents", bytesOf(forge(func(a *hostileArchive) { a.add(reg(layout.BundleFile, `{"name":"evil"}`)) })), layout.ErrUnsafeEntry, "duplicate"},
		{"50 MB of JSON nesting in index.json", bytesOf(forge(func(a *hostileArchive) { a.set(layout.IndexFile, deep(25<<20)) })), layout.ErrTooLarge, "index.json"},
		{"gzip bomb", bytesOf(hostileZeroGzip(bombHead.Bytes(), 1024)), layout.ErrTooLarge, "decompression bomb"},
		{"truncated tar", bytesOf(raw[:len(raw)/2]), layout.ErrInvalidArchive, "truncated"},
		{"200,000 tiny entries", func(w io.Writer) {
			tw := tar.NewWriter(w)
			for i := range 200_000 {
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("blobs/sha256/%064x", i), Mode: 0o644})
			}
			tw.Close()
		}, layout.ErrTooLarge, "100000 entries"},
		{"bundle.json contentDigest does not match the carried manifest", bytesOf(forge(func(a *hostileArchive) {
			bj := a.get(layout.BundleFile)
			forged := bytes.Replace(bj, []byte(db.Desc.Digest.String()), []byte(worker.Desc.Digest.String()), 1)
			if bytes.Equal(forged, bj) {
				t.Fatal("bundle.json does not name db's digest")
			}
			a.set(layout.BundleFile, forged)
			a.replaceBlob(digest.FromBytes(bj), forged)
		})), archive.ErrBundleMismatch, "component db"},
	}

	dst := startRegistry(t)
	c := clientFor(t, dst)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			work := filepath.Join(dir, "work")
			tmp := filepath.Join(dir, "tmp")
			os.Mkdir(work, 0o755)
			os.Mkdir(tmp, 0o755)
			path := filepath.Join(work, "bundle.tar")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			bw := bufio.NewWriter(f)
			tc.archive(bw)
			bw.Flush()
			f.Close()
			mapping := filepath.Join(work, "relocation-mapping.json")
			start := time.Now()
			_, err = importer.Import(ctx, importer.Request{Archive: path, Target: dst.Host + "/airgap", MappingPath: mapping},
				importer.WithClient(c), importer.WithOpenOptions(layout.OpenOptions{TempDir: tmp}))
			if err == nil {
				t.Fatal("the hostile archive was imported")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			if msg := strings.ReplaceAll(err.Error(), path, "ARCHIVE"); !strings.Contains(msg, tc.mention) {
				t.Fatalf("the error does not name %q: %v", tc.mention, err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("refusing took %s", d)
			}
			t.Logf("refused in %s: %v", time.Since(start).Round(time.Millisecond), strings.ReplaceAll(err.Error(), path, "ARCHIVE"))
			// Nothing written outside the temporary directory.
			for _, d := range []string{work, tmp} {
				es, _ := os.ReadDir(d)
				for _, e := range es {
					if !(d == work && e.Name() == "bundle.tar") {
						t.Errorf("%s left in %s", e.Name(), d)
					}
				}
			}
			cwd, _ := os.Getwd()
			for _, d := range []string{dir, filepath.Dir(dir), cwd, filepath.Dir(cwd), os.TempDir(), "/tmp"} {
				es, _ := os.ReadDir(d)
				for _, e := range es {
					if strings.Contains(e.Name(), marker) {
						t.Errorf("a hostile entry was written: %s", filepath.Join(d, e.Name()))
					}
				}
			}
			// No tags at the target.
			if tags := tagsAtTarget(t, dst); len(tags) != 0 {
				t.Fatalf("tags pushed from a hostile archive: %v", tags)
			}
		})
	}

	// The same target takes the untouched archive: the refusals above were
	// about the archives, not the registry.
	if _, err := importer.Import(ctx, importer.Request{Archive: valid, Target: dst.Host + "/airgap"}, importer.WithClient(c)); err != nil {
		t.Fatal(err)
	}
	if tags := tagsAtTarget(t, dst); len(tags) == 0 {
		t.Fatal("the valid archive left no tag")
	}
}

func bytesOf(b []byte) func(io.Writer) { return func(w io.Writer) { w.Write(b) } }
