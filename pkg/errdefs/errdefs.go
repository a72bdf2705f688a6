// Package errdefs holds the root classes every error of cnab-airgap's
// library belongs to. Each package declares its own sentinels (so a caller
// can tell, say, a tampered blob from an unsafe tar entry), and each of
// them wraps one or more of the roots here, so a caller that only needs to
// know what kind of failure it was asks errors.Is(err, errdefs.ErrX).
//
// The command-line tool maps the roots to its exit codes: ErrUsage is 2,
// ErrVerification and ErrInvalidInput are 3, everything else is 1.
package errdefs

import "errors"

// The root classes.
var (
	// ErrVerification: content was refused because it is not what it was
	// said to be: a digest or size that does not match, a signature that
	// does not verify, trust data that is not valid for the name or the
	// content, a relocation that does not round-trip.
	ErrVerification = errors.New("verification failed")
	// ErrInvalidInput: content was refused because it is malformed, unsafe
	// or larger than a safety limit: an archive, a manifest, a bundle.json,
	// a relocation mapping, a name.
	ErrInvalidInput = errors.New("invalid input")
	// ErrNotFound: something the operation needs does not exist where it
	// was looked for (a blob in an archive, trust data at a server).
	ErrNotFound = errors.New("not found")
	// ErrUsage: the caller asked for something malformed or contradictory:
	// an option or flag value, a combination of options.
	ErrUsage = errors.New("invalid usage")
	// ErrUnavailable: a system the operation depends on failed or refused
	// it: a registry, a signing server, a listener, the local file system.
	ErrUnavailable = errors.New("unavailable")
)

// Integrity sentinels shared by every package that streams content.
var (
	// ErrDigestMismatch: content does not hash to the digest that names it.
	ErrDigestMismatch = New("digest mismatch", ErrVerification)
	// ErrSizeMismatch: content is not the size its descriptor declares.
	ErrSizeMismatch = New("size mismatch", ErrVerification)
)

// New returns a sentinel error whose message is msg and which matches each
// of classes (roots of this package, or other sentinels) under errors.Is.
// Its message does not repeat the classes: "%w: detail" around it reads as
// msg: detail.
func New(msg string, classes ...error) error {
	return &sentinel{msg: msg, classes: classes}
}

type sentinel struct {
	msg     string
	classes []error
}

func (s *sentinel) Error() string   { return s.msg }
func (s *sentinel) Unwrap() []error { return s.classes }

// Roots lists the root classes, most significant first: the order Class
// decides in.
var Roots = []error{ErrUsage, ErrVerification, ErrInvalidInput, ErrNotFound, ErrUnavailable}

// Class returns the most significant root class err belongs to (in the
// order of Roots), or nil when it belongs to none.
func Class(err error) error {
	for _, r := range Roots {
		if errors.Is(err, r) {
			return r
		}
	}
	return nil
}
