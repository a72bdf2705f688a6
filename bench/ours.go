package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// With BENCH_OURS=lib, cnab-airgap runs in a child process of this binary
// (modeEnv=ours-export or ours-import) that makes the same library calls as
// the CLI's export and import commands, with the library's defaults unless
// -jobs is given, and prints the result as JSON. The default runs the CLI.

func oursClient(plainHTTP string, jobs int) (*registry.Client, error) {
	o := registry.Options{UserAgent: "cnab-airgap-bench", Jobs: jobs}
	for _, h := range strings.Split(plainHTTP, ",") {
		if h != "" {
			o.PlainHTTP = append(o.PlainHTTP, h)
		}
	}
	return registry.New(o)
}

func oursExport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ours-export", flag.ContinueOnError)
	plain := fs.String("plain-http", "", "comma-separated plain HTTP registry hosts")
	out := fs.String("o", "", "archive path")
	jobs := fs.Int("jobs", 0, "concurrent blob transfers (0: the default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		return errors.New("ours-export: need -o ARCHIVE and one bundle reference")
	}
	c, err := oursClient(*plain, *jobs)
	if err != nil {
		return err
	}
	opts := []export.Option{export.WithClient(c)}
	if *jobs > 0 {
		opts = append(opts, export.WithJobs(*jobs))
	}
	defer profile("export")()
	res, err := export.Export(ctx, export.Request{Reference: fs.Arg(0), Output: *out}, opts...)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

func oursImport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ours-import", flag.ContinueOnError)
	plain := fs.String("plain-http", "", "comma-separated plain HTTP registry hosts")
	target := fs.String("target", "", "REGISTRY[/PREFIX]")
	mapping := fs.String("mapping", "", "relocation mapping path")
	jobs := fs.Int("jobs", 0, "concurrent blob transfers (0: the default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || fs.NArg() != 1 {
		return errors.New("ours-import: need -target and one archive")
	}
	c, err := oursClient(*plain, *jobs)
	if err != nil {
		return err
	}
	opts := []importer.Option{importer.WithClient(c)}
	if *jobs > 0 {
		opts = append(opts, importer.WithJobs(*jobs))
	}
	defer profile("import")()
	res, err := importer.Import(ctx, importer.Request{Archive: fs.Arg(0), Target: *target, MappingPath: *mapping}, opts...)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// profile writes a CPU profile to $BENCH_CPUPROFILE.phase, when set, until
// the returned function is called (for studying where a phase spends its
// time; the last run wins).
func profile(phase string) func() {
	path := os.Getenv("BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	path += fmt.Sprintf(".%s.%d", phase, os.Getpid())
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
