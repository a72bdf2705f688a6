package sigbundle

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
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

// checkStatement checks that an in-toto statement (a DSSE envelope's
// payload) names subject among its subjects, so that a misbound
// attestation is refused with the digests at fault before its signature is
// verified, and returns its predicate type.
func checkStatement(payloadType string, body []byte, subject digest.Digest) (string, error) {
	if payloadType != MediaTypeInTotoStatement {
		return "", wrapf(ErrBinding, "DSSE payload type is %q, not an in-toto statement (%s)", payloadType, MediaTypeInTotoStatement)
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return "", wrapf(ErrBinding, "DSSE payload is not an in-toto statement: %v", err)
	}
	var names []string
	for _, s := range st.Subject {
		if s.Digest[subject.Algorithm().String()] == subject.Encoded() {
			return st.PredicateType, nil
		}
		for _, alg := range slices.Sorted(maps.Keys(s.Digest)) {
			names = append(names, alg+":"+s.Digest[alg])
		}
	}
	return "", wrapf(ErrBinding, "the attestation's statement is about %s, not %s", strings.Join(names, ", "), subject)
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
