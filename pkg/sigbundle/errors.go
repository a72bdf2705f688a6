package sigbundle

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// ErrVerification is the general sentinel every verification failure of
// this package wraps: errors.Is(err, ErrVerification) tells a refused
// signature from an I/O problem.
var ErrVerification = errdefs.New("signature verification failed", errdefs.ErrVerification)

// Specific sentinels. Each also matches ErrVerification.
var (
	// ErrBinding: an artifact is not bound to a manifest the bundle carries
	// (subject, cosign docker-manifest-digest, notation targetArtifact or an
	// in-toto statement subject names something else).
	ErrBinding = errdefs.New("artifact is not bound to its subject", ErrVerification)
	// ErrSignature: a signature does not verify with the keys given.
	ErrSignature = errdefs.New("signature does not verify", ErrVerification)
	// ErrTrustData: Notary v1 trust data is malformed, inconsistent or
	// not signed as its root requires.
	ErrTrustData = errdefs.New("invalid trust data", ErrVerification)
	// ErrTrustAnchor: no pin, CA or TOFU decision covers the trust data's
	// GUN, or the root does not match the pin.
	ErrTrustAnchor = errdefs.New("trust anchor", ErrVerification)
	// ErrTargetMismatch: the signed target's hash or length is not that of
	// the carried bundle.json (or image manifest).
	ErrTargetMismatch = errdefs.New("signed target does not match the carried content", ErrVerification)
	// ErrExpired: the root, targets or a delegation role has expired.
	ErrExpired = errdefs.New("trust data expired", ErrVerification)
	// ErrInToto: the in-toto layout or links do not verify, or the final
	// product is not this bundle.
	ErrInToto = errdefs.New("in-toto verification failed", ErrVerification)
	// ErrInspections: the layout has inspections (they run commands) and
	// running them was not allowed.
	ErrInspections = errdefs.New("in-toto layout has inspections", ErrVerification)
	// ErrUnsigned: signatures were required and the bundle has none that
	// verified.
	ErrUnsigned = errdefs.New("bundle is not signed", ErrVerification)
	// ErrNameMismatch: verified evidence vouches for another name than the
	// one the content is published under (a Notary GUN or target that is
	// not the bundle's repository and tag; a cosign docker-reference whose
	// path or tag contradicts it, when that decides whether the bundle is
	// signed).
	ErrNameMismatch = errdefs.New("signed for another name", ErrVerification)
	// ErrRollback: trust data is older than trust data accepted before for
	// the same GUN (WithTrustState).
	ErrRollback = errdefs.New("trust data rollback", ErrVerification)
	// ErrNotFound: the Notary server has no trust data for the GUN or no
	// such target.
	ErrNotFound = errdefs.New("no trust data", errdefs.ErrNotFound)
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
