package archive_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Load checks an archive completely, offline: index.json, every manifest
// and bundle.json against their digests, the graph closed, every image of
// bundle.json carried. VerifyBlobs then re-hashes every blob.
func ExampleLoad() {
	dir, err := os.MkdirTemp("", "load-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	fixture, err := testarchive.Write(filepath.Join(dir, "bundle.tar"))
	if err != nil {
		panic(err)
	}
	b, err := archive.Load(context.Background(), fixture.Path, layout.OpenOptions{})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	fmt.Println(b.Bundle.Name, b.Bundle.Version, "from", b.Reference)
	for _, img := range b.Images {
		fmt.Println(img.Label(), img.Ref, img.Platforms)
	}
	fmt.Println(len(b.Nodes), "manifests,", len(b.Blobs), "blobs,", b.UniqueBytes(), "bytes")
	fmt.Println("blobs verify:", b.VerifyBlobs(context.Background(), nil))
	// Output:
	// app 1.0.0 from example.com/bundles/app:1.0.0
	// invocation image 0 example.com/app/installer:1.0.0 []
	// component web example.com/library/web:1.0 [linux/amd64 linux/arm64]
	// 7 manifests, 10 blobs, 463405 bytes
	// blobs verify: <nil>
}
