package layout

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// source is what an archive is read from: one file, or the volumes of a
// split archive read in place, in order.
type source interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
	// Size is the total length.
	Size() (int64, error)
	// dropCache tells the kernel that [off, off+n) will not be read again.
	dropCache(off, n int64)
}

// fileSource is an archive in one file.
type fileSource struct{ *os.File }

func (f fileSource) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f fileSource) dropCache(off, n int64) { dropCache(f.File, off, n) }

// partsSource reads the volumes of a split archive as one file, without a
// copy. Every part stays open from the moment it was verified.
type partsSource struct {
	parts []*os.File
	// starts[i] is the offset of part i; starts[len(parts)] the size.
	starts []int64
	pos    int64
}

var _ source = (*partsSource)(nil)

func (p *partsSource) Size() (int64, error) { return p.starts[len(p.parts)], nil }

// part returns the index of the part holding offset off (< size).
func (p *partsSource) part(off int64) int {
	return sort.Search(len(p.parts), func(i int) bool { return p.starts[i+1] > off }) // first part ending after off
}

// ReadAt reads across part boundaries.
func (p *partsSource) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	size := p.starts[len(p.parts)]
	n := 0
	for len(b) > 0 {
		if off >= size {
			return n, io.EOF
		}
		i := p.part(off)
		want := min(int64(len(b)), p.starts[i+1]-off)
		m, err := p.parts[i].ReadAt(b[:want], off-p.starts[i])
		n += m
		off += int64(m)
		b = b[m:]
		if err != nil && !(errors.Is(err, io.EOF) && int64(m) == want) {
			if errors.Is(err, io.EOF) {
				// A part shorter than it was when verified.
				return n, fmt.Errorf("%w: part %d (%s) shrank after it was verified", ErrParts, i, p.parts[i].Name())
			}
			return n, err
		}
	}
	return n, nil
}

func (p *partsSource) Read(b []byte) (int, error) {
	n, err := p.ReadAt(b, p.pos)
	p.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

func (p *partsSource) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += p.pos
	case io.SeekEnd:
		off += p.starts[len(p.parts)]
	default:
		return 0, errors.New("invalid whence")
	}
	if off < 0 {
		return 0, errors.New("negative position")
	}
	p.pos = off
	return off, nil
}

func (p *partsSource) dropCache(off, n int64) {
	end := off + n
	for off < end && off < p.starts[len(p.parts)] {
		i := p.part(off)
		m := min(end, p.starts[i+1]) - off
		dropCache(p.parts[i], off-p.starts[i], m)
		off += m
	}
}

func (p *partsSource) Close() error {
	var errs []error
	for _, f := range p.parts {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	p.parts = nil
	return errors.Join(errs...)
}
