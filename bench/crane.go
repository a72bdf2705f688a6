package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The crane baseline runs in a child process of the benchmark binary
// (modeEnv=crane-export or crane-import) so that its CPU time and peak RSS
// are its own. It does what `crane pull --format=oci` and `crane push` do
// with go-containerregistry: one OCI layout for every image, images one
// after another, each with the library's default parallelism.

const annotationRefName = "org.opencontainers.image.ref.name"

// craneExport pulls every image (REGISTRY/PATH:TAG) into the OCI layout
// directory dir, recording each under its ref.name annotation.
func craneExport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("crane-export", flag.ContinueOnError)
	dir := fs.String("dir", "", "OCI layout directory to create")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() == 0 {
		return errors.New("crane-export: need -dir and image references")
	}
	p, err := layout.Write(*dir, empty.Index)
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	for _, s := range fs.Args() {
		ref, err := name.ParseReference(s, name.Insecure)
		if err != nil {
			return err
		}
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		ann := layout.WithAnnotations(map[string]string{annotationRefName: refPath(ref)})
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			if err := p.AppendIndex(idx, ann); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			continue
		}
		img, err := desc.Image()
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		if err := p.AppendImage(img, ann); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// craneImport pushes every image of the OCI layout dir to -target, at the
// repository path and tag recorded in its ref.name annotation.
func craneImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("crane-import", flag.ContinueOnError)
	dir := fs.String("dir", "", "OCI layout directory to read")
	target := fs.String("target", "", "registry HOST:PORT to push to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *target == "" {
		return errors.New("crane-import: need -dir and -target")
	}
	p, err := layout.FromPath(*dir)
	if err != nil {
		return err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	for _, d := range im.Manifests {
		path := d.Annotations[annotationRefName]
		if path == "" {
			return fmt.Errorf("layout entry %s has no %s", d.Digest, annotationRefName)
		}
		ref, err := name.ParseReference(*target+"/"+path, name.Insecure)
		if err != nil {
			return err
		}
		if d.MediaType.IsIndex() {
			idx, err := ii.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := remote.WriteIndex(ref, idx, opts...); err != nil {
				return fmt.Errorf("%s: %w", ref, err)
			}
			continue
		}
		img, err := ii.Image(d.Digest)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
	}
	return nil
}

// refPath returns a reference without its registry: "path:tag".
func refPath(ref name.Reference) string {
	return strings.TrimPrefix(ref.Name(), ref.Context().RegistryStr()+"/")
}
