package sigbundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// simpleSigning is cosign's signed payload ("simple signing" format).
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// checkSimpleSigning checks that a cosign payload names subject and
// returns the docker-reference it claims. Like cosign's own claim check,
// only the digest binds the signature to its subject (a relocated image
// keeps its signature); the claimed name is compared with the names the
// subject is published under by Verify (names.go).
func checkSimpleSigning(payload []byte, subject digest.Digest) (string, error) {
	var p simpleSigning
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", wrapf(ErrBinding, "cosign payload is not JSON: %v", err)
	}
	got := p.Critical.Image.DockerManifestDigest
	if got != subject.String() {
		return "", wrapf(ErrBinding, "cosign payload signs docker-manifest-digest %q, not %s", got, subject)
	}
	return p.Critical.Identity.DockerReference, nil
}

// checkDSSE decodes a DSSE envelope (go-securesystemslib's) and checks
// that its in-toto statement has subject among its subjects. It returns the
// signed message (the envelope's pre-authentication encoding, dsse.PAE) and
// the signatures.
func checkDSSE(raw []byte, subject digest.Digest) ([]byte, []string, error) {
	var env dsse.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, nil, wrapf(ErrBinding, "DSSE envelope is not JSON: %v", err)
	}
	body, err := env.DecodeB64Payload()
	if err != nil {
		return nil, nil, wrapf(ErrBinding, "DSSE payload is not base64: %v", err)
	}
	var st struct {
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, nil, wrapf(ErrBinding, "DSSE payload is not an in-toto statement: %v", err)
	}
	var names []string
	for _, s := range st.Subject {
		if s.Digest[subject.Algorithm().String()] == subject.Encoded() {
			var sigs []string
			for _, sg := range env.Signatures {
				sigs = append(sigs, sg.Sig)
			}
			return dsse.PAE(env.PayloadType, body), sigs, nil
		}
		names = append(names, fmt.Sprint(s.Digest))
	}
	return nil, nil, wrapf(ErrBinding, "the attestation's statement is about %s, not %s", strings.Join(names, ", "), subject)
}

// checkNotationJWS checks that a notation JWS envelope's payload names
// subject as its targetArtifact. Its signature chain is not verified here
// (that needs a notation trust store and policy).
func checkNotationJWS(raw []byte, subject digest.Digest) error {
	var env struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return wrapf(ErrBinding, "notation envelope is not JSON: %v", err)
	}
	body, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(env.Payload, "="))
	if err != nil {
		return wrapf(ErrBinding, "notation payload is not base64url: %v", err)
	}
	var p struct {
		TargetArtifact struct {
			Digest digest.Digest `json:"digest"`
		} `json:"targetArtifact"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return wrapf(ErrBinding, "notation payload: %v", err)
	}
	if p.TargetArtifact.Digest != subject {
		return wrapf(ErrBinding, "notation signature's targetArtifact is %q, not %s", p.TargetArtifact.Digest, subject)
	}
	return nil
}

// verifyWith checks a base64 signature over msg with key.
func verifyWith(key crypto.PublicKey, msg []byte, sigB64 string) bool {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return false
	}
	h := sha256.Sum256(msg)
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, h[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil {
			return true
		}
		return rsa.VerifyPSS(k, crypto.SHA256, h[:], sig, nil) == nil
	}
	return false
}
