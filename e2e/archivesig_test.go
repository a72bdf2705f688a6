package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
)

// The archive itself signed: export --sign-key with a cosign-format
// encrypted key (passphrase from COSIGN_PASSWORD) writes ARCHIVE.sig;
// openssl checks it as an ECDSA signature over the file's SHA-256 (what
// cosign verify-blob checks); verify and import --archive-key accept it,
// and refuse a changed archive, another key and a missing signature
// before anything is pushed. A split archive is signed over its joined
// parts.
func TestArchiveSignature(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is required (make test provisions it: scripts/tools.sh): ", err)
	}
	dir := t.TempDir()
	pass := randomSecret("pw-")
	keyFile, pubFile := writeCosignKeyPair(t, dir, "cosign", pass)
	_, otherPub := writeCosignKeyPair(t, dir, "other", "x")
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})

	env := cliEnv(t, "COSIGN_PASSWORD="+pass)
	bin := cliBinary(t)
	archive := filepath.Join(dir, "bundle.tar")
	r, code := runCLI(t, bin, env, "", "--plain-http", src.Host, "--output", "json", "export", "-o", archive, "--sign-key", keyFile, pb.Ref)
	if code != 0 {
		t.Fatalf("export --sign-key: exit %d\n%s", code, r.stderr.String())
	}
	var er export.Result
	if err := json.Unmarshal(r.stdout.Bytes(), &er); err != nil || er.SignatureFile != archive+".sig" {
		t.Fatalf("export result %v: %s", err, r.stdout.String())
	}
	// An independent client checks the signature format.
	sig, err := base64.StdEncoding.DecodeString(string(mustRead(t, archive+".sig")))
	if err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "sig.der")
	os.WriteFile(raw, sig, 0o600)
	if out, err := exec.Command(openssl, "dgst", "-sha256", "-verify", pubFile, "-signature", raw, archive).CombinedOutput(); err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("openssl does not verify the archive signature: %v\n%s", err, out)
	}
	// A wrong passphrase fails before anything is fetched or written.
	if r, code := runCLI(t, bin, cliEnv(t, "COSIGN_PASSWORD=nope"), "", "--plain-http", src.Host, "export", "-o", filepath.Join(dir, "x.tar"), "--sign-key", keyFile, pb.Ref); code != 2 ||
		!strings.Contains(r.stderr.String(), "COSIGN_PASSWORD") {
		t.Fatalf("wrong passphrase: exit %d\n%s", code, r.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "x.tar")); err == nil {
		t.Fatal("an archive was written with an unusable key")
	}
	// Split volumes: signed over the joined parts.
	split := filepath.Join(dir, "split", "bundle.tar")
	os.MkdirAll(filepath.Dir(split), 0o755)
	if r, code := runCLI(t, bin, env, "", "--plain-http", src.Host, "export", "-o", split, "--split-size", "1MiB", "--sign-key", keyFile, pb.Ref); code != 0 {
		t.Fatalf("split export: exit %d\n%s", code, r.stderr.String())
	}
	src.Close()

	code, stdout, stderr := runCLIBinary(t, "verify", archive, "--archive-key", pubFile)
	if code != 0 || !strings.Contains(stdout, "archive     signature "+archive+".sig verified over "+er.ArchiveDigest) {
		t.Fatalf("verify --archive-key: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLIBinary(t, "verify", split+".000", "--archive-key", pubFile)
	if code != 0 || !strings.Contains(stdout, "signature "+split+".sig verified") {
		t.Fatalf("verify --archive-key of volumes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// serve checks it before it listens.
	if code, _, stderr := runCLIBinary(t, "serve", archive, "--addr", "127.0.0.1:0", "--archive-key", otherPub); code != 3 || !strings.Contains(stderr, "does not verify") {
		t.Fatalf("serve with another key: exit %d\n%s", code, stderr)
	}
	dst := startRegistry(t)
	code, stdout, stderr = runCLIBinary(t, "--plain-http", dst.Host, "import", archive, "-t", dst.Host+"/airgap", "-m", filepath.Join(dir, "m.json"), "--archive-key", pubFile)
	if code != 0 || !strings.Contains(stdout, "signature "+archive+".sig verified") {
		t.Fatalf("import --archive-key: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// Refusals, with nothing pushed: another key; an archive without its
	// signature file; an archive with 512 more zero bytes of padding, which
	// the reader accepts but the signature does not.
	unsigned := filepath.Join(dir, "unsigned.tar")
	os.WriteFile(unsigned, mustRead(t, archive), 0o600)
	padded := filepath.Join(dir, "padded.tar")
	os.WriteFile(padded, append(mustRead(t, archive), make([]byte, 512)...), 0o600)
	os.WriteFile(padded+".sig", mustRead(t, archive+".sig"), 0o600)
	if code, _, stderr := runCLIBinary(t, "verify", padded); code != 0 {
		t.Fatalf("the padded archive is not a valid archive, so it tests nothing: %s", stderr)
	}
	neg := startRegistry(t)
	for _, tc := range []struct {
		name, archive, key, want string
	}{
		{"another key", archive, otherPub, "does not verify"},
		{"no signature file", unsigned, pubFile, "no signature file " + unsigned + ".sig"},
		{"archive changed after signing", padded, pubFile, "does not verify"},
	} {
		code, _, stderr := runCLIBinary(t, "--plain-http", neg.Host, "import", tc.archive, "-t", neg.Host+"/airgap",
			"-m", filepath.Join(dir, "neg.json"), "--archive-key", tc.key)
		if code != 3 || !strings.Contains(stderr, tc.want) {
			t.Fatalf("%s: exit %d, want 3 and %q\n%s", tc.name, code, tc.want, stderr)
		}
		if repos, err := neg.Repositories(t.Context()); err != nil || len(repos) != 0 {
			t.Fatalf("%s: something was pushed: %v %v", tc.name, repos, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "neg.json")); err == nil {
			t.Fatalf("%s: a mapping was written", tc.name)
		}
	}
}

// writeCosignKeyPair writes NAME.key (PKCS #8 encrypted as `cosign
// generate-key-pair` does, with go-securesystemslib) and NAME.pub into dir.
func writeCosignKeyPair(t *testing.T, dir, name, pass string) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	enc, err := encrypted.Encrypt(der, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	keyFile, pubFile := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: enc}), 0o600)
	os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
	return keyFile, pubFile
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
