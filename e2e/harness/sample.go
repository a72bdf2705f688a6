package harness

import (
	"context"
	"fmt"

	"github.com/cnabio/cnab-go/bundle"
)

// Default values of SampleOptions.
const (
	DefaultSampleSeed          uint64 = 1
	DefaultSampleBaseLayerSize int64  = 1 << 20   // 1 MiB
	DefaultSampleLayerSize     int64  = 512 << 10 // 512 KiB
	DefaultSampleRepository           = "bundles/sample-app"
	DefaultSampleTag                  = "0.1.0"
)

// Repositories and tags of the sample bundle's images in the source registry.
const (
	SampleInvocationRepo = "cnab/sample-app-installer:0.1.0"
	SampleWebRepo        = "library/web:1.0"
	SampleDBRepo         = "library/db:1.0"
	SampleWorkerRepo     = "library/worker:1.0"
)

// SampleOptions tunes SampleBundle. The zero value gives the small default
// fixture (about 4 MiB of distinct layer data).
type SampleOptions struct {
	// Seed determines all layer content (0 means DefaultSampleSeed). The
	// same seed and sizes give the same image digests in any registry.
	Seed uint64
	// BaseLayerSize is the size of the base layer shared by the invocation
	// image, both web platforms and worker (0 means
	// DefaultSampleBaseLayerSize).
	BaseLayerSize int64
	// LayerSize is the size of every other layer (0 means
	// DefaultSampleLayerSize).
	LayerSize int64
	// Repository and Tag locate the bundle in the registry (defaults
	// DefaultSampleRepository and DefaultSampleTag).
	Repository string
	Tag        string
	// WrongDigestImage, if set to a component name ("web", "db",
	// "worker") or Invocation, makes the bundle stored at Repository:Tag
	// one whose bundle.json carries WrongDigest as that image's
	// contentDigest, while its index still references the real image (see
	// TamperBundleDigest). The valid bundle is kept at Tag + "-valid".
	// For the --bundle-file path, write PushedBundle.BundleJSON (or the
	// result of BundleJSONWithWrongDigest) to a file.
	WrongDigestImage string
}

func (o SampleOptions) withDefaults() SampleOptions {
	if o.Seed == 0 {
		o.Seed = DefaultSampleSeed
	}
	if o.BaseLayerSize == 0 {
		o.BaseLayerSize = DefaultSampleBaseLayerSize
	}
	if o.LayerSize == 0 {
		o.LayerSize = DefaultSampleLayerSize
	}
	if o.Repository == "" {
		o.Repository = DefaultSampleRepository
	}
	if o.Tag == "" {
		o.Tag = DefaultSampleTag
	}
	return o
}

// SampleBundle pushes the canonical fixture bundle into src and returns it.
//
// Images, pushed at their own repositories in src:
//   - invocation image SampleInvocationRepo: OCI image, 2 layers (base,
//     installer);
//   - component "web" SampleWebRepo: OCI image index for linux/amd64 and
//     linux/arm64, each child with the base layer plus its own layer;
//   - component "db" SampleDBRepo: Docker v2 schema 2 image, 2 layers;
//   - component "worker" SampleWorkerRepo: OCI image, base layer plus its
//     own.
//
// bundle.json (name "sample-app", version "0.1.0", schemaVersion "v1.2.0")
// refers to them by tag ("127.0.0.1:PORT/library/web:1.0", ...) with their
// contentDigest, size and mediaType, and is pushed with cnab-to-oci to
// src/Repository:Tag, which copies the images into the bundle repository.
func SampleBundle(ctx context.Context, src *Registry, opts SampleOptions) (*PushedBundle, error) {
	o := opts.withDefaults()
	base := LayerSpec{Label: "base", Size: o.BaseLayerSize}

	inv, err := NewImage(ImageSpec{Name: "sample-app-installer", Seed: o.Seed,
		Layers: []LayerSpec{base, {Label: "installer", Size: o.LayerSize}}})
	if err != nil {
		return nil, err
	}
	web, err := NewIndex(IndexSpec{Name: "web", Seed: o.Seed,
		Layers: []LayerSpec{base}, PlatformLayers: []LayerSpec{{Label: "web", Size: o.LayerSize}}})
	if err != nil {
		return nil, err
	}
	db, err := NewImage(ImageSpec{Name: "db", Seed: o.Seed, Format: FormatDocker,
		Layers: []LayerSpec{{Label: "db-base", Size: o.LayerSize}, {Label: "db-data", Size: o.LayerSize}}})
	if err != nil {
		return nil, err
	}
	worker, err := NewImage(ImageSpec{Name: "worker", Seed: o.Seed,
		Layers: []LayerSpec{base, {Label: "worker", Size: o.LayerSize}}})
	if err != nil {
		return nil, err
	}

	pInv, err := src.PushImage(ctx, SampleInvocationRepo, inv)
	if err != nil {
		return nil, err
	}
	pWeb, err := src.PushIndex(ctx, SampleWebRepo, web)
	if err != nil {
		return nil, err
	}
	pDB, err := src.PushImage(ctx, SampleDBRepo, db)
	if err != nil {
		return nil, err
	}
	pWorker, err := src.PushImage(ctx, SampleWorkerRepo, worker)
	if err != nil {
		return nil, err
	}

	baseImage := func(p *PushedImage, imageType string) bundle.BaseImage {
		return bundle.BaseImage{
			ImageType: imageType,
			Image:     p.Ref,
			Digest:    p.Digest.String(),
			Size:      uint64(p.Size),
			MediaType: p.MediaType,
		}
	}
	b := &bundle.Bundle{
		SchemaVersion: "v1.2.0",
		Name:          "sample-app",
		Version:       "0.1.0",
		Description:   "cnab-airgap sample bundle (e2e fixture)",
		Keywords:      []string{"cnab-airgap", "e2e"},
		Maintainers:   []bundle.Maintainer{{Name: "cnab-airgap e2e harness"}},
		InvocationImages: []bundle.InvocationImage{
			{BaseImage: baseImage(pInv, "docker")},
		},
		Images: map[string]bundle.Image{
			"web":    {BaseImage: baseImage(pWeb, "docker"), Description: "web front end (multi-arch OCI index)"},
			"db":     {BaseImage: baseImage(pDB, "docker"), Description: "database (Docker v2 schema 2)"},
			"worker": {BaseImage: baseImage(pWorker, "docker"), Description: "background worker (OCI)"},
		},
	}

	ref := o.Repository + ":" + o.Tag
	if o.WrongDigestImage == "" {
		return PushBundle(ctx, src, ref, b)
	}
	valid, err := PushBundle(ctx, src, o.Repository+":"+o.Tag+"-valid", b)
	if err != nil {
		return nil, err
	}
	pb, err := TamperBundleDigest(ctx, src, valid, o.WrongDigestImage, ref)
	if err != nil {
		return nil, fmt.Errorf("harness: tampering sample bundle: %w", err)
	}
	pb.RelocationMap = valid.RelocationMap
	return pb, nil
}
