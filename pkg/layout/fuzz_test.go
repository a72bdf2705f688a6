package layout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

// fuzzLimits keep each fuzz input cheap.
var fuzzLimits = Limits{MaxEntries: 2000, MaxMetadataBytes: 1 << 20, MaxArchiveBytes: 64 << 20, MaxJSONDepth: 32, MaxExpansion: 50}

// knownErrors are the sentinels every refusal of an archive must carry, so
// a caller can tell a hostile archive from its own failure.
var knownErrors = []error{ErrUnsafeEntry, ErrInvalidArchive, ErrTooLarge, ErrBlobNotFound, ErrInvalidDigest,
	ErrInvalidManifest, verify.ErrDigestMismatch, verify.ErrSizeMismatch}

func classified(err error) bool {
	for _, k := range knownErrors {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// FuzzOpen feeds arbitrary bytes to the archive reader (plain, gzip or
// zstd, as detected): it must never panic, must refuse with a classified
// error, must read every blob it accepts through verification, and must
// leave its temporary directory empty.
func FuzzOpen(f *testing.F) {
	v := newValidLayoutSeeded(f)
	f.Add(v)
	f.Add(gz(f, v))
	f.Add(zst(f, v))
	f.Add(v[:len(v)-2*blockSize])
	f.Add(append(bytes.Clone(v), "trailing"...))
	f.Add([]byte{})
	f.Add(make([]byte, 2*blockSize))
	// One directory per fuzzing process, reused by every input (inputs run
	// one at a time in a process): creating one per input would make file
	// system work, not the reader, the cost of each execution.
	dir := f.TempDir()
	path := filepath.Join(dir, "a.tar")
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Open(context.Background(), path, OpenOptions{Limits: fuzzLimits, TempDir: tmp})
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified refusal: %v", err)
			}
		} else {
			for d, size := range a.Blobs() {
				r, err := a.Blob(d, size)
				if err != nil {
					t.Fatalf("listed blob %s cannot be opened: %v", d, err)
				}
				n, err := io.Copy(io.Discard, r)
				if err != nil && !classified(err) {
					t.Fatalf("blob %s: unclassified error %v", d, err)
				}
				if err == nil && n != size {
					t.Fatalf("blob %s: verified %d bytes of %d", d, n, size)
				}
				if _, err := a.Metadata(d, size); err != nil && !classified(err) {
					t.Fatalf("metadata %s: unclassified error %v", d, err)
				}
			}
			if err := readEverything(a); err != nil && !classified(err) {
				t.Fatalf("unclassified error while reading: %v", err)
			}
			a.Close()
		}
		if es, _ := os.ReadDir(tmp); len(es) != 0 {
			t.Fatalf("%d files left in the temporary directory", len(es))
		}
		if es, _ := os.ReadDir(dir); len(es) != 2 {
			t.Fatalf("the reader wrote next to the archive: %d entries", len(es))
		}
	})
}

// FuzzChildren parses arbitrary manifests and indexes: every child it
// returns has a valid digest and a non-negative size.
func FuzzChildren(f *testing.F) {
	f.Add(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`))
	f.Add(ocispec.MediaTypeImageIndex, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}]}`))
	f.Add("", []byte(`{"schemaVersion":1}`))
	f.Add(MediaTypeDockerManifestList, []byte(`[[[[`))
	f.Fuzz(func(t *testing.T, mt string, raw []byte) {
		cs, err := Children(mt, raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) && !errors.Is(err, ErrInvalidDigest) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, c := range cs {
			if ValidateDigest(c.Digest) != nil || c.Size < 0 {
				t.Fatalf("accepted child %+v", c)
			}
		}
	})
}

// FuzzBlobName checks that the blob path grammar and the name check agree,
// and that an accepted blob name is exactly the path built from its digest.
func FuzzBlobName(f *testing.F) {
	f.Add("blobs/sha256/" + strings.Repeat("a", 64))
	f.Add("blobs/sha512/" + strings.Repeat("0", 128))
	f.Add("blobs/sha256/../" + strings.Repeat("a", 64))
	f.Add("artifacts/layout/blobs/sha256/" + strings.Repeat("f", 64))
	f.Add("/etc/passwd")
	f.Fuzz(func(t *testing.T, name string) {
		d, ok := DigestFromBlobName(name)
		if ok {
			if ValidateDigest(d) != nil || BlobName(d) != name {
				t.Fatalf("%q gives digest %q", name, d)
			}
			if err := checkName(name); err != nil {
				t.Fatalf("a blob name is refused: %v", err)
			}
		}
		if checkName(name) == nil {
			for _, part := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
				if part == ".." || part == "." || part == "" {
					t.Fatalf("accepted %q", name)
				}
			}
			if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
				t.Fatalf("accepted %q", name)
			}
		}
	})
}

// newValidLayoutSeeded is newValidLayout with fixed content, for seeds.
func newValidLayoutSeeded(tb testing.TB) []byte {
	tb.Helper()
	layer := bytes.Repeat([]byte("layer"), 40)
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	ld := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	cd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"` + cd.MediaType + `","digest":"` + cd.Digest.String() + `","size":` + strconv.FormatInt(cd.Size, 10) + `},"layers":[{"mediaType":"` + ld.MediaType + `","digest":"` + ld.Digest.String() + `","size":` + strconv.FormatInt(ld.Size, 10) + `}]}`)
	md := digest.FromBytes(m)
	idx := []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + md.String() + `","size":` + strconv.FormatInt(int64(len(m)), 10) + `}]}`)
	p, err := NewPlan([]File{{Name: OCILayoutFile, Data: []byte(OCILayoutContent)}, {Name: IndexFile, Data: idx}, {Name: BundleFile, Data: []byte(`{}`)}},
		[]Blob{{Digest: ld.Digest, Size: ld.Size, Data: layer}, {Digest: cd.Digest, Size: cd.Size, Data: cfg}, {Digest: md, Size: int64(len(m)), Data: m}})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := p.WriteStream(context.Background(), &buf, nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
