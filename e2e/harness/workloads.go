package harness

import (
	"context"
	"fmt"
	"sync"

	"github.com/cnabio/cnab-go/bundle"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// WorkloadImage is one image of a Workload: a single-platform image
// (Image) or a multi-platform index (Index), pushed at Repo ("path:tag",
// relative to the registry) before the bundle is pushed.
type WorkloadImage struct {
	// Component is the component name in bundle.json; "" marks the
	// invocation image.
	Component string
	// Repo is the repository path and tag in the source registry.
	Repo string
	// Image describes a single-platform image (exactly one of Image and
	// Index is set).
	Image *ImageSpec
	// Index describes a multi-platform index. Its descriptors carry no
	// artifactType, as buildx and most registries' indexes do not.
	Index *IndexSpec
}

// Workload is a generated bundle for benchmarks and large tests: images
// built from streamed pseudo-random layers (see NewLayer) and a bundle.json
// that refers to them, pushed with cnab-to-oci.
type Workload struct {
	// Name names the workload (and the bundle, "bench-" + Name).
	Name string
	// Images lists the invocation image first, then the components.
	Images []WorkloadImage
}

// Layers returns every distinct layer of the workload (deduplicated by
// seed, label and size) with its size, so callers can compute how many
// unique bytes the workload holds before pushing it.
func (w Workload) Layers() []LayerSpec {
	var out []LayerSpec
	for _, l := range w.distinctLayers() {
		out = append(out, l.spec)
	}
	return out
}

// workloadLayer is one distinct layer of a workload with what NewLayer
// needs to build it.
type workloadLayer struct {
	seed   uint64
	format Format
	spec   LayerSpec
}

func (w Workload) distinctLayers() []workloadLayer {
	seen := map[layerKey]bool{}
	var out []workloadLayer
	add := func(seed uint64, f Format, ls LayerSpec) {
		if f == "" {
			f = FormatOCI
		}
		k := layerKey{seed: seed, label: ls.Label, size: ls.Size, format: f}
		if !seen[k] {
			seen[k] = true
			out = append(out, workloadLayer{seed: seed, format: f, spec: ls})
		}
	}
	for _, im := range w.Images {
		switch {
		case im.Image != nil:
			for _, ls := range im.Image.Layers {
				add(im.Image.Seed, im.Image.Format, ls)
			}
		case im.Index != nil:
			for _, p := range platformsOf(*im.Index) {
				for _, ls := range indexChildLayers(*im.Index, p) {
					add(im.Index.Seed, im.Index.Format, ls)
				}
			}
		}
	}
	return out
}

// hashLayers computes the digests of every distinct layer of w once, up to
// jobs layers at a time, before the images are built: images sharing a
// layer then find its digests cached instead of each streaming it through
// sha256 at the same time (NewLayer's cache is filled only once a layer is
// done). Nothing but the digests is kept.
func (w Workload) hashLayers(ctx context.Context, jobs int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, l := range w.distinctLayers() {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			_, err := NewLayer(l.seed, l.spec.Label, l.spec.Size, l.format)
			return err
		})
	}
	return g.Wait()
}

// LayerBytes returns the uncompressed payload size of every distinct layer:
// a lower bound of the workload's unique blob bytes (tar and gzip framing,
// configs and manifests add a little).
func (w Workload) LayerBytes() int64 {
	var n int64
	for _, ls := range w.Layers() {
		n += ls.Size
	}
	return n
}

const mib = 1 << 20

// WorkloadXS is a tiny workload (2 images, under 1 MiB) for smoke tests of
// benchmark plumbing.
func WorkloadXS() Workload {
	base := LayerSpec{Label: "xs-base", Size: 256 << 10}
	return Workload{Name: "xs", Images: []WorkloadImage{
		{Repo: "bench/xs/installer:1.0", Image: &ImageSpec{Name: "xs-installer", Seed: 5,
			Layers: []LayerSpec{base, {Label: "xs-installer", Size: 64 << 10}}}},
		{Component: "app", Repo: "bench/xs/app:1.0", Index: &IndexSpec{Name: "xs-app", Seed: 5,
			Layers: []LayerSpec{base}, PlatformLayers: []LayerSpec{{Label: "xs-app", Size: 96 << 10}}}},
	}}
}

// WorkloadS is the small workload: 3 images sharing an 8 MiB base, about
// 60 MiB of unique layer data.
func WorkloadS() Workload {
	base := LayerSpec{Label: "s-base", Size: 8 * mib}
	img := func(name string, own int64) *ImageSpec {
		return &ImageSpec{Name: "s-" + name, Seed: 11, Layers: []LayerSpec{base, {Label: "s-" + name, Size: own}}}
	}
	return Workload{Name: "s", Images: []WorkloadImage{
		{Repo: "bench/s/installer:1.0", Image: img("installer", 12*mib)},
		{Component: "web", Repo: "bench/s/web:1.0", Image: img("web", 20*mib)},
		{Component: "db", Repo: "bench/s/db:1.0", Image: img("db", 20*mib)},
	}}
}

// WorkloadM is the medium workload: 10 images (an invocation image, eight
// single-platform components and one linux/amd64+arm64 index) sharing a
// 100 MiB base layer, each platform adding 80 MiB of its own in two layers:
// 980 MiB of unique layer data.
func WorkloadM() Workload {
	base := LayerSpec{Label: "m-base", Size: 100 * mib}
	own := func(name string) []LayerSpec {
		return []LayerSpec{{Label: "m-" + name + "-a", Size: 64 * mib}, {Label: "m-" + name + "-b", Size: 16 * mib}}
	}
	w := Workload{Name: "m"}
	w.Images = append(w.Images, WorkloadImage{Repo: "bench/m/installer:1.0",
		Image: &ImageSpec{Name: "m-installer", Seed: 13, Layers: append([]LayerSpec{base}, own("installer")...)}})
	for i := range 8 {
		n := fmt.Sprintf("svc%d", i)
		w.Images = append(w.Images, WorkloadImage{Component: n, Repo: "bench/m/" + n + ":1.0",
			Image: &ImageSpec{Name: "m-" + n, Seed: 13, Layers: append([]LayerSpec{base}, own(n)...)}})
	}
	w.Images = append(w.Images, WorkloadImage{Component: "web", Repo: "bench/m/web:1.0",
		Index: &IndexSpec{Name: "m-web", Seed: 13, Layers: []LayerSpec{base}, PlatformLayers: own("web")}})
	return w
}

// WorkloadW is the wide workload: n small images (an invocation image and
// n-1 components) of three layers each, about 4 MiB per image: a 2 MiB base
// shared by all, a 1 MiB layer shared by groups of ten and a 1 MiB layer of
// its own. It measures what each image costs beyond its bytes.
func WorkloadW(n int) Workload {
	w := Workload{Name: "w"}
	base := LayerSpec{Label: "w-base", Size: 2 * mib}
	for i := range n {
		group := LayerSpec{Label: fmt.Sprintf("w-group%d", i/10), Size: 1 * mib}
		name := fmt.Sprintf("img%03d", i)
		im := WorkloadImage{Component: name, Repo: "bench/w/" + name + ":1.0",
			Image: &ImageSpec{Name: "w-" + name, Seed: 17,
				Layers: []LayerSpec{base, group, {Label: "w-" + name, Size: 1 * mib}}}}
		if i == 0 {
			im.Component = ""
		}
		w.Images = append(w.Images, im)
	}
	return w
}

// WorkloadManySmall is the many-small workload: 50 images of 40 layers
// each (2,000 layers, 2,100 blobs with configs and manifests), every layer
// its own, sized 4 KiB to 1 MiB in a fixed cycle (about 380 MB in all), as
// language runtimes and distroless images are made. Where a blob costs a
// round of requests, this is where it shows.
func WorkloadManySmall() Workload {
	w := Workload{Name: "many-small"}
	sizes := []int64{4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20}
	for i := range 50 {
		name := fmt.Sprintf("img%02d", i)
		spec := &ImageSpec{Name: "ms-" + name, Seed: 23}
		for j := range 40 {
			spec.Layers = append(spec.Layers, LayerSpec{Label: fmt.Sprintf("ms-%s-%02d", name, j), Size: sizes[(i+j)%len(sizes)]})
		}
		im := WorkloadImage{Component: name, Repo: "bench/ms/" + name + ":1.0", Image: spec}
		if i == 0 {
			im.Component = ""
		}
		w.Images = append(w.Images, im)
	}
	return w
}

// WorkloadL is the large workload: 20 images (an invocation image, 17
// single-platform components and two linux/amd64+arm64 indexes) sharing a
// 192 MiB base layer, with a 64 MiB layer shared by each group of five
// images and 120 MiB of layers of its own per platform (96 + 24 MiB), 22
// platforms in all: 3,088 MiB (about 3 GiB) of unique layer data.
func WorkloadL() Workload {
	base := LayerSpec{Label: "l-base", Size: 192 * mib}
	w := Workload{Name: "l"}
	for i := range 20 {
		name := fmt.Sprintf("img%02d", i)
		shared := []LayerSpec{base, {Label: fmt.Sprintf("l-group%d", i/5), Size: 64 * mib}}
		own := []LayerSpec{{Label: "l-" + name + "-a", Size: 96 * mib}, {Label: "l-" + name + "-b", Size: 24 * mib}}
		im := WorkloadImage{Component: name, Repo: "bench/l/" + name + ":1.0"}
		if i == 0 {
			im.Component = ""
		}
		if i == 9 || i == 19 {
			im.Index = &IndexSpec{Name: "l-" + name, Seed: 29, Layers: shared, PlatformLayers: own}
		} else {
			im.Image = &ImageSpec{Name: "l-" + name, Seed: 29, Layers: append(shared, own...)}
		}
		w.Images = append(w.Images, im)
	}
	return w
}

// BigLayerMax is the largest layer WorkloadBig makes.
const BigLayerMax = 4 << 30

// WorkloadBig is the big workload: four images holding exactly layerBytes
// of unique layer data in GiB-scale layers, as ML-model and database images
// are built. A base of a tenth of the total is shared by all four; the
// invocation image adds 16 MiB of its own; the rest goes to three
// components, model (50%), db (30%) and train (20%), each cut into equal
// layers of at most BigLayerMax. At 20 GiB: a 2 GiB base, model in three
// layers of 3.0 GiB, db in two of 2.7 GiB, train in one of 3.6 GiB.
// Like every workload it is pushed from streamed layers (NewLayer), so
// memory stays flat whatever the size. layerBytes below 256 MiB is raised
// to 256 MiB.
func WorkloadBig(layerBytes int64) Workload {
	layerBytes = max(layerBytes, 256*mib)
	base := LayerSpec{Label: "b-base", Size: layerBytes / 10}
	inst := LayerSpec{Label: "b-installer", Size: 16 * mib}
	rest := layerBytes - base.Size - inst.Size
	model := rest / 2
	db := rest * 3 / 10
	shares := []struct {
		name string
		size int64
	}{{"model", model}, {"db", db}, {"train", rest - model - db}}
	w := Workload{Name: "big", Images: []WorkloadImage{{Repo: "bench/big/installer:1.0",
		Image: &ImageSpec{Name: "b-installer", Seed: 31, Layers: []LayerSpec{base, inst}}}}}
	for _, sh := range shares {
		n := (sh.size + BigLayerMax - 1) / BigLayerMax
		layers := []LayerSpec{base}
		for j := range n {
			size := sh.size / n
			if j == n-1 {
				size = sh.size - size*(n-1)
			}
			layers = append(layers, LayerSpec{Label: fmt.Sprintf("b-%s-%d", sh.name, j), Size: size})
		}
		w.Images = append(w.Images, WorkloadImage{Component: sh.name, Repo: "bench/big/" + sh.name + ":1.0",
			Image: &ImageSpec{Name: "b-" + sh.name, Seed: 31, Layers: layers}})
	}
	return w
}

// PushWorkload hashes every distinct layer of w once, builds every image,
// pushes each to its repository in reg (up to jobs images at once; a layer already pushed to another
// repository is mounted, not uploaded again), then pushes the bundle to
// reg at bundleRef with cnab-to-oci (PushBundle), which copies the images
// into the bundle repository.
func PushWorkload(ctx context.Context, reg *Registry, w Workload, bundleRef string, jobs int) (*PushedBundle, error) {
	if len(w.Images) == 0 || w.Images[0].Component != "" {
		return nil, fmt.Errorf("harness: workload %q must start with its invocation image", w.Name)
	}
	if jobs < 1 {
		jobs = 1
	}
	if err := w.hashLayers(ctx, jobs); err != nil {
		return nil, fmt.Errorf("workload %s: %w", w.Name, err)
	}
	pushed := make([]*PushedImage, len(w.Images))
	m := &mounter{reg: reg, first: map[v1.Hash]string{}, done: map[string]bool{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, im := range w.Images {
		g.Go(func() error {
			var err error
			switch {
			case im.Image != nil:
				var img v1.Image
				if img, err = NewImage(*im.Image); err == nil {
					if err = m.preload(gctx, im.Repo, img); err == nil {
						pushed[i], err = reg.PushImage(gctx, im.Repo, img)
					}
				}
			case im.Index != nil:
				var idx v1.ImageIndex
				if idx, err = newPlainIndex(*im.Index); err == nil {
					if err = m.preloadIndex(gctx, im.Repo, idx); err == nil {
						pushed[i], err = reg.PushIndex(gctx, im.Repo, idx)
					}
				}
			default:
				err = fmt.Errorf("harness: workload image %s has neither Image nor Index", im.Repo)
			}
			if err != nil {
				return fmt.Errorf("workload %s: %s: %w", w.Name, im.Repo, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	base := func(p *PushedImage) bundle.BaseImage {
		return bundle.BaseImage{ImageType: "docker", Image: p.Ref, Digest: p.Digest.String(), Size: uint64(p.Size), MediaType: p.MediaType}
	}
	b := &bundle.Bundle{
		SchemaVersion: "v1.2.0",
		Name:          "bench-" + w.Name,
		Version:       "1.0.0",
		Description:   "cnab-airgap benchmark workload " + w.Name,
		InvocationImages: []bundle.InvocationImage{
			{BaseImage: base(pushed[0])},
		},
		Images: map[string]bundle.Image{},
	}
	for i, im := range w.Images[1:] {
		b.Images[im.Component] = bundle.Image{BaseImage: base(pushed[i+1])}
	}
	return PushBundle(ctx, reg, bundleRef, b)
}

// mounter uploads each distinct layer once; other repositories get it by a
// cross-repository mount before their image is pushed (remote.Write then
// finds every layer present).
type mounter struct {
	reg   *Registry
	mu    sync.Mutex
	first map[v1.Hash]string // layer digest -> repository holding it
	done  map[string]bool    // repo|digest already present
	wait  sync.Map           // layer digest -> chan struct{} closed once uploaded
}

func (m *mounter) preloadIndex(ctx context.Context, repo string, idx v1.ImageIndex) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		if err := m.preload(ctx, repo, img); err != nil {
			return err
		}
	}
	return nil
}

func (m *mounter) preload(ctx context.Context, repo string, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	rp, err := m.reg.Repository(repoOnly(repo))
	if err != nil {
		return err
	}
	opts := append(m.reg.RemoteOptions(), remote.WithContext(ctx))
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		m.mu.Lock()
		from, seen := m.first[d]
		key := rp.Name() + "|" + d.String()
		if m.done[key] {
			m.mu.Unlock()
			continue
		}
		m.done[key] = true
		var ch chan struct{}
		if !seen {
			m.first[d] = rp.Name()
			ch = make(chan struct{})
			m.wait.Store(d, ch)
		}
		m.mu.Unlock()
		if !seen {
			err := remote.WriteLayer(rp, l, opts...)
			close(ch)
			if err != nil {
				return fmt.Errorf("layer %s: %w", d, err)
			}
			continue
		}
		if v, ok := m.wait.Load(d); ok {
			select {
			case <-v.(chan struct{}):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		src, err := m.reg.Repository(from)
		if err != nil {
			return err
		}
		ml := &remote.MountableLayer{Layer: l, Reference: src.Digest(d.String())}
		if err := remote.WriteLayer(rp, ml, opts...); err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
	}
	return nil
}

// repoOnly strips the tag from "path:tag".
func repoOnly(ref string) string {
	for i := len(ref) - 1; i >= 0; i-- {
		switch ref[i] {
		case ':':
			return ref[:i]
		case '/':
			return ref
		}
	}
	return ref
}

func platformsOf(spec IndexSpec) []v1.Platform {
	if len(spec.Platforms) == 0 {
		return DefaultPlatforms
	}
	return spec.Platforms
}

func indexChildLayers(spec IndexSpec, p v1.Platform) []LayerSpec {
	suffix := "-" + p.OS + "-" + p.Architecture
	if p.Variant != "" {
		suffix += "-" + p.Variant
	}
	layers := append([]LayerSpec(nil), spec.Layers...)
	for _, ls := range spec.PlatformLayers {
		layers = append(layers, LayerSpec{Label: ls.Label + suffix, Size: ls.Size})
	}
	return layers
}

// noArtifactType hides an image's artifact type, so that the index
// descriptor built for it has none (ggcr otherwise copies the config media
// type there, which older clients such as skopeo 1.9 cannot round-trip).
type noArtifactType struct{ v1.Image }

func (noArtifactType) ArtifactType() (string, error) { return "", nil }

// newPlainIndex is NewIndex without artifactType in the descriptors.
func newPlainIndex(spec IndexSpec) (v1.ImageIndex, error) {
	format := spec.Format
	if format == "" {
		format = FormatOCI
	}
	var idx v1.ImageIndex = empty.Index
	if format == FormatOCI {
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	} else {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	var adds []mutate.IndexAddendum
	for _, p := range platformsOf(spec) {
		img, err := NewImage(ImageSpec{Name: spec.Name, Seed: spec.Seed, Format: format, Platform: p, Layers: indexChildLayers(spec, p)})
		if err != nil {
			return nil, err
		}
		plat := p
		adds = append(adds, mutate.IndexAddendum{Add: noArtifactType{img}, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	return mutate.AppendManifests(idx, adds...), nil
}
