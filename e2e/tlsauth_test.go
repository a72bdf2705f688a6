package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

func randomSecret(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// authRecorder remembers every Authorization value a registry receives, so
// a test can look for leaked tokens.
type authRecorder struct {
	mu     sync.Mutex
	values map[string]bool
}

func (a *authRecorder) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Authorization"); v != "" {
			a.mu.Lock()
			if a.values == nil {
				a.values = map[string]bool{}
			}
			_, cred, _ := strings.Cut(v, " ")
			a.values[cred] = true
			a.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (a *authRecorder) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for v := range a.values {
		out = append(out, v)
	}
	return out
}

// transcript collects everything the CLI printed in a test (not the
// command lines: they hold what the test typed).
type transcript struct {
	runs []string
}

func (tr *transcript) add(r *cliRun) {
	tr.runs = append(tr.runs, r.stdout.String()+r.stderr.String())
}

// TLS with a CA generated at test time and --ca-file, htpasswd basic auth
// and distribution's token auth, credentials from --username and
// --password-stdin, from the docker config or from a credential helper. TLS is verified unless
// --insecure names the registry. Afterwards, no output of any run and no
// file written (archives, checksums, mappings, temporary files) holds a
// password, a basic-auth value or a bearer token, including the outputs
// of failed runs and --debug logs.
func TestTLSAuthAndNoCredentialLeaks(t *testing.T) {
	bin := buildCLI(t)
	srcPass, dstPass, basicPass, wrongPass := randomSecret("src-pw-"), randomSecret("dst-pw-"), randomSecret("basic-pw-"), randomSecret("wrong-pw-")
	rec := &authRecorder{}
	src := startRegistry(t, harness.WithTLS(), harness.WithBasicAuth("alice", srcPass), harness.WithMiddleware(rec.middleware))
	dst := startRegistry(t, harness.WithTLS(), harness.WithTokenAuth("bob", dstPass), harness.WithMiddleware(rec.middleware))
	dstBasic := startRegistry(t, harness.WithTLS(), harness.WithBasicAuth("carol", basicPass), harness.WithMiddleware(rec.middleware))
	pb := sample(t, src, harness.SampleOptions{})

	work := t.TempDir()
	env := cliEnv(t)
	home := strings.TrimPrefix(env[1], "HOME=")
	tr := &transcript{}
	run := func(stdin string, want int, args ...string) *cliRun {
		t.Helper()
		r, code := runCLI(t, bin, env, stdin, args...)
		tr.add(r)
		if (want == 0) != (code == 0) {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, r.stdout.String(), r.stderr.String())
		}
		return r
	}
	archive := filepath.Join(work, "bundle.tar")

	// TLS is verified by default: without the CA the export fails and
	// names the certificate problem; --insecure for another host does not
	// help.
	r := run(srcPass, 1, "--username", "alice", "--password-stdin", "export", "-o", archive, pb.Ref)
	if !strings.Contains(r.stderr.String(), "certificate") {
		t.Fatalf("the TLS failure is not explained: %s", r.stderr.String())
	}
	run(srcPass, 1, "--insecure", dst.Host, "--username", "alice", "--password-stdin", "export", "-o", archive, pb.Ref)
	if _, err := os.Stat(archive); err == nil {
		t.Fatal("an archive was written by a failed export")
	}
	// A wrong password is refused with the registry's answer.
	r = run(wrongPass, 1, "--ca-file", src.CAFile, "--username", "alice", "--password-stdin", "--debug", "export", "-o", archive, pb.Ref)
	if !strings.Contains(r.stderr.String(), "401") && !strings.Contains(strings.ToLower(r.stderr.String()), "unauthorized") {
		t.Fatalf("the authentication failure is not explained: %s", r.stderr.String())
	}
	// --insecure for the source host itself works (verification skipped
	// for that registry only).
	insecureOut := filepath.Join(work, "insecure.tar")
	run(srcPass, 0, "--insecure", src.Host, "--username", "alice", "--password-stdin", "--quiet", "export", "-o", insecureOut, pb.Ref)
	// The export with the CA, basic auth from --password-stdin, and --debug.
	run(srcPass, 0, "--ca-file", src.CAFile, "--username", "alice", "--password-stdin", "--debug", "export", "-o", archive, pb.Ref)
	a, _ := os.ReadFile(archive)
	b, _ := os.ReadFile(insecureOut)
	if !bytes.Equal(a, b) {
		t.Fatal("the --insecure export differs from the verified one")
	}

	// Token auth: import with --password-stdin, then audit the relocation.
	mapping := filepath.Join(work, "relocation-mapping.json")
	tokensBefore := dst.Counts().TokensIssued
	run(wrongPass, 1, "--ca-file", dst.CAFile, "--username", "bob", "--password-stdin", "-O", "json", "import", "--target", dst.Host+"/airgap", "--mapping", mapping, archive)
	run(dstPass, 1, "--username", "bob", "--password-stdin", "import", "--target", dst.Host+"/airgap", "--mapping", mapping, archive)
	if _, err := os.Stat(mapping); err == nil {
		t.Fatal("a failed import wrote a mapping")
	}
	run(dstPass, 0, "--ca-file", dst.CAFile, "--username", "bob", "--password-stdin", "--debug", "import", "--target", dst.Host+"/airgap", "--mapping", mapping, archive)
	if dst.Counts().TokensIssued <= tokensBefore {
		t.Fatal("no token was issued: the token flow was not exercised")
	}
	run(dstPass, 0, "--ca-file", dst.CAFile, "--username", "bob", "--password-stdin", "verify", "--target", dst.Host+"/airgap", "--mapping", mapping, archive)
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	assertTargetHoldsArchive(t, dst, "airgap/bundles/sample-app", archive, m)

	// Basic auth from the docker config (no flags), with --ca-file.
	if _, err := dstBasic.WriteDockerConfig(filepath.Join(home, ".docker")); err != nil {
		t.Fatal(err)
	}
	basicMapping := filepath.Join(work, "basic-mapping.json")
	run("", 0, "--ca-file", dstBasic.CAFile, "--debug", "import", "--target", dstBasic.Host+"/mirror", "--mapping", basicMapping, archive)
	bm, err := relocate.ReadMapping(basicMapping)
	if err != nil {
		t.Fatal(err)
	}
	assertTargetHoldsArchive(t, dstBasic, "mirror/bundles/sample-app", archive, bm)
	// Token auth through a docker credential helper (credHelpers in the
	// docker config, a helper program on PATH), no flags.
	helperDir := filepath.Join(home, "helper")
	os.MkdirAll(helperDir, 0o700)
	helper := "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"bob\",\"Secret\":\"" + dstPass + "\"}' \"$server\"\n"
	if err := os.WriteFile(filepath.Join(helperDir, "docker-credential-cnabtest"), []byte(helper), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{dst.Host: "cnabtest"}})
	os.WriteFile(filepath.Join(home, ".docker", "config.json"), cfg, 0o600)
	helperEnv := append([]string{"PATH=" + helperDir + ":" + os.Getenv("PATH")}, env[1:]...)
	tokensBefore = dst.Counts().TokensIssued
	hr, code := runCLI(t, bin, helperEnv, "", "--ca-file", dst.CAFile, "--debug", "import", "--target", dst.Host+"/helper", "--mapping", filepath.Join(work, "helper-mapping.json"), archive)
	tr.add(hr)
	if code != 0 {
		t.Fatalf("import with a credential helper: exit %d\n%s", code, hr.stderr.String())
	}
	if dst.Counts().TokensIssued <= tokensBefore {
		t.Fatal("no token was issued to the credential helper's user")
	}
	if _, err := dstBasic.WriteDockerConfig(filepath.Join(home, ".docker")); err != nil {
		t.Fatal(err)
	}

	// Credentials typed into a target are never echoed.
	run("", 2, "--ca-file", dstBasic.CAFile, "import", "--target", "carol:"+basicPass+"@"+dstBasic.Host+"/mirror", archive)
	run("", 1, "--ca-file", dstBasic.CAFile, "import", "--target", "https://carol:"+basicPass+"@"+dstBasic.Host+"/mirror", archive)

	// Nothing printed or written holds a credential.
	var needles []string
	for _, c := range [][2]string{{"alice", srcPass}, {"bob", dstPass}, {"carol", basicPass}, {"alice", wrongPass}, {"bob", wrongPass}} {
		needles = append(needles, c[1], base64.StdEncoding.EncodeToString([]byte(c[0]+":"+c[1])))
	}
	tokens := rec.list()
	if len(tokens) < 3 {
		t.Fatalf("only %d credentials seen by the registries", len(tokens))
	}
	needles = append(needles, tokens...)
	for i, out := range tr.runs {
		for _, n := range needles {
			if strings.Contains(out, n) {
				t.Errorf("run %d printed a credential (%.12s...):\n%s", i, n, out)
			}
		}
	}
	files := 0
	for _, root := range []string{work, home} {
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || p == filepath.Join(home, ".docker", "config.json") || strings.HasPrefix(p, helperDir) {
				return nil // the docker config and the helper are the credential stores themselves
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			files++
			for _, n := range needles {
				if bytes.Contains(raw, []byte(n)) {
					t.Errorf("%s holds a credential (%.12s...)", p, n)
				}
			}
			return nil
		})
	}
	if files < 5 {
		t.Fatalf("only %d files were checked", files)
	}
	t.Logf("%d runs and %d files checked for %d credentials", len(tr.runs), files, len(needles))
}
