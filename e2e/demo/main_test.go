package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// The demo runs end to end (as `make demo` does) and leaves the archive,
// its checksum, the mapping and the signing key under demo-out/. (Its
// speed is not judged here: timings belong to `make bench`.)
func TestDemo(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := run(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bundle.tar", "bundle.tar.sha256", relocate.MappingFile, "cosign.pub"} {
		if st, err := os.Stat(filepath.Join(outDir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	m, err := relocate.ReadMapping(filepath.Join(outDir, relocate.MappingFile))
	if err != nil || len(m) != 4 {
		t.Fatalf("mapping %v: %v", m, err)
	}
}
