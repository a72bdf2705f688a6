package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Reading an archive: where a compressed archive is decompressed and how
// large it may be (layout.OpenOptions), for import, verify, inspect and
// serve.

// defaultMaxArchiveSize spells layout.DefaultLimits.MaxArchiveBytes.
const defaultMaxArchiveSize = "1TiB"

func archiveOptsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "tmp-dir", Usage: "decompress a compressed archive (or join a split one of many parts) under `DIR`, whose free space is checked first (default: $TMPDIR or /tmp)"},
		&cli.StringFlag{Name: "max-archive-size", Value: defaultMaxArchiveSize, Usage: "refuse an archive larger than `SIZE` once decompressed (e.g. 500GiB, 2TB; units B, KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB, PB)"},
	}
}

// openOptions reads --tmp-dir and --max-archive-size.
func openOptions(c *cli.Context) (layout.OpenOptions, error) {
	var oo layout.OpenOptions
	if dir := c.String("tmp-dir"); dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return oo, usagef("--tmp-dir %s: %v", dir, err)
		}
		if !st.IsDir() {
			return oo, usagef("--tmp-dir %s is not a directory", dir)
		}
		oo.TempDir = dir
	}
	n, err := layout.ParseSize(c.String("max-archive-size"))
	if err != nil {
		return oo, usagef("--max-archive-size: %v", err)
	}
	oo.Limits.MaxArchiveBytes = n
	return oo, nil
}

// loadArchive loads and checks the archive given as the argument with the
// options of archiveOptsFlags; with ak, its signature is checked first,
// over the bytes that are then parsed.
func loadArchive(c *cli.Context, ak *importer.ArchiveKey) (*archive.Bundle, *importer.ArchiveSignature, error) {
	oo, as, err := archiveOpenOptions(c, ak)
	if err != nil {
		return nil, nil, err
	}
	b, err := archive.Load(c.Context, c.Args().First(), oo)
	if err != nil {
		return nil, nil, err
	}
	return b, as, nil
}

// archiveOpenOptions is openOptions with the --archive-key check hooked
// into Open (importer.ArchiveKey.CheckOnOpen).
func archiveOpenOptions(c *cli.Context, ak *importer.ArchiveKey) (layout.OpenOptions, *importer.ArchiveSignature, error) {
	oo, err := openOptions(c)
	if err != nil || ak == nil {
		return oo, nil, err
	}
	return ak.CheckOnOpen(c.Args().First(), oo)
}
