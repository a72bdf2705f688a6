package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/retry"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// sentinelExit is the exit code an error wrapping a library sentinel must
// end in.
type sentinelExit struct {
	name string // package.Name, as TestSentinelExitCodes finds it in the source
	err  error
	code int
}

// sentinelExits lists every exported Err* sentinel of pkg/ and internal/
// with the exit code it must end in: 3 for every refusal of content
// (integrity, safety limits, signatures, relocation), 2 for a malformed
// flag value, 1 for the failures of registries, servers and files. The
// CLI does not read this table: it maps the root classes of pkg/errdefs
// (exitcodes.go); the table is what that mapping must produce.
var sentinelExits = []sentinelExit{
	// pkg/layout: the archive reader's refusals of hostile or broken input.
	{"layout.ErrInvalidDigest", layout.ErrInvalidDigest, exitVerification},
	{"layout.ErrInvalidManifest", layout.ErrInvalidManifest, exitVerification},
	{"layout.ErrUnsafeEntry", layout.ErrUnsafeEntry, exitVerification},
	{"layout.ErrInvalidArchive", layout.ErrInvalidArchive, exitVerification},
	{"layout.ErrBlobNotFound", layout.ErrBlobNotFound, exitVerification},
	{"layout.ErrTooLarge", layout.ErrTooLarge, exitVerification},
	{"layout.ErrParts", layout.ErrParts, exitVerification},
	{"layout.ErrIncomplete", layout.ErrIncomplete, exitFailure}, // the writer's own failure
	{"layout.ErrInvalidSize", layout.ErrInvalidSize, exitUsage}, // a size flag's value
	// pkg/content: the stores and the graph walk.
	{"content.ErrNotFound", content.ErrNotFound, exitFailure},
	{"content.ErrUnsupported", content.ErrUnsupported, exitUsage},
	{"content.ErrTooLarge", content.ErrTooLarge, exitVerification},
	{"content.ErrTooDeep", content.ErrTooDeep, exitVerification},
	{"content.ErrInvalidManifest", content.ErrInvalidManifest, exitVerification},
	{"content.ErrSkip", content.ErrSkip, exitUsage}, // a signal from PreVisit to Walk, never returned by it
	// pkg/archive and pkg/importer
	{"archive.ErrInvalidArchive", archive.ErrInvalidArchive, exitVerification},
	{"archive.ErrBundleMismatch", archive.ErrBundleMismatch, exitVerification},
	{"importer.ErrVerification", importer.ErrVerification, exitVerification},
	{"importer.ErrDeltaBaseMissing", importer.ErrDeltaBaseMissing, exitVerification}, // the archive is incomplete for this target
	{"importer.ErrSparseRefused", importer.ErrSparseRefused, exitFailure},            // the registry's refusal
	// pkg/export
	{"export.ErrDigestMismatch", export.ErrDigestMismatch, exitVerification},
	{"export.ErrMissingDigest", export.ErrMissingDigest, exitVerification}, // an image that cannot be pinned
	{"export.ErrNotBundle", export.ErrNotBundle, exitFailure},
	{"export.ErrInventory", export.ErrInventory, exitFailure},
	// pkg/relocate
	{"relocate.ErrDependency", relocate.ErrDependency, exitVerification}, // a dependency cycle, or one without a bundle to carry
	{"relocate.ErrInvalidBundle", relocate.ErrInvalidBundle, exitVerification},
	{"relocate.ErrInvalidMapping", relocate.ErrInvalidMapping, exitVerification},
	{"relocate.ErrNaming", relocate.ErrNaming, exitVerification}, // names refused as unsafe or over a limit
	{"relocate.ErrRelocation", relocate.ErrRelocation, exitVerification},
	// pkg/sigbundle: every verification failure wraps ErrVerification.
	{"sigbundle.ErrVerification", sigbundle.ErrVerification, exitVerification},
	{"sigbundle.ErrBinding", sigbundle.ErrBinding, exitVerification},
	{"sigbundle.ErrSignature", sigbundle.ErrSignature, exitVerification},
	{"sigbundle.ErrTrustData", sigbundle.ErrTrustData, exitVerification},
	{"sigbundle.ErrTrustAnchor", sigbundle.ErrTrustAnchor, exitVerification},
	{"sigbundle.ErrTargetMismatch", sigbundle.ErrTargetMismatch, exitVerification},
	{"sigbundle.ErrExpired", sigbundle.ErrExpired, exitVerification},
	{"sigbundle.ErrInToto", sigbundle.ErrInToto, exitVerification},
	{"sigbundle.ErrInspections", sigbundle.ErrInspections, exitVerification},
	{"sigbundle.ErrUnsigned", sigbundle.ErrUnsigned, exitVerification},
	{"sigbundle.ErrNameMismatch", sigbundle.ErrNameMismatch, exitVerification},
	{"sigbundle.ErrRollback", sigbundle.ErrRollback, exitVerification},
	{"sigbundle.ErrPolicy", sigbundle.ErrPolicy, exitVerification},
	{"sigbundle.ErrTrustStateFile", sigbundle.ErrTrustStateFile, exitFailure}, // the operator's file cannot be read or written
	{"sigbundle.ErrNotFound", sigbundle.ErrNotFound, exitFailure},
	{"sigbundle.ErrNotaryAuth", sigbundle.ErrNotaryAuth, exitFailure},
	// pkg/serve
	{"serve.ErrVerification", serve.ErrVerification, exitVerification},
	{"serve.ErrListen", serve.ErrListen, exitFailure},
	// internal/verify
	{"verify.ErrDigestMismatch", verify.ErrDigestMismatch, exitVerification},
	{"verify.ErrSizeMismatch", verify.ErrSizeMismatch, exitVerification},
	// pkg/registry
	{"registry.ErrHostSyntax", registry.ErrHostSyntax, exitUsage},
	{"registry.ErrPlainHTTP", registry.ErrPlainHTTP, exitFailure},
	{"registry.ErrInsecureRealm", registry.ErrInsecureRealm, exitFailure},
	// pkg/retry: a signal between layers, reported as a failure if it escapes.
	{"retry.ErrAgain", retry.ErrAgain, exitFailure},
	// pkg/errdefs: the roots and the shared integrity sentinels.
	{"errdefs.ErrVerification", errdefs.ErrVerification, exitVerification},
	{"errdefs.ErrInvalidInput", errdefs.ErrInvalidInput, exitVerification},
	{"errdefs.ErrNotFound", errdefs.ErrNotFound, exitFailure},
	{"errdefs.ErrUsage", errdefs.ErrUsage, exitUsage},
	{"errdefs.ErrUnavailable", errdefs.ErrUnavailable, exitFailure},
	{"errdefs.ErrDigestMismatch", errdefs.ErrDigestMismatch, exitVerification},
	{"errdefs.ErrSizeMismatch", errdefs.ErrSizeMismatch, exitVerification},
}

// Every exported Err* sentinel of pkg/ and internal/ belongs to a root
// class of pkg/errdefs, is in sentinelExits, and an error wrapping it
// exits with the code listed there. The packages are found by walking the
// source, so a new package or sentinel fails this test until it is given
// a class and an exit code.
func TestSentinelExitCodes(t *testing.T) {
	var found []string
	for _, root := range []string{"../../pkg", "../../internal"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			if file.Name.Name == "main" {
				return nil
			}
			for _, d := range file.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.VAR {
					continue
				}
				for _, s := range gd.Specs {
					for _, n := range s.(*ast.ValueSpec).Names {
						if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
							found = append(found, file.Name.Name+"."+n.Name)
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) < 40 {
		t.Fatalf("only %d sentinels found in the source: %v", len(found), found)
	}
	listed := map[string]bool{}
	for _, s := range sentinelExits {
		listed[s.name] = true
		if !slices.Contains(found, s.name) {
			t.Errorf("sentinelExits lists %s, which the source does not declare", s.name)
		}
		if errdefs.Class(s.err) == nil {
			t.Errorf("%s belongs to no root class of pkg/errdefs: declare it with errdefs.New(msg, class)", s.name)
		}
		// Wrapped as the library wraps them, twice over.
		err := fmt.Errorf("import of bundle x into y: %w", fmt.Errorf("blob sha256:00: %w", s.err))
		if got := exitCode(err); got != s.code {
			t.Errorf("%s exits %d, the table says %d", s.name, got, s.code)
		}
	}
	for _, f := range found {
		if !listed[f] {
			t.Errorf("%s has no exit code: add it to sentinelExits (exitcodes_test.go)", f)
		}
	}
	// The refusals the documentation promises exit 3 for.
	for _, name := range []string{"layout.ErrTooLarge", "layout.ErrInvalidDigest", "layout.ErrUnsafeEntry", "verify.ErrDigestMismatch", "sigbundle.ErrSignature"} {
		for _, s := range sentinelExits {
			if s.name == name && s.code != exitVerification {
				t.Errorf("%s exits %d, want 3", name, s.code)
			}
		}
	}
	// A usage error of the CLI itself is a usage error of the taxonomy.
	if got := exitCode(usagef("x")); got != exitUsage {
		t.Errorf("usagef exits %d, want 2", got)
	}
}

// Usage errors exit 2 before anything is opened or contacted: malformed
// host flags, a host flag followed by a command, an unknown command, a
// target with a tag or digest, --jobs below 1. The archive given is not
// one: had it been read, the exit code would be 3.
func TestUsageErrorsBeforeWork(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk.tar")
	if err := os.WriteFile(junk, []byte("not a tar archive, not an OCI layout"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "verify", junk); r.code != exitVerification {
		t.Fatalf("the junk archive is not refused as content (exit %d): %s", r.code, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"frobnicate", junk}, `unknown command "frobnicate"`},
		{[]string{"--plain-http", "export", "-o", junk, "127.0.0.1:5000/app:1"}, `--plain-http takes a registry HOST[:PORT], not the command "export"`},
		{[]string{"--insecure", "import", "--target", "127.0.0.1:5000", junk}, `--insecure takes a registry HOST[:PORT], not the command "import"`},
		{[]string{"--plain-http", "http://127.0.0.1:5000", "import", "--target", "127.0.0.1:5000", junk}, `--plain-http takes a registry HOST[:PORT]`},
		{[]string{"import", "--target", "127.0.0.1:5000", junk, "--plain-http", "https://127.0.0.1:5000/"}, `is a URL`},
		{[]string{"--insecure", "127.0.0.1:99999", "verify", junk}, `port "99999"`},
		{[]string{"--plain-http", "alice@127.0.0.1", "verify", junk}, `--plain-http takes a registry HOST[:PORT]`},
		{[]string{"import", "--target", "127.0.0.1:5000/app:1.0", junk}, `--target takes a REGISTRY[/PREFIX] (no tag, no digest)`},
		{[]string{"import", "--target", "127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64), junk}, `--target takes a REGISTRY[/PREFIX]`},
		{[]string{"verify", junk, "--target", "127.0.0.1:5000/app:1.0", "--mapping", junk}, `--target takes a REGISTRY[/PREFIX]`},
		{[]string{"-j", "0", "import", "--target", "127.0.0.1:5000", junk}, "--jobs must be at least 1, not 0"},
		{[]string{"import", "--jobs", "-3", "--target", "127.0.0.1:5000", junk}, "--jobs must be at least 1, not -3"},
		{[]string{"verify", junk, "-j", "0"}, "--jobs must be at least 1"},
		{[]string{"import", "--target", "127.0.0.1:5000", "--no-signatures", "--cosign-key", junk, junk}, "--no-signatures cannot be combined with --cosign-key"},
		{[]string{"verify", junk, "--no-signatures", "--notary-pin", "r.example/app=abc"}, "--no-signatures cannot be combined with --notary-pin"},
		{[]string{"verify", junk, "--no-signatures", "--trust-state", junk}, "--no-signatures cannot be combined with --trust-state"},
		{[]string{"--username", "http://127.0.0.1=alice", "--password-stdin", "import", "--target", "127.0.0.1:5000", junk}, "--username takes [HOST=]USER"},
	} {
		start := time.Now()
		r := runCLI(t, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.msg)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%v took %s: the refusal is not immediate", tc.args, d)
		}
	}
	// --output json: one document with the exit code.
	r := runCLI(t, "-O", "json", "frobnicate")
	var e errorJSON
	r.code = 0
	r.decode(t, "error", &e)
	if e.ExitCode != exitUsage || !strings.Contains(e.Error, "unknown command") {
		t.Fatalf("JSON error %+v", e)
	}
	// Hosts given well are accepted: HOST, HOST:PORT, [IPv6]:PORT.
	for _, h := range []string{"127.0.0.1", "registry.example.com:5000", "[::1]:5000", "localhost"} {
		if r := runCLI(t, "--plain-http", h, "--insecure", h, "version"); r.code != exitOK {
			t.Errorf("--plain-http %s: exit %d: %s", h, r.code, r.stderr)
		}
	}
}

// --username without HOST= needs a registry to apply to: export from a
// bundle file names none.
func TestUsernameNeedsAHost(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(f, []byte(`{"schemaVersion":"v1.2.0","name":"x","version":"1.0.0","invocationImages":[]}`), 0o644)
	var out, errb strings.Builder
	code := run(t.Context(), []string{"cnab-airgap", "--username", "alice", "--password-stdin", "export", "--bundle-file", f, "-o", filepath.Join(t.TempDir(), "a.tar")}, strings.NewReader("pw-1234\n"), &out, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "--username HOST=alice") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
