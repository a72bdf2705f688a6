package sigbundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// TestArchiveSignature signs an archive digest with every key form
// LoadPrivateKey reads (cosign's encrypted key included) and checks it
// with the public key: another digest, another key, garbage and Ed25519
// are refused.
func TestArchiveSignature(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pk8, _ := x509.MarshalPKCS8PrivateKey(ec)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	// As `cosign generate-key-pair` writes it: PKCS #8 encrypted with
	// go-securesystemslib (scrypt, nacl/secretbox) under the passphrase.
	enc, err := encrypted.Encrypt(pk8, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("an archive")
	other := digest.FromString("another archive")
	for _, tc := range []struct {
		name string
		path string
		pub  crypto.PublicKey
	}{
		{"pkcs8", write("k8.pem", "PRIVATE KEY", pk8), &ec.PublicKey},
		{"sec1", write("ec.pem", "EC PRIVATE KEY", sec1), &ec.PublicKey},
		{"pkcs1 rsa", write("rsa.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), &rk.PublicKey},
		{"cosign encrypted", write("cosign.key", "ENCRYPTED SIGSTORE PRIVATE KEY", enc), &ec.PublicKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadPrivateKey(tc.path, []byte("s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := SignArchive(s, d)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyArchive(tc.pub, d, append(sig, '\n')); err != nil {
				t.Fatalf("a good signature (with a trailing newline): %v", err)
			}
			if err := VerifyArchive(tc.pub, other, sig); !errors.Is(err, ErrSignature) {
				t.Fatalf("another archive: %v", err)
			}
		})
	}
	wrong, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := LoadPrivateKey(filepath.Join(dir, "k8.pem"), nil)
	sig, _ := SignArchive(s, d)
	if err := VerifyArchive(&wrong.PublicKey, d, sig); !errors.Is(err, ErrSignature) {
		t.Fatalf("another key: %v", err)
	}
	if err := VerifyArchive(&ec.PublicKey, d, []byte("not base64!")); !errors.Is(err, ErrSignature) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := LoadPrivateKey(filepath.Join(dir, "cosign.key"), []byte("wrong")); err == nil || !strings.Contains(err.Error(), "COSIGN_PASSWORD") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	es, err := LoadPrivateKey(write("ed.pem", "PRIVATE KEY", edDER), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SignArchive(es, d); err == nil {
		t.Fatal("an Ed25519 key signed an archive digest")
	}
	if _, err := LoadPrivateKey(write("pub.pem", "PUBLIC KEY", []byte{1}), nil); err == nil {
		t.Fatal("a public key was taken for a private key")
	}
}
