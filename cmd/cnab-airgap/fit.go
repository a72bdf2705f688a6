package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// fitOptions turns the export flags that fit an archive to an air gap
// (--format, --platform, --base, --base-inventory, --split-size) into
// options.
func fitOptions(c *cli.Context, output string) ([]export.Option, error) {
	format, err := layout.ParseFormat(c.String("format"))
	if err != nil {
		return nil, usagef("--format: %v", err)
	}
	if c.String("base") != "" && c.String("base-inventory") != "" {
		return nil, usagef("give --base or --base-inventory, not both")
	}
	var split int64
	if s := c.String("split-size"); s != "" {
		if split, err = layout.ParseSize(s); err != nil {
			return nil, usagef("--split-size: %v", err)
		}
		if output == "-" {
			return nil, usagef("--split-size needs a file output, not standard output")
		}
		if split < layout.MinPartSize {
			return nil, usagef("--split-size: %s is smaller than 1MiB", s)
		}
	}
	opts := []export.Option{
		export.WithFormat(format),
		export.WithPlatforms(c.StringSlice("platform")...),
		export.WithSplitSize(split),
	}
	if b := c.String("base"); b != "" {
		opts = append(opts, export.WithBase(b))
	}
	if b := c.String("base-inventory"); b != "" {
		opts = append(opts, export.WithBaseInventory(b))
	}
	return opts, nil
}

// printFit prints what fitting the archive did: its format, the images
// shipped with a sparse index, the delta base, the volumes.
func printFit(w io.Writer, r *export.Result) {
	if r.Format != "" && r.Format != layout.FormatOCI {
		fmt.Fprintf(w, "format      %s\n", r.Format)
	}
	for _, s := range r.Sparse {
		fmt.Fprintf(w, "sparse      %s: index %s without %s\n", s.Image, shortDigest(s.Index), strings.Join(s.Absent, ", "))
	}
	if r.Base != nil {
		fmt.Fprintf(w, "delta       against %s (%s): %d blobs (%s) left out\n", r.Base.Name, shortDigest(r.Base.Digest), r.Base.OmittedBlobs, humanBytes(r.Base.OmittedBytes))
	}
	if r.Parts != nil {
		fmt.Fprintf(w, "volumes     %d of %s:", len(r.Parts.Parts), humanBytes(r.Parts.PartSize))
		for _, p := range r.Parts.Parts {
			fmt.Fprintf(w, " %s", p.Name)
		}
		fmt.Fprintln(w)
	}
}
