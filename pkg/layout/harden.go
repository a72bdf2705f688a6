package layout

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	_ "crypto/sha512" // blobs/sha512/ names must be verifiable (go-digest needs the hash linked)
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// This file holds the defences of the reader against hostile archives that
// do not fit in the plain index of reader.go: a one-pass, checked
// decompression of compressed archives, the end-of-archive and trailing
// data checks, and the JSON nesting limit.

// expansionSlack is how many bytes of a compressed archive that no
// descriptor accounts for may be decompressed before MaxExpansion applies.
const expansionSlack = 64 << 20

// MaxTrailingBytes is how much zero padding may follow the end-of-archive
// marker of a tar (tar tools pad to a record size, 10 KiB for GNU tar).
// Anything else after the marker is refused as trailing data.
const MaxTrailingBytes = 1 << 20

// zstdMaxWindow bounds the memory a zstd frame may ask for.
const zstdMaxWindow = 256 << 20

// admit checks one tar header before its data is read. It returns skip for
// a tolerated layout directory entry.
func (a *Archive) admit(h *tar.Header, count int) (skip bool, err error) {
	if count > a.limits.MaxEntries {
		return false, fmt.Errorf("%w: more than %d entries (stopped at %q)", ErrTooLarge, a.limits.MaxEntries, h.Name)
	}
	// Porter and moby's archive package (duffle, cnab-go's packager) put
	// "./" before every name and add the root directory "./" (thick.go).
	h.Name = cleanEntryName(h.Name)
	if h.Name == "" && h.Typeflag == tar.TypeDir {
		return true, nil
	}
	name := h.Name
	if !utf8.ValidString(name) {
		return false, fmt.Errorf("%w: entry name %q is not valid UTF-8", ErrUnsafeEntry, name)
	}
	if err := checkName(name); err != nil {
		return false, err
	}
	switch h.Typeflag {
	case tar.TypeReg:
	case tar.TypeDir:
		if isLayoutDir(name) {
			return true, nil
		}
		return false, fmt.Errorf("%w: %q: unexpected directory", ErrUnsafeEntry, name)
	default:
		return false, fmt.Errorf("%w: %q: type %s is not a regular file", ErrUnsafeEntry, name, typeName(h.Typeflag))
	}
	if h.Size < 0 {
		return false, fmt.Errorf("%w: %q: negative size", ErrUnsafeEntry, name)
	}
	if _, dup := a.entries[name]; dup {
		return false, fmt.Errorf("%w: %q: duplicate entry", ErrUnsafeEntry, name)
	}
	if limit := a.rootLimit(name); limit >= 0 && h.Size > limit {
		return false, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, name, h.Size, limit)
	}
	return false, nil
}

// rootLimit returns the size limit of a root metadata file, or -1 for a blob.
func (a *Archive) rootLimit(name string) int64 {
	rest := strings.TrimPrefix(name, thickPrefix)
	if _, isBlob := DigestFromBlobName(rest); isBlob {
		return -1
	}
	if rest == OCILayoutFile {
		return 4096
	}
	return a.limits.MaxMetadataBytes
}

// checkTail checks what follows the last entry of an uncompressed archive:
// the two zero blocks of the end-of-archive marker, then at most
// MaxTrailingBytes of zero padding. end is where the last entry's data
// (padded) ends.
func (a *Archive) checkTail(end int64) error {
	size, err := a.f.Size()
	if err != nil {
		return err
	}
	rest := size - end
	if rest < 2*blockSize {
		return fmt.Errorf("%w: truncated: the end-of-archive marker is missing after offset %d", ErrInvalidArchive, end)
	}
	if rest > 2*blockSize+MaxTrailingBytes {
		return fmt.Errorf("%w: %d bytes of trailing data after the end of the archive at offset %d", ErrInvalidArchive, rest-2*blockSize, end+2*blockSize)
	}
	return checkZeros(io.NewSectionReader(a.f, end, rest), end)
}

// checkZeros reads r to its end and fails at the first non-zero byte; base
// is r's offset in the archive, for the message.
func checkZeros(r io.Reader, base int64) error {
	buf := make([]byte, 32<<10)
	var off int64
	for {
		n, err := r.Read(buf)
		for i, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("%w: trailing data after the end of the archive at offset %d", ErrInvalidArchive, base+off+int64(i))
			}
		}
		off += int64(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: reading after the end of the archive: %w", ErrInvalidArchive, err)
		}
	}
}

// decompressIndexed decompresses the archive once, sequentially, into a
// private temporary file and indexes it on the way. Every tar header is
// checked before the data it announces is decompressed, so a hostile
// archive stops early:
//
//   - names, types, duplicates and the entry count as for an uncompressed
//     archive, and root metadata files against their size limits;
//   - a blob already declared by a descriptor (index.json, or a manifest
//     reachable from it that has been read and whose content matched its
//     name) must have exactly the declared size;
//   - everything no descriptor accounts for (tar headers and padding, blobs
//     not declared yet) may expand to at most 64 MiB plus
//     Limits.MaxExpansion times the compressed bytes read so far: a
//     decompression bomb is cut off there instead of filling the disk;
//   - everything, declared blobs included, may expand to at most 64 MiB
//     plus Limits.MaxDeclaredExpansion times the compressed bytes read so
//     far: a size declared by a descriptor is no licence to fill the disk;
//   - the whole may not exceed Limits.MaxArchiveBytes, and no entry whose
//     header announces more than that is decompressed;
//   - the free space of the temporary directory is checked before
//     anything is written (at least the compressed size is needed), at
//     every entry (its announced size) and every 64 MiB as the copy grows:
//     a disk about to fill is reported, naming the directory, the space
//     needed and the space free, instead of filling it;
//   - after the end-of-archive marker only zero padding (at most
//     MaxTrailingBytes) may follow, and the compressed stream must end
//     cleanly (checksums included).
//
// Blobs that were streamed before their descriptor was read are checked
// against it at the end.
func (a *Archive) decompressIndexed(ctx context.Context, compression, tmp string) error {
	a.Compressed = compression
	where := tmp
	if where == "" {
		where = os.TempDir()
	}
	compressed, err := a.f.Size()
	if err != nil {
		return err
	}
	// A decompressed archive is at least about as large as the compressed one.
	if err := checkFree(where, compressed, "decompressing the archive"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(tmp, "cnab-airgap-")
	if err != nil {
		return err
	}
	a.tmpDir = dir
	in := &countingReader{r: bufio.NewReaderSize(a.f, 1<<20)}
	var rc io.Reader
	switch compression {
	case CompressionGzip:
		zr, err := gzip.NewReader(in) // multistream: concatenated members are one archive
		if err != nil {
			return fmt.Errorf("%w: gzip: %w", ErrInvalidArchive, err)
		}
		defer zr.Close()
		rc = zr
	case CompressionZstd:
		zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return fmt.Errorf("%w: zstd: %w", ErrInvalidArchive, err)
		}
		defer zr.Close()
		rc = zr
	default:
		return fmt.Errorf("%w: compression %s is not supported (use gzip or zstd)", ErrInvalidArchive, compression)
	}
	out, err := os.CreateTemp(dir, "archive-*.tar")
	if err != nil {
		return err
	}
	s := &expander{ctx: ctx, r: rc, w: bufio.NewWriterSize(out, 1<<20), in: in, limits: a.limits, tmp: where, nextCheck: freeCheckEvery}
	if err := a.indexStream(s); err != nil {
		out.Close()
		return err
	}
	if err := s.w.Flush(); err != nil {
		out.Close()
		return err
	}
	a.f = fileSource{out} // a.orig, the compressed file, stays open for FileDigest
	return nil
}

// freeCheckEvery is how often (in decompressed bytes) the free space of the
// temporary directory is checked again.
const freeCheckEvery = 64 << 20

// checkFree refuses to write need more bytes under dir when its file system
// has less free space than that.
func checkFree(dir string, need int64, what string) error {
	free := diskFree(dir)
	if free < 0 || need <= free {
		return nil
	}
	return fmt.Errorf("%w: not enough free space in the temporary directory %s: %s needs at least %d more bytes (%s), %d bytes (%s) are free; choose another directory with --tmp-dir",
		ErrTooLarge, dir, what, need, humanSize(need), free, humanSize(free))
}

// humanSize renders n bytes in binary units for messages ("3.0 GiB").
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (a *Archive) indexStream(s *expander) error {
	d := &declared{size: map[digest.Digest]int64{}, pending: map[digest.Digest][]ocispec.Descriptor{}, max: a.limits.MaxDescriptors}
	tr := tar.NewReader(s)
	count := 0
	var end int64
	for {
		s.declared = false
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s.fail(err, "reading tar")
		}
		count++
		skip, err := a.admit(h, count)
		if err != nil {
			return err
		}
		off := s.n
		end = off + padded(h.Size)
		if skip {
			continue
		}
		name := h.Name
		if end > s.limits.MaxArchiveBytes {
			return fmt.Errorf("%w: %q announces %d bytes: the decompressed archive would be larger than %d bytes (--max-archive-size)", ErrTooLarge, name, h.Size, s.limits.MaxArchiveBytes)
		}
		s.entryEnd = end
		if err := checkFree(s.tmp, padded(h.Size), fmt.Sprintf("%q (announced %d bytes)", name, h.Size)); err != nil {
			return err
		}
		blob, isBlob := DigestFromBlobName(strings.TrimPrefix(name, thickPrefix))
		if isBlob {
			if want, ok := d.size[blob]; ok {
				if want != h.Size {
					return fmt.Errorf("%w: %q holds %d bytes, its descriptor declares %d", ErrInvalidArchive, name, h.Size, want)
				}
				s.declared = true
			}
		}
		keep := h.Size <= a.limits.MaxMetadataBytes && (!isBlob || h.Size > 0)
		if keep {
			raw, err := io.ReadAll(tr)
			if err != nil {
				return s.fail(err, "reading "+name)
			}
			switch {
			case isBlob:
				if err := d.learn(blob, raw, a.limits); err != nil {
					return err
				}
			case strings.TrimPrefix(name, thickPrefix) == IndexFile:
				var idx ocispec.Index
				if checkJSONDepth(raw, a.limits.MaxJSONDepth) == nil && json.Unmarshal(raw, &idx) == nil {
					if err := d.count(name, len(idx.Manifests)); err != nil {
						return err
					}
					for _, m := range idx.Manifests {
						// index.json names manifests and indexes: a root
						// announcing more than a manifest may hold does not
						// raise the budget.
						if m.Size <= a.limits.MaxMetadataBytes && ValidateDigest(m.Digest) == nil {
							d.declare(m)
						}
					}
				}
			}
		} else if _, err := io.Copy(io.Discard, tr); err != nil {
			return s.fail(err, "reading "+name)
		}
		a.entries[name] = entry{offset: off, size: h.Size}
	}
	// The tar reader stops at the first zero block; the marker is two.
	if s.n-end != 2*blockSize {
		return fmt.Errorf("%w: truncated: the end-of-archive marker is missing after offset %d", ErrInvalidArchive, end)
	}
	s.declared = false
	tail := &io.LimitedReader{R: s, N: MaxTrailingBytes + 1}
	if err := checkZeros(tail, s.n); err != nil {
		if s.err != nil {
			if errors.Is(s.err, errStop) {
				return s.err
			}
			return fmt.Errorf("%w: invalid data after the end of the archive: %w", ErrInvalidArchive, s.err)
		}
		return err
	}
	if tail.N <= 0 {
		return fmt.Errorf("%w: more than %d bytes of padding after the end of the archive", ErrInvalidArchive, MaxTrailingBytes)
	}
	// Blobs streamed before their descriptor was read.
	for dg, want := range d.size {
		for _, prefix := range []string{"", thickPrefix} {
			if e, ok := a.entries[prefix+BlobName(dg)]; ok && e.size != want {
				return fmt.Errorf("%w: %q holds %d bytes, its descriptor declares %d", ErrInvalidArchive, prefix+BlobName(dg), e.size, want)
			}
		}
	}
	return nil
}

// declared tracks the sizes descriptors declare while an archive streams.
// Only descriptors reachable from index.json count, and only from content
// that matched its digest.
type declared struct {
	size    map[digest.Digest]int64
	pending map[digest.Digest][]ocispec.Descriptor // children of verified manifests not reachable yet
	n, max  int                                    // descriptors read so far, Limits.MaxDescriptors
}

// count adds the n descriptors of one document to the total, refusing an
// archive whose documents hold more than Limits.MaxDescriptors together.
func (d *declared) count(what string, n int) error {
	d.n += n
	if d.n > d.max {
		return fmt.Errorf("%w: %s brings the descriptors of the archive's index.json, manifests and indexes to %d, limit %d (Limits.MaxDescriptors)", ErrTooLarge, what, d.n, d.max)
	}
	return nil
}

func (d *declared) declare(root ocispec.Descriptor) {
	stack := []ocispec.Descriptor{root}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := d.size[x.Digest]; ok {
			continue
		}
		d.size[x.Digest] = x.Size
		stack = append(stack, d.pending[x.Digest]...)
		delete(d.pending, x.Digest)
	}
}

// learn records the children of a small blob that is a manifest or index
// whose content hashes to its name. Their number counts towards
// Limits.MaxDescriptors.
func (d *declared) learn(dg digest.Digest, raw []byte, l Limits) error {
	if len(raw) == 0 || raw[0] != '{' || checkJSONDepth(raw, l.MaxJSONDepth) != nil {
		return nil //nolint:nilerr // not a manifest: nothing to learn; the reader refuses it if it is used as one
	}
	if dg.Algorithm().FromBytes(raw) != dg {
		return nil // the reader's verification reports it when it is used
	}
	var v Fields
	if json.Unmarshal(raw, &v) != nil || v.SchemaVersion != 2 {
		return nil //nolint:nilerr // as above
	}
	var children []ocispec.Descriptor
	if v.Config != nil {
		children = append(children, *v.Config)
	}
	children = append(children, v.Layers...)
	children = append(children, v.Manifests...)
	if err := d.count(BlobName(dg), len(children)); err != nil {
		return err
	}
	valid := children[:0]
	for _, c := range children {
		if ValidateDigest(c.Digest) == nil && c.Size >= 0 {
			valid = append(valid, c)
		}
	}
	if len(valid) == 0 {
		return nil
	}
	if _, ok := d.size[dg]; ok {
		for _, c := range valid {
			d.declare(c)
		}
		return nil
	}
	d.pending[dg] = append(d.pending[dg], valid...)
	return nil
}

// countingReader counts the compressed bytes read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// sniffCompression tells the outer compression of an archive by its magic
// bytes: CompressionGzip, CompressionZstd, "" for none (a tar), or an error for a compression
// that is recognised but not supported. f is left at offset 0.
func sniffCompression(f source) (string, error) {
	var magic [6]byte
	n, err := f.ReadAt(magic[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	m := magic[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	switch {
	case bytes.HasPrefix(m, []byte{0x1f, 0x8b}):
		return CompressionGzip, nil
	case bytes.HasPrefix(m, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return CompressionZstd, nil
	}
	for _, other := range []struct {
		name  string
		magic []byte
	}{{"bzip2", []byte("BZh")}, {"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}}, {"lz4", []byte{0x04, 0x22, 0x4d, 0x18}}, {"zip", []byte("PK\x03\x04")}, {"7z", []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}}} {
		if bytes.HasPrefix(m, other.magic) {
			return "", fmt.Errorf("%w: %s archives are not supported (use a tar, gzip or zstd)", ErrInvalidArchive, other.name)
		}
	}
	return "", nil
}

// expander reads decompressed bytes, copies them to the temporary file and
// enforces the expansion limits.
type expander struct {
	ctx       context.Context
	r         io.Reader
	w         *bufio.Writer
	in        *countingReader
	limits    Limits
	tmp       string // the temporary directory, for free space checks
	n         int64  // decompressed bytes so far: the offset in the temporary file
	entryEnd  int64  // where the data of the entry being read ends
	nextCheck int64  // when n passes it, the free space is checked again
	unvouch   int64  // decompressed bytes no descriptor accounts for
	declared  bool   // the data being read belongs to a blob of declared size
	err       error  // the first limit or I/O failure
}

// errStop marks a failure of the expander itself.
var errStop = errors.New("stopped")

func (s *expander) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	if n > 0 {
		s.n += int64(n)
		if !s.declared {
			s.unvouch += int64(n)
		}
		switch {
		case s.n > s.limits.MaxArchiveBytes:
			s.err = fmt.Errorf("%.0w%w: the decompressed archive is larger than %d bytes (--max-archive-size)", errStop, ErrTooLarge, s.limits.MaxArchiveBytes)
		case s.n > expansionSlack+s.limits.MaxDeclaredExpansion*s.in.n:
			s.err = fmt.Errorf("%.0w%w: %d compressed bytes expanded to %d bytes (limit %d times the compressed size plus %d, declared blobs included): decompression bomb",
				errStop, ErrTooLarge, s.in.n, s.n, s.limits.MaxDeclaredExpansion, expansionSlack)
		case s.unvouch > expansionSlack+s.limits.MaxExpansion*s.in.n:
			s.err = fmt.Errorf("%.0w%w: %d compressed bytes expanded to %d bytes that no descriptor declares (limit %d times the compressed size plus %d): decompression bomb",
				errStop, ErrTooLarge, s.in.n, s.unvouch, s.limits.MaxExpansion, expansionSlack)
		}
		if s.err == nil && s.n >= s.nextCheck {
			s.nextCheck = s.n + freeCheckEvery
			if err := checkFree(s.tmp, max(s.entryEnd-s.n, 1<<20), "decompressing the archive"); err != nil {
				s.err = fmt.Errorf("%.0w%w", errStop, err)
			}
		}
		if s.err != nil {
			return 0, s.err
		}
		if _, werr := s.w.Write(p[:n]); werr != nil {
			s.err = fmt.Errorf("%.0w%w", errStop, werr)
			return 0, s.err
		}
	}
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// fail turns an error met while reading the stream into the archive's error.
func (s *expander) fail(err error, what string) error {
	if s.err != nil {
		err = s.err
	}
	if errors.Is(err, errStop) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: truncated: the archive ends early", ErrInvalidArchive, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidArchive, what, err)
}

// checkJSONDepth refuses JSON whose objects and arrays nest deeper than
// max, without decoding it (strings are skipped, escapes honoured).
func checkJSONDepth(b []byte, max int) error {
	depth := 0
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if in {
			switch c {
			case '\\':
				i++
			case '"':
				in = false
			}
			continue
		}
		switch c {
		case '"':
			in = true
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: JSON nested more than %d levels deep (at byte %d)", ErrTooLarge, max, i)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// checkJSON is checkJSONDepth for callers that name the document.
func (a *Archive) checkJSON(what string, b []byte) error {
	if err := checkJSONDepth(b, a.limits.MaxJSONDepth); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
