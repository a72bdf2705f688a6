package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
)

// An import into a TLS registry whose CA is not given fails once, before
// any blob moves, with the --ca-file hint: not once per blob. A TLS-less
// registry on 127.0.0.1 that is not named with --plain-http is never
// spoken to over plain HTTP (go-containerregistry's fallback is refused),
// credentials included; naming the host without a port works.
func TestRegistryAccessFailuresReportedOnce(t *testing.T) {
	bin := buildCLI(t)
	env := cliEnv(t)
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	archive := filepath.Join(t.TempDir(), "bundle.tar")
	if r, code := runCLI(t, bin, env, "", "--plain-http", src.Host, "-q", "export", "-o", archive, pb.Ref); code != 0 {
		t.Fatalf("export: exit %d: %s", code, r.stderr.String())
	}

	tlsDst := startRegistry(t, harness.WithTLS())
	r, code := runCLI(t, bin, env, "", "import", "--target", tlsDst.Host+"/airgap", archive)
	stderr := r.stderr.String()
	if code != 1 || strings.Count(stderr, "unknown authority") != 1 || !strings.Contains(stderr, "hint: ") || !strings.Contains(stderr, "--ca-file FILE") {
		t.Fatalf("missing CA: exit %d, stderr (%d bytes):\n%s", code, len(stderr), stderr)
	}
	if c := tlsDst.Counts(); c.BlobUploadStarts != 0 || c.BlobHeads != 0 {
		t.Fatalf("blobs were tried after the registry refused the client: %+v", c)
	}
	r, code = runCLI(t, bin, env, "", "-O", "json", "import", "--target", tlsDst.Host+"/airgap", archive)
	var doc struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exitCode"`
		Hint     string `json:"hint"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &doc); err != nil || code != 1 || doc.ExitCode != 1 || !strings.Contains(doc.Hint, "--ca-file") {
		t.Fatalf("JSON: exit %d %+v %v\n%s", code, doc, err, r.stdout.String())
	}

	var requests, authorized atomic.Int64
	plainDst := startRegistry(t, harness.WithBasicAuth("bob", "bob-pw-9876"), harness.WithRequestHook(func(r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") != "" {
			authorized.Add(1)
		}
	}))
	for _, extra := range [][]string{nil, {"--plain-http", "127.0.0.1:1"}} {
		args := append(append([]string{}, extra...), "--username", "bob", "--password-stdin", "import", "--target", plainDst.Host+"/airgap", archive)
		r, code = runCLI(t, bin, env, "bob-pw-9876", args...)
		if code != 1 || !strings.Contains(r.stderr.String(), "--plain-http "+plainDst.Host) {
			t.Fatalf("%v: exit %d: %s", args, code, r.stderr.String())
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d plain-HTTP requests reached a registry not named with --plain-http", n)
	}
	r, code = runCLI(t, bin, env, "bob-pw-9876", "--plain-http", "127.0.0.1", "--username", "bob", "--password-stdin", "-q", "import", "--target", plainDst.Host+"/airgap", "--mapping", filepath.Join(t.TempDir(), "m.json"), archive)
	if code != 0 || authorized.Load() == 0 {
		t.Fatalf("--plain-http 127.0.0.1 (every port): exit %d, %d authorized requests: %s", code, authorized.Load(), r.stderr.String())
	}
}

// --username HOST=USER goes to HOST only: an import into another registry
// sends that registry the docker config's credentials for it, never the
// login given for HOST; without HOST=, the login goes to the target.
func TestUsernameScopedToItsHost(t *testing.T) {
	bin := buildCLI(t)
	env := cliEnv(t)
	home := strings.TrimPrefix(env[1], "HOME=")
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	archive := filepath.Join(t.TempDir(), "bundle.tar")
	if r, code := runCLI(t, bin, env, "", "--plain-http", src.Host, "-q", "export", "-o", archive, pb.Ref); code != 0 {
		t.Fatalf("export: exit %d: %s", code, r.stderr.String())
	}
	bob := "Basic " + base64.StdEncoding.EncodeToString([]byte("bob:bob-pw-4321"))
	var bobSeen, carolSeen atomic.Int64
	hook := func(r *http.Request) {
		switch v := r.Header.Get("Authorization"); {
		case v == bob:
			bobSeen.Add(1)
		case v != "":
			carolSeen.Add(1)
		}
	}
	dst := startRegistry(t, harness.WithBasicAuth("carol", "carol-pw-8765"), harness.WithRequestHook(hook))
	other := startRegistry(t, harness.WithBasicAuth("bob", "bob-pw-4321"), harness.WithRequestHook(hook))
	if _, err := dst.WriteDockerConfig(filepath.Join(home, ".docker")); err != nil {
		t.Fatal(err)
	}
	r, code := runCLI(t, bin, env, "bob-pw-4321", "--plain-http", "127.0.0.1", "--username", other.Host+"=bob", "--password-stdin", "-q",
		"import", "--target", dst.Host+"/airgap", "--mapping", filepath.Join(t.TempDir(), "m.json"), archive)
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, r.stderr.String())
	}
	if bobSeen.Load() != 0 || carolSeen.Load() == 0 {
		t.Fatalf("bob's login reached %d requests, the docker config's %d", bobSeen.Load(), carolSeen.Load())
	}
	// Without HOST=, the login goes to the target (and is refused there).
	r, code = runCLI(t, bin, env, "bob-pw-4321", "--plain-http", "127.0.0.1", "--username", "bob", "--password-stdin",
		"import", "--target", dst.Host+"/other", "--mapping", filepath.Join(t.TempDir(), "m.json"), archive)
	if code != 1 || bobSeen.Load() == 0 || !strings.Contains(r.stderr.String(), "hint: ") || strings.Count(r.stderr.String(), "UNAUTHORIZED") > 1 {
		t.Fatalf("--username without HOST=: exit %d, bob seen %d: %s", code, bobSeen.Load(), r.stderr.String())
	}
}
