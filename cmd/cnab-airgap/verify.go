package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
)

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
			oo, err := openOptions(c) // --tmp-dir, --max-archive-size (archiveopts.go)
			if err != nil {
				return err
			}
			bars := newProgress(e.stderr, c.Bool("quiet"))
			opts := []importer.Option{importer.WithOpenOptions(oo), importer.WithJobs(c.Int("jobs")),
				importer.WithLogger(logger(c, e)), importer.WithProgress(bars.event)}
			if ak != nil {
				opts = append(opts, importer.WithArchiveKey(*ak)) // checked over the bytes parsed, before anything else
			}
			req := importer.VerifyRequest{Archive: c.Args().First()}
			audit, err := relocationAuditOptions(c, e, &req) // --target, --mapping, --naming (relocation.go)
			if err != nil {
				return err
			}
			opts = append(opts, audit...)
			if c.Bool("no-signatures") {
				opts = append(opts, importer.WithSignatures(false))
			} else {
				so, err := verifyOptions(c, e) // signing.go
				if err != nil {
					return err
				}
				opts = append(opts, importer.WithSigningOptions(so...))
			}
			r, err := importer.Verify(c.Context, req, opts...)
			bars.finish()
			if r == nil {
				return err
			}
			relErr := err
			if !c.Bool("quiet") {
				if c.Bool("no-signatures") && r.SigningArtifacts > 0 {
					fmt.Fprintf(e.stderr, "warning: %d signing artifacts not verified (--no-signatures)\n", r.SigningArtifacts)
				}
				if r.Signatures != nil {
					for _, w := range r.Signatures.Warnings {
						fmt.Fprintf(e.stderr, "warning: %s\n", w)
					}
				}
			}
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
				printAudits(e.stdout, r)
				return relErr
			}
			if !c.Bool("quiet") {
				fmt.Fprintf(e.stdout, "ok: %s %s: %d images, %d manifests, %d blobs (%s) verified\n", r.Bundle, r.Version, r.Images, r.Manifests, r.Blobs, humanBytes(r.Bytes))
				if a := r.ArchiveSignature; a != nil {
					fmt.Fprintf(e.stdout, "archive     signature %s verified over %s\n", a.File, a.Digest)
				}
				if len(r.Bundles) == 0 {
					printSigningReport(e.stdout, r.Signatures)
				}
				for _, vb := range r.Bundles {
					fmt.Fprintf(e.stdout, "bundle      %s %s (%s): %d images verified\n", vb.Bundle, vb.Version, shortDigest(vb.IndexDigest), len(vb.Images))
					printSigningReport(e.stdout, vb.Signatures)
				}
				printAudits(e.stdout, r)
			}
			return nil
		},
	}
}

// printAudits prints the relocation audit of each bundle.
func printAudits(w io.Writer, r *importer.VerifyReport) {
	if len(r.Bundles) == 0 {
		printAudit(w, r.Relocation)
		return
	}
	for _, vb := range r.Bundles {
		if vb.Relocation != nil {
			fmt.Fprintf(w, "bundle      %s %s at the target:\n", vb.Bundle, vb.Version)
			printAudit(w, vb.Relocation)
		}
	}
}
