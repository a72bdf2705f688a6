package importer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"

	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// ArchiveKey asks Import to check the archive's own signature (export
// --sign-key, or `cosign sign-blob`) before anything else.
type ArchiveKey struct {
	// Key is the signer's public key (ECDSA or RSA).
	Key crypto.PublicKey
	// Signature is the signature file; "" means the archive's path plus
	// ".sig" (for a split archive: the unsplit archive's name plus ".sig",
	// beside its parts file).
	Signature string
}

// WithArchiveKey checks the archive file's signature with k before the
// import reads anything else; a missing or wrong signature stops it. The
// default checks none.
func WithArchiveKey(k ArchiveKey) Option {
	return func(o *options) error {
		if k.Key == nil {
			return errors.New("import: archive key without a key")
		}
		o.archiveKey = &k
		return nil
	}
}

// ArchiveSignature is the result of an archive signature check.
type ArchiveSignature struct {
	// File is the signature file checked; Digest the archive's sha256.
	File   string        `json:"file"`
	Digest digest.Digest `json:"digest"`
}

// CheckOnOpen returns oo with a layout.OpenOptions.Verify hook that checks
// the signature of the archive at path over the very bytes Open then
// parses: the sha256 is computed through the file handle that is read
// afterwards (for a split archive, the digest of the joined parts, over
// the part handles), before anything is decompressed or parsed, so a file
// swapped during the run, or a decompression bomb with a bogus signature,
// is refused before it costs anything. The signature file is read first:
// k.Signature, or the archive's path plus ".sig" (for a split archive, the
// unsplit archive's name plus ".sig", beside its parts file). The returned
// ArchiveSignature is filled in when the hook has verified. The error
// wraps sigbundle.ErrSignature when the signature is missing or does not
// verify.
func (k ArchiveKey) CheckOnOpen(path string, oo layout.OpenOptions) (layout.OpenOptions, *ArchiveSignature, error) {
	sigFile := k.Signature
	if sigFile == "" {
		sigFile = path + sigbundle.SignatureSuffix
		pf, err := layout.PartsFileFor(path)
		if err != nil {
			return oo, nil, err
		}
		if pf != "" {
			ps, err := layout.ReadParts(pf)
			if err != nil {
				return oo, nil, err
			}
			sigFile = filepath.Join(filepath.Dir(pf), ps.Archive+sigbundle.SignatureSuffix)
		}
	}
	raw, err := readSignatureFile(sigFile)
	if err != nil {
		return oo, nil, fmt.Errorf("archive %s: %w", path, err)
	}
	as := &ArchiveSignature{File: sigFile}
	prev := oo.Verify
	oo.Verify = func(ctx context.Context, d digest.Digest) error {
		if err := sigbundle.VerifyArchive(k.Key, d, raw); err != nil {
			return fmt.Errorf("%s: %w", sigFile, err)
		}
		as.Digest = d
		if prev != nil {
			return prev(ctx, d)
		}
		return nil
	}
	return oo, as, nil
}

// readSignatureFile reads a signature file of at most 64 KiB.
func readSignatureFile(sigFile string) ([]byte, error) {
	f, err := os.Open(sigFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no signature file %s", sigbundle.ErrSignature, sigFile)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > 64<<10 {
		return nil, fmt.Errorf("%w: %s is not a signature file (more than 64 KiB)", sigbundle.ErrSignature, sigFile)
	}
	return raw, nil
}
