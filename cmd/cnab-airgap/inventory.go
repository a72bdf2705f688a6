package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/export"
)

// inventoryResult is the JSON form of inventory's summary.
type inventoryResult struct {
	Target       string `json:"target"`
	File         string `json:"file"`
	Repositories int    `json:"repositories"`
	Manifests    int    `json:"manifests"`
	Blobs        int    `json:"blobs"`
	Bytes        int64  `json:"bytes"`
}

func inventoryCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "inventory",
		Usage: "list what a registry already holds, for a delta export (export --base-inventory)",
		Description: "Run on the inside: the file lists every manifest, config and layer reachable from the tags of the\n" +
			"repositories under REGISTRY/PREFIX (the registry must serve /v2/_catalog). Carry it out, and\n" +
			"export --base-inventory FILE leaves those blobs out of the next archive.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Aliases: []string{"t"}, Usage: "`REGISTRY[/PREFIX]` to list", Required: true},
			&cli.StringFlag{Name: "file", Aliases: []string{"o"}, Value: "inventory.json", Usage: "inventory `FILE` to write"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("inventory takes no arguments")
			}
			asJSON, err := outputJSON(c)
			if err != nil {
				return err
			}
			host, err := targetRegistry("target", c.String("target"))
			if err != nil {
				return err
			}
			cl, err := client(c, e, host)
			if err != nil {
				return err
			}
			inv, err := export.TakeInventory(c.Context, c.String("target"), export.WithClient(cl), export.WithJobs(c.Int("jobs")), export.WithLogger(logger(c, e)))
			if err != nil {
				return err
			}
			if err := inv.WriteFile(c.String("file")); err != nil {
				return err
			}
			r := inventoryResult{Target: inv.Target, File: c.String("file"), Repositories: len(inv.Repositories), Manifests: len(inv.Manifests), Blobs: len(inv.Blobs)}
			for _, b := range inv.Blobs {
				r.Bytes += b.Size
			}
			if asJSON {
				return writeJSON(e.stdout, r)
			}
			if !c.Bool("quiet") {
				fmt.Fprintf(e.stdout, "inventory   %s: %d repositories, %d manifests, %d blobs (%s)\nwritten to  %s\n",
					r.Target, r.Repositories, r.Manifests, r.Blobs, humanBytes(r.Bytes), r.File)
			}
			return nil
		},
	}
}
