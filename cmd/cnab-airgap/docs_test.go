package main

import (
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const cliDocsDir = "../../docs/cli"

// generatedMarker is in every generated page, so stale pages are found.
const generatedMarker = "<!-- Generated from the command tree by `make docs`; do not edit. -->"

// TestCLIReference fails when docs/cli differs from what the command tree
// generates. `make docs` (UPDATE_DOCS=1) rewrites the pages instead.
func TestCLIReference(t *testing.T) {
	pages := cliReference(newApp(&env{stdout: io.Discard, stderr: io.Discard}))
	existing, _ := filepath.Glob(filepath.Join(cliDocsDir, "*.md"))
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.MkdirAll(cliDocsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range existing {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), generatedMarker) {
				if _, keep := pages[filepath.Base(f)]; !keep {
					os.Remove(f)
				}
			}
		}
		for name, content := range pages {
			if err := os.WriteFile(filepath.Join(cliDocsDir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var names []string
	for name := range pages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(cliDocsDir, name))
		if err != nil {
			t.Errorf("docs/cli/%s: %v (run `make docs`)", name, err)
			continue
		}
		if string(b) != pages[name] {
			t.Errorf("docs/cli/%s is out of date with the command tree (run `make docs`)", name)
		}
	}
	for _, f := range existing {
		b, _ := os.ReadFile(f)
		if _, ok := pages[filepath.Base(f)]; !ok && strings.Contains(string(b), generatedMarker) {
			t.Errorf("docs/cli/%s documents no command (run `make docs`)", filepath.Base(f))
		}
	}
}
