package relocate

import (
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// Inputs the fuzzers found: each once produced a name the registry refuses.
func TestNamingFuzzRegressions(t *testing.T) {
	t.Parallel()
	if _, err := ParseTarget("A"); !errors.Is(err, ErrNaming) {
		t.Fatalf(`ParseTarget("A") = %v, want a naming error`, err)
	}
	tg, err := ParseTarget("registry.local:5000/airgap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PlanNames(tg, NamingBundleRepo, ".", nil, Limits{}); !errors.Is(err, ErrNaming) {
		t.Fatalf(`bundle path "." accepted: %v`, err)
	}
	for _, in := range []string{"A00. 00", "a..b", "x_-_y", "My Bundle!!", "...", "a__b", "a---b"} {
		out := SanitizePath(in)
		if _, err := name.NewRepository("registry.local/" + out); err != nil || checkPath(out) != nil {
			t.Fatalf("SanitizePath(%q) = %q, not a valid path component (%v)", in, out, err)
		}
	}
}
