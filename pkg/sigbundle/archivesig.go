package sigbundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// An archive signature is what `cosign sign-blob --key` writes for the
// archive file: the base64 of an ECDSA (ASN.1) or RSA (PKCS #1 v1.5)
// signature over the file's SHA-256. `cosign verify-blob --key KEY
// --signature ARCHIVE.sig ARCHIVE` checks it, and so do `cnab-airgap
// verify` and `import` with --archive-key. Ed25519 keys sign the message
// itself, not its digest, so they cannot sign an archive that is hashed
// while it is written; they are refused.

// SignatureSuffix names the archive signature file: ARCHIVE.sig.
const SignatureSuffix = ".sig"

// SignArchive signs the archive digest d (sha256) with s and returns the
// signature file's content.
func SignArchive(s crypto.Signer, d digest.Digest) ([]byte, error) {
	if d.Algorithm() != digest.SHA256 || d.Validate() != nil {
		return nil, fmt.Errorf("archive signature: %q is not a sha256 digest", d)
	}
	sum, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return nil, err
	}
	if err := CheckArchiveSigner(s); err != nil {
		return nil, err
	}
	sig, err := s.Sign(rand.Reader, sum, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("archive signature: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(sig)), nil
}

// CheckArchiveSigner reports whether s can sign an archive: ECDSA and RSA
// keys can; Ed25519 keys sign messages, not digests.
func CheckArchiveSigner(s crypto.Signer) error {
	switch s.Public().(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
		return nil
	}
	return fmt.Errorf("archive signature: %T keys are not supported (use ECDSA or RSA, as cosign generate-key-pair makes)", s.Public())
}

// VerifyArchive checks a signature file's content against the archive
// digest d with key. The error wraps ErrSignature.
func VerifyArchive(key crypto.PublicKey, d digest.Digest, sigFile []byte) error {
	if d.Algorithm() != digest.SHA256 || d.Validate() != nil {
		return wrapf(ErrSignature, "%q is not a sha256 digest", d)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigFile)))
	if err != nil {
		return wrapf(ErrSignature, "the signature file is not base64: %v", err)
	}
	sum, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return err
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, sum, sig) {
			return nil
		}
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum, sig) == nil || rsa.VerifyPSS(k, crypto.SHA256, sum, sig, nil) == nil {
			return nil
		}
	default:
		return wrapf(ErrSignature, "%T keys cannot verify an archive signature", key)
	}
	return wrapf(ErrSignature, "the archive signature does not verify with the given key over %s", d)
}

// LoadPrivateKey reads a PEM private key for signing archives: PKCS #8
// ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY"), PKCS #1 ("RSA PRIVATE KEY"),
// or the encrypted key `cosign generate-key-pair` writes ("ENCRYPTED
// SIGSTORE PRIVATE KEY" or "ENCRYPTED COSIGN PRIVATE KEY": scrypt and
// nacl/secretbox), decrypted with passphrase (cosign reads it from
// COSIGN_PASSWORD).
func LoadPrivateKey(path string, passphrase []byte) (crypto.Signer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(raw)
	if blk == nil {
		return nil, fmt.Errorf("private key %s: no PEM block", path)
	}
	var key any
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		// The format of go-securesystemslib's encrypted package (scrypt
		// with fixed parameter sets, nacl/secretbox), which cosign uses.
		var der []byte
		if der, err = encrypted.Decrypt(blk.Bytes, passphrase); err != nil {
			err = fmt.Errorf("decrypting (wrong COSIGN_PASSWORD?): %w", err)
		} else {
			key, err = x509.ParsePKCS8PrivateKey(der)
		}
	default:
		return nil, fmt.Errorf("private key %s: PEM block %q is not a private key", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key %s: %T cannot sign", path, key)
	}
	return s, nil
}
