package export

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// platform is an os/arch[/variant] selector.
type platform struct {
	os, arch, variant string
}

func (p platform) String() string {
	s := p.os + "/" + p.arch
	if p.variant != "" {
		s += "/" + p.variant
	}
	return s
}

// ParsePlatform parses "os/arch" or "os/arch/variant".
func parsePlatform(s string) (platform, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("export: platform %q is not os/arch or os/arch/variant", s)
	}
	p := platform{os: parts[0], arch: parts[1]}
	if len(parts) == 3 {
		if parts[2] == "" {
			return platform{}, fmt.Errorf("export: platform %q has an empty variant", s)
		}
		p.variant = parts[2]
	}
	return p, nil
}

// matches reports whether a manifest of platform q is selected by p. A
// selector without a variant selects every variant.
func (p platform) matches(q *ocispec.Platform) bool {
	if q.OS != p.os || q.Architecture != p.arch {
		return false
	}
	return p.variant == "" || p.variant == q.Variant || (q.Variant == "" && p.arch == "arm64" && p.variant == "v8")
}

// WithPlatforms ships only the given platforms ("linux/amd64",
// "linux/arm/v7") of every multi-platform image. Each index is carried byte
// for byte (so its digest still equals contentDigest), with only the
// manifests of the selected platforms below it: a sparse index. The archive
// records the children it leaves out (layout.AnnotationAbsent) and the
// import reports them. Children without a platform are kept; attestation
// manifests (platform unknown/unknown) follow the manifest they describe.
// An image none of whose platforms is selected stops the export. The
// default (no platforms) ships every platform.
func WithPlatforms(ps ...string) Option {
	return func(o *options) error {
		o.fit.platforms = nil
		for _, s := range ps {
			for _, part := range strings.Split(s, ",") {
				if strings.TrimSpace(part) == "" {
					continue
				}
				p, err := parsePlatform(part)
				if err != nil {
					return err
				}
				if !slices.Contains(o.fit.platforms, p) {
					o.fit.platforms = append(o.fit.platforms, p)
				}
			}
		}
		return nil
	}
}

// absentChild is an index child left out by platform selection.
type absentChild struct {
	image    string // label of the image, "component web"
	index    digest.Digest
	platform string
	desc     ocispec.Descriptor
}

// SparseImage reports an image whose index ships only some platforms.
type SparseImage struct {
	// Image is "component NAME" or "invocation image N", Reference its
	// `image` string.
	Image     string `json:"image"`
	Reference string `json:"reference"`
	// Index is the digest of the sparse index.
	Index string `json:"index"`
	// Absent lists the platforms left out ("linux/arm64 sha256:...").
	Absent []string `json:"absent"`
}

// annotationReferenceDigest is what BuildKit writes on an attestation
// manifest to name the platform manifest it describes.
const annotationReferenceDigest = "vnd.docker.reference.digest"

// leaveOut reports whether child c of index parent is to be left out of
// the archive because its platform is not selected, and records it.
func (e *exporter) leaveOut(r *resolved, parent ocispec.Descriptor, c ocispec.Descriptor, siblings []ocispec.Descriptor) bool {
	ps := e.o.fit.platforms
	if len(ps) == 0 || c.Platform == nil {
		return false
	}
	selected := func(d ocispec.Descriptor) bool {
		if d.Platform == nil {
			return true
		}
		if d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown" {
			ref := digest.Digest(d.Annotations[annotationReferenceDigest])
			if ref == "" {
				return true
			}
			for _, s := range siblings {
				if s.Digest == ref {
					return s.Platform == nil || slices.ContainsFunc(ps, func(p platform) bool { return p.matches(s.Platform) })
				}
			}
			return true
		}
		return slices.ContainsFunc(ps, func(p platform) bool { return p.matches(d.Platform) })
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fit.absent == nil {
		e.fit.absent = map[digest.Digest]absentChild{}
		e.fit.kept = map[digest.Digest]int{}
	}
	if selected(c) {
		if c.Platform.OS != "unknown" {
			e.fit.kept[parent.Digest]++
		}
		return false
	}
	p := (&platform{os: c.Platform.OS, arch: c.Platform.Architecture, variant: c.Platform.Variant}).String()
	e.fit.absent[c.Digest] = absentChild{image: r.img.Label() + " (" + r.img.Ref + ")", index: parent.Digest, platform: p, desc: c}
	return true
}

// recordPlatforms annotates index.json with the platform selection and the
// children left out, and fails for an image that keeps no platform.
func (e *exporter) recordPlatforms(index *ocispec.Index, res *Result) error {
	if len(e.o.fit.platforms) == 0 {
		return nil
	}
	var sel []string
	for _, p := range e.o.fit.platforms {
		sel = append(sel, p.String())
	}
	index.Annotations[layout.AnnotationPlatforms] = strings.Join(sel, ",")
	if len(e.fit.absent) == 0 {
		return nil
	}
	var ds []digest.Digest
	byIndex := map[digest.Digest]*SparseImage{}
	var errs []error
	for d, a := range e.fit.absent {
		// A child may also be carried because another index needs it.
		if s, ok := e.blobs[d]; ok && s != nil {
			continue
		}
		ds = append(ds, d)
		si, ok := byIndex[a.index]
		if !ok {
			si = &SparseImage{Image: a.image, Index: a.index.String()}
			byIndex[a.index] = si
			if e.fit.kept[a.index] == 0 {
				errs = append(errs, fmt.Errorf("%s: index %s has no manifest for %s", a.image, a.index, strings.Join(sel, ", ")))
			}
		}
		si.Absent = append(si.Absent, a.platform+" "+d.String())
	}
	if len(errs) > 0 {
		return fmt.Errorf("export: platform selection leaves images without any platform: %w", errors.Join(errs...))
	}
	for _, si := range byIndex {
		sort.Strings(si.Absent)
		for _, img := range e.images {
			if strings.HasSuffix(si.Image, "("+img.Reference+")") {
				si.Reference = img.Reference
			}
		}
		res.Sparse = append(res.Sparse, *si)
	}
	sort.Slice(res.Sparse, func(i, j int) bool { return res.Sparse[i].Image < res.Sparse[j].Image })
	if len(ds) > 0 {
		index.Annotations[layout.AnnotationAbsent] = layout.FormatDigestList(ds)
	}
	return nil
}
