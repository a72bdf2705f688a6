package relocate_test

import (
	"fmt"

	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// bundleJSON is a small canonical bundle.json (sorted keys, no spaces).
const bundleJSON = `{"images":{"db":{"contentDigest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","image":"docker.io/library/postgres:16","imageType":"docker"},"web":{"contentDigest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","image":"registry.example.com/shop/web:1.4","imageType":"oci"}},"invocationImages":[{"contentDigest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","image":"registry.example.com/shop/installer:1.4","imageType":"docker"}],"name":"shop","schemaVersion":"v1.2.0","version":"1.4.0"}`

// ParseBundle reads the images of bundle.json without ever re-serializing
// it: invocation images first, then components sorted by name.
func ExampleParseBundle() {
	b, err := relocate.ParseBundle([]byte(bundleJSON))
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Name, b.Version, b.Warnings)
	for _, img := range b.Images {
		fmt.Printf("%-18s %s %s\n", img.Label(), img.Ref, img.ContentDigest.Encoded()[:8])
	}
	// Output:
	// shop 1.4.0 []
	// invocation image 0 registry.example.com/shop/installer:1.4 00000000
	// component db       docker.io/library/postgres:16 22222222
	// component web      registry.example.com/shop/web:1.4 11111111
}

// PlanNames chooses where each image goes under the target: all into the
// bundle's repository (bundle-repo, what cnab-to-oci and Porter expect),
// at their original paths (preserve), or one segment each (flatten).
func ExamplePlanNames() {
	b, err := relocate.ParseBundle([]byte(bundleJSON))
	if err != nil {
		panic(err)
	}
	target, err := relocate.ParseTarget("mirror.internal:5000/airgap")
	if err != nil {
		panic(err)
	}
	for _, n := range []relocate.Naming{relocate.NamingBundleRepo, relocate.NamingPreserve, relocate.NamingFlatten} {
		p, err := relocate.PlanNames(target, n, "shop/bundle", b.Images, relocate.Limits{})
		if err != nil {
			panic(err)
		}
		fmt.Println(n)
		for _, img := range b.Images {
			fmt.Printf("  %s -> %s\n", img.Ref, p.ImageRepos[img.Ref])
		}
	}
	// Harbor-like registries allow two path segments.
	_, err = relocate.PlanNames(target, relocate.NamingPreserve, "shop/bundle", b.Images, relocate.Limits{MaxPathSegments: 2})
	fmt.Println(err)
	// Output:
	// bundle-repo
	//   registry.example.com/shop/installer:1.4 -> mirror.internal:5000/airgap/shop/bundle
	//   docker.io/library/postgres:16 -> mirror.internal:5000/airgap/shop/bundle
	//   registry.example.com/shop/web:1.4 -> mirror.internal:5000/airgap/shop/bundle
	// preserve
	//   registry.example.com/shop/installer:1.4 -> mirror.internal:5000/airgap/shop/installer
	//   docker.io/library/postgres:16 -> mirror.internal:5000/airgap/library/postgres
	//   registry.example.com/shop/web:1.4 -> mirror.internal:5000/airgap/shop/web
	// flatten
	//   registry.example.com/shop/installer:1.4 -> mirror.internal:5000/airgap/shop-installer-12eb9e1d
	//   docker.io/library/postgres:16 -> mirror.internal:5000/airgap/library-postgres-8beed514
	//   registry.example.com/shop/web:1.4 -> mirror.internal:5000/airgap/shop-web-252ab1da
	// bundle repository: naming: "airgap/shop/bundle" has 3 path segments, the target allows 2 (try --naming flatten)
}

// A relocation mapping is the CNAB-103 flat JSON object from the exact
// image strings of bundle.json to digest-pinned references; it is written
// with sorted keys and read back with every value checked.
func ExampleMapping() {
	m := relocate.Mapping{
		"registry.example.com/shop/web:1.4": "mirror.internal:5000/airgap/shop/bundle@sha256:1111111111111111111111111111111111111111111111111111111111111111",
		"docker.io/library/postgres:16":     "mirror.internal:5000/airgap/shop/bundle@sha256:2222222222222222222222222222222222222222222222222222222222222222",
	}
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	fmt.Print(string(b))
	back, err := relocate.ParseMapping(b)
	fmt.Println(len(back), err)
	_, err = relocate.ParseMapping([]byte(`{"docker.io/library/postgres:16": "not a reference!"}`))
	fmt.Println(err != nil)
	// Output:
	// {
	//   "docker.io/library/postgres:16": "mirror.internal:5000/airgap/shop/bundle@sha256:2222222222222222222222222222222222222222222222222222222222222222",
	//   "registry.example.com/shop/web:1.4": "mirror.internal:5000/airgap/shop/bundle@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	// }
	// 2 <nil>
	// true
}
