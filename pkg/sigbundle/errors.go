package sigbundle

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// ErrVerification is the general sentinel every verification failure of
// this package wraps: errors.Is(err, ErrVerification) tells a refused
// signature from an I/O problem.
var ErrVerification = errors.New("signature verification failed")

// Specific sentinels. Each also matches ErrVerification.
var (
	// ErrBinding: an artifact is not bound to a manifest the bundle carries
	// (subject, cosign docker-manifest-digest, notation targetArtifact or an
	// in-toto statement subject names something else).
	ErrBinding = fmt.Errorf("artifact is not bound to its subject%.0w", ErrVerification)
	// ErrSignature: a signature does not verify with the keys given.
	ErrSignature = fmt.Errorf("signature does not verify%.0w", ErrVerification)
	// ErrTrustData: Notary v1 trust data is malformed, inconsistent or
	// not signed as its root requires.
	ErrTrustData = fmt.Errorf("invalid trust data%.0w", ErrVerification)
	// ErrTrustAnchor: no pin, CA or TOFU decision covers the trust data's
	// GUN, or the root does not match the pin.
	ErrTrustAnchor = fmt.Errorf("trust anchor%.0w", ErrVerification)
	// ErrTargetMismatch: the signed target's hash or length is not that of
	// the carried bundle.json (or image manifest).
	ErrTargetMismatch = fmt.Errorf("signed target does not match the carried content%.0w", ErrVerification)
	// ErrExpired: the root, targets or a delegation role has expired.
	ErrExpired = fmt.Errorf("trust data expired%.0w", ErrVerification)
	// ErrInToto: the in-toto layout or links do not verify, or the final
	// product is not this bundle.
	ErrInToto = fmt.Errorf("in-toto verification failed%.0w", ErrVerification)
	// ErrInspections: the layout has inspections (they run commands) and
	// running them was not allowed.
	ErrInspections = fmt.Errorf("in-toto layout has inspections%.0w", ErrVerification)
	// ErrUnsigned: signatures were required and the bundle has none that
	// verified.
	ErrUnsigned = fmt.Errorf("bundle is not signed%.0w", ErrVerification)
	// ErrNameMismatch: verified evidence vouches for another name than the
	// one the content is published under (a Notary GUN or target that is
	// not the bundle's repository and tag; a cosign docker-reference whose
	// path or tag contradicts it, when that decides whether the bundle is
	// signed).
	ErrNameMismatch = fmt.Errorf("signed for another name%.0w", ErrVerification)
	// ErrRollback: trust data is older than trust data accepted before for
	// the same GUN (WithTrustState).
	ErrRollback = fmt.Errorf("trust data rollback%.0w", ErrVerification)
	// ErrNotFound: the Notary server has no trust data for the GUN or no
	// such target.
	ErrNotFound = errors.New("no trust data")
)

// Error says which piece of evidence failed and why. It unwraps to one of
// the sentinels above (and so to ErrVerification) and to the cause.
type Error struct {
	// Kind is the evidence: "notary", "in-toto", "cosign", "notation",
	// "referrer" or "bundle".
	Kind string
	// Artifact is the digest of the artifact manifest at fault, if any.
	Artifact digest.Digest
	// Subject is the digest of the manifest the artifact is about, if any.
	Subject digest.Digest
	// GUN, Role, Key and File narrow it down where they apply.
	GUN  string
	Role string
	Key  string
	File string
	// Err is the sentinel, wrapping the cause.
	Err error
}

// Error names the evidence and what narrows it down, then the cause.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind)
	add := func(k, v string) {
		if v != "" {
			b.WriteString(" ")
			b.WriteString(k)
			b.WriteString(" ")
			b.WriteString(v)
		}
	}
	add("artifact", string(e.Artifact))
	add("subject", string(e.Subject))
	add("GUN", e.GUN)
	add("role", e.Role)
	add("key", e.Key)
	add("file", e.File)
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the sentinel-wrapping cause.
func (e *Error) Unwrap() error { return e.Err }

// wrapf builds the cause of an Error: sentinel + message.
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
