package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

type verifyResult struct {
	Archive      string   `json:"archive"`
	Bundle       string   `json:"bundle"`
	Version      string   `json:"version"`
	BundleDigest string   `json:"bundleDigest"`
	IndexDigest  string   `json:"indexDigest"`
	Images       int      `json:"images"`
	Manifests    int      `json:"manifests"`
	Blobs        int      `json:"blobs"`
	Bytes        int64    `json:"bytes"`
	OK           bool     `json:"ok"`
	Warnings     []string `json:"warnings,omitempty"`
	// Signatures is the offline verification of the signing evidence (signing.go).
	Signatures *sigbundle.Report `json:"signatures,omitempty"`
	// ArchiveSignature is the archive signature checked (--archive-key).
	ArchiveSignature *importer.ArchiveSignature `json:"archiveSignature,omitempty"`
	// Relocation is the audit of an import at --target (relocation.go).
	Relocation *relocate.AuditReport `json:"relocation,omitempty"`
}

func verifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check an archive offline: every entry's digest, the graph closed, bundle.json matched by its images",
		ArgsUsage: "ARCHIVE",
		Flags:     append(append(verifyCommandFlags(), verifyRelocationFlags()...), archiveOptsFlags()...), // signing flags and --reference (signing.go), --target and --mapping (relocation.go), archiveopts.go
		Action: func(c *cli.Context) error {
			if c.String("reference") != "" { // a bundle at a registry (signing.go)
				return verifyReference(c, e)
			}
			if c.NArg() != 1 {
				return usagef("verify takes one archive")
			}
			if c.Bool("no-signatures") {
				if err := noSignaturesConflicts(c); err != nil {
					return err
				}
			}
			if t := c.String("target"); t != "" {
				if _, err := targetRegistry("target", t); err != nil { // before the archive is opened (args.go)
					return err
				}
			}
			asJSON, err := outputJSON(c)
			if err != nil {
				return err
			}
			ak, err := archiveKey(c) // --archive-key (archivesig.go)
			if err != nil {
				return err
			}
			// --tmp-dir, --max-archive-size; the archive key checked over
			// the bytes parsed, before anything else (archiveopts.go).
			b, as, err := loadArchive(c, ak)
			if err != nil {
				return err
			}
			defer b.Close()
			bars := newProgress(e.stderr, c.Bool("quiet"))
			var total int64
			for _, s := range b.Blobs {
				total += s
			}
			bars.total("verify", total, len(b.Blobs))
			err = b.VerifyBlobs(c.Context, func(d digest.Digest, n int64) { bars.add("verify", d.String(), n) })
			if err != nil {
				bars.finish()
				return err
			}
			rel, relErr := auditRelocation(c, e, b, bars) // --target, --mapping (relocation.go)
			bars.finish()
			if relErr != nil && rel == nil {
				return relErr
			}
			sig, err := verifyArchiveSignatures(c, e, b) // signing.go
			if err != nil {
				return err
			}
			r := verifyResult{Signatures: sig, Archive: c.Args().First(), Bundle: b.Bundle.Name, Version: b.Bundle.Version, BundleDigest: b.BundleDigest.String(),
				IndexDigest: b.Index.Digest.String(), Images: len(b.Images), Manifests: len(b.Nodes), Blobs: len(b.Blobs), Bytes: total, OK: true, Warnings: b.Warnings}
			r.Relocation, r.OK, r.ArchiveSignature = rel, relErr == nil, as
			if asJSON {
				if err := writeJSON(e.stdout, r); err != nil {
					return err
				}
				if relErr != nil {
					return reportedError{relErr}
				}
				return nil
			}
			if relErr != nil {
				printAudit(e.stdout, rel)
				return relErr
			}
			if !c.Bool("quiet") {
				fmt.Fprintf(e.stdout, "ok: %s %s: %d images, %d manifests, %d blobs (%s) verified\n", r.Bundle, r.Version, r.Images, r.Manifests, r.Blobs, humanBytes(r.Bytes))
				if a := r.ArchiveSignature; a != nil {
					fmt.Fprintf(e.stdout, "archive     signature %s verified over %s\n", a.File, a.Digest)
				}
				printSigningReport(e.stdout, r.Signatures)
				printAudit(e.stdout, r.Relocation)
			}
			return nil
		},
	}
}
