package main

import (
	"errors"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// exitCode returns the exit code of an error from the library: the root
// class it belongs to (pkg/errdefs) decides. 2 for a malformed flag or
// option value (errdefs.ErrUsage); 3 for every refusal of content
// (errdefs.ErrVerification: integrity, signatures, trust, relocation;
// errdefs.ErrInvalidInput: malformed, unsafe or over a safety limit); 1
// for everything else (registries, servers, files). Usage wins over
// refusal: a bad flag is reported before any content is read.
// TestSentinelExitCodes walks every exported sentinel of pkg/ and
// internal/ and checks the code it ends in.
func exitCode(err error) int {
	switch {
	case errors.Is(err, errdefs.ErrUsage):
		return exitUsage
	case errors.Is(err, errdefs.ErrVerification), errors.Is(err, errdefs.ErrInvalidInput):
		return exitVerification
	}
	return exitFailure
}
