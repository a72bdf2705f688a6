package errdefs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

func TestSentinelMatchesItsClassesOnly(t *testing.T) {
	t.Parallel()
	parent := errdefs.New("signature verification failed", errdefs.ErrVerification)
	child := errdefs.New("trust anchor", parent)
	both := errdefs.New("blob not in archive", errdefs.ErrNotFound, errdefs.ErrInvalidInput)

	err := fmt.Errorf("bundle x: %w", fmt.Errorf("%w: no pin for GUN y", child))
	if got, want := err.Error(), "bundle x: trust anchor: no pin for GUN y"; got != want {
		t.Errorf("message %q, want %q (the classes are not repeated)", got, want)
	}
	for _, target := range []error{child, parent, errdefs.ErrVerification} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(err, %v) = false", target)
		}
	}
	for _, target := range []error{errdefs.ErrInvalidInput, errdefs.ErrUsage, errdefs.ErrNotFound, errdefs.ErrUnavailable, both} {
		if errors.Is(err, target) {
			t.Errorf("errors.Is(err, %v) = true", target)
		}
	}
	if !errors.Is(both, errdefs.ErrNotFound) || !errors.Is(both, errdefs.ErrInvalidInput) {
		t.Error("a sentinel of two classes matches both")
	}
	if errors.Is(errdefs.New("same message", errdefs.ErrUsage), errdefs.New("same message", errdefs.ErrUsage)) {
		t.Error("two sentinels with one message are distinct")
	}
}

func TestClassOrder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want error
	}{
		{errdefs.New("x", errdefs.ErrNotFound, errdefs.ErrInvalidInput), errdefs.ErrInvalidInput},
		{errdefs.New("x", errdefs.ErrUnavailable), errdefs.ErrUnavailable},
		{errors.Join(errdefs.ErrDigestMismatch, errdefs.New("flag", errdefs.ErrUsage)), errdefs.ErrUsage},
		{fmt.Errorf("wrapped: %w", errdefs.ErrSizeMismatch), errdefs.ErrVerification},
		{errors.New("plain"), nil},
		{nil, nil},
	}
	for _, c := range cases {
		if got := errdefs.Class(c.err); got != c.want {
			t.Errorf("Class(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Classify an error from any package of this module by its root class.
func ExampleClass() {
	err := fmt.Errorf("blob sha256:ab: %w", errdefs.ErrDigestMismatch)
	switch errdefs.Class(err) {
	case errdefs.ErrVerification, errdefs.ErrInvalidInput:
		fmt.Println("refused:", err)
	case errdefs.ErrUsage:
		fmt.Println("bad option:", err)
	default:
		fmt.Println("failed:", err)
	}
	// Output: refused: blob sha256:ab: digest mismatch
}
