package layout

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/mholt/archives"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

// Limits bound what reading an untrusted archive may cost.
type Limits struct {
	// MaxEntries is the most tar entries an archive may have. Default 100000.
	MaxEntries int
	// MaxMetadataBytes caps index.json, bundle.json, every manifest and every
	// other JSON document before it is decoded. Default 8 MiB.
	MaxMetadataBytes int64
	// MaxArchiveBytes caps how much a compressed archive may expand to.
	// Default 1 TiB.
	MaxArchiveBytes int64
}

// DefaultLimits are the limits used when Open is given the zero Limits.
var DefaultLimits = Limits{MaxEntries: 100000, MaxMetadataBytes: 8 << 20, MaxArchiveBytes: 1 << 40}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	if l.MaxMetadataBytes <= 0 {
		l.MaxMetadataBytes = DefaultLimits.MaxMetadataBytes
	}
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = DefaultLimits.MaxArchiveBytes
	}
	return l
}

// OpenOptions controls Open.
type OpenOptions struct {
	Limits Limits
	// TempDir is where a compressed archive is decompressed to (it is removed
	// by Close). Default: a new directory under os.TempDir().
	TempDir string
}

type entry struct {
	offset int64
	size   int64
}

// Archive is an opened archive: an index of its tar entries over the archive
// file. Nothing is extracted; blobs are read at their offsets.
type Archive struct {
	f       *os.File
	path    string
	tmpDir  string
	limits  Limits
	prefix  string // "" for our format, "artifacts/layout/" for CNAB-104 thick bundles
	entries map[string]entry

	// Index is the parsed index.json of the layout.
	Index ocispec.Index
	// IndexRaw is the exact bytes of index.json.
	IndexRaw []byte
	// BundleJSON is the exact bytes of bundle.json (nil if absent).
	BundleJSON []byte
	// Compressed names the outer compression that was removed ("" if none).
	Compressed string
}

// Open indexes the archive at path. A gzip or zstd compressed archive is
// decompressed once, sequentially, into a private temporary file (bounded
// by Limits.MaxArchiveBytes). Every entry must be a regular file whose name
// matches the layout grammar; anything else is refused with an error that
// names the entry.
func Open(ctx context.Context, path string, o OpenOptions) (*Archive, error) {
	a := &Archive{path: path, limits: o.Limits.withDefaults(), entries: map[string]entry{}}
	if err := a.open(ctx, path, o); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Archive) open(ctx context.Context, path string, o OpenOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	a.f = f
	format, _, err := archives.Identify(ctx, "", f)
	if _, serr := f.Seek(0, io.SeekStart); serr != nil {
		return serr
	}
	if err == nil {
		switch fm := format.(type) {
		case archives.CompressedArchive:
			if fm.Compression != nil {
				if err := a.decompress(ctx, fm.Compression, o.TempDir); err != nil {
					return err
				}
			}
		case archives.Decompressor:
			if err := a.decompress(ctx, fm, o.TempDir); err != nil {
				return err
			}
		}
	}
	if err := a.index(); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	if err := a.readRoot(); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	return nil
}

func (a *Archive) decompress(ctx context.Context, dec archives.Decompressor, tmp string) error {
	switch dec.(type) {
	case archives.Gz, archives.Zstd:
	default:
		return fmt.Errorf("%w: compression %T is not supported (use gzip or zstd)", ErrInvalidArchive, dec)
	}
	a.Compressed = strings.TrimPrefix(fmt.Sprintf("%T", dec), "archives.")
	dir, err := os.MkdirTemp(tmp, "cnab-airgap-")
	if err != nil {
		return err
	}
	a.tmpDir = dir
	rc, err := dec.OpenReader(bufio.NewReaderSize(a.f, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArchive, err)
	}
	defer rc.Close()
	out, err := os.CreateTemp(dir, "archive-*.tar")
	if err != nil {
		return err
	}
	limited := io.LimitReader(rc, a.limits.MaxArchiveBytes+1)
	n, err := copyCtx(ctx, out, limited)
	if err != nil {
		out.Close()
		return fmt.Errorf("%w: decompressing: %v", ErrInvalidArchive, err)
	}
	if n > a.limits.MaxArchiveBytes {
		out.Close()
		return fmt.Errorf("%w: decompressed archive is larger than %d bytes", ErrTooLarge, a.limits.MaxArchiveBytes)
	}
	a.f.Close()
	a.f = out
	return nil
}

// index scans the tar headers once and records every entry's offset.
func (a *Archive) index() error {
	if _, err := a.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tr := tar.NewReader(a.f)
	count := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: reading tar: %v", ErrInvalidArchive, err)
		}
		count++
		if count > a.limits.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, a.limits.MaxEntries)
		}
		name := h.Name
		if !utf8.ValidString(name) {
			return fmt.Errorf("%w: entry name %q is not valid UTF-8", ErrUnsafeEntry, name)
		}
		if err := checkName(name); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			if isLayoutDir(name) {
				continue
			}
			return fmt.Errorf("%w: %q: unexpected directory", ErrUnsafeEntry, name)
		default:
			return fmt.Errorf("%w: %q: type %s is not a regular file", ErrUnsafeEntry, name, typeName(h.Typeflag))
		}
		if h.Size < 0 {
			return fmt.Errorf("%w: %q: negative size", ErrUnsafeEntry, name)
		}
		if _, dup := a.entries[name]; dup {
			return fmt.Errorf("%w: %q: duplicate entry", ErrUnsafeEntry, name)
		}
		off, err := a.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		a.entries[name] = entry{offset: off, size: h.Size}
	}
	// A tar whose data is cut short fails in Next above; a file that ends
	// inside the last entry's data is caught here.
	st, err := a.f.Stat()
	if err != nil {
		return err
	}
	for name, e := range a.entries {
		if e.offset+e.size > st.Size() {
			return fmt.Errorf("%w: %q is truncated", ErrInvalidArchive, name)
		}
	}
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("%q", t)
}

// checkName rejects names that could escape a directory or that are not
// part of the layout grammar.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("%w: %q: absolute or malformed path", ErrUnsafeEntry, name)
	}
	for _, part := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		if part == ".." || part == "." || part == "" {
			return fmt.Errorf("%w: %q: path traversal or non-canonical path", ErrUnsafeEntry, name)
		}
	}
	if isLayoutDir(name) {
		return nil
	}
	for _, prefix := range []string{"", thickPrefix} {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		if rest == OCILayoutFile || rest == IndexFile || validRootName(rest) {
			return nil
		}
		if _, ok := DigestFromBlobName(rest); ok {
			return nil
		}
	}
	return fmt.Errorf("%w: %q: not a file of the archive format", ErrUnsafeEntry, name)
}

const thickPrefix = "artifacts/layout/"

func isLayoutDir(name string) bool {
	_, ok := layoutDirs[strings.TrimSuffix(name, "/")]
	return ok
}

// layoutDirs are the directory entries tolerated (and ignored) in an archive.
var layoutDirs = map[string]struct{}{
	"blobs": {}, "blobs/sha256": {}, "blobs/sha512": {},
	"artifacts": {}, "artifacts/layout": {}, "artifacts/layout/blobs": {},
	"artifacts/layout/blobs/sha256": {}, "artifacts/layout/blobs/sha512": {},
}

func (a *Archive) readRoot() error {
	if _, ok := a.entries[thickPrefix+IndexFile]; ok {
		a.prefix = thickPrefix
	}
	layoutRaw, err := a.readFile(a.prefix+OCILayoutFile, 4096)
	if err != nil {
		return err
	}
	var ol ocispec.ImageLayout
	if err := json.Unmarshal(layoutRaw, &ol); err != nil || ol.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("%w: oci-layout is not {\"imageLayoutVersion\":\"1.0.0\"}", ErrInvalidArchive)
	}
	a.IndexRaw, err = a.readFile(a.prefix+IndexFile, a.limits.MaxMetadataBytes)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(a.IndexRaw, &a.Index); err != nil {
		return fmt.Errorf("%w: index.json: %v", ErrInvalidArchive, err)
	}
	if a.Index.SchemaVersion != 2 {
		return fmt.Errorf("%w: index.json: schemaVersion %d", ErrInvalidArchive, a.Index.SchemaVersion)
	}
	for _, d := range a.Index.Manifests {
		if err := ValidateDigest(d.Digest); err != nil {
			return fmt.Errorf("index.json: %w", err)
		}
	}
	if _, ok := a.entries[BundleFile]; ok {
		a.BundleJSON, err = a.readFile(BundleFile, a.limits.MaxMetadataBytes)
		if err != nil {
			return err
		}
	}
	return nil
}

// readFile reads a whole (small) entry, refusing entries larger than limit.
func (a *Archive) readFile(name string, limit int64) ([]byte, error) {
	e, ok := a.entries[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s is missing", ErrInvalidArchive, name)
	}
	if e.size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, name, e.size, limit)
	}
	buf := make([]byte, e.size)
	if _, err := a.f.ReadAt(buf, e.offset); err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrInvalidArchive, name, err)
	}
	return buf, nil
}

// File returns the content of a small root file such as
// relocation-mapping.json, and false if the archive has none.
func (a *Archive) File(name string) ([]byte, bool, error) {
	if _, ok := a.entries[name]; !ok {
		return nil, false, nil
	}
	b, err := a.readFile(name, a.limits.MaxMetadataBytes)
	return b, err == nil, err
}

// Has reports whether the archive carries blob d, and its size.
func (a *Archive) Has(d digest.Digest) (int64, bool) {
	if ValidateDigest(d) != nil {
		return 0, false
	}
	e, ok := a.entries[a.prefix+BlobName(d)]
	return e.size, ok
}

// Blob returns a reader over blob d that fails at its end unless the content
// has the expected size and hashes to d. size < 0 accepts the stored size.
func (a *Archive) Blob(d digest.Digest, size int64) (io.Reader, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	e, ok := a.entries[a.prefix+BlobName(d)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, d)
	}
	if size >= 0 && e.size != size {
		return nil, fmt.Errorf("blob %s: %w: described as %d bytes, archive holds %d", d, verify.ErrSizeMismatch, size, e.size)
	}
	return verify.NewReader(io.NewSectionReader(a.f, e.offset, e.size), d, e.size)
}

// Section returns the raw, unverified bytes of blob d as a section of the
// archive file (for serving byte ranges of content verified beforehand).
func (a *Archive) Section(d digest.Digest) (*io.SectionReader, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	e, ok := a.entries[a.prefix+BlobName(d)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, d)
	}
	return io.NewSectionReader(a.f, e.offset, e.size), nil
}

// Metadata reads a small blob (manifest, index, config) in full, after
// checking it against the size limit, its digest and, if size >= 0, its size.
func (a *Archive) Metadata(d digest.Digest, size int64) ([]byte, error) {
	if err := ValidateDigest(d); err != nil {
		return nil, err
	}
	e, ok := a.entries[a.prefix+BlobName(d)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrBlobNotFound, d)
	}
	if e.size > a.limits.MaxMetadataBytes {
		return nil, fmt.Errorf("blob %s: %w: %d bytes of metadata, limit %d", d, ErrTooLarge, e.size, a.limits.MaxMetadataBytes)
	}
	b, err := a.readFile(a.prefix+BlobName(d), a.limits.MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	if err := verify.Bytes(b, d, size); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return b, nil
}

// Blobs returns every blob digest in the archive with its size.
func (a *Archive) Blobs() map[digest.Digest]int64 {
	out := map[digest.Digest]int64{}
	for name, e := range a.entries {
		if rest, ok := strings.CutPrefix(name, a.prefix); ok {
			if d, ok := DigestFromBlobName(rest); ok {
				out[d] = e.size
			}
		}
	}
	return out
}

// Path returns the path the archive was opened from.
func (a *Archive) Path() string { return a.path }

// Close releases the archive file and removes any temporary files.
func (a *Archive) Close() error {
	var err error
	if a.f != nil {
		err = a.f.Close()
		a.f = nil
	}
	if a.tmpDir != "" {
		err = errors.Join(err, os.RemoveAll(a.tmpDir))
		a.tmpDir = ""
	}
	return err
}

// DecodeJSON decodes capped metadata into v, refusing trailing data.
func DecodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON document")
	}
	return nil
}
