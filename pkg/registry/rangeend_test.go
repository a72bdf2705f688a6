package registry

import "testing"

func TestRangeEnd(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]int64{"": -1, "0-0": -1, "0-524287": 524287, "bytes=0-9": 9} {
		if got, err := rangeEnd(h); err != nil || got != want {
			t.Errorf("rangeEnd(%q) = %d, %v; want %d", h, got, err, want)
		}
	}
	for _, h := range []string{"5-9", "0-x", "0", "0--2"} {
		if _, err := rangeEnd(h); err == nil {
			t.Errorf("rangeEnd(%q) accepted", h)
		}
	}
}

// FuzzRanges parses arbitrary Range and Content-Range answers: no panic,
// and whatever is accepted is a sane position.
func FuzzRanges(f *testing.F) {
	for _, s := range []string{"0-524287", "0-0", "bytes=0-9", "bytes 10-99/100", "bytes 5-", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if n, err := rangeEnd(h); err == nil && n < -1 {
			t.Fatalf("rangeEnd(%q) = %d", h, n)
		}
		contentRangeStart(h) // must not panic
	})
}
