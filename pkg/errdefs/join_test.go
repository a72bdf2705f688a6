package errdefs_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// Thirteen blobs refused for one cause are reported once, with a count.
func TestJoinDistinct(t *testing.T) {
	t.Parallel()
	cause := errors.New("x509: certificate signed by unknown authority")
	var errs []error
	for i := range 13 {
		errs = append(errs, fmt.Errorf("blob sha256:%02d: %w", i, cause))
	}
	errs = append(errs, fmt.Errorf("blob sha256:ff: %w", errors.New("connection reset")))
	err := errdefs.JoinDistinct(errs)
	msg := err.Error()
	if strings.Count(msg, "unknown authority") != 1 || !strings.Contains(msg, "and 12 more with the same cause") || !strings.Contains(msg, "connection reset") {
		t.Fatalf("%s", msg)
	}
	if !errors.Is(err, cause) {
		t.Fatal("the cause is lost")
	}
}
