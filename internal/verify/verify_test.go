package verify

import (
	"bytes"
	_ "crypto/sha512" // registers sha512 with go-digest, as the binaries that accept it do
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// readers delivers content the ways a network or a file does: all at once,
// a byte at a time, half of each request, and with io.EOF on the last data.
var readers = map[string]func(io.Reader) io.Reader{
	"plain":    func(r io.Reader) io.Reader { return r },
	"one byte": iotest.OneByteReader,
	"half":     iotest.HalfReader,
	"data+EOF": iotest.DataErrReader,
}

func TestReader(t *testing.T) {
	t.Parallel()
	content := []byte(strings.Repeat("layer bytes ", 1000))
	good := digest.FromBytes(content)
	flipped := bytes.Clone(content)
	flipped[len(flipped)/2] ^= 1
	cases := []struct {
		name    string
		content []byte
		size    int64
		want    error // nil: the content verifies
	}{
		{"exact", content, int64(len(content)), nil},
		{"size unknown", content, -1, nil},
		{"one bit flipped", flipped, int64(len(flipped)), ErrDigestMismatch},
		{"one bit flipped, size unknown", flipped, -1, ErrDigestMismatch},
		{"truncated", content[:len(content)-1], int64(len(content)), ErrSizeMismatch},
		{"empty", nil, int64(len(content)), ErrSizeMismatch},
		{"one byte more", append(bytes.Clone(content), 'x'), int64(len(content)), ErrSizeMismatch},
		{"declared smaller", content, int64(len(content)) - 1, ErrSizeMismatch},
	}
	for _, c := range cases {
		for rname, wrap := range readers {
			t.Run(c.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				src := &countingReader{r: bytes.NewReader(c.content)}
				v, err := NewReader(wrap(src), good, c.size)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(v)
				if c.want == nil {
					if err != nil || !bytes.Equal(got, content) || v.N() != int64(len(content)) {
						t.Fatalf("read %d bytes, %v; want the content and no error", len(got), err)
					}
					return
				}
				if !errors.Is(err, c.want) || !errors.Is(err, errdefs.ErrVerification) {
					t.Fatalf("err %v, want %v (a verification failure)", err, c.want)
				}
				var ve *Error
				if !errors.As(err, &ve) || ve.Want != good || !strings.Contains(err.Error(), good.String()) {
					t.Fatalf("error %v does not name the expected digest %s", err, good)
				}
				// The failure is sticky: a caller that reads on gets it again.
				if n, again := v.Read(make([]byte, 8)); n != 0 || !errors.Is(again, c.want) {
					t.Fatalf("read after failure: %d, %v", n, again)
				}
				// Never more than one byte past the declared size is read.
				if c.size >= 0 && src.n > c.size+1 {
					t.Fatalf("read %d bytes from the source for a declared size of %d", src.n, c.size)
				}
			})
		}
	}
}

// A source that fails is reported as its own error, not as a mismatch.
func TestReaderPassesSourceErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	v, err := NewReader(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), digest.FromString("abcdef"), 6)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(v)
	if !errors.Is(err, boom) || errors.Is(err, errdefs.ErrVerification) {
		t.Fatalf("err %v, want the source's error only", err)
	}
}

func TestReaderRefusesBadDigests(t *testing.T) {
	t.Parallel()
	for _, d := range []digest.Digest{"", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + digest.Digest(strings.Repeat("G", 64)), digest.Digest("SHA256:" + digest.FromString("").Encoded())} {
		if _, err := NewReader(strings.NewReader(""), d, 0); err == nil {
			t.Errorf("NewReader accepted digest %q", d)
		}
		if err := Bytes(nil, d, 0); err == nil {
			t.Errorf("Bytes accepted digest %q", d)
		}
	}
}

func TestBytes(t *testing.T) {
	t.Parallel()
	b := []byte("bundle.json")
	d := digest.FromBytes(b)
	if err := Bytes(b, d, int64(len(b))); err != nil {
		t.Fatal(err)
	}
	if err := Bytes(b, d, -1); err != nil {
		t.Fatal(err)
	}
	if err := Bytes(b, d, int64(len(b))+1); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("wrong size: %v", err)
	}
	if err := Bytes([]byte("bundle.jsoN"), d, int64(len(b))); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong content: %v", err)
	}
	if err := Bytes(b, digest.SHA512.FromBytes(b), -1); err != nil {
		t.Fatalf("sha512: %v", err)
	}
}

// Whatever the content, the size and the digest, the reader yields the
// content and io.EOF exactly when both match, and never more than size+1
// bytes are taken from the source.
func FuzzReader(f *testing.F) {
	f.Add([]byte("abc"), []byte("abc"), int64(3))
	f.Add([]byte("abc"), []byte("abd"), int64(3))
	f.Add([]byte("abc"), []byte("abc"), int64(-1))
	f.Add([]byte(""), []byte(""), int64(0))
	f.Add([]byte("abcd"), []byte("abc"), int64(3))
	f.Fuzz(func(t *testing.T, content, expected []byte, size int64) {
		if size < -1 {
			size = -1
		}
		want := digest.FromBytes(expected)
		src := &countingReader{r: bytes.NewReader(content)}
		v, err := NewReader(src, want, size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(v)
		ok := bytes.Equal(content, expected) && (size < 0 || size == int64(len(content)))
		if ok != (err == nil) {
			t.Fatalf("content %q, expected %q, size %d: err %v", content, expected, size, err)
		}
		if ok && !bytes.Equal(got, content) {
			t.Fatalf("read %q, want %q", got, content)
		}
		if !ok && !errors.Is(err, errdefs.ErrVerification) {
			t.Fatalf("failure %v is not a verification failure", err)
		}
		if size >= 0 && src.n > size+1 {
			t.Fatalf("took %d bytes from the source for size %d", src.n, size)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestReaderHoldsBackTheLastChunk: a consumer that forwards bytes as they
// come, reading exactly the declared length (an HTTP body with a
// Content-Length), never gets all of content that fails: the chunk that
// would complete it is withheld until the end and the digest are confirmed.
func TestReaderHoldsBackTheLastChunk(t *testing.T) {
	good := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	size := int64(len(good))
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1
	for name, src := range map[string][]byte{
		"longer":   append(bytes.Clone(good), 'x'),
		"tampered": tampered,
	} {
		for rname, wrap := range readers {
			r, err := NewReader(wrap(bytes.NewReader(src)), digest.FromBytes(good), size)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			n, err := io.Copy(&got, io.LimitReader(r, size))
			if err == nil || n >= size {
				t.Errorf("%s (%s reader): forwarded %d of %d bytes, err %v; want the last chunk withheld and an error", name, rname, n, size, err)
			}
		}
	}
	r, _ := NewReader(bytes.NewReader(good), digest.FromBytes(good), size)
	if n, err := io.Copy(io.Discard, io.LimitReader(r, size)); err != nil || n != size {
		t.Errorf("good content: %d bytes, %v", n, err)
	}
}
