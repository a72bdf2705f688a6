package layout_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// A plan knows every entry's place in the tar before any content exists:
// root files first, in the order given, then each blob once, sorted by
// digest.
func ExampleNewPlan() {
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("pretend this is a gzipped layer")
	plan, err := layout.NewPlan(
		[]layout.File{
			{Name: layout.OCILayoutFile, Data: []byte(layout.OCILayoutContent)},
			{Name: layout.IndexFile, Data: []byte(`{"schemaVersion":2,"manifests":[]}`)},
		},
		[]layout.Blob{
			{Digest: digest.FromBytes(layer), Size: int64(len(layer))}, // fetched later
			{Digest: digest.FromBytes(config), Size: int64(len(config)), Data: config},
			{Digest: digest.FromBytes(layer), Size: int64(len(layer))}, // listed twice, stored once
		})
	if err != nil {
		panic(err)
	}
	for _, e := range plan.Entries() {
		fmt.Printf("%-78s header at %5d, data at %5d, %d bytes\n", e.Name, e.HeaderOffset, e.DataOffset, e.Size)
	}
	fmt.Println("archive size:", plan.Size())
	fmt.Println("blobs to fetch:", len(plan.Blobs()))
	// Output:
	// oci-layout                                                                     header at     0, data at   512, 30 bytes
	// index.json                                                                     header at  1024, data at  1536, 34 bytes
	// blobs/sha256/9d99a75171aea000c711b34c0e5e3f28d3d537dd99d110eafbfbc2bd8e52c2bf  header at  2048, data at  2560, 37 bytes
	// blobs/sha256/e0483a71f19419b8e0238485a86d7001961c48ded4c1287d455940736e39b9bc  header at  3072, data at  3584, 31 bytes
	// archive size: 5120
	// blobs to fetch: 1
}

// Create writes the planned archive into a staging file at its final size;
// blobs are written at their offsets (in any order, verified as they
// stream) and Commit renames the file and returns its digest. Open then
// reads it back without extracting anything.
func ExampleCreate() {
	dir, err := os.MkdirTemp("", "layout-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	layer := []byte("pretend this is a gzipped layer")
	d := digest.FromBytes(layer)
	plan, err := layout.NewPlan([]layout.File{
		{Name: layout.OCILayoutFile, Data: []byte(layout.OCILayoutContent)},
		{Name: layout.IndexFile, Data: []byte(`{"schemaVersion":2,"manifests":[]}`)},
	}, []layout.Blob{{Digest: d, Size: int64(len(layer))}})
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "bundle.tar")
	w, err := layout.Create(path, plan, layout.CreateOptions{})
	if err != nil {
		panic(err)
	}
	// A blob whose bytes do not match its digest is refused.
	if err := w.WriteBlob(context.Background(), d, stringsReader("something else entirely........")); err != nil {
		fmt.Println("refused:", err != nil)
	}
	if err := w.WriteBlob(context.Background(), d, stringsReader(string(layer))); err != nil {
		panic(err)
	}
	sum, err := w.Commit()
	if err != nil {
		panic(err)
	}
	fmt.Println("committed:", sum.Validate() == nil)

	a, err := layout.Open(context.Background(), path, layout.OpenOptions{})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	size, ok := a.Has(d)
	fmt.Println("carries the layer:", ok, size)
	r, err := a.Blob(d, size) // verifies size and digest while reading
	if err != nil {
		panic(err)
	}
	b, err := io.ReadAll(r)
	fmt.Printf("%q %v\n", b, err)
	// Output:
	// refused: true
	// committed: true
	// carries the layer: true 31
	// "pretend this is a gzipped layer" <nil>
}

// Children lists what a manifest or index references; a mediaType inside
// the content must agree with the one it was described with.
func ExampleChildren() {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
	  "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + hex64("c") + `","size":7},
	  "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + hex64("1") + `","size":100}]}`)
	children, err := layout.Children("application/vnd.oci.image.manifest.v1+json", manifest)
	if err != nil {
		panic(err)
	}
	for _, c := range children {
		fmt.Println(c.MediaType, c.Size)
	}
	_, err = layout.Children("application/vnd.oci.image.index.v1+json", manifest)
	fmt.Println(err)
	// Output:
	// application/vnd.oci.image.config.v1+json 7
	// application/vnd.oci.image.layer.v1.tar+gzip 100
	// invalid manifest: described as application/vnd.oci.image.index.v1+json but content says application/vnd.oci.image.manifest.v1+json
}

// Blob paths are built only from validated digests, and parsed back only
// when they match the layout grammar exactly.
func ExampleDigestFromBlobName() {
	d := digest.Digest("sha256:" + hex64("a"))
	fmt.Println(layout.BlobName(d))
	back, ok := layout.DigestFromBlobName(layout.BlobName(d))
	fmt.Println(back == d, ok)
	_, ok = layout.DigestFromBlobName("blobs/sha256/../../etc/passwd")
	fmt.Println(ok)
	// Output:
	// blobs/sha256/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
	// true true
	// false
}

func hex64(c string) string {
	s := ""
	for len(s) < 64 {
		s += c
	}
	return s
}

type strReader struct {
	s string
	i int
}

func (r *strReader) Read(p []byte) (int, error) {
	if r.i >= len(r.s) {
		return 0, io.EOF
	}
	n := copy(p, r.s[r.i:])
	r.i += n
	return n, nil
}

func stringsReader(s string) io.Reader { return &strReader{s: s} }
