package layout

import (
	"archive/tar"
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
)

// blockSize is the tar block size; every header and every entry's data
// occupies a whole number of blocks.
const blockSize = 512

// File is a small file at the archive root, held in memory (oci-layout,
// index.json, bundle.json, documented extra files).
type File struct {
	Name string
	Data []byte
}

// Blob is a content-addressed entry under blobs/. Data may hold the content
// of small metadata blobs (manifests, configs) that are already in memory;
// when Data is nil the content is fetched while the archive is written.
type Blob struct {
	Digest digest.Digest
	Size   int64
	Data   []byte
}

// Entry is one file of a planned archive with its position in the tar.
type Entry struct {
	Name         string
	Size         int64
	HeaderOffset int64
	DataOffset   int64
	Digest       digest.Digest // empty for root files
	inline       []byte
	header       []byte
}

// Plan is the complete, deterministic layout of an archive: every entry,
// its header bytes and its offset. It is built before any blob is fetched.
type Plan struct {
	entries []Entry
	blobs   map[digest.Digest]int
	size    int64
}

// NewPlan lays out files (in the given order, at the root) followed by blobs
// sorted by digest, each blob once. A digest listed twice must have the same
// size both times.
func NewPlan(files []File, blobs []Blob) (*Plan, error) {
	p := &Plan{blobs: make(map[digest.Digest]int)}
	seen := map[string]bool{}
	for _, f := range files {
		if !validRootName(f.Name) {
			return nil, fmt.Errorf("%w: root file name %q", ErrUnsafeEntry, f.Name)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("%w: duplicate root file %q", ErrInvalidArchive, f.Name)
		}
		seen[f.Name] = true
		p.entries = append(p.entries, Entry{Name: f.Name, Size: int64(len(f.Data)), inline: f.Data})
	}
	sorted := slices.Clone(blobs)
	slices.SortFunc(sorted, func(a, b Blob) int { return cmp.Compare(a.Digest, b.Digest) })
	for _, b := range sorted {
		if err := ValidateDigest(b.Digest); err != nil {
			return nil, err
		}
		if b.Size < 0 {
			return nil, fmt.Errorf("%w: blob %s has negative size", ErrInvalidArchive, b.Digest)
		}
		if i, ok := p.blobs[b.Digest]; ok {
			if p.entries[i].Size != b.Size {
				return nil, fmt.Errorf("%w: blob %s listed with sizes %d and %d", ErrInvalidArchive, b.Digest, p.entries[i].Size, b.Size)
			}
			if p.entries[i].inline == nil && b.Data != nil {
				p.entries[i].inline = b.Data
			}
			continue
		}
		p.blobs[b.Digest] = len(p.entries)
		p.entries = append(p.entries, Entry{Name: BlobName(b.Digest), Size: b.Size, Digest: b.Digest, inline: b.Data})
	}
	var off int64
	for i := range p.entries {
		e := &p.entries[i]
		if e.inline != nil && int64(len(e.inline)) != e.Size {
			return nil, fmt.Errorf("%w: %s: %d bytes given for size %d", ErrInvalidArchive, e.Name, len(e.inline), e.Size)
		}
		hdr, err := headerBytes(e.Name, e.Size)
		if err != nil {
			return nil, err
		}
		e.header = hdr
		e.HeaderOffset = off
		e.DataOffset = off + int64(len(hdr))
		off = e.DataOffset + padded(e.Size)
	}
	p.size = off + 2*blockSize // end-of-archive marker
	return p, nil
}

// Entries returns the planned entries in archive order.
func (p *Plan) Entries() []Entry { return slices.Clone(p.entries) }

// Size returns the size of the complete archive in bytes.
func (p *Plan) Size() int64 { return p.size }

// BlobBytes returns the total size of all blobs, each counted once.
func (p *Plan) BlobBytes() int64 {
	var n int64
	for _, i := range p.blobs {
		n += p.entries[i].Size
	}
	return n
}

// Blobs returns the blobs whose content is not held in the plan (the ones
// that must be fetched), in archive order.
func (p *Plan) Blobs() []Blob {
	var out []Blob
	for _, e := range p.entries {
		if e.Digest != "" && e.inline == nil {
			out = append(out, Blob{Digest: e.Digest, Size: e.Size})
		}
	}
	return out
}

func padded(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// headerBytes renders the deterministic tar header of a regular file:
// fixed mode, zero uid/gid and mtime, no user or group names.
func headerBytes(name string, size int64) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	})
	if err != nil {
		return nil, fmt.Errorf("tar header for %s: %w", name, err)
	}
	// The writer has emitted the header (and any PAX record) but no data.
	return buf.Bytes(), nil
}

func validRootName(name string) bool {
	switch name {
	case OCILayoutFile, IndexFile, BundleFile:
		return true
	}
	_, extra := extraFiles[name]
	return extra
}

// extraFiles are the documented root files besides the OCI layout ones.
var extraFiles = map[string]struct{}{
	"relocation-mapping.json": {}, // Porter archives carry one
	DockerManifestFile:        {}, // docker save's index (FORMAT.md §5.4)
}
