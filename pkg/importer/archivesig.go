package importer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

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

// VerifyArchiveSignature checks the signature of the archive file b was
// loaded from: over its sha256 as `cosign sign-blob` signs it (for a split
// archive, the digest of the joined parts, checked when it was opened).
// The error wraps sigbundle.ErrSignature when the signature is missing or
// does not verify.
func (b *Bundle) VerifyArchiveSignature(ctx context.Context, k ArchiveKey) (*ArchiveSignature, error) {
	a := b.Archive
	sigFile := k.Signature
	if sigFile == "" {
		sigFile = a.Path() + sigbundle.SignatureSuffix
		if ps := a.Parts; ps != nil {
			sigFile = filepath.Join(filepath.Dir(a.Path()), ps.Archive+sigbundle.SignatureSuffix)
		}
	}
	d, err := a.FileDigest(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(sigFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("archive %s: %w: no signature file %s", a.Path(), sigbundle.ErrSignature, sigFile)
	}
	if err != nil {
		return nil, err
	}
	if len(raw) > 64<<10 {
		return nil, fmt.Errorf("archive %s: %w: %s is not a signature file (%d bytes)", a.Path(), sigbundle.ErrSignature, sigFile, len(raw))
	}
	if err := sigbundle.VerifyArchive(k.Key, d, raw); err != nil {
		return nil, fmt.Errorf("archive %s (%s): %w", a.Path(), sigFile, err)
	}
	return &ArchiveSignature{File: sigFile, Digest: d}, nil
}
