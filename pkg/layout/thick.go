package layout

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Format is the shape of an archive, recognized from its content (never from
// its file name).
type Format string

// Archive formats.
const (
	// FormatOCI is cnab-airgap's default: an OCI image layout at the root of
	// the tar, with bundle.json beside it.
	FormatOCI Format = "oci"
	// FormatCNABThick is the CNAB-104 thick bundle that duffle, cnab-go's
	// packager and cnab-airgap's --format cnab-thick write: a gzipped tar
	// with bundle.json at the root and the OCI image layout under
	// artifacts/layout/. Images are found by their
	// org.opencontainers.image.ref.name, the `image` string of bundle.json.
	FormatCNABThick Format = "cnab-thick"
	// FormatPorter is the output of `porter archive`: a CNAB-104 thick
	// bundle that also carries relocation-mapping.json at its root, whose
	// images are named in index.json by their relocated references (the
	// values of that mapping) rather than by their `image` strings.
	FormatPorter Format = "porter"
)

// ThickLayoutDir is where a CNAB-104 thick bundle keeps its OCI image layout.
const ThickLayoutDir = thickPrefix

// MappingFile is the root file in which Porter archives (and cnab-airgap's
// cnab-thick archives, for Porter's sake) carry a relocation mapping.
const MappingFile = "relocation-mapping.json"

// ParseFormat validates a format name given by a user ("" means FormatOCI).
// FormatPorter is recognized on read only and is not accepted here.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatOCI:
		return FormatOCI, nil
	case FormatCNABThick:
		return FormatCNABThick, nil
	}
	return "", fmt.Errorf("%w: unknown format %q (oci, cnab-thick)", ErrInvalidArchive, s)
}

// Format reports the archive's format, recognized from its entries: where
// the OCI layout sits, whether relocation-mapping.json is present, and
// whether index.json carries cnab-airgap's annotations (an archive written
// by cnab-airgap in the cnab-thick format is FormatCNABThick even though it
// also carries a relocation mapping).
func (a *Archive) Format() Format {
	if a.prefix == "" {
		return FormatOCI
	}
	if _, ok := a.entries[MappingFile]; ok && !a.Annotated() {
		return FormatPorter
	}
	return FormatCNABThick
}

// Annotated reports whether index.json was written by cnab-airgap: it names
// the format version and gives every root descriptor a role. Archives from
// other tools (duffle, cnab-go's packager, Porter) are not annotated; their
// images are identified by reference names only.
func (a *Archive) Annotated() bool {
	return a.Index.Annotations[AnnotationFormatVersion] != ""
}

// BundleBlob makes bundle.json, a root file, readable as the blob it is in
// the bundle's registry form (the config of the bundle's config manifest),
// and returns its digest and size. Archives from other tools do not carry
// that blob; the bytes are the same, so the entry is shared, not copied.
// It returns false if the archive has no bundle.json.
func (a *Archive) BundleBlob() (digest.Digest, int64, bool) {
	e, ok := a.entries[BundleFile]
	if !ok || a.BundleJSON == nil {
		return "", 0, false
	}
	d := digest.FromBytes(a.BundleJSON)
	if _, ok := a.entries[a.prefix+BlobName(d)]; !ok {
		a.entries[a.prefix+BlobName(d)] = e
	}
	return d, e.size, true
}

// cleanEntryName removes the "./" that Porter and moby's archive package
// (used by duffle and cnab-go's packager) put in front of every entry name.
// The root directory entry "./" becomes "", which callers skip. Nothing else
// is changed: every other check applies to the cleaned name.
func cleanEntryName(name string) string {
	if name == "./" || name == "." {
		return ""
	}
	return strings.TrimPrefix(name, "./")
}

// NewThickPlan lays out a CNAB-104 thick bundle: root files (bundle.json
// first, then relocation-mapping.json if given) at the root of the tar,
// then the OCI layout files (oci-layout, index.json) and every blob, sorted
// by digest, under artifacts/layout/. files holds both kinds; layout files
// are recognized by name. The plan is as deterministic as NewPlan's.
func NewThickPlan(files []File, blobs []Blob) (*Plan, error) {
	var root, lay []File
	for _, f := range files {
		switch f.Name {
		case OCILayoutFile, IndexFile:
			lay = append(lay, f)
		case BundleFile, MappingFile:
			root = append(root, f)
		default:
			return nil, fmt.Errorf("%w: %q is not a file of a thick bundle", ErrUnsafeEntry, f.Name)
		}
	}
	if len(lay) != 2 {
		return nil, fmt.Errorf("%w: a thick bundle needs oci-layout and index.json", ErrInvalidArchive)
	}
	p, err := NewPlan(append(root, lay...), blobs)
	if err != nil {
		return nil, err
	}
	for i := range p.entries {
		e := &p.entries[i]
		if e.Digest != "" || e.Name == OCILayoutFile || e.Name == IndexFile {
			e.Name = thickPrefix + e.Name
		}
	}
	if err := p.relayout(); err != nil {
		return nil, err
	}
	return p, nil
}

// relayout recomputes every entry's header and offsets after names changed.
func (p *Plan) relayout() error {
	var off int64
	for i := range p.entries {
		e := &p.entries[i]
		hdr, err := headerBytes(e.Name, e.Size)
		if err != nil {
			return err
		}
		e.header = hdr
		e.HeaderOffset = off
		e.DataOffset = off + int64(len(hdr))
		off = e.DataOffset + padded(e.Size)
	}
	p.size = off + 2*blockSize
	return nil
}
