package progress_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The library never draws: no package under pkg/ may depend on the CLI
// framework or the progress bar library (only cmd/ does).
func TestLibraryDoesNotDependOnTheCLI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/urfave/cli", "github.com/schollz/progressbar"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("a package under pkg/ depends on %s", dep)
			}
		}
	}
}
