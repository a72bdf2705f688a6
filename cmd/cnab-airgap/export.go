package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
)

func exportCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "export bundles, the bundles they depend on and every image they reference into one archive",
		ArgsUsage: "[REGISTRY/REPO:TAG|REGISTRY/REPO@DIGEST ...]",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "archive", Aliases: []string{"o"}, Usage: "archive `PATH` to write (- for standard output)", Required: true},
			&cli.StringSliceFlag{Name: "bundle-file", Usage: "export a local thin bundle.json `FILE` (repeatable), instead of or beside bundle references"},
			&cli.BoolFlag{Name: "no-dependencies", Usage: "carry only the bundles named, not the bundles they declare as dependencies"},
			&cli.BoolFlag{Name: "allow-missing-digest", Usage: "resolve images without contentDigest by tag (recorded in the archive)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue an interrupted export, re-verifying what it keeps"},
			&cli.BoolFlag{Name: "dry-run", Usage: "resolve and plan, write nothing"},
			&cli.StringFlag{Name: "compression", Usage: "none, gzip or zstd (default: by the output name)"},
			&cli.StringFlag{Name: "format", Value: "oci", Usage: "oci (a tar whose root is an OCI image layout) or cnab-thick (CNAB-104 thick bundle, gzipped, read by duffle, cnab-go and Porter)"},
			&cli.StringSliceFlag{Name: "platform", Usage: "ship only these platforms of multi-platform images, `OS/ARCH[/VARIANT]` (repeatable or comma-separated); indexes stay byte for byte (sparse)"},
			&cli.StringFlag{Name: "base", Usage: "delta export: leave out the blobs the base `ARCHIVE` carries (already imported on the other side)"},
			&cli.StringFlag{Name: "base-inventory", Usage: "delta export: leave out the blobs listed in this inventory `FILE` (see cnab-airgap inventory)"},
			&cli.StringFlag{Name: "split-size", Usage: "cut the archive into volumes of `SIZE` (4GiB, 700MB, ...): NAME.000, NAME.001, ... and NAME.parts.json"},
		}, append(exportSigningFlags(), exportArchiveSigFlags()...)...), // signing.go, archivesig.go
		Action: func(c *cli.Context) error {
			// The first bundle named is the archive's primary bundle.
			req := export.Request{Output: c.String("archive"), Stdout: e.stdout,
				References: c.Args().Slice(), BundleFiles: c.StringSlice("bundle-file")}
			if len(req.References)+len(req.BundleFiles) == 0 {
				return usagef("export needs a bundle reference or --bundle-file")
			}
			asJSON, err := outputJSON(c)
			if err != nil {
				return err
			}
			if asJSON && req.Output == "-" {
				return usagef("--output json cannot share standard output with the archive (-o -)")
			}
			fit, err := fitOptions(c, req.Output) // format, platforms, delta, volumes (fit.go)
			if err != nil {
				return err
			}
			signing, err := exportSigningOptions(c, e) // referrers, cosign tags, Notary (signing.go)
			if err != nil {
				return err
			}
			signer, err := exportArchiveSigner(c) // --sign-key (archivesig.go)
			if err != nil {
				return err
			}
			signing = append(signing, signer...)
			host, _ := referenceRegistry(c.Args().First()) // the --username login goes to the first bundle's registry
			cl, err := client(c, e, host)
			if err != nil {
				return err
			}
			bars := newProgress(e.stderr, c.Bool("quiet"))
			defer bars.finish()
			res, err := export.Export(c.Context, req, append(append(fit, signing...),
				export.WithClient(cl),
				export.WithJobs(c.Int("jobs")),
				export.WithLogger(logger(c, e)),
				export.WithProgress(bars.event),
				export.WithAllowMissingDigest(c.Bool("allow-missing-digest")),
				export.WithResume(c.Bool("resume")),
				export.WithDryRun(c.Bool("dry-run")),
				export.WithCompression(c.String("compression")),
				export.WithDependencies(!c.Bool("no-dependencies")),
			)...)
			bars.finish()
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, res)
			}
			if c.Bool("quiet") || req.Output == "-" {
				return nil
			}
			return printExport(e, res)
		},
	}
}

func printExport(e *env, r *export.Result) error {
	w := e.stdout
	fmt.Fprintf(w, "bundle      %s %s\n", r.Bundle, r.Version)
	fmt.Fprintf(w, "bundle.json %s\n", r.BundleDigest)
	if r.IndexDigest != "" {
		fmt.Fprintf(w, "index       %s\n", r.IndexDigest)
	}
	for _, img := range r.Images {
		plat := ""
		if len(img.Platforms) > 0 {
			plat = fmt.Sprintf(" [%s]", joinComma(img.Platforms))
		}
		fmt.Fprintf(w, "  %-10s %-12s %s@%s%s %s\n", img.Role, img.Name, img.Reference, shortDigest(img.Digest), plat, humanBytes(img.Bytes))
	}
	printBundles(w, r.Bundles)
	for _, warn := range r.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", warn)
	}
	if r.DryRun {
		fmt.Fprintf(w, "plan        %d manifests, %d blobs, %s unique, archive would be %s\n", r.Manifests, r.Blobs, humanBytes(r.BlobBytes), humanBytes(r.ArchiveBytes))
		return nil
	}
	fmt.Fprintf(w, "archive     %s (%s, %s)\n", r.Archive, humanBytes(r.ArchiveBytes), r.ArchiveDigest)
	printFit(w, r)                         // format, sparse images, delta base, volumes (fit.go)
	printExportSignatures(w, r.Signatures) // signing.go
	fmt.Fprintf(w, "content     %d manifests, %d blobs (%d streamed from their sources), %s unique, %s fetched, %s resumed\n", r.Manifests, r.Blobs, r.StreamedBlobs, humanBytes(r.BlobBytes), humanBytes(r.FetchedBytes), humanBytes(r.ResumedBytes))
	if r.ChecksumFile != "" {
		fmt.Fprintf(w, "checksum    %s\n", r.ChecksumFile)
	}
	if r.SignatureFile != "" {
		fmt.Fprintf(w, "signature   %s (check: cnab-airgap verify --archive-key KEY.pub, or cosign verify-blob)\n", r.SignatureFile)
	}
	fmt.Fprintf(w, "took        %s\n", r.Duration.Round(1e6))
	return nil
}

// printBundles lists the bundles of an archive of several, each with the
// bundles it depends on.
func printBundles(w io.Writer, bs []archive.BundleSummary) {
	if len(bs) == 0 {
		return
	}
	fmt.Fprintf(w, "bundles     %d in one archive, each blob stored once\n", len(bs))
	for _, b := range bs {
		how := "asked for"
		if !b.Requested {
			how = "dependency"
		}
		fmt.Fprintf(w, "  %s %s  %s  index %s, %d images (%s)\n", b.Bundle, b.Version, orDash(b.Reference), shortDigest(b.IndexDigest), len(b.Images), how)
		for _, d := range b.Dependencies {
			fmt.Fprintf(w, "    depends on %s: %s@%s\n", d.Alias, d.Reference, shortDigest(d.IndexDigest))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
