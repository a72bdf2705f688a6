package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// The demo runs end to end (as `make demo` does) within its time budget
// and leaves the archive, its checksum and the mapping under demo-out/.
func TestDemo(t *testing.T) {
	t.Chdir(t.TempDir())
	start := time.Now()
	if err := run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the demo took %s, budget 30s", d)
	}
	for _, f := range []string{"bundle.tar", "bundle.tar.sha256", relocate.MappingFile} {
		if st, err := os.Stat(filepath.Join(outDir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	m, err := relocate.ReadMapping(filepath.Join(outDir, relocate.MappingFile))
	if err != nil || len(m) != 4 {
		t.Fatalf("mapping %v: %v", m, err)
	}
}
