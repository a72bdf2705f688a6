package main

import (
	"errors"

	"github.com/cnab-airgap/cnab-airgap/internal/registry"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// sentinelExit is the exit code of an error wrapping a library sentinel.
type sentinelExit struct {
	name string // package.Name, as TestSentinelExitCodes finds it in the source
	err  error
	code int
}

// sentinelExits lists every exported Err* sentinel of the library
// packages the CLI calls, with the exit code it ends in: 3 for every
// refusal of content (integrity, safety limits, signatures, relocation), 2
// for a malformed flag value, 1 for the failures of registries, servers
// and files. TestSentinelExitCodes fails when a package gains a sentinel
// this table does not list, so none silently exits 1.
var sentinelExits = []sentinelExit{
	// pkg/layout: the archive reader's refusals of hostile or broken input.
	{"layout.ErrInvalidDigest", layout.ErrInvalidDigest, exitVerification},
	{"layout.ErrInvalidManifest", layout.ErrInvalidManifest, exitVerification},
	{"layout.ErrUnsafeEntry", layout.ErrUnsafeEntry, exitVerification},
	{"layout.ErrInvalidArchive", layout.ErrInvalidArchive, exitVerification},
	{"layout.ErrBlobNotFound", layout.ErrBlobNotFound, exitVerification},
	{"layout.ErrTooLarge", layout.ErrTooLarge, exitVerification},
	{"layout.ErrParts", layout.ErrParts, exitVerification},
	{"layout.ErrIncomplete", layout.ErrIncomplete, exitFailure}, // the writer's own failure
	{"layout.ErrInvalidSize", layout.ErrInvalidSize, exitUsage}, // a size flag's value
	// pkg/importer
	{"importer.ErrInvalidArchive", importer.ErrInvalidArchive, exitVerification},
	{"importer.ErrBundleMismatch", importer.ErrBundleMismatch, exitVerification},
	{"importer.ErrVerification", importer.ErrVerification, exitVerification},
	{"importer.ErrDeltaBaseMissing", importer.ErrDeltaBaseMissing, exitVerification}, // the archive is incomplete for this target
	{"importer.ErrSparseRefused", importer.ErrSparseRefused, exitFailure},            // the registry's refusal
	// pkg/export
	{"export.ErrDigestMismatch", export.ErrDigestMismatch, exitVerification},
	{"export.ErrMissingDigest", export.ErrMissingDigest, exitVerification}, // an image that cannot be pinned
	{"export.ErrNotBundle", export.ErrNotBundle, exitFailure},
	{"export.ErrInventory", export.ErrInventory, exitFailure},
	// pkg/relocate
	{"relocate.ErrInvalidBundle", relocate.ErrInvalidBundle, exitVerification},
	{"relocate.ErrInvalidMapping", relocate.ErrInvalidMapping, exitVerification},
	{"relocate.ErrNaming", relocate.ErrNaming, exitVerification}, // names refused as unsafe or over a limit
	{"relocate.ErrRelocation", relocate.ErrRelocation, exitVerification},
	// pkg/sigbundle: every verification failure wraps ErrVerification.
	{"sigbundle.ErrVerification", sigbundle.ErrVerification, exitVerification},
	{"sigbundle.ErrBinding", sigbundle.ErrBinding, exitVerification},
	{"sigbundle.ErrSignature", sigbundle.ErrSignature, exitVerification},
	{"sigbundle.ErrTrustData", sigbundle.ErrTrustData, exitVerification},
	{"sigbundle.ErrTrustAnchor", sigbundle.ErrTrustAnchor, exitVerification},
	{"sigbundle.ErrTargetMismatch", sigbundle.ErrTargetMismatch, exitVerification},
	{"sigbundle.ErrExpired", sigbundle.ErrExpired, exitVerification},
	{"sigbundle.ErrInToto", sigbundle.ErrInToto, exitVerification},
	{"sigbundle.ErrInspections", sigbundle.ErrInspections, exitVerification},
	{"sigbundle.ErrUnsigned", sigbundle.ErrUnsigned, exitVerification},
	{"sigbundle.ErrNameMismatch", sigbundle.ErrNameMismatch, exitVerification},
	{"sigbundle.ErrRollback", sigbundle.ErrRollback, exitVerification},
	{"sigbundle.ErrTrustStateFile", sigbundle.ErrTrustStateFile, exitFailure}, // the operator's file cannot be read or written
	{"sigbundle.ErrNotFound", sigbundle.ErrNotFound, exitFailure},
	{"sigbundle.ErrNotaryAuth", sigbundle.ErrNotaryAuth, exitFailure},
	// pkg/serve
	{"serve.ErrVerification", serve.ErrVerification, exitVerification},
	{"serve.ErrListen", serve.ErrListen, exitFailure},
	// internal/verify
	{"verify.ErrDigestMismatch", verify.ErrDigestMismatch, exitVerification},
	{"verify.ErrSizeMismatch", verify.ErrSizeMismatch, exitVerification},
	// internal/registry
	{"registry.ErrHostSyntax", registry.ErrHostSyntax, exitUsage},
	{"registry.ErrPlainHTTP", registry.ErrPlainHTTP, exitFailure},
	{"registry.ErrInsecureRealm", registry.ErrInsecureRealm, exitFailure},
}

// sentinelCode returns the exit code the sentinels err wraps call for:
// usage before verification before failure.
func sentinelCode(err error) int {
	code := exitFailure
	for _, s := range sentinelExits {
		if s.code == exitUsage && errors.Is(err, s.err) {
			return exitUsage
		}
		if s.code == exitVerification && errors.Is(err, s.err) {
			code = exitVerification
		}
	}
	return code
}

func isVerificationError(err error) bool { return sentinelCode(err) == exitVerification }
