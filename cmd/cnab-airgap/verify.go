package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/opencontainers/go-digest"
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
}

func verifyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check an archive offline: every entry's digest, the graph closed, bundle.json matched by its images",
		ArgsUsage: "ARCHIVE",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("verify takes one archive")
			}
			asJSON, err := outputJSON(c)
			if err != nil {
				return err
			}
			b, err := importer.Load(c.Context, c.Args().First(), layout.OpenOptions{})
			if err != nil {
				return err
			}
			defer b.Close()
			bars := newProgress(e.stderr, c.Bool("quiet"))
			var total int64
			for _, s := range b.Blobs {
				total += s
			}
			bars.total("verify", total)
			err = b.VerifyBlobs(c.Context, func(_ digest.Digest, n int64) { bars.add("verify", n) })
			bars.finish()
			if err != nil {
				return err
			}
			r := verifyResult{Archive: c.Args().First(), Bundle: b.Bundle.Name, Version: b.Bundle.Version, BundleDigest: b.BundleDigest.String(),
				IndexDigest: b.Index.Digest.String(), Images: len(b.Images), Manifests: len(b.Nodes), Blobs: len(b.Blobs), Bytes: total, OK: true, Warnings: b.Warnings}
			if asJSON {
				return writeJSON(e.stdout, r)
			}
			if !c.Bool("quiet") {
				fmt.Fprintf(e.stdout, "ok: %s %s: %d images, %d manifests, %d blobs (%s) verified\n", r.Bundle, r.Version, r.Images, r.Manifests, r.Blobs, humanBytes(r.Bytes))
			}
			return nil
		},
	}
}

func versionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and commit",
		Action: func(c *cli.Context) error {
			asJSON, err := outputJSON(c)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(e.stdout, map[string]string{"version": version(), "commit": commit()})
			}
			fmt.Fprintf(e.stdout, "cnab-airgap %s (commit %s)\n", version(), commit())
			return nil
		},
	}
}
