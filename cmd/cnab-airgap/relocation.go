package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// verifyRelocationFlags are the flags of `verify ARCHIVE --target R/P
// --mapping FILE`, the relocation audit.
func verifyRelocationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "also audit the relocation at `REGISTRY[/PREFIX]`: every mapped reference resolves to its contentDigest with every blob present (needs --mapping)"},
		&cli.StringFlag{Name: "mapping", Aliases: []string{"m"}, Usage: "the relocation-mapping.json `FILE` the import wrote (with --target)"},
		&cli.StringFlag{Name: "naming", Value: string(relocate.NamingBundleRepo), Usage: "the `NAMING` the import used, to find the bundle's own index at the target: bundle-repo, preserve or flatten"},
	}
}

// relocationAuditOptions checks --target, --mapping and --naming and, when
// an audit is asked for, sets them on req and returns the options the
// audit needs (the registry client for the target, the naming).
func relocationAuditOptions(c *cli.Context, e *env, req *importer.VerifyRequest) ([]importer.Option, error) {
	t, m := c.String("target"), c.String("mapping")
	if t == "" && m == "" {
		return nil, nil
	}
	if t == "" || m == "" {
		return nil, usagef("the relocation audit needs both --target and --mapping")
	}
	target, err := relocate.ParseTarget(t)
	if err != nil {
		return nil, usagef("--target: %v", err)
	}
	naming, err := relocate.ParseNaming(c.String("naming"))
	if err != nil {
		return nil, usagef("--naming: %v", err)
	}
	cl, err := client(c, e, target.Registry)
	if err != nil {
		return nil, err
	}
	req.Target, req.Mapping = t, m
	return []importer.Option{importer.WithClient(cl), importer.WithNaming(naming)}, nil
}

// printAudit prints the relocation audit, one line per image.
func printAudit(w io.Writer, r *relocate.AuditReport) {
	if r == nil {
		return
	}
	state := "ok"
	if !r.OK {
		state = "FAILED"
	}
	fmt.Fprintf(w, "relocation  %s at %s: %d manifests, %d blobs (%s) of the bundle and its images checked (signing artifacts: see signing)\n", state, r.Target, r.Manifests, r.Blobs, humanBytes(r.Bytes))
	if r.Bundle != "" {
		fmt.Fprintf(w, "  bundle     %s\n", r.Bundle)
	}
	for _, img := range r.Images {
		mark := "ok"
		if !img.OK {
			mark = "FAILED"
		}
		fmt.Fprintf(w, "  %-6s %s\n         -> %s\n", mark, img.Reference, img.Relocated)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}

// reportedError is a failure whose details were already written to
// standard output (a JSON document with "ok": false, say); run prints
// only its message to standard error.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }
