package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/content/contenttest"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// TestStoreConformance runs the content-store suite against repositories
// of a real registry (distribution, in process), one per store.
func TestStoreConformance(t *testing.T) {
	t.Parallel()
	r := start(t)
	c, err := registry.New(registry.Options{PlainHTTP: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	contenttest.Run(t, contenttest.Suite{New: func(t *testing.T, held, _ []contenttest.Blob) any {
		repo, err := c.Repository(r.Ref(fmt.Sprintf("conformance/%d", n.Add(1))))
		if err != nil {
			t.Fatal(err)
		}
		s := c.Store(repo)
		for _, b := range held {
			if err := s.Push(context.Background(), b.Desc, bytes.NewReader(b.Data)); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}})
}

// TestStoreMount mounts a blob from one repository into another, and
// reports a mount the registry cannot do as content.ErrUnsupported.
func TestStoreMount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := start(t)
	c, err := registry.New(registry.Options{PlainHTTP: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	repoA, _ := c.Repository(r.Ref("mount/a"))
	repoB, _ := c.Repository(r.Ref("mount/b"))
	a, b := c.Store(repoA), c.Store(repoB)
	blob := contenttest.Fixture().Layers[0]
	if err := a.Push(ctx, blob.Desc, bytes.NewReader(blob.Data)); err != nil {
		t.Fatal(err)
	}
	if err := b.Mount(ctx, blob.Desc, "mount/a"); err != nil {
		t.Fatalf("Mount from mount/a: %v", err)
	}
	if has, err := b.Exists(ctx, blob.Desc); err != nil || !has {
		t.Fatalf("after the mount, Exists = %v, %v", has, err)
	}
	other := contenttest.Fixture().Layers[1]
	err = b.Mount(ctx, other.Desc, "mount/a")
	if !errors.Is(err, content.ErrUnsupported) {
		t.Fatalf("Mount of a blob the source does not hold: %v, want content.ErrUnsupported", err)
	}
	if has, _ := b.Exists(ctx, other.Desc); has {
		t.Fatalf("a declined mount left the blob in the repository")
	}
}
