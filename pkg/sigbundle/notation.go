package sigbundle

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	njws "github.com/notaryproject/notation-core-go/signature/jws"
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

// verifyNotationJWS verifies a notation JWS envelope (already bound to its
// subject by checkNotationJWS) against the trust store. The envelope is
// parsed and verified by notation-core-go (signature/jws): the signature
// with the x5c leaf's key, the critical header parameters, and the chain
// against the Notary Project signature specification's certificate
// requirements (complete to its root, issuance, code-signing usages,
// validity at the signing time); the chain is then anchored in the trust
// store with crypto/x509. It returns the name of the
// trust-store file that anchors it and when the chain was judged valid
// ("now", or the claimed signing time with WithAllowExpired), or an error
// saying why not.
func (o *options) verifyNotationJWS(raw []byte) (anchorFile, when string, err error) {
	env, err := signature.ParseEnvelope(njws.MediaTypeEnvelope, raw)
	if err != nil {
		return "", "", fmt.Errorf("envelope: %w", err)
	}
	content, err := env.Verify()
	if err != nil {
		return "", "", fmt.Errorf("signature: %w", err)
	}
	si := content.SignerInfo
	// The signing time is the signer's own claim under notary.x509, so (as
	// notation's strict level without a timestamp countersignature) the
	// chain must be valid now; --allow-expired accepts a chain valid at the
	// claimed time. notary.x509.signingAuthority needs a signing-authority
	// trust store, which this verifier does not have.
	if si.SignedAttributes.SigningScheme != signature.SigningSchemeX509 {
		return "", "", fmt.Errorf("signing scheme %q is not supported (notary.x509 is; notary.x509.signingAuthority needs a signing-authority trust store)", si.SignedAttributes.SigningScheme)
	}
	if exp := si.SignedAttributes.Expiry; !exp.IsZero() && !exp.After(o.now()) && !o.allowExpired {
		return "", "", fmt.Errorf("the signature expired %s (--allow-expired accepts it)", exp.UTC().Format(time.RFC3339))
	}
	chain := si.CertificateChain
	if len(chain) == 0 {
		return "", "", errors.New("the envelope carries no certificate chain (x5c)")
	}
	leaf := chain[0]
	at, atWhat := o.now(), "now"
	anchor, err := o.anchorNotationChain(chain, at)
	var inv x509.CertificateInvalidError
	if err != nil && errors.As(err, &inv) && inv.Reason == x509.Expired && o.allowExpired && !si.SignedAttributes.SigningTime.IsZero() {
		// The claimed signing time, accepted with --allow-expired.
		at = si.SignedAttributes.SigningTime
		atWhat = "at the claimed signing time " + at.UTC().Format(time.RFC3339) + " (--allow-expired)"
		anchor, err = o.anchorNotationChain(chain, at)
	}
	if err != nil {
		return "", "", fmt.Errorf("certificate %q %s: %w", leaf.Subject.CommonName, atWhat, err)
	}
	return anchor, atWhat, nil
}

// anchorNotationChain checks chain (leaf first, as the envelope's
// verification validated it) at time at: it must build to a trust-store
// certificate for code signing (crypto/x509). It returns the name of the
// trust-store file of the anchor.
func (o *options) anchorNotationChain(chain []*x509.Certificate, at time.Time) (string, error) {
	roots := x509.NewCertPool()
	for _, r := range o.notationRoots {
		roots.AddCert(r.cert)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	verified, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}})
	if err != nil {
		return "", err
	}
	anchor := verified[0][len(verified[0])-1]
	for _, r := range o.notationRoots {
		if r.cert.Equal(anchor) {
			return r.name, nil
		}
	}
	return "", errors.New("the chain's anchor is not in the trust store")
}
