package content_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/content/contenttest"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// FuzzWalk feeds arbitrary bytes as a root manifest (over the fixture's
// content) to Walk and Copy: they must not panic, and they either succeed,
// with every node visited once and what Copy stored verified, or fail with
// an error of a root class (a manifest that is malformed, too deep, too
// large or inconsistent is refused, never half-read).
func FuzzWalk(f *testing.F) {
	g := contenttest.Fixture()
	for _, b := range append(g.Manifests, g.Index) {
		f.Add(b.Data, b.Desc.MediaType)
	}
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:00","size":-1}]}`), ocispec.MediaTypeImageIndex)
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:`+g.Configs[0].Desc.Digest.Encoded()+`","size":3},"layers":[]}`), "")
	f.Fuzz(func(t *testing.T, raw []byte, mt string) {
		ctx := context.Background()
		src := content.NewMemory()
		for _, b := range g.All {
			src.Push(ctx, b.Desc, bytes.NewReader(b.Data))
		}
		root := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
		if err := src.Push(ctx, root, bytes.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
		seen := map[digest.Digest]int{}
		err := content.Walk(ctx, src, []ocispec.Descriptor{root}, content.WalkOptions{Concurrency: 1, MaxManifestBytes: 1 << 16},
			func(_ context.Context, n content.Node) error {
				seen[n.Desc.Digest]++
				return nil
			})
		for d, c := range seen {
			if c != 1 {
				t.Fatalf("%s visited %d times", d, c)
			}
		}
		if err != nil && errdefs.Class(err) == nil && !errors.Is(err, content.ErrSkip) {
			t.Fatalf("error without a class: %v", err)
		}
		dst := content.NewMemory()
		if _, err := content.Copy(ctx, src, dst, []ocispec.Descriptor{root}, content.CopyOptions{}); err == nil {
			if has, _ := dst.Exists(ctx, root); !has && root.MediaType != "" {
				t.Fatalf("Copy succeeded without storing the root")
			}
		}
	})
}
