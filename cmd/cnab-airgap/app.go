package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/internal/registry"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Exit codes.
const (
	exitOK           = 0
	exitFailure      = 1
	exitUsage        = 2
	exitVerification = 3
)

// usageError marks errors in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// env is what commands share: streams and global settings.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

var globalFlags = []cli.Flag{
	&cli.StringSliceFlag{Name: "plain-http", Usage: "speak plain HTTP to this registry `HOST[:PORT]` (repeatable)"},
	&cli.StringSliceFlag{Name: "insecure", Usage: "do not verify the TLS certificate of this registry `HOST[:PORT]` (repeatable)"},
	&cli.StringSliceFlag{Name: "ca-file", Usage: "trust the CA certificates in this PEM `FILE` (repeatable)"},
	&cli.StringFlag{Name: "username", Usage: "registry user name (with --password-stdin); default: docker config and credential helpers"},
	&cli.BoolFlag{Name: "password-stdin", Usage: "read the registry password from standard input"},
	&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 6, Usage: "concurrent blob transfers"},
	&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors"},
	&cli.StringFlag{Name: "output", Aliases: []string{"O"}, Value: "text", Usage: "result format: text or json"},
	&cli.BoolFlag{Name: "debug", Usage: "log each step to standard error"},
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:                 "cnab-airgap",
		Usage:                "carry CNAB bundles, their images and signatures across air gaps",
		Flags:                globalFlags,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		Reader:               e.stdin,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		ExitErrHandler:       func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err.Error()}
		},
		Commands: []*cli.Command{
			exportCommand(e),
			importCommand(e),
			inspectCommand(e),
			verifyCommand(e),
			versionCommand(e),
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	return app
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	err := newApp(e).RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "cnab-airgap: %v\n", redact(err.Error()))
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case isVerificationError(err):
		return exitVerification
	}
	return exitFailure
}

func isVerificationError(err error) bool {
	for _, target := range []error{verify.ErrDigestMismatch, verify.ErrSizeMismatch, importer.ErrBundleMismatch,
		importer.ErrInvalidArchive, importer.ErrVerification, layout.ErrUnsafeEntry, layout.ErrInvalidArchive,
		export.ErrDigestMismatch} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// redact removes userinfo from URLs in messages.
func redact(s string) string {
	for _, scheme := range []string{"https://", "http://"} {
		for i := 0; ; {
			j := strings.Index(s[i:], scheme)
			if j < 0 {
				break
			}
			start := i + j + len(scheme)
			end := start + strings.IndexAny(s[start:]+" ", " /\"'")
			if at := strings.LastIndex(s[start:end], "@"); at >= 0 {
				s = s[:start] + "REDACTED@" + s[start+at+1:]
			}
			i = start
		}
	}
	return s
}

func logger(c *cli.Context, e *env) *slog.Logger {
	if c.Bool("debug") {
		return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// client builds the registry client from the global flags.
func client(c *cli.Context, e *env) (*registry.Client, error) {
	o := registry.Options{
		PlainHTTP: c.StringSlice("plain-http"),
		Insecure:  c.StringSlice("insecure"),
		CAFiles:   c.StringSlice("ca-file"),
		Jobs:      c.Int("jobs"),
		UserAgent: "cnab-airgap/" + version(),
	}
	if c.Bool("password-stdin") {
		if c.String("username") == "" {
			return nil, usagef("--password-stdin needs --username")
		}
		pw, err := io.ReadAll(io.LimitReader(e.stdin, 1<<16))
		if err != nil {
			return nil, err
		}
		o.Auth = basicAuth(c.String("username"), strings.TrimRight(string(pw), "\r\n"))
	} else if c.String("username") != "" {
		return nil, usagef("--username needs --password-stdin (passwords are never taken as flags)")
	}
	return registry.New(o)
}

func outputJSON(c *cli.Context) (bool, error) {
	switch c.String("output") {
	case "json":
		return true, nil
	case "text", "":
		return false, nil
	}
	return false, usagef("--output must be text or json, not %q", c.String("output"))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
