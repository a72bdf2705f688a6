package sigbundle

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"
)

// TestCosignKeyTypes checks the key types cosign signs with besides ECDSA:
// Ed25519 (over the message itself) and RSA (PKCS #1 v1.5, and PSS), each
// parsed from the PEM forms cosign and openssl write, and WithCosignKey's
// refusal of anything else.
func TestCosignKeyTypes(t *testing.T) {
	t.Parallel()
	msg := []byte(`{"critical":{"image":{"docker-manifest-digest":"sha256:00"}}}`)
	h := sha256.Sum256(msg)
	b64 := base64.StdEncoding.EncodeToString

	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	pss, err := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, h[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	cases := []struct {
		name string
		pem  []byte
		sig  string
	}{
		{"ed25519 PKIX", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edDER}), b64(ed25519.Sign(edPriv, msg))},
		{"rsa PKIX, PKCS1v15", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER}), b64(pkcs1)},
		{"rsa PKCS1 key, PSS", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}), b64(pss)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePublicKey(tc.pem)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := makeOptions(WithCosignKey("k", k)); err != nil {
				t.Fatal(err)
			}
			check := func(t *testing.T, key crypto.PublicKey, payload []byte, sig string) bool {
				t.Helper()
				o, err := makeOptions(WithCosignKey("k", key))
				if err != nil {
					t.Fatal(err)
				}
				ms, err := messageSignature(payload, sig)
				if err != nil {
					return false
				}
				st, err := legacyBundle(nil, ms)
				if err != nil {
					t.Fatal(err)
				}
				st.artifact = payload
				out := o.verifySigned(st)
				if out.verified && (len(out.keys) != 1 || out.keys[0] != "k" || out.signer == nil || out.signer.Key != "k") {
					t.Fatalf("verified, but reported as %+v", out)
				}
				return out.verified
			}
			if !check(t, k, msg, tc.sig) {
				t.Fatal("a good signature does not verify")
			}
			if check(t, k, append(msg, ' '), tc.sig) {
				t.Fatal("a signature verifies over another message")
			}
			if check(t, k, msg, "not base64!") {
				t.Fatal("garbage verifies")
			}
		})
	}
	// An Ed25519 signature does not verify under the RSA key, nor the other way.
	rsaKey, _ := ParsePublicKey(cases[1].pem)
	for _, c := range []struct {
		key crypto.PublicKey
		sig string
	}{{rsaKey, cases[0].sig}, {edPub, cases[1].sig}} {
		o, _ := makeOptions(WithCosignKey("k", c.key))
		ms, _ := messageSignature(msg, c.sig)
		st, _ := legacyBundle(nil, ms)
		st.artifact = msg
		if o.verifySigned(st).verified {
			t.Fatal("a signature verified under a key of another type")
		}
	}
	if _, err := makeOptions(WithCosignKey("dsa", struct{}{})); err == nil {
		t.Fatal("an unsupported key type was accepted")
	}
	if _, err := ParsePublicKey([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Fatal("a private key block was taken for a public key")
	}
}
