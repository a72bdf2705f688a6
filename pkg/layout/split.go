package layout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/internal/fsutil"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// A split archive is a set of volumes, NAME.000, NAME.001, ..., whose
// concatenation (`cat NAME.[0-9]* > NAME`) is the unsplit archive byte for
// byte, described by NAME.parts.json (see Parts). The volumes are cut at
// fixed byte offsets, not at entry boundaries, so any archive (compressed
// or not) can be split, and removable media of a fixed size filled.

// PartsSuffix is appended to an archive's name to name its parts file.
const PartsSuffix = ".parts.json"

// MediaTypeParts identifies a parts file by content.
const MediaTypeParts = "application/vnd.cnab-airgap.parts.v1+json"

// MinPartSize is the smallest part size Split accepts.
const MinPartSize = 1 << 20

// maxParts bounds how many parts a parts file may list.
const maxParts = 100000

// maxPartsFileBytes caps a parts file before it is decoded.
const maxPartsFileBytes = 16 << 20

// ErrParts is returned for a split archive whose parts are missing, out of
// order, corrupt or badly described. It is also an ErrInvalidArchive.
var ErrParts = errdefs.New("split archive", ErrInvalidArchive)

// Parts is the content of NAME.parts.json.
type Parts struct {
	// MediaType is MediaTypeParts.
	MediaType string `json:"mediaType"`
	// Archive is the file name of the unsplit archive (no directory).
	Archive string `json:"archive"`
	// Size and Digest describe the unsplit archive.
	Size   int64         `json:"size"`
	Digest digest.Digest `json:"digest"`
	// PartSize is the size of every part but the last.
	PartSize int64 `json:"partSize"`
	// Parts lists the volumes in order.
	Parts []Part `json:"parts"`
}

// Part is one volume of a split archive.
type Part struct {
	// Name is the part's file name, in the directory of the parts file.
	Name   string        `json:"name"`
	Size   int64         `json:"size"`
	Digest digest.Digest `json:"digest"`
}

// PartName returns the name of part i of an archive split into n parts:
// NAME.000, NAME.001, ... (more digits when n exceeds 1000).
func PartName(archive string, i, n int) string {
	width := max(3, len(strconv.Itoa(n-1)))
	return fmt.Sprintf("%s.%0*d", archive, width, i)
}

// Split cuts the archive at path into volumes of partSize bytes (the last
// may be smaller) named by PartName, and writes path+PartsSuffix describing
// them; archiveDigest is the archive's sha256 digest, recorded there. The
// archive itself becomes the first part: the volumes are cut from its end,
// each written (and hashed) once, synced, and then cut off the archive, so
// the disk holds at most one part more than the archive at any time. The
// parts file is written last, atomically: a parts file names a complete set.
func Split(ctx context.Context, path string, partSize int64, archiveDigest digest.Digest) (*Parts, error) {
	if partSize < MinPartSize {
		return nil, fmt.Errorf("%w: part size %d is smaller than %d bytes", ErrParts, partSize, MinPartSize)
	}
	partsFile := path + PartsSuffix
	if err := os.Remove(partsFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	n := int(max(1, (size+partSize-1)/partSize))
	if n > maxParts {
		return nil, fmt.Errorf("%w: %d parts of %d bytes, at most %d allowed", ErrParts, n, partSize, maxParts)
	}
	base := filepath.Base(path)
	ps := &Parts{MediaType: MediaTypeParts, Archive: base, Size: size, Digest: archiveDigest, PartSize: partSize, Parts: make([]Part, n)}
	for i := n - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		off := int64(i) * partSize
		end := min(size, off+partSize)
		name := PartName(path, i, n)
		h := sha256.New()
		if i == 0 {
			// The rest of the archive is the first part: hash it, rename it.
			if _, err := copyCtx(ctx, h, io.NewSectionReader(f, 0, end)); err != nil {
				return nil, fmt.Errorf("hashing %s: %w", name, err)
			}
			if err := f.Sync(); err != nil {
				return nil, err
			}
			if err := os.Rename(path, name); err != nil {
				return nil, err
			}
		} else if err := writePart(ctx, f, off, end, name, h); err != nil {
			return nil, err
		}
		ps.Parts[i] = Part{Name: filepath.Base(name), Size: end - off, Digest: digest.NewDigest(digest.SHA256, h)}
		if i > 0 {
			if err := f.Truncate(off); err != nil {
				return nil, err
			}
		}
	}
	removeStaleParts(path, n)
	raw, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(partsFile, append(raw, '\n'), 0o644); err != nil {
		return nil, err
	}
	return ps, nil
}

// writePart copies [off, end) of f into a new file name, through h.
func writePart(ctx context.Context, f *os.File, off, end int64, name string, h io.Writer) error {
	return fsutil.WriteAtomic(name, name+PartialSuffix, 0o644, func(out io.Writer) error {
		if _, err := copyCtx(ctx, io.MultiWriter(out, h), io.NewSectionReader(f, off, end-off)); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return nil
	})
}

// removeStaleParts removes volumes numbered n and above left by an earlier
// split of an archive with the same name into more parts.
func removeStaleParts(path string, n int) {
	matches, _ := filepath.Glob(path + ".[0-9][0-9][0-9]*")
	for _, m := range matches {
		if i, ok := partIndex(path, m); ok && i >= n {
			os.Remove(m)
		}
	}
}

var partSuffixRE = regexp.MustCompile(`^\.([0-9]{3,})$`)

// partIndex returns i if name is archive followed by ".NNN".
func partIndex(archive, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, archive)
	if !ok {
		return 0, false
	}
	m := partSuffixRE.FindStringSubmatch(rest)
	if m == nil {
		return 0, false
	}
	i, err := strconv.Atoi(m[1])
	return i, err == nil
}

// ReadParts reads and checks a parts file: its media type, part names
// (plain file names, numbered in order), sizes and digests.
func ReadParts(path string) (*Parts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxPartsFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxPartsFileBytes {
		return nil, fmt.Errorf("%w: %s: %w: larger than %d bytes", ErrParts, path, ErrTooLarge, maxPartsFileBytes)
	}
	ps, err := parseParts(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrParts, path, err)
	}
	return ps, nil
}

// parseParts decodes and checks the content of a parts file.
func parseParts(raw []byte) (*Parts, error) {
	var ps Parts
	if err := DecodeJSON(raw, &ps); err != nil {
		return nil, err
	}
	if err := ps.check(); err != nil {
		return nil, err
	}
	return &ps, nil
}

func (ps *Parts) check() error {
	if ps.MediaType != MediaTypeParts {
		return fmt.Errorf("media type %q is not %s", ps.MediaType, MediaTypeParts)
	}
	if len(ps.Parts) == 0 || len(ps.Parts) > maxParts {
		return fmt.Errorf("%d parts (1 to %d allowed)", len(ps.Parts), maxParts)
	}
	if ps.Archive == "" || ps.Archive != filepath.Base(ps.Archive) || strings.ContainsAny(ps.Archive, `/\`) || ps.Archive == ".." {
		return fmt.Errorf("archive name %q is not a plain file name", ps.Archive)
	}
	if err := ValidateDigest(ps.Digest); err != nil || ps.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("archive digest %q is not a sha256 digest", ps.Digest)
	}
	var total int64
	for i, p := range ps.Parts {
		if want := filepath.Base(PartName(ps.Archive, i, len(ps.Parts))); p.Name != want {
			return fmt.Errorf("part %d is named %q, want %q", i, p.Name, want)
		}
		if err := ValidateDigest(p.Digest); err != nil || p.Digest.Algorithm() != digest.SHA256 {
			return fmt.Errorf("part %s: digest %q is not a sha256 digest", p.Name, p.Digest)
		}
		if p.Size <= 0 || (i < len(ps.Parts)-1 && p.Size != ps.PartSize) || p.Size > ps.PartSize {
			return fmt.Errorf("part %s: size %d does not fit part size %d", p.Name, p.Size, ps.PartSize)
		}
		total += p.Size
	}
	if total != ps.Size {
		return fmt.Errorf("parts add up to %d bytes, the archive is %d", total, ps.Size)
	}
	return nil
}

// PartsFileFor returns the parts file of a split archive given as its parts
// file, recognized by content, or as one of its volumes (NAME.NNN next to
// NAME.parts.json); "" if path is not part of a split archive.
func PartsFileFor(path string) (string, error) {
	if isPartsFile(path) {
		return path, nil
	}
	dir, base := filepath.Split(path)
	m := regexp.MustCompile(`^(.+)\.([0-9]{3,})$`).FindStringSubmatch(base)
	if m == nil {
		return "", nil
	}
	pf := filepath.Join(dir, m[1]+PartsSuffix)
	if _, err := os.Stat(pf); err != nil {
		if strings.Trim(m[2], "0") == "" {
			// A first volume without its parts file: say what is missing
			// rather than fail later on a truncated archive.
			return "", fmt.Errorf("%w: %s looks like the first part of a split archive but %s is missing", ErrParts, path, pf)
		}
		return "", nil
	}
	if strings.Trim(m[2], "0") != "" {
		return "", fmt.Errorf("%w: %s is not the first part: give %s or %s", ErrParts, path, filepath.Join(dir, m[1]+"."+strings.Repeat("0", len(m[2]))), pf)
	}
	return pf, nil
}

// isPartsFile reports whether path holds a parts document (by content).
func isPartsFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = bytes.TrimLeft(head[:n], " \t\r\n")
	return len(head) > 0 && head[0] == '{' && bytes.Contains(head, []byte(MediaTypeParts))
}

// JoinParts checks every volume of a split archive against its parts file
// (presence, size, sha256, order) while it copies them, in order, into an
// anonymous temporary file under tmpDir ("" for the default), and returns
// that file positioned at its start. The whole archive's digest is checked
// too. Nothing else is read before every part has been verified, so a
// missing, reordered or corrupt volume is reported before any use.
func JoinParts(ctx context.Context, partsFile, tmpDir string, maxBytes int64) (*os.File, *Parts, error) {
	ps, dir, err := checkParts(partsFile, maxBytes)
	if err != nil {
		return nil, nil, err
	}
	where := tmpDir
	if where == "" {
		where = os.TempDir()
	}
	if err := checkFree(where, ps.Size, "joining the parts of "+ps.Archive); err != nil {
		return nil, nil, err
	}
	out, err := anonymousFile(tmpDir)
	if err != nil {
		return nil, nil, err
	}
	whole := sha256.New()
	for i, p := range ps.Parts {
		h := sha256.New()
		if err := copyPart(ctx, filepath.Join(dir, p.Name), io.MultiWriter(out, h, whole)); err != nil {
			out.Close()
			return nil, nil, fmt.Errorf("%w %s: part %d (%s): %w", ErrParts, ps.Archive, i, p.Name, err)
		}
		if err := partDigest(ps, i, digest.NewDigest(digest.SHA256, h)); err != nil {
			out.Close()
			return nil, nil, err
		}
	}
	if err := wholeDigest(ps, digest.NewDigest(digest.SHA256, whole)); err != nil {
		out.Close()
		return nil, nil, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		out.Close()
		return nil, nil, err
	}
	return out, ps, nil
}

// maxInPlaceParts is how many volumes a split archive may have to be read
// in place, each kept open; one with more is joined into a temporary copy
// (JoinParts), which needs as much free space again.
var maxInPlaceParts = 512 // a variable for tests

// openParts checks every volume of a split archive as JoinParts does, then
// reads them in place, without a copy: each part is opened once, hashed
// through that handle, and the same handles serve every later read (blobs
// are verified again as they are read).
func openParts(ctx context.Context, partsFile, tmpDir string, maxBytes int64) (source, *Parts, error) {
	ps, dir, err := checkParts(partsFile, maxBytes)
	if err != nil {
		return nil, nil, err
	}
	if len(ps.Parts) > maxInPlaceParts {
		f, ps, err := JoinParts(ctx, partsFile, tmpDir, maxBytes)
		if err != nil {
			return nil, nil, err
		}
		return fileSource{f}, ps, nil
	}
	src := &partsSource{starts: make([]int64, 0, len(ps.Parts)+1)}
	fail := func(err error) (source, *Parts, error) {
		src.Close()
		return nil, nil, err
	}
	whole := sha256.New()
	var off int64
	for i, p := range ps.Parts {
		f, err := os.Open(filepath.Join(dir, p.Name))
		if err != nil {
			return fail(fmt.Errorf("%w %s: part %d (%s): %w", ErrParts, ps.Archive, i, p.Name, err))
		}
		src.parts = append(src.parts, f)
		src.starts = append(src.starts, off)
		h := sha256.New()
		n, err := copyCtx(ctx, io.MultiWriter(h, whole), io.NewSectionReader(f, 0, p.Size+1))
		if err == nil && n != p.Size {
			err = fmt.Errorf("%d bytes, the parts file says %d", n, p.Size)
		}
		if err != nil {
			return fail(fmt.Errorf("%w %s: part %d (%s): %w", ErrParts, ps.Archive, i, p.Name, err))
		}
		dropCache(f, 0, p.Size) // read again only where blobs are
		if err := partDigest(ps, i, digest.NewDigest(digest.SHA256, h)); err != nil {
			return fail(err)
		}
		off += p.Size
	}
	src.starts = append(src.starts, off)
	if err := wholeDigest(ps, digest.NewDigest(digest.SHA256, whole)); err != nil {
		return fail(err)
	}
	return src, ps, nil
}

// checkParts reads a parts file and checks that every part is there with
// its size before a byte is read. It returns the parts and their directory.
func checkParts(partsFile string, maxBytes int64) (*Parts, string, error) {
	ps, err := ReadParts(partsFile)
	if err != nil {
		return nil, "", err
	}
	if maxBytes > 0 && ps.Size > maxBytes {
		return nil, "", fmt.Errorf("%w: %s: %w: the archive is %d bytes, limit %d", ErrParts, partsFile, ErrTooLarge, ps.Size, maxBytes)
	}
	dir := filepath.Dir(partsFile)
	var errs []error
	for i, p := range ps.Parts {
		st, err := os.Stat(filepath.Join(dir, p.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("part %d (%s) is missing", i, p.Name))
		case err != nil:
			errs = append(errs, fmt.Errorf("part %d (%s): %w", i, p.Name, err))
		case st.Size() != p.Size:
			errs = append(errs, fmt.Errorf("part %d (%s) is %d bytes, the parts file says %d", i, p.Name, st.Size(), p.Size))
		}
	}
	if len(errs) > 0 {
		return nil, "", fmt.Errorf("%w %s: %w", ErrParts, ps.Archive, errors.Join(errs...))
	}
	return ps, dir, nil
}

// partDigest compares part i's digest with the parts file, naming a part
// that holds another part's content.
func partDigest(ps *Parts, i int, got digest.Digest) error {
	p := ps.Parts[i]
	if got == p.Digest {
		return nil
	}
	what := "is corrupt"
	for j, q := range ps.Parts {
		if j != i && q.Digest == got {
			what = fmt.Sprintf("holds the content of part %d (%s): the parts are out of order", j, q.Name)
		}
	}
	return fmt.Errorf("%w %s: part %d (%s) %s: sha256 %s, the parts file says %s", ErrParts, ps.Archive, i, p.Name, what, got, p.Digest)
}

func wholeDigest(ps *Parts, got digest.Digest) error {
	if got != ps.Digest {
		return fmt.Errorf("%w %s: the joined parts hash to %s, the parts file says %s", ErrParts, ps.Archive, got, ps.Digest)
	}
	return nil
}

func copyPart(ctx context.Context, path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = copyCtx(ctx, w, f)
	return err
}

// anonymousFile creates a temporary file and unlinks it at once: the space
// is returned when the file is closed, whatever happens to the process.
func anonymousFile(tmpDir string) (*os.File, error) {
	f, err := os.CreateTemp(tmpDir, "cnab-airgap-joined-*.tar")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// openArchiveFile opens what an archive is read from: path itself, or, for
// a split archive (its parts file or first part), its verified parts read
// in place (see openParts).
func (a *Archive) openArchiveFile(ctx context.Context, path string, o OpenOptions) (source, error) {
	pf, err := PartsFileFor(path)
	if err != nil {
		return nil, err
	}
	if pf == "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return fileSource{f}, nil
	}
	src, ps, err := openParts(ctx, pf, o.TempDir, a.limits.MaxArchiveBytes)
	if err != nil {
		return nil, err
	}
	a.Parts = ps
	return src, nil
}
