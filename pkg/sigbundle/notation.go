package sigbundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// notationRoot is a trust-store certificate for notation signatures.
type notationRoot struct {
	name string
	cert *x509.Certificate
}

// WithNotationCert adds the certificates in the PEM file path to the
// notation trust store (x509/ca in notation's terms). With at least one,
// every subject that has notation JWS signatures needs one whose
// certificate chain (the envelope's x5c) leads to a trust-store
// certificate, valid now (with WithAllowExpired: at the signing time the
// signature claims), for code signing, and whose
// signature over the payload verifies with the leaf key. There is no
// default: without certificates only the binding (targetArtifact) is
// checked.
func WithNotationCert(path string) Option {
	return func(o *options) error {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sigbundle: notation certificate: %w", err)
		}
		certs, err := parsePEMCerts(raw)
		if err != nil {
			return fmt.Errorf("sigbundle: notation certificate %s: %w", path, err)
		}
		for _, c := range certs {
			o.notationRoots = append(o.notationRoots, notationRoot{name: filepath.Base(path), cert: c})
		}
		return nil
	}
}

func parsePEMCerts(raw []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, raw = pem.Decode(raw)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificates")
	}
	return out, nil
}

// jwsEnvelope is notation's JWS JSON serialization.
type jwsEnvelope struct {
	Payload   string `json:"payload"`
	Protected string `json:"protected"`
	Header    struct {
		X5C [][]byte `json:"x5c"`
	} `json:"header"`
	Signature string `json:"signature"`
}

// notationProtected is what is read of the protected header.
type notationProtected struct {
	Alg           string   `json:"alg"`
	Cty           string   `json:"cty"`
	Crit          []string `json:"crit"`
	SigningScheme string   `json:"io.cncf.notary.signingScheme"`
	SigningTime   string   `json:"io.cncf.notary.signingTime"`
	Expiry        string   `json:"io.cncf.notary.expiry"`
}

// knownCrit are the critical header parameters this verifier understands.
var knownCrit = []string{"io.cncf.notary.signingScheme", "io.cncf.notary.expiry"}

// verifyNotationJWS verifies a notation JWS envelope (already bound to its
// subject by checkNotationJWS) against the trust store. It returns the name
// of the trust-store file that anchors it and when the chain was judged
// valid ("now", or the claimed signing time with WithAllowExpired), or an
// error saying why not.
func (o *options) verifyNotationJWS(raw []byte) (anchorFile, when string, err error) {
	var env jwsEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return "", "", fmt.Errorf("envelope is not JSON: %w", err)
	}
	b64 := base64.RawURLEncoding
	ph, err := b64.DecodeString(strings.TrimRight(env.Protected, "="))
	if err != nil {
		return "", "", fmt.Errorf("protected header is not base64url: %w", err)
	}
	var p notationProtected
	if err := json.Unmarshal(ph, &p); err != nil {
		return "", "", fmt.Errorf("protected header: %w", err)
	}
	for _, c := range p.Crit {
		if !slices.Contains(knownCrit, c) {
			return "", "", fmt.Errorf("critical header parameter %q is not understood", c)
		}
	}
	// The signing time is the signer's own claim under notary.x509, so (as
	// notation's strict level without a timestamp countersignature) the
	// chain must be valid now; --allow-expired accepts a chain valid at the
	// claimed time. notary.x509.signingAuthority needs a signing-authority
	// trust store, which this verifier does not have.
	if p.SigningScheme != "notary.x509" {
		return "", "", fmt.Errorf("signing scheme %q is not supported (notary.x509 is; notary.x509.signingAuthority needs a signing-authority trust store)", p.SigningScheme)
	}
	at, atWhat := o.now(), "now"
	if p.Expiry != "" {
		exp, err := time.Parse(time.RFC3339, p.Expiry)
		if err != nil {
			return "", "", fmt.Errorf("expiry %q: %w", p.Expiry, err)
		}
		if !exp.After(o.now()) && !o.allowExpired {
			return "", "", fmt.Errorf("the signature expired %s (--allow-expired accepts it)", exp.UTC().Format(time.RFC3339))
		}
	}
	if len(env.Header.X5C) == 0 {
		return "", "", errors.New("the envelope carries no certificate chain (x5c)")
	}
	var chain []*x509.Certificate
	for i, der := range env.Header.X5C {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", "", fmt.Errorf("x5c certificate %d: %w", i, err)
		}
		chain = append(chain, c)
	}
	leaf := chain[0]
	sig, err := b64.DecodeString(strings.TrimRight(env.Signature, "="))
	if err != nil {
		return "", "", fmt.Errorf("signature is not base64url: %w", err)
	}
	if err := verifyJWS(p.Alg, leaf.PublicKey, []byte(env.Protected+"."+env.Payload), sig); err != nil {
		return "", "", fmt.Errorf("signature by %q: %w", leaf.Subject.CommonName, err)
	}
	roots := x509.NewCertPool()
	for _, r := range o.notationRoots {
		roots.AddCert(r.cert)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	verified, verr := leaf.Verify(opts)
	var inv x509.CertificateInvalidError
	if verr != nil && errors.As(verr, &inv) && inv.Reason == x509.Expired && o.allowExpired {
		// The claimed signing time, accepted with --allow-expired.
		if t, perr := time.Parse(time.RFC3339, p.SigningTime); perr == nil {
			opts.CurrentTime, atWhat = t, "at the claimed signing time "+p.SigningTime+" (--allow-expired)"
			verified, verr = leaf.Verify(opts)
		}
	}
	if verr != nil {
		return "", "", fmt.Errorf("certificate %q %s: %w", leaf.Subject.CommonName, atWhat, verr)
	}
	anchor := verified[0][len(verified[0])-1]
	for _, r := range o.notationRoots {
		if r.cert.Equal(anchor) {
			return r.name, atWhat, nil
		}
	}
	return "", "", errors.New("the chain's anchor is not in the trust store")
}

// verifyJWS checks a JWS signature (RFC 7518 algorithms notation uses).
func verifyJWS(alg string, key crypto.PublicKey, input, sig []byte) error {
	var h crypto.Hash
	switch alg {
	case "ES256", "PS256":
		h = crypto.SHA256
	case "ES384", "PS384":
		h = crypto.SHA384
	case "ES512", "PS512":
		h = crypto.SHA512
	default:
		return fmt.Errorf("algorithm %q is not supported", alg)
	}
	hh := h.New()
	hh.Write(input)
	sum := hh.Sum(nil)
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if alg[0] != 'E' {
			return fmt.Errorf("algorithm %s with an ECDSA key", alg)
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return errors.New("ECDSA signature has the wrong length")
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, sum, r, s) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		if alg[0] != 'P' {
			return fmt.Errorf("algorithm %s with an RSA key", alg)
		}
		if err := rsa.VerifyPSS(k, h, sum, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			return errors.New("RSASSA-PSS signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("key type %T is not supported", key)
}
