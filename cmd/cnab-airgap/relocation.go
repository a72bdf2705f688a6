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

// auditRelocation runs the relocation audit when --target is given. It
// returns nil, nil without --target.
func auditRelocation(c *cli.Context, e *env, b *importer.Bundle, bars *bars) (*relocate.AuditReport, error) {
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
	mapping, err := relocate.ReadMapping(m)
	if err != nil {
		return nil, err
	}
	cl, err := client(c, e, target.Registry)
	if err != nil {
		return nil, err
	}
	// The archive knows the digest of every image, including those whose
	// contentDigest was resolved at export.
	var images []relocate.Image
	for _, img := range b.Bundle.Images {
		for _, carried := range b.Images {
			if carried.Ref == img.Ref && img.ContentDigest == "" {
				img.ContentDigest = carried.Desc.Digest
			}
		}
		images = append(images, img)
	}
	req := relocate.AuditRequest{Images: images, Mapping: mapping, Target: target}
	if names, err := relocate.PlanNames(target, naming, b.RepoPath, images, relocate.Limits{}); err == nil {
		req.Bundle = &relocate.AuditBundle{Repository: names.BundleRepo, Tag: b.Tag, Digest: b.Index.Digest}
	}
	return relocate.Audit(c.Context, req,
		relocate.WithAuditClient(cl),
		relocate.WithAuditJobs(c.Int("jobs")),
		relocate.WithAuditLogger(logger(c, e)),
		relocate.WithAuditProgress(bars.event),
	)
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
	fmt.Fprintf(w, "relocation  %s at %s: %d manifests, %d blobs (%s) checked\n", state, r.Target, r.Manifests, r.Blobs, humanBytes(r.Bytes))
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
