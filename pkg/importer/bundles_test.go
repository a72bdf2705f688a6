package importer_test

import (
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// Every bundle of an archive of several gets its own mapping file, named
// by the bundle, never two the same.
func TestMappingPaths(t *testing.T) {
	t.Parallel()
	mk := func(name, version, seed string) *archive.Bundle {
		return &archive.Bundle{Bundle: &relocate.Bundle{Name: name, Version: version},
			Index: ocispec.Descriptor{Digest: digest.FromString(seed)}}
	}
	shop := mk("shop", "1.0.0", "shop")
	db := mk("db", "15.0.0", "db")
	shop2 := mk("shop", "0.9.0", "shop old")
	cache1, cache2 := mk("cache", "7.0", "a"), mk("cache", "7.0", "b")
	shop.Others = []*archive.Bundle{db, shop2, cache1, cache2}
	got := importer.MappingPaths("out/relocation-mapping.json", shop)
	want := map[*archive.Bundle]string{
		shop:   "out/relocation-mapping.json",
		db:     "out/relocation-mapping.db.json",
		shop2:  "out/relocation-mapping.shop-0.9.0.json",
		cache1: "out/relocation-mapping.cache-7.0.json",
		cache2: "out/relocation-mapping.cache-7.0-" + digest.FromString("b").Encoded()[:12] + ".json",
	}
	for b, w := range want {
		if got[b] != w {
			t.Errorf("%s %s: %q, want %q", b.Bundle.Name, b.Bundle.Version, got[b], w)
		}
	}
	if len(importer.MappingPaths("", shop)) != 0 {
		t.Error("no mapping asked for, yet paths")
	}
}
