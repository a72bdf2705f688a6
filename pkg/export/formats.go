package export

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// fitOptions are the options that fit an export to a particular air gap:
// the archive format, the platforms shipped, the delta base and the volume
// size.
type fitOptions struct {
	format        layout.Format
	platforms     []platform
	base          string
	baseInventory string
	splitSize     int64
}

// fitState is what those options found while exporting.
type fitState struct {
	// absent are index children left out by WithPlatforms.
	absent map[digest.Digest]absentChild
	// kept counts, per index, the platform manifests kept.
	kept map[digest.Digest]int
	// omitted are the blobs a delta leaves out (its base has them).
	omitted map[digest.Digest]int64
}

// check validates the fit options against the rest and applies defaults.
func (f *fitOptions) check(o *options) error {
	switch f.format {
	case "":
		f.format = layout.FormatOCI
	case layout.FormatOCI:
	case layout.FormatCNABThick:
		// CNAB-104: a thick bundle is a gzipped tar; duffle and Porter read
		// nothing else.
		switch o.compression {
		case "", layout.CompressionGzip:
			o.compression = layout.CompressionGzip
		default:
			return fmt.Errorf("export: the cnab-thick format is a gzipped tar; compression %q is not possible", o.compression)
		}
	default:
		return fmt.Errorf("export: unknown format %q (oci, cnab-thick)", f.format)
	}
	if f.base != "" && f.baseInventory != "" {
		return errors.New("export: give a base archive or a base inventory, not both")
	}
	if f.splitSize != 0 && f.splitSize < layout.MinPartSize {
		return fmt.Errorf("export: split size %d is smaller than %d bytes", f.splitSize, layout.MinPartSize)
	}
	return nil
}

// WithFormat chooses the archive format: layout.FormatOCI (the default: an
// uncompressed tar whose root is an OCI image layout) or
// layout.FormatCNABThick (the CNAB-104 thick bundle that duffle, cnab-go's
// packager and Porter read: gzipped, bundle.json at the root, the layout
// under artifacts/layout/, plus relocation-mapping.json). cnab-thick
// implies gzip compression and cannot be combined with another.
func WithFormat(f layout.Format) Option {
	return func(o *options) error {
		switch f {
		case "", layout.FormatOCI, layout.FormatCNABThick:
			o.fit.format = f
			return nil
		}
		return fmt.Errorf("export: unknown format %q (oci, cnab-thick)", f)
	}
}

// WithSplitSize cuts the finished archive into volumes of n bytes
// (NAME.000, NAME.001, ...) described by NAME.parts.json, for removable
// media of a fixed size; `cat` of the volumes in order gives the archive
// byte for byte. The default (0) writes one file. n must be at least
// layout.MinPartSize.
func WithSplitSize(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return errors.New("export: split size must not be negative")
		}
		o.fit.splitSize = n
		return nil
	}
}

// fitIndex records platform selection and the delta base in index.json,
// after every image was walked.
func (e *exporter) fitIndex(ctx context.Context, index *ocispec.Index, res *Result) error {
	res.Format = e.o.fit.format
	if err := e.recordPlatforms(index, res); err != nil {
		return err
	}
	return e.recordDelta(ctx, index, res)
}

// newPlan lays out the archive in the chosen format, leaving out the blobs
// a delta does not carry.
func (e *exporter) newPlan(files []layout.File, blobs []layout.Blob, res *Result) (*layout.Plan, error) {
	if len(e.fit.omitted) > 0 {
		kept := blobs[:0:0]
		for _, b := range blobs {
			if _, ok := e.fit.omitted[b.Digest]; !ok {
				kept = append(kept, b)
			}
		}
		blobs = kept
	}
	if e.o.fit.format != layout.FormatCNABThick {
		return layout.NewPlan(files, blobs)
	}
	// Porter's `publish --archive` needs relocation-mapping.json and looks
	// each image up by the mapping's value. Inside the archive every image
	// is named by its own `image` string (that is what duffle and cnab-go
	// look up), so the mapping sends each image to itself.
	m := relocate.Mapping{}
	for _, img := range res.Images {
		m[img.Reference] = img.Reference
	}
	raw, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	files = append(files, layout.File{Name: layout.MappingFile, Data: raw})
	return layout.NewThickPlan(files, blobs)
}

// split cuts the finished archive into volumes when asked to.
func (e *exporter) split(ctx context.Context, out string, res *Result) error {
	if e.o.fit.splitSize == 0 {
		return nil
	}
	ps, err := layout.Split(ctx, out, e.o.fit.splitSize, digest.Digest(res.ArchiveDigest))
	if err != nil {
		return fmt.Errorf("splitting %s: %w", out, err)
	}
	res.Parts = ps
	res.Archive = out + layout.PartsSuffix
	return nil
}
