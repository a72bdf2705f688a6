package registry

import (
	"errors"
	"strings"
	"testing"
)

// ParseHost takes operator input (--plain-http, --insecure, --username
// HOST=USER). Whatever it accepts is a bare host, lower-cased, that parses
// again to itself and that a host set built from it matches; whatever it
// refuses is an ErrHostSyntax naming the input.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"registry.local", "REG.example:5000", "127.0.0.1:443", "[::1]:5000", "[fe80::1]",
		"::1", "https://reg/x", "user@reg", "reg:0", "reg:65536", "reg:", ":5000", "[]:1", "a_b.c-d", "reg/x", "réseau"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHost(s)
		if err != nil {
			if !errors.Is(err, ErrHostSyntax) {
				t.Fatalf("ParseHost(%q): %v is not ErrHostSyntax", s, err)
			}
			return
		}
		if h != strings.ToLower(s) {
			t.Fatalf("ParseHost(%q) = %q, want the input lower-cased", s, h)
		}
		if strings.ContainsAny(h, "/@?#=, \t\r\n") || strings.Contains(h, "://") {
			t.Fatalf("ParseHost(%q) accepted %q", s, h)
		}
		again, err := ParseHost(h)
		if err != nil || again != h {
			t.Fatalf("ParseHost(%q) = %q, which parses to %q, %v", s, h, again, err)
		}
		set, err := newHostSet([]string{s})
		if err != nil {
			t.Fatalf("newHostSet(%q): %v", s, err)
		}
		if !set.match(h, "https") {
			t.Fatalf("host set of %q does not match %q", s, h)
		}
	})
}
