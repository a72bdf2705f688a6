package sigbundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	file string
}

func newTestCA(t *testing.T, dir, cn string) *testCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-24 * time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	f := filepath.Join(dir, cn+".pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{c, k, f}
}

// leaf issues a signing certificate for key.
func (ca *testCA) leaf(t *testing.T, key crypto.Signer, eku x509.ExtKeyUsage, notBefore, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "signer"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// jws builds a notation JWS envelope signed by key with alg.
func jws(t *testing.T, alg string, key crypto.Signer, chain [][]byte, header map[string]any, payload []byte) []byte {
	t.Helper()
	h := map[string]any{"alg": alg, "cty": "application/vnd.cncf.notary.payload.v1+json", "crit": []string{"io.cncf.notary.signingScheme"},
		"io.cncf.notary.signingScheme": "notary.x509", "io.cncf.notary.signingTime": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range header {
		h[k] = v
	}
	ph, _ := json.Marshal(h)
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(ph) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPSS(rand.Reader, k, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Fatal(err)
		}
	}
	env, _ := json.Marshal(map[string]any{"payload": enc.EncodeToString(payload), "protected": enc.EncodeToString(ph),
		"header": map[string]any{"x5c": chain}, "signature": enc.EncodeToString(sig)})
	return env
}

func TestNotationJWS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, other := newTestCA(t, dir, "ca"), newTestCA(t, dir, "other")
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	good := ca.leaf(t, ek, x509.ExtKeyUsageCodeSigning, now.Add(-time.Minute), now.Add(time.Hour))
	payload := []byte(`{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":1}}`)
	trusted, err := makeOptions(WithNotationCert(ca.file))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []byte
	}{
		{"ES256", jws(t, "ES256", ek, [][]byte{good, ca.cert.Raw}, nil, payload)},
		{"PS256", jws(t, "PS256", rk, [][]byte{ca.leaf(t, rk, x509.ExtKeyUsageCodeSigning, now.Add(-time.Minute), now.Add(time.Hour)), ca.cert.Raw}, nil, payload)},
		{"expiry in the future", jws(t, "ES256", ek, [][]byte{good, ca.cert.Raw}, map[string]any{"io.cncf.notary.expiry": now.Add(time.Hour).UTC().Format(time.RFC3339),
			"crit": []string{"io.cncf.notary.signingScheme", "io.cncf.notary.expiry"}}, payload)},
	} {
		name, when, err := trusted.verifyNotationJWS(tc.env)
		if err != nil || name != "ca.pem" || when != "now" {
			t.Fatalf("%s: %q %v", tc.name, name, err)
		}
	}

	// A certificate that expired an hour ago, and a signature claiming a
	// time inside its validity: refused (the claim is the signer's own),
	// accepted with --allow-expired.
	expired := ca.leaf(t, ek, x509.ExtKeyUsageCodeSigning, now.Add(-3*time.Hour), now.Add(-time.Hour))
	claimed := map[string]any{"io.cncf.notary.signingTime": now.Add(-2 * time.Hour).UTC().Format(time.RFC3339)}
	lenient, _ := makeOptions(WithNotationCert(ca.file), WithAllowExpired(true))
	if name, when, err := lenient.verifyNotationJWS(jws(t, "ES256", ek, [][]byte{expired, ca.cert.Raw}, claimed, payload)); err != nil || name != "ca.pem" ||
		!strings.Contains(when, "claimed signing time") {
		t.Fatalf("expired certificate with --allow-expired: %q %q %v", name, when, err)
	}
	env := jws(t, "ES256", ek, [][]byte{good, ca.cert.Raw}, nil, payload)
	var tampered map[string]any
	json.Unmarshal(env, &tampered)
	tampered["payload"] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "sha256:00", "sha256:01", 1)))
	tamperedEnv, _ := json.Marshal(tampered)
	untrusted, _ := makeOptions(WithNotationCert(other.file))
	cases := []struct {
		name string
		o    *options
		env  []byte
		msg  string
	}{
		{"another trust store", untrusted, env, "certificate signed by unknown authority"},
		{"payload changed", trusted, tamperedEnv, "signature is invalid"},
		{"not a code-signing certificate", trusted, jws(t, "ES256", ek, [][]byte{ca.leaf(t, ek, x509.ExtKeyUsageServerAuth, now.Add(-time.Minute), now.Add(time.Hour)), ca.cert.Raw}, nil, payload), "must not contain ServerAuth"},
		{"signed outside the certificate's validity", trusted, jws(t, "ES256", ek, [][]byte{ca.leaf(t, ek, x509.ExtKeyUsageCodeSigning, now.Add(time.Minute), now.Add(time.Hour)), ca.cert.Raw}, nil, payload), "expired or is not yet valid"},
		{"expired signature", trusted, jws(t, "ES256", ek, [][]byte{good, ca.cert.Raw}, map[string]any{"io.cncf.notary.expiry": now.Add(-time.Minute).UTC().Format(time.RFC3339),
			"io.cncf.notary.signingTime": now.Add(-2 * time.Minute).UTC().Format(time.RFC3339), "crit": []string{"io.cncf.notary.signingScheme", "io.cncf.notary.expiry"}}, payload), "the signature expired"},
		{"unknown critical parameter", trusted, jws(t, "ES256", ek, [][]byte{good, ca.cert.Raw}, map[string]any{"crit": []string{"io.cncf.notary.signingScheme", "x-new"}}, payload), "marked critical"},
		{"signing authority scheme", trusted, jws(t, "ES256", ek, [][]byte{good, ca.cert.Raw}, map[string]any{"io.cncf.notary.signingScheme": "notary.x509.signingAuthority"}, payload), "signingAuthority"},
		{"certificate expired, signing time claimed inside it", trusted, jws(t, "ES256", ek, [][]byte{expired, ca.cert.Raw}, claimed, payload), "expired"},
		{"no chain", trusted, jws(t, "ES256", ek, nil, nil, payload), "certificate chain is not present"},
		{"algorithm and key disagree", trusted, jws(t, "PS256", ek, [][]byte{good, ca.cert.Raw}, nil, payload), "key is invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.o.verifyNotationJWS(tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %q", err, tc.msg)
			}
		})
	}
	if _, err := makeOptions(WithNotationCert(filepath.Join(dir, "missing.pem"))); err == nil {
		t.Fatal("a missing trust-store file was accepted")
	}
}
