package layout

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestSplitJoinRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name       string
		size, part int64
		parts      int
	}{
		{"exact multiple", 4 * MinPartSize, MinPartSize, 4},
		{"short last part", 3*MinPartSize + 17, MinPartSize, 4},
		{"one part", MinPartSize / 2, MinPartSize, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.tar")
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			// A stale volume from an earlier, longer split goes away.
			os.WriteFile(path+".009", []byte("stale"), 0o644)
			ps, err := Split(ctx, path, tc.part, digest.FromBytes(data))
			if err != nil {
				t.Fatal(err)
			}
			if len(ps.Parts) != tc.parts {
				t.Fatalf("%d parts, want %d", len(ps.Parts), tc.parts)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatal("the archive is still there")
			}
			if _, err := os.Stat(path + ".009"); !os.IsNotExist(err) {
				t.Fatal("a stale volume is still there")
			}
			var cat []byte
			for _, p := range ps.Parts {
				b, err := os.ReadFile(filepath.Join(dir, p.Name))
				if err != nil {
					t.Fatal(err)
				}
				if digest.FromBytes(b) != p.Digest || int64(len(b)) != p.Size {
					t.Fatalf("part %s does not match its description", p.Name)
				}
				cat = append(cat, b...)
			}
			if !bytes.Equal(cat, data) {
				t.Fatal("the parts do not join to the archive")
			}
			for _, arg := range []string{path + PartsSuffix, PartName(path, 0, tc.parts)} {
				pf, err := PartsFileFor(arg)
				if err != nil || pf != path+PartsSuffix {
					t.Fatalf("PartsFileFor(%s) = %q, %v", arg, pf, err)
				}
			}
			f, _, err := JoinParts(ctx, path+PartsSuffix, dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, tc.size+1)
			n, _ := f.ReadAt(got, 0)
			f.Close()
			if !bytes.Equal(got[:n], data) {
				t.Fatal("JoinParts gave other bytes")
			}
			if _, _, err := JoinParts(ctx, path+PartsSuffix, dir, tc.size-1); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("limit not applied: %v", err)
			}
			// Only the parts file and the volumes are left: the joined copy was anonymous.
			entries, _ := os.ReadDir(dir)
			if len(entries) != tc.parts+1 {
				t.Fatalf("%d files left in the directory", len(entries))
			}
		})
	}
	if _, err := Split(ctx, filepath.Join(t.TempDir(), "x"), MinPartSize-1, ""); !errors.Is(err, ErrParts) {
		t.Fatalf("a tiny part size was accepted: %v", err)
	}
}

func TestThickPlanLayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 5)
	files := append(f.files, File{Name: MappingFile, Data: []byte("{}")})
	p, err := NewThickPlan(files, f.blobs)
	if err != nil {
		t.Fatal(err)
	}
	es := p.Entries()
	want := []string{BundleFile, MappingFile, thickPrefix + OCILayoutFile, thickPrefix + IndexFile}
	for i, w := range want {
		if es[i].Name != w {
			t.Fatalf("entry %d is %s, want %s", i, es[i].Name, w)
		}
	}
	for _, e := range es[len(want):] {
		if e.Digest == "" || e.Name != thickPrefix+BlobName(e.Digest) {
			t.Fatalf("blob entry %s", e.Name)
		}
	}
	out := filepath.Join(t.TempDir(), "thick.tar")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteStream(context.Background(), w, f.fetch); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if st, _ := os.Stat(out); st.Size() != p.Size() {
		t.Fatalf("wrote %d bytes, planned %d", st.Size(), p.Size())
	}
	a, err := Open(context.Background(), out, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The fixture's index.json is not cnab-airgap's: with a relocation
	// mapping beside it, that is a Porter archive.
	if a.Format() != FormatPorter || a.Annotated() || len(a.Blobs()) != len(f.blobs) {
		t.Fatalf("format %s, %d blobs", a.Format(), len(a.Blobs()))
	}
	if d, size, ok := a.BundleBlob(); !ok || size != int64(len(f.files[2].Data)) {
		t.Fatalf("bundle.json as a blob: %s %d %v", d, size, ok)
	} else if _, err := a.Metadata(d, size); err != nil {
		t.Fatal(err)
	}
	if _, err := NewThickPlan([]File{{Name: "other.json", Data: []byte("x")}}, nil); !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("a foreign root file was accepted: %v", err)
	}
}

func FuzzParseParts(f *testing.F) {
	f.Add([]byte(`{"mediaType":"` + MediaTypeParts + `","archive":"a.tar","size":3,"digest":"sha256:` + digest.FromString("abc").Encoded() + `","partSize":1048576,"parts":[{"name":"a.tar.000","size":3,"digest":"sha256:` + digest.FromString("abc").Encoded() + `"}]}`))
	f.Add([]byte(`{"mediaType":"` + MediaTypeParts + `","archive":"../x","parts":[{"name":"../../etc/passwd"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := parseParts(b)
		if err != nil {
			return
		}
		for _, p := range ps.Parts {
			if p.Name != filepath.Base(p.Name) || p.Name == ".." {
				t.Fatalf("accepted part name %q", p.Name)
			}
		}
	})
}
