package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// serveCert writes a CA and a certificate for 127.0.0.1 it issued; it
// returns the certificate and key files and a pool trusting the CA.
func serveCert(t *testing.T) (string, string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "serve test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, pool
}

// serve --tls-cert/--tls-key answers HTTPS only, with the given
// certificate; the flags go together.
func TestServeCommandTLS(t *testing.T) {
	archive := writeFixture(t)
	certFile, keyFile, pool := serveCert(t)
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
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
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
