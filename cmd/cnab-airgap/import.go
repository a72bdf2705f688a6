package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

func importCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "verify an archive and push it into a registry, writing relocation-mapping.json",
		ArgsUsage: "ARCHIVE",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "`REGISTRY[/PREFIX]` to import into", Required: true},
			&cli.StringFlag{Name: "mapping", Aliases: []string{"m"}, Value: relocate.MappingFile, Usage: "where to write the relocation mapping (`PATH`)"},
			&cli.StringFlag{Name: "naming", Value: string(relocate.NamingBundleRepo), Usage: "target names: bundle-repo, preserve or flatten"},
			&cli.IntFlag{Name: "max-path-segments", Usage: "refuse names with more path segments than this (0: no limit)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "show the plan and what would be uploaded; push nothing"},
		}, append(append(importSigningFlags(), archiveKeyFlags()...), archiveOptsFlags()...)...), // signing.go, archivesig.go, archiveopts.go
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("import takes one archive")
			}
			host, err := targetRegistry("target", c.String("target")) // before the archive is opened (args.go)
			if err != nil {
				return err
			}
			asJSON, err := outputJSON(c)
			if err != nil {
				return err
			}
			naming, err := relocate.ParseNaming(c.String("naming"))
			if err != nil {
				return usagef("%v", err)
			}
			signing, err := importSigningOptions(c, e) // verification, re-publication, re-signing (signing.go)
			if err != nil {
				return err
			}
			ak, err := archiveKey(c) // --archive-key (archivesig.go)
			if err != nil {
				return err
			}
			if ak != nil {
				signing = append(signing, importer.WithArchiveKey(*ak))
			}
			oo, err := openOptions(c) // --tmp-dir, --max-archive-size (archiveopts.go)
			if err != nil {
				return err
			}
			signing = append(signing, importer.WithOpenOptions(oo))
			cl, err := client(c, e, host)
			if err != nil {
				return err
			}
			bars := newProgress(e.stderr, c.Bool("quiet"))
			defer bars.finish()
			res, err := importer.Import(c.Context, importer.Request{Archive: c.Args().First(), Target: c.String("target"), MappingPath: c.String("mapping")}, append([]importer.Option{
				importer.WithClient(cl),
				importer.WithJobs(c.Int("jobs")),
				importer.WithLogger(logger(c, e)),
				importer.WithProgress(bars.event),
				importer.WithNaming(naming),
				importer.WithNameLimits(relocate.Limits{MaxPathSegments: c.Int("max-path-segments")}),
				importer.WithDryRun(c.Bool("dry-run")),
			}, signing...)...)
			bars.finish()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, res)
			}
			if c.Bool("quiet") {
				return nil
			}
			return printImport(e, res)
		},
	}
}

func printImport(e *env, r *importer.Result) error {
	w := e.stdout
	fmt.Fprintf(w, "bundle      %s %s\n", r.Bundle, r.Version)
	fmt.Fprintf(w, "bundle.json %s\n", r.BundleDigest)
	if a := r.ArchiveSignature; a != nil {
		fmt.Fprintf(w, "archive     signature %s verified over %s\n", a.File, a.Digest)
	}
	fmt.Fprintf(w, "pushed to   %s@%s\n", r.BundleReference, shortDigest(r.IndexDigest))
	for _, img := range r.Images {
		fmt.Fprintf(w, "  %s\n    -> %s\n", img.Reference, img.Relocated)
	}
	if len(r.Bundles) > 0 {
		fmt.Fprintf(w, "bundles     %d, each after the bundles it depends on\n", len(r.Bundles))
		for _, b := range r.Bundles {
			fmt.Fprintf(w, "  %s %s -> %s@%s, %d images, mapping %s\n", b.Bundle, b.Version, b.BundleReference, shortDigest(b.IndexDigest), len(b.Images), orDash(b.MappingFile))
			for _, d := range b.Dependencies {
				fmt.Fprintf(w, "    depends on %s: %s -> %s\n", d.Alias, d.Reference, d.Relocated)
			}
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", warn)
	}
	verb := "uploaded"
	if r.DryRun {
		verb = "would upload"
	}
	fmt.Fprintf(w, "blobs       %s %d (%s), skipped %d (%s), mounted %d\n", verb, r.BlobsUploaded, humanBytes(r.BytesUploaded), r.BlobsSkipped, humanBytes(r.BytesSkipped), r.BlobsMounted)
	if !r.DryRun {
		fmt.Fprintf(w, "manifests   pushed %d, already present %d\n", r.ManifestsPushed, r.ManifestsSkipped)
		fmt.Fprintf(w, "mapping     %s\n", r.MappingFile)
	}
	printImportSignatures(w, r.Signatures) // signing.go
	fmt.Fprintf(w, "took        %s\n", r.Duration.Round(1e6))
	return nil
}
