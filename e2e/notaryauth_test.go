package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// transportTrusting returns a transport trusting the CAs in the PEM files.
func transportTrusting(t *testing.T, files ...string) http.RoundTripper {
	t.Helper()
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !pool.AppendCertsFromPEM(b) {
			t.Fatalf("%s: no certificates", f)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr
}

// A Notary server with token auth (Debian's notary-server trusting a
// token issuer started here, both over TLS with their own CAs): anonymous
// requests are challenged, the issuer's tokens are accepted, a publisher
// signs through sigbundle's authenticating transport, and the CLI export
// collects the trust data with credentials from --password-stdin or from
// the docker config (for the Notary host, or for the GUN's registry as
// Docker's trust client does). A wrong password and no credentials fail
// naming the server, leave no archive, and never print the password.
func TestNotaryTokenAuth(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const user = "signer"
	pass := randomSecret("notary-pw-")
	ti, err := sigfixtures.StartTokenIssuer(filepath.Join(dir, "tokens"), user, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ti.Close)
	ns, err := sigfixtures.StartNotaryServer(ctx, dir, true, sigfixtures.WithTokenAuth(ti))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	gun := src.Host + "/" + harness.DefaultSampleRepository
	both := transportTrusting(t, ns.CAFile, ti.CAFile)
	rootURL := ns.URL + "/v2/" + gun + "/_trust/tuf/root.json"

	status := func(auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, rootURL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := both.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	// The real server challenges anonymous requests with the issuer's realm.
	code, challenge := status("")
	if code != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer ") ||
		!strings.Contains(challenge, `realm="`+ti.Realm+`"`) || !strings.Contains(challenge, `service="`+ti.Service+`"`) {
		t.Fatalf("anonymous GET: %d %q, want 401 with a Bearer challenge naming %s", code, challenge, ti.Realm)
	}

	// Publish through sigbundle's authenticating transport (pull,push).
	creds := func(context.Context, string) (string, string, error) { return user, pass, nil }
	rt, err := sigbundle.NotaryTransport(ns.URL, gun, true, sigbundle.WithNotaryTransport(both), sigbundle.WithNotaryCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sigfixtures.NewPublisher(ns.URL, gun, filepath.Join(dir, "trust"), rt, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(harness.DefaultSampleTag, pb.BundleJSON, nil); err != nil {
		t.Fatal(err)
	}
	published := ti.Requests()
	if published == 0 || published > 8 {
		t.Fatalf("the publisher asked %d tokens (want a few: they are cached)", published)
	}
	// A token the issuer signs is accepted by the real server; the
	// published root is still refused anonymously.
	tok, err := ti.IssueFor(user, gun, "pull")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := status("Bearer " + tok); code != http.StatusOK {
		t.Fatalf("GET with an issued token: %d, want 200", code)
	}
	if code, _ := status(""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous GET of the published root: %d, want 401", code)
	}

	bin := buildCLI(t)
	work := t.TempDir()
	var outputs []string
	exportRun := func(name, stdin string, env []string, extra ...string) (int, string, string, string) {
		t.Helper()
		archive := filepath.Join(work, name+".tar")
		args := append(extra, "--plain-http", src.Host, "--ca-file", ns.CAFile, "--ca-file", ti.CAFile,
			"--output", "json", "export", "-o", archive, "--notary-server", ns.URL, pb.Ref)
		r, code := runCLI(t, bin, env, stdin, args...)
		outputs = append(outputs, r.stdout.String()+r.stderr.String())
		return code, r.stdout.String(), r.stderr.String(), archive
	}
	succeeds := func(name, stdin string, env []string, extra ...string) {
		t.Helper()
		before := ti.Requests()
		code, stdout, stderr, archive := exportRun(name, stdin, env, extra...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", name, code, stdout, stderr)
		}
		var er export.Result
		if err := json.Unmarshal([]byte(stdout), &er); err != nil {
			t.Fatalf("%s: export JSON: %v\n%s", name, err, stdout)
		}
		if er.Signatures == nil || er.Signatures.Notary == nil {
			t.Fatalf("%s: the export carries no Notary data: %s", name, stdout)
		}
		n := er.Signatures.Notary
		if n.GUN != gun || n.Target != harness.DefaultSampleTag || n.SHA256 != pb.BundleJSONDigest.Encoded() || n.Length != int64(len(pb.BundleJSON)) {
			t.Fatalf("%s: Notary summary %+v, want GUN %s sha256 %s", name, n, gun, pb.BundleJSONDigest)
		}
		if got := ti.Requests() - before; got != 1 {
			t.Fatalf("%s: %d token requests, want 1 (cached for all roles)", name, got)
		}
		if _, err := os.Stat(archive); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	fails := func(name, stdin string, env []string, want string, extra ...string) {
		t.Helper()
		code, stdout, stderr, archive := exportRun(name, stdin, env, extra...)
		if code != 1 { // a failure, not a verification failure (3)
			t.Fatalf("%s: exit %d, want 1\n%s", name, code, stderr)
		}
		if !strings.Contains(stderr, ns.URL) || !strings.Contains(stderr, want) {
			t.Fatalf("%s: exit %d, the message does not name the Notary server %s and say %q:\n%s\n%s", name, code, ns.URL, want, stdout, stderr)
		}
		t.Logf("%s: exit %d: %s", name, code, strings.TrimSpace(stderr[strings.LastIndex(strings.TrimSpace(stderr), "\n")+1:]))
		matches, _ := filepath.Glob(archive + "*")
		if len(matches) > 0 {
			t.Fatalf("%s: a failed export left %v", name, matches)
		}
	}

	// (a) --username with --password-stdin: one read of standard input
	// serves the registry client and the Notary server.
	succeeds("stdin", pass+"\n", cliEnv(t), "--username", user, "--password-stdin")
	// (b) the docker config, for the Notary server's host.
	env := cliEnv(t)
	writeDockerConfig(t, env, strings.TrimPrefix(ns.URL, "https://"), user, pass)
	succeeds("docker-config", "", env)
	// (b') the docker config for the GUN's registry only.
	env = cliEnv(t)
	writeDockerConfig(t, env, src.Host, user, pass)
	succeeds("docker-config-registry", "", env)
	// (c) a wrong password is refused by the token service.
	refusalsBefore := ti.Refusals()
	fails("wrong", "not-"+pass+"\n", cliEnv(t), "refused", "--username", user, "--password-stdin")
	// (d) no credentials: required.
	fails("anonymous", "", cliEnv(t), "credentials are required")
	if ti.Refusals()-refusalsBefore != 2 {
		t.Fatalf("%d refusals at the token service, want 2", ti.Refusals()-refusalsBefore)
	}

	// Re-signing inside, at a Notary server with token auth: the import
	// publishes the target under the relocated GUN with push scope, with
	// the same credentials.
	dst := startRegistry(t)
	rootID, err := pub.RootKeyID()
	if err != nil {
		t.Fatal(err)
	}
	resignEnv := cliEnv(t, "NOTARY_ROOT_PASSPHRASE=r-pass", "NOTARY_TARGETS_PASSPHRASE=t-pass", "NOTARY_SNAPSHOT_PASSPHRASE=s-pass")
	r, code := runCLI(t, bin, resignEnv, pass+"\n", "--username", user, "--password-stdin", "--plain-http", dst.Host,
		"--ca-file", ns.CAFile, "--ca-file", ti.CAFile, "import", filepath.Join(work, "stdin.tar"), "-t", dst.Host+"/inside",
		"-m", filepath.Join(work, "m.json"), "--notary-pin", gun+"="+rootID,
		"--notary-resign", "--notary-server", ns.URL, "--notary-trust-dir", filepath.Join(work, "inside-keys"))
	outputs = append(outputs, r.stdout.String()+r.stderr.String())
	relocated := dst.Host + "/inside/" + harness.DefaultSampleRepository
	if code != 0 || !strings.Contains(r.stdout.String(), "re-signed   GUN "+relocated) {
		t.Fatalf("import --notary-resign to a token-auth server: exit %d\n%s\n%s", code, r.stdout.String(), r.stderr.String())
	}
	lrt, err := sigbundle.NotaryTransport(ns.URL, relocated, false, sigbundle.WithNotaryTransport(both), sigbundle.WithNotaryCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := sigfixtures.Targets(ns.URL, relocated, lrt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Name != harness.DefaultSampleTag || ts[0].Length != int64(len(pb.BundleJSON)) {
		t.Fatalf("re-signed targets under %s: %+v", relocated, ts)
	}

	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	for i, out := range outputs {
		if strings.Contains(out, pass) || strings.Contains(out, basic) {
			t.Errorf("run %d printed the password:\n%s", i, out)
		}
	}
}

// writeDockerConfig writes a docker config.json with credentials for host
// into the DOCKER_CONFIG of env.
func writeDockerConfig(t *testing.T, env []string, host, user, pass string) {
	t.Helper()
	var dir string
	for _, e := range env {
		if d, ok := strings.CutPrefix(e, "DOCKER_CONFIG="); ok {
			dir = d
		}
	}
	if dir == "" {
		t.Fatal("no DOCKER_CONFIG in the environment")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	raw, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
