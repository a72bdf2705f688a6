package relocate_test

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

type auditFixture struct {
	host    string
	images  []relocate.Image
	mapping relocate.Mapping
	layer   v1.Hash // a layer of the component index
	client  *registry.Client
}

// pushFixture pushes an image and a two-platform index into
// HOST/mirror/app with go-containerregistry's test registry, and builds
// the bundle images and mapping an import would have written.
func pushFixture(t *testing.T) *auditFixture {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	repo, err := name.NewRepository(host+"/mirror/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(256, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	imgD, _ := img.Digest()
	idxD, _ := idx.Digest()
	if err := remote.Write(repo.Digest(imgD.String()), img); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(repo.Tag("web"), idx); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	child, _ := idx.Image(im.Manifests[0].Digest)
	layers, _ := child.Layers()
	layer, _ := layers[0].Digest()
	c, err := registry.New(registry.Options{PlainHTTP: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	return &auditFixture{
		host: host, layer: layer, client: c,
		images: []relocate.Image{
			{Role: relocate.RoleInvocation, Name: "0", Ref: "example.com/app/installer:1.0", ContentDigest: digest.Digest(imgD.String())},
			{Role: relocate.RoleComponent, Name: "web", Ref: "example.com/library/web:1.0", ContentDigest: digest.Digest(idxD.String())},
			{Role: relocate.RoleComponent, Name: "script", Ref: "example.com/script.sh", ImageType: "file"},
		},
		mapping: relocate.Mapping{
			"example.com/app/installer:1.0": host + "/mirror/app@" + imgD.String(),
			"example.com/library/web:1.0":   host + "/mirror/app@" + idxD.String(),
		},
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	f := pushFixture(t)
	target := relocate.Target{Registry: f.host, Prefix: "mirror"}
	rep, err := relocate.Audit(t.Context(), relocate.AuditRequest{Images: f.images, Mapping: f.mapping, Target: target},
		relocate.WithAuditClient(f.client))
	if err != nil {
		t.Fatal(err)
	}
	// 1 image manifest + 1 index + 2 platform manifests; 2+1 configs and 2+4 layers.
	if !rep.OK || len(rep.Images) != 2 || rep.Manifests != 4 || rep.Blobs != 9 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Images[1].Manifests != 3 || rep.Images[1].Blobs != 6 || !rep.Images[1].OK {
		t.Fatalf("web: %+v", rep.Images[1])
	}

	// A tag value is accepted when it resolves to contentDigest.
	tagged := relocate.Mapping{}
	for k, v := range f.mapping {
		tagged[k] = v
	}
	tagged["example.com/library/web:1.0"] = f.host + "/mirror/app:web"
	if _, err := relocate.Audit(t.Context(), relocate.AuditRequest{Images: f.images, Mapping: tagged}, relocate.WithAuditClient(f.client)); err != nil {
		t.Fatal(err)
	}
}

func TestAuditFindsProblems(t *testing.T) {
	t.Parallel()
	f := pushFixture(t)
	target := relocate.Target{Registry: f.host, Prefix: "mirror"}
	web := f.images[1]
	for _, tc := range []struct {
		name   string
		edit   func(m relocate.Mapping)
		target relocate.Target
		want   string
	}{
		{"missing key", func(m relocate.Mapping) { delete(m, web.Ref) }, target, "component web (example.com/library/web:1.0): no mapping key"},
		{"extra key", func(m relocate.Mapping) { m["example.com/other:1"] = m[web.Ref] }, target, `mapping key "example.com/other:1" is not an image of bundle.json`},
		{"wrong digest", func(m relocate.Mapping) { m[web.Ref] = f.mapping["example.com/app/installer:1.0"] }, target, "whose digest is not the contentDigest"},
		{"outside target", func(m relocate.Mapping) {}, relocate.Target{Registry: f.host, Prefix: "elsewhere"}, "is not under the target"},
		{"not pushed there", func(m relocate.Mapping) { m[web.Ref] = f.host + "/mirror/empty@" + web.ContentDigest.String() }, target, "not found at the target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := relocate.Mapping{}
			for k, v := range f.mapping {
				m[k] = v
			}
			tc.edit(m)
			rep, err := relocate.Audit(t.Context(), relocate.AuditRequest{Images: f.images, Mapping: m, Target: tc.target}, relocate.WithAuditClient(f.client))
			if !errors.Is(err, relocate.ErrRelocation) {
				t.Fatalf("want ErrRelocation, got %v", err)
			}
			if rep == nil || rep.OK || !strings.Contains(strings.Join(rep.Problems, "\n"), tc.want) {
				t.Fatalf("problems %q do not say %q", rep.Problems, tc.want)
			}
		})
	}

	// A blob deleted at the target is found and named.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, "http://"+f.host+"/v2/mirror/app/blobs/"+f.layer.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("deleting a blob: %s", resp.Status)
	}
	rep, err := relocate.Audit(t.Context(), relocate.AuditRequest{Images: f.images, Mapping: f.mapping, Target: target}, relocate.WithAuditClient(f.client))
	if !errors.Is(err, relocate.ErrRelocation) || !strings.Contains(err.Error(), "blob "+f.layer.String()+" is missing from "+f.host+"/mirror/app") {
		t.Fatalf("want the missing blob named, got %v", err)
	}
	if !rep.Images[0].OK || rep.Images[1].OK {
		t.Fatalf("web must fail and installer pass: %+v", rep.Images)
	}
}
