package layout

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

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
	// MaxArchiveBytes caps the archive: how much a compressed archive may
	// expand to, and the size of a split archive. Default 1 TiB (the CLI's
	// --max-archive-size).
	MaxArchiveBytes int64
	// MaxJSONDepth is the deepest nesting of objects and arrays accepted in
	// index.json, bundle.json and every manifest or index, checked before
	// they are decoded. Default 64.
	MaxJSONDepth int
	// MaxExpansion bounds a compressed archive's content that no descriptor
	// declares (tar headers, blobs whose descriptor has not been read yet):
	// it may expand to 64 MiB plus MaxExpansion times the compressed bytes
	// read so far. Blobs are already compressed, so a real archive expands
	// about 1:1; a decompression bomb is cut off early. Default 50.
	MaxExpansion int64
	// MaxDeclaredExpansion bounds the whole decompressed archive, declared
	// blobs included: it may expand to 64 MiB plus MaxDeclaredExpansion
	// times the compressed bytes read so far. A size declared by a
	// descriptor is no licence: a few hundred kilobytes of zstd declaring a
	// layer of gigabytes of zeros is cut off after about 64 MiB + 100 times
	// its own size. Default 100 (real archives, whose blobs are compressed
	// already, expand about 1:1).
	MaxDeclaredExpansion int64
	// MaxTotalMetadataBytes bounds the manifests and indexes (and
	// index.json and bundle.json) a loaded archive holds at once, all
	// together; each is also capped by MaxMetadataBytes. Default 64 MiB.
	MaxTotalMetadataBytes int64
	// MaxDescriptors bounds how many descriptors index.json and every
	// manifest and index of the archive may hold together. Default 100000.
	MaxDescriptors int
}

// DefaultLimits are the limits used when Open is given the zero Limits.
var DefaultLimits = Limits{MaxEntries: 100000, MaxMetadataBytes: 8 << 20, MaxArchiveBytes: 1 << 40, MaxJSONDepth: 64, MaxExpansion: 50,
	MaxDeclaredExpansion: 100, MaxTotalMetadataBytes: 64 << 20, MaxDescriptors: 100000}

func (l Limits) withDefaults() Limits {
	orDefault(&l.MaxEntries, DefaultLimits.MaxEntries)
	orDefault(&l.MaxMetadataBytes, DefaultLimits.MaxMetadataBytes)
	orDefault(&l.MaxArchiveBytes, DefaultLimits.MaxArchiveBytes)
	orDefault(&l.MaxJSONDepth, DefaultLimits.MaxJSONDepth)
	orDefault(&l.MaxExpansion, DefaultLimits.MaxExpansion)
	orDefault(&l.MaxDeclaredExpansion, DefaultLimits.MaxDeclaredExpansion)
	orDefault(&l.MaxTotalMetadataBytes, DefaultLimits.MaxTotalMetadataBytes)
	orDefault(&l.MaxDescriptors, DefaultLimits.MaxDescriptors)
	return l
}

// orDefault sets *v to d unless it is positive.
func orDefault[T int | int64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Limits returns the limits the archive was opened with (defaults filled in).
func (a *Archive) Limits() Limits { return a.limits }

// OpenOptions controls Open.
type OpenOptions struct {
	Limits Limits
	// TempDir is where a compressed archive is decompressed to (it is removed
	// by Close). Default: a new directory under os.TempDir(). Its free space
	// is checked before anything is written and as the copy grows.
	TempDir string
	// Verify, when set, is called with the sha256 of the archive file (of a
	// split archive: of its joined parts) computed through the very file
	// handles that are then parsed, before anything is sniffed,
	// decompressed or parsed; an error aborts Open with that error. The
	// archive is never opened again by path afterwards, so what was
	// verified is what is read (an archive signature check hooks in here).
	Verify func(ctx context.Context, d digest.Digest) error
}

type entry struct {
	offset int64
	size   int64
}

// Archive is an opened archive: an index of its tar entries over the archive
// file. Nothing is extracted; blobs are read at their offsets.
type Archive struct {
	f       source // the file, or a split archive's parts (source.go); after decompression the temporary copy
	orig    source // the file as given (f, or the compressed file kept open), hashed by FileDigest
	digest  digest.Digest
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
	// Compressed names the outer compression that was removed
	// (CompressionGzip, CompressionZstd; "" if none).
	Compressed string
	// Parts describes the volumes of a split archive, joined and verified
	// when it was opened (nil if the archive was one file; split.go).
	Parts *Parts
}

// Open indexes the archive at path. A gzip or zstd compressed archive (told
// by its magic bytes) is decompressed once, sequentially, into a private
// temporary file under OpenOptions.TempDir, checked as it streams: every
// header before its data, sizes against the descriptors read so far, and
// the expansion of undeclared content (Limits.MaxExpansion), so that a
// decompression bomb stops early. Every entry must be a regular file whose
// name matches the layout grammar; anything else is refused with an error
// that names the entry (ErrUnsafeEntry). Too many entries or oversized
// metadata give ErrTooLarge; a truncated archive, a missing end-of-archive
// marker or data after it give ErrInvalidArchive. index.json and
// bundle.json are capped (Limits.MaxMetadataBytes) and their nesting
// checked (Limits.MaxJSONDepth) before they are decoded. Nothing is written
// outside the temporary directory, which Close removes.
func Open(ctx context.Context, path string, o OpenOptions) (*Archive, error) {
	a := &Archive{path: path, limits: o.Limits.withDefaults(), entries: map[string]entry{}}
	if err := a.open(ctx, path, o); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Archive) open(ctx context.Context, path string, o OpenOptions) error {
	f, err := a.openArchiveFile(ctx, path, o) // joins a split archive's verified parts (split.go)
	if err != nil {
		return err
	}
	a.f, a.orig = f, f
	if a.Parts != nil {
		a.digest = a.Parts.Digest // computed over the part handles (split.go)
	}
	if o.Verify != nil {
		// The signature is checked over the bytes about to be parsed,
		// before any of them is interpreted.
		d, err := a.FileDigest(ctx)
		if err != nil {
			return err
		}
		if err := o.Verify(ctx, d); err != nil {
			return fmt.Errorf("archive %s: %w", path, err)
		}
	}
	// The outer compression is told by its magic bytes only: no decoder
	// runs on untrusted bytes to guess a format (harden.go).
	compression, err := sniffCompression(f)
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	if compression != "" {
		// Decompressed and indexed in one checked pass (harden.go).
		err = a.decompressIndexed(ctx, compression, o.TempDir)
	} else {
		err = a.index()
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	if err := a.readRoot(); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	return nil
}

// index scans the tar headers once and records every entry's offset.
func (a *Archive) index() error {
	if _, err := a.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tr := tar.NewReader(a.f)
	count := 0
	var end int64 // where the last entry's data (padded) ends
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated: the archive ends inside an entry", ErrInvalidArchive)
		}
		if err != nil {
			return fmt.Errorf("%w: reading tar: %w", ErrInvalidArchive, err)
		}
		count++
		skip, err := a.admit(h, count) // names, types, duplicates, count (harden.go)
		if err != nil {
			return err
		}
		off, err := a.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		end = off + padded(h.Size)
		if skip {
			continue
		}
		a.entries[h.Name] = entry{offset: off, size: h.Size}
	}
	// A tar whose data is cut short fails in Next above; a file that ends
	// inside the last entry's data is caught here.
	size, err := a.f.Size()
	if err != nil {
		return err
	}
	for name, e := range a.entries {
		if e.offset+e.size > size {
			return fmt.Errorf("%w: %q is truncated", ErrInvalidArchive, name)
		}
	}
	// The end-of-archive marker must be there, and nothing but padding after it.
	return a.checkTail(end)
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
	if err := a.checkOneLayout(); err != nil {
		return err
	}
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
	if err := a.checkJSON("index.json", a.IndexRaw); err != nil {
		return err
	}
	if err := json.Unmarshal(a.IndexRaw, &a.Index); err != nil {
		return fmt.Errorf("%w: index.json: %w", ErrInvalidArchive, err)
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
		if err := a.checkJSON("bundle.json", a.BundleJSON); err != nil {
			return err
		}
	}
	return nil
}

// checkOneLayout refuses an archive that carries two OCI image layouts: one
// at the root (oci-layout, index.json, blobs/) and the CNAB-104 one under
// artifacts/layout/. A reader picks one of them and another tool may read
// the other, so such an archive would not mean the same to every reader.
func (a *Archive) checkOneLayout() error {
	var root, thick []string
	for name := range a.entries {
		switch {
		case strings.HasPrefix(name, thickPrefix):
			thick = append(thick, name)
		case name == OCILayoutFile || name == IndexFile || strings.HasPrefix(name, "blobs/"):
			root = append(root, name)
		}
	}
	if len(root) == 0 || len(thick) == 0 {
		return nil
	}
	return fmt.Errorf("%w: two OCI layouts in one archive: at the root (%s) and under %s (%s); an archive carries one", ErrInvalidArchive,
		NameList(root, 3), thickPrefix, NameList(thick, 3))
}

// NameList renders names sorted, the first n of them and how many more.
func NameList(names []string, n int) string {
	names = slices.Clone(names)
	slices.Sort(names)
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
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
		return nil, fmt.Errorf("%w: reading %s: %w", ErrInvalidArchive, name, err)
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
	return verify.NewReader(&dropBehind{r: io.NewSectionReader(a.f, e.offset, e.size), src: a.f, base: e.offset}, d, e.size)
}

// dropChunk is how much of a blob is read before its pages are dropped.
const dropChunk = 8 << 20

// dropBehind reads a blob's section and drops the pages it has read from
// the page cache as it goes: an import reads each byte of the archive once,
// so caching it would only push everything else out of memory (and, on a
// VM, fault in fresh pages for the whole archive instead of reusing a few).
type dropBehind struct {
	r             *io.SectionReader
	src           source
	base          int64 // offset of the section in the file
	read, dropped int64
}

// Seek moves within the blob (an upload that starts over); pages already
// dropped are read again from the disk.
func (d *dropBehind) Seek(offset int64, whence int) (int64, error) {
	pos, err := d.r.Seek(offset, whence)
	if err == nil {
		d.read = pos
		d.dropped = min(d.dropped, pos)
	}
	return pos, err
}

func (d *dropBehind) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.read += int64(n)
	if d.read-d.dropped >= dropChunk || (err == io.EOF && d.read > d.dropped) {
		d.src.dropCache(d.base+d.dropped, d.read-d.dropped)
		d.dropped = d.read
	}
	return n, err
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
	if err := a.checkJSON("blob "+d.String(), b); err != nil {
		return nil, err
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

// FileDigest returns the sha256 of the archive file as it was given
// (compressed bytes as they are): the digest computed when it was opened
// (OpenOptions.Verify, or a split archive's joined parts), or else the
// bytes hashed now through the handle Open read, never by opening the path
// again, so a file swapped since cannot be what is hashed.
func (a *Archive) FileDigest(ctx context.Context) (digest.Digest, error) {
	if a.digest != "" {
		return a.digest, nil
	}
	if a.orig == nil {
		return "", fmt.Errorf("archive %s is closed", a.path)
	}
	size, err := a.orig.Size()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := copyCtx(ctx, h, io.NewSectionReader(a.orig, 0, size)); err != nil {
		return "", fmt.Errorf("hashing %s: %w", a.path, err)
	}
	a.orig.dropCache(0, size)
	a.digest = digest.NewDigest(digest.SHA256, h)
	return a.digest, nil
}

// Close releases the archive file and removes any temporary files.
func (a *Archive) Close() error {
	var err error
	if a.orig != nil && a.orig != a.f {
		err = a.orig.Close()
	}
	a.orig = nil
	if a.f != nil {
		err = errors.Join(err, a.f.Close())
		a.f = nil
	}
	if a.tmpDir != "" {
		err = errors.Join(err, os.RemoveAll(a.tmpDir))
		a.tmpDir = ""
	}
	return err
}

// DecodeJSON decodes capped metadata into v, refusing trailing data and
// nesting deeper than DefaultLimits.MaxJSONDepth.
func DecodeJSON(b []byte, v any) error {
	if err := checkJSONDepth(b, DefaultLimits.MaxJSONDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON document")
	}
	return nil
}
