package content_test

import (
	"bytes"
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/content/contenttest"
)

// Copy puts a graph (here an image index with two platforms, and a
// signature whose subject is one of them) from one store into another:
// blobs first, then manifests children first; a second copy finds
// everything there and moves nothing.
func ExampleCopy() {
	ctx := context.Background()
	g := contenttest.Fixture()
	src, dst := content.NewMemory(), content.NewMemory()
	for _, b := range g.All {
		if err := src.Push(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			panic(err)
		}
	}
	roots := []ocispec.Descriptor{g.Index.Desc, g.Manifests[2].Desc}
	stats, err := content.Copy(ctx, src, dst, roots, content.CopyOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Printf("copied %d blobs and %d manifests\n", stats.Blobs, stats.Manifests)
	again, _ := content.Copy(ctx, src, dst, roots, content.CopyOptions{})
	fmt.Printf("again: %d copied, %d already there\n", again.Blobs+again.Manifests, again.Skipped)
	refs, _ := dst.Referrers(ctx, g.Manifests[0].Desc, "")
	fmt.Println("referrers of the first image:", len(refs))
	// Output:
	// copied 7 blobs and 4 manifests
	// again: 0 copied, 11 already there
	// referrers of the first image: 1
}
