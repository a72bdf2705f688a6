package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// splitScale returns the layer sizes and the volume size of the split
// test. By default they are the example (a 1 GiB export in 100 MiB
// volumes) at 1/16 scale: a ~68 MiB archive in 6 MiB volumes, eleven or
// twelve of them, which keeps the suite fast; the code paths do not depend
// on the sizes. CNAB_AIRGAP_E2E_SPLIT_FULL=1 runs it at full scale (a
// ~0.95 GB archive in ten 100 MiB volumes; about 40 s more).
func splitScale() (layer, base, part int64, partFlag string) {
	if os.Getenv("CNAB_AIRGAP_E2E_SPLIT_FULL") == "1" {
		return 128 << 20, 160 << 20, 100 << 20, "100MiB"
	}
	return 8 << 20, 16 << 20, 6 << 20, "6MiB"
}

func TestSplitVolumes(t *testing.T) {
	ctx := context.Background()
	cli := newCLI(t)
	src := startRegistry(t)
	layerSize, baseSize, partSize, partFlag := splitScale()
	pb := sample(t, src, harness.SampleOptions{LayerSize: layerSize, BaseLayerSize: baseSize})
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle.tar")
	code, stdout, errOut := cli(t, "--plain-http", src.Host, "export", "--split-size", partFlag, "-o", out, pb.Ref)
	if code != 0 {
		t.Fatalf("export exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "volumes     ") {
		t.Fatalf("export does not list its volumes:\n%s", stdout)
	}
	unsplit := exportSample(t, src, pb)
	src.Close()

	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("the unsplit archive was left behind")
	}
	ps, err := layout.ReadParts(out + layout.PartsSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Parts) < 10 || ps.PartSize != partSize {
		t.Fatalf("%d parts of %d bytes", len(ps.Parts), ps.PartSize)
	}
	// `cat bundle.tar.*` is the unsplit archive, byte for byte (same
	// sha256 as a clean unsplit export of the bundle), and matches the
	// parts file and the checksum file.
	h := sha256.New()
	for i, p := range ps.Parts {
		if want := fmt.Sprintf("bundle.tar.%03d", i); p.Name != want {
			t.Fatalf("part %d is %s", i, p.Name)
		}
		f, err := os.Open(filepath.Join(dir, p.Name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if whole := fileDigest(t, unsplit); whole != "sha256:"+sum {
		t.Fatalf("the joined parts hash to %s, an unsplit export to %s", sum, whole)
	}
	os.Remove(unsplit)
	if "sha256:"+sum != ps.Digest.String() {
		t.Fatalf("joined parts hash to %s, parts file says %s", sum, ps.Digest)
	}
	if cs, _ := os.ReadFile(out + ".sha256"); string(cs) != sum+"  bundle.tar\n" {
		t.Fatalf("checksum file %q", cs)
	}

	// inspect and verify take the first part or the parts file.
	for _, arg := range []string{out + ".000", out + layout.PartsSuffix} {
		for _, cmd := range []string{"inspect", "verify"} {
			code, stdout, errOut := cli(t, cmd, arg)
			if code != 0 {
				t.Fatalf("%s %s: exit %d: %s", cmd, filepath.Base(arg), code, errOut)
			}
			if want := fmt.Sprintf("format      oci, split in %d parts\n", len(ps.Parts)); cmd == "inspect" && !strings.Contains(stdout, want) {
				t.Fatalf("inspect %s does not say %q:\n%s", filepath.Base(arg), want, stdout)
			}
		}
	}
	dst := startRegistry(t)
	ir, err := importer.Import(ctx, importer.Request{Archive: out + ".000", Target: dst.Host + "/airgap"}, importer.WithClient(clientFor(t, dst)))
	if err != nil {
		t.Fatal(err)
	}
	checkImported(t, pb, dst, ir)

	// Damaged sets are refused before anything is pushed, naming the part.
	damage := []struct {
		name string
		do   func(t *testing.T, d string)
		arg  string
		want string
	}{
		{"corrupt part", func(t *testing.T, d string) { flipByte(t, own(t, filepath.Join(d, "bundle.tar.005")), 1234) }, "bundle.tar.parts.json", "part 5 (bundle.tar.005) is corrupt"},
		{"missing part", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "bundle.tar.003")) }, "bundle.tar.000", "part 3 (bundle.tar.003) is missing"},
		{"parts out of order", func(t *testing.T, d string) {
			a, b := filepath.Join(d, "bundle.tar.002"), filepath.Join(d, "bundle.tar.004")
			os.Rename(a, a+".x")
			os.Rename(b, a)
			os.Rename(a+".x", b)
		}, "bundle.tar.000", "part 2 (bundle.tar.002) holds the content of part 4"},
		{"truncated part", func(t *testing.T, d string) { os.Truncate(own(t, filepath.Join(d, "bundle.tar.001")), 100) }, "bundle.tar.000", "part 1 (bundle.tar.001) is 100 bytes"},
		{"not the first part", func(*testing.T, string) {}, "bundle.tar.002", "is not the first part"},
		{"no parts file", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "bundle.tar.parts.json")) }, "bundle.tar.000", "bundle.tar.parts.json is missing"},
	}
	for _, tc := range damage {
		t.Run(tc.name, func(t *testing.T) {
			// Hard links: only a part that is modified is copied (own).
			d := t.TempDir()
			for _, p := range ps.Parts {
				if err := os.Link(filepath.Join(dir, p.Name), filepath.Join(d, p.Name)); err != nil {
					copyFile(t, filepath.Join(dir, p.Name), filepath.Join(d, p.Name))
				}
			}
			copyFile(t, out+layout.PartsSuffix, filepath.Join(d, "bundle.tar.parts.json"))
			tc.do(t, d)
			target := startRegistry(t)
			_, err := importer.Import(ctx, importer.Request{Archive: filepath.Join(d, tc.arg), Target: target.Host}, importer.WithClient(clientFor(t, target)))
			if !errors.Is(err, layout.ErrParts) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
			if n := target.Counts(); n.Requests != 0 {
				t.Fatalf("the target was contacted: %+v", n)
			}
			// verify says so too, with the verification exit code.
			if code, _, errOut := cli(t, "verify", filepath.Join(d, tc.arg)); code != 3 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("verify: exit %d: %s", code, errOut)
			}
		})
	}
}

// A compressed archive (here the gzipped cnab-thick format) splits the same
// way: volumes are byte ranges, whatever the content.
func TestSplitCompressed(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{LayerSize: 2 << 20, BaseLayerSize: 4 << 20})
	out := filepath.Join(t.TempDir(), "bundle.tgz")
	res, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: out}, export.WithClient(clientFor(t, src)),
		export.WithFormat(layout.FormatCNABThick), export.WithSplitSize(layout.MinPartSize*2))
	if err != nil {
		t.Fatal(err)
	}
	if res.Parts == nil || len(res.Parts.Parts) < 5 || res.Archive != out+layout.PartsSuffix {
		t.Fatalf("parts %+v archive %s", res.Parts, res.Archive)
	}
	b, err := archive.Load(ctx, res.Archive, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Format != layout.FormatCNABThick || b.Archive.Parts == nil || b.Index.Digest != pb.Digest {
		t.Fatalf("format %s parts %v index %s", b.Format, b.Archive.Parts != nil, b.Index.Digest)
	}
	if err := b.VerifyBlobs(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// own replaces a hard link by a copy of its content, so it can be changed
// without changing the original, and returns its path.
func own(t *testing.T, path string) string {
	t.Helper()
	tmp := path + ".own"
	copyFile(t, path, tmp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}
