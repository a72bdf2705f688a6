package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
)

// serveCert writes a CA and a certificate for 127.0.0.1 it issued; it
// returns the certificate and key files and a transport trusting the CA.
func serveCert(t *testing.T) (string, string, http.RoundTripper) {
	t.Helper()
	dir := t.TempDir()
	tr, err := sigfixtures.WriteTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), tr
}

// serve --tls-cert/--tls-key answers HTTPS only, with the given
// certificate; the flags go together.
func TestServeCommandTLS(t *testing.T) {
	archive := writeFixture(t)
	certFile, keyFile, tr := serveCert(t)
	if r := runCLI(t, "serve", archive, "--addr", "127.0.0.1:0", "--tls-cert", certFile); r.code != exitUsage || !strings.Contains(r.stderr, "--tls-cert and --tls-key go together") {
		t.Fatalf("--tls-cert alone: exit %d\n%s", r.code, r.stderr)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		c := run(ctx, []string{"cnab-airgap", "serve", archive, "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile, "-O", "json"}, strings.NewReader(""), pw, &stderr)
		pw.Close()
		code <- c
	}()
	var out serveOutput
	if err := json.NewDecoder(pr).Decode(&out); err != nil {
		t.Fatalf("no JSON document: %v\n%s", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	if out.URL != "https://"+out.Address {
		t.Fatalf("served at %s", out.URL)
	}
	ref, err := name.ParseReference(out.Reference) // HTTPS, the certificate verified
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.DigestReference, "@"+desc.Digest.String()) {
		t.Fatalf("bundle resolves to %s, serve says %s", desc.Digest, out.DigestReference)
	}
	// Plain HTTP is not answered, and a client that does not trust the CA fails.
	if resp, err := http.Get("http://" + out.Address + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200")
		}
	}
	if _, err := remote.Get(ref, remote.WithContext(ctx)); err == nil {
		t.Fatal("a client without the CA accepted the certificate")
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("serve exited %d:\n%s", c, stderr.String())
	}
}
