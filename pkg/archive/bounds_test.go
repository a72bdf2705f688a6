package archive_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

type entry = testarchive.Entry

// fixture writes the test archive and returns it with its entries.
func fixture(t *testing.T) (*testarchive.Archive, []entry) {
	t.Helper()
	fx, err := testarchive.Write(filepath.Join(t.TempDir(), "bundle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	es, err := testarchive.ReadEntries(fx.Path)
	if err != nil {
		t.Fatal(err)
	}
	return fx, es
}

// writeArchive renders entries as a tar file (gzipped if zip) and returns its path.
func writeArchive(t *testing.T, es []entry, zip bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "forged.tar")
	if err := testarchive.WriteEntries(path, es, zip); err != nil {
		t.Fatal(err)
	}
	return path
}

// withRoots adds manifests to the archive, each named as a root in
// index.json (content carried along, as signing artifacts are).
func withRoots(t *testing.T, es []entry, manifests [][]byte) []entry {
	t.Helper()
	out := append([]entry{}, es...)
	for i := range out {
		if out[i].Name != layout.IndexFile {
			continue
		}
		var idx ocispec.Index
		if err := json.Unmarshal(out[i].Data, &idx); err != nil {
			t.Fatal(err)
		}
		for _, m := range manifests {
			idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))})
		}
		out[i].Data, _ = json.Marshal(idx)
	}
	for _, m := range manifests {
		out = append(out, entry{Name: layout.BlobName(digest.FromBytes(m)), Data: m})
	}
	return out
}

// manifest returns an image manifest over the fixture's shared layer and
// the given config blob, with n copies of the layer and an annotation of
// pad bytes.
func manifest(fx *testarchive.Archive, config ocispec.Descriptor, n, pad int, tag string) []byte {
	layers := make([]ocispec.Descriptor, n)
	for i := range layers {
		layers[i] = fx.SharedLayer
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers,
		Annotations: map[string]string{"pad": tag + strings.Repeat("x", pad)}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	return b
}

func configOf(fx *testarchive.Archive) ocispec.Descriptor {
	for d, s := range fx.Blobs {
		if d != fx.SharedLayer.Digest {
			return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: d, Size: s}
		}
	}
	panic("no config")
}

// A blob entry that no manifest reachable from index.json references is
// refused, named, whether its name is its digest or not; the fixture
// itself, whose every blob is referenced, loads.
func TestUnreferencedEntriesRefused(t *testing.T) {
	t.Parallel()
	fx, es := fixture(t)
	b, err := archive.Load(context.Background(), fx.Path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	stray := []byte("read by some other tool")
	liar := entry{Name: "blobs/sha256/" + strings.Repeat("ab", 32), Data: []byte("not what the name says")}
	for name, extra := range map[string][]entry{
		"honest name":            {{Name: layout.BlobName(digest.FromBytes(stray)), Data: stray}},
		"name is not its digest": {liar},
		"several":                {{Name: layout.BlobName(digest.FromBytes(stray)), Data: stray}, liar, {Name: layout.BlobName(digest.FromString("a")), Data: []byte("a")}, {Name: layout.BlobName(digest.FromString("b")), Data: []byte("b")}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, zip := range []bool{false, true} {
				path := writeArchive(t, append(append([]entry{}, es...), extra...), zip)
				_, err := archive.Load(context.Background(), path, layout.OpenOptions{})
				if !errors.Is(err, archive.ErrInvalidArchive) || !errors.Is(err, layout.ErrInvalidArchive) {
					t.Fatalf("want ErrInvalidArchive, got %v", err)
				}
				if !strings.Contains(err.Error(), extra[0].Name) || !strings.Contains(err.Error(), fmt.Sprintf("%d blob entries", len(extra))) {
					t.Fatalf("the error does not name the entry and the count: %v", err)
				}
				if len(extra) > 3 && !strings.Contains(err.Error(), "and 1 more") {
					t.Fatalf("the error does not say how many more: %v", err)
				}
			}
		})
	}
}

// The manifests and indexes a loaded archive holds are bounded all
// together: many manifests, each within MaxMetadataBytes, are refused once
// they add up to more than MaxTotalMetadataBytes.
func TestTotalMetadataBudget(t *testing.T) {
	t.Parallel()
	fx, es := fixture(t)
	cfg := configOf(fx)
	var ms [][]byte
	for i := range 10 {
		ms = append(ms, manifest(fx, cfg, 1, 200<<10, fmt.Sprint(i)))
	}
	path := writeArchive(t, withRoots(t, es, ms), false)
	// Within the default budget, the forged archive is valid.
	b, err := archive.Load(context.Background(), path, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err = archive.Load(context.Background(), path, layout.OpenOptions{Limits: layout.Limits{MaxTotalMetadataBytes: 1 << 20}})
	if !errors.Is(err, layout.ErrTooLarge) || !strings.Contains(err.Error(), "MaxTotalMetadataBytes") || !strings.Contains(err.Error(), "limit 1048576") {
		t.Fatalf("want ErrTooLarge naming MaxTotalMetadataBytes, got %v", err)
	}
}

// The descriptors of index.json and every manifest and index are bounded
// all together, for plain archives (when the graph is walked) and
// compressed ones (already while they stream).
func TestDescriptorBudget(t *testing.T) {
	t.Parallel()
	fx, es := fixture(t)
	cfg := configOf(fx)
	ms := [][]byte{manifest(fx, cfg, 300, 0, "a"), manifest(fx, cfg, 300, 0, "b")}
	for _, zip := range []bool{false, true} {
		path := writeArchive(t, withRoots(t, es, ms), zip)
		b, err := archive.Load(context.Background(), path, layout.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		_, err = archive.Load(context.Background(), path, layout.OpenOptions{Limits: layout.Limits{MaxDescriptors: 500}})
		if !errors.Is(err, layout.ErrTooLarge) || !strings.Contains(err.Error(), "MaxDescriptors") || !strings.Contains(err.Error(), "limit 500") {
			t.Fatalf("gzip %v: want ErrTooLarge naming MaxDescriptors, got %v", zip, err)
		}
	}
}
