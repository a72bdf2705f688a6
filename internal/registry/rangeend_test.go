package registry

import "testing"

func TestRangeEnd(t *testing.T) {
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
