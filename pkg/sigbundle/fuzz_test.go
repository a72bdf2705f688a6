package sigbundle

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// FuzzNotationEnvelope feeds arbitrary notation JWS envelopes to the
// binding check and, with a trust store, to the signature check: no
// panic, and nothing verifies without a real signature.
func FuzzNotationEnvelope(f *testing.F) {
	dir := f.TempDir()
	ca := newFuzzCA(f, dir)
	o, err := makeOptions(WithNotationCert(ca))
	if err != nil {
		f.Fatal(err)
	}
	subject := digest.FromString("subject")
	enc := base64.RawURLEncoding.EncodeToString
	f.Add([]byte(`{"payload":"` + enc([]byte(`{"targetArtifact":{"digest":"`+subject.String()+`"}}`)) + `","protected":"` +
		enc([]byte(`{"alg":"ES256","crit":["io.cncf.notary.signingScheme"],"io.cncf.notary.signingScheme":"notary.x509","io.cncf.notary.signingTime":"2026-01-01T00:00:00Z"}`)) +
		`","header":{"x5c":["AAAA"]},"signature":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"protected":"!!!"}`))
	f.Fuzz(func(t *testing.T, env []byte) {
		if err := checkNotationJWS(env, subject); err != nil && !errors.Is(err, ErrBinding) {
			t.Fatalf("unclassified binding error: %v", err)
		}
		if name, _, err := o.verifyNotationJWS(env); err == nil {
			t.Fatalf("an arbitrary envelope verified against %s", name)
		}
	})
}

// FuzzInTotoCustom reads arbitrary target custom fields: no panic, and a
// 301 reference list resolves against an empty repository only to errors.
func FuzzInTotoCustom(f *testing.F) {
	f.Add([]byte(`{"in-toto":["a/in-toto-metadata/root.layout","a/x.0123abcd.link"]}`))
	f.Add([]byte(`{"key":"AA==","layout":"AA==","links":{"build.0123abcd.link":"AA=="}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, custom []byte) {
		form, c := parseInTotoCustom(custom)
		if form == InTotoForm301 {
			if _, _, err := resolve301(nil, c.InToto, nil); err == nil {
				t.Fatal("references resolved without a repository")
			}
		}
	})
}

func newFuzzCA(f *testing.F, dir string) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		f.Fatal(err)
	}
	p := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		f.Fatal(err)
	}
	return p
}
