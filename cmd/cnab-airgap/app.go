package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
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

// Unwrap makes a usage error of the CLI one of the library's usage class.
func (e usageError) Unwrap() error { return errdefs.ErrUsage }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// env is what commands share: streams and global settings.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// format is the validated --output value, set before any command runs.
	format string
	// login is --username/--password-stdin once read (registryLogin in
	// notaryauth.go): the registry it is for and the Notary server share it.
	login *login
}

// globalFlags returns the flags every command accepts (before or after the
// command name, see normalizeArgs). Fresh values each time: urfave/cli
// records state in flag structs, and tests run many apps in one process.
// Help shows which flags are required (urfave/cli v2 enforces them but
// does not say so in --help).
func init() {
	plain := cli.FlagStringer
	cli.FlagStringer = func(f cli.Flag) string {
		s := plain(f)
		if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
			s += " (required)"
		}
		return s
	}
}

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "plain-http", Usage: "speak plain HTTP to this registry `HOST[:PORT]` (repeatable; HOST alone: every port); no other host is ever spoken to over plain HTTP"},
		&cli.StringSliceFlag{Name: "insecure", Usage: "do not verify the TLS certificate of this registry `HOST[:PORT]` (repeatable; HOST alone: every port)"},
		&cli.StringSliceFlag{Name: "ca-file", Usage: "trust the CA certificates in this PEM `FILE` (repeatable)"},
		&cli.StringFlag{Name: "username", Usage: "registry user `[HOST=]NAME` (with --password-stdin), sent only to HOST; without HOST=, to the import target or the exported bundle's registry; other hosts: docker config and credential helpers"},
		&cli.BoolFlag{Name: "password-stdin", Usage: "read the registry password from standard input"},
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Value: 6, Usage: "move up to `N` blobs at once"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors: no progress, no result text (--output json still prints its document)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"O"}, Value: "text", Usage: "result `FORMAT` on standard output: text or json (fields in docs/OUTPUT.md)"},
		&cli.BoolFlag{Name: "debug", Usage: "log each step (and, for serve, each request) to standard error"},
	}
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:  "cnab-airgap",
		Usage: "carry CNAB bundles, their images and signatures across air gaps",
		Flags: globalFlags(),
		Before: func(c *cli.Context) error {
			if err := checkFormat(c, e); err != nil {
				return err
			}
			return checkGlobals(c) // args.go
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q (commands: %s)", c.Args().First(), strings.Join(commandNames(c.App), ", "))
			}
			return cli.ShowAppHelp(c)
		},
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
			inventoryCommand(e),
			serveCommand(e),
			completionCommand(e),
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
	app := newApp(e)
	// urfave/cli writes help to App.Writer, also when a required flag is
	// missing; hold it back so that standard output carries only results
	// (and, with --output json, only one JSON document).
	var help bytes.Buffer
	app.Writer = &help
	err := checkHostValues(app, args) // args.go: --plain-http export ...
	if err == nil {
		args = normalizeArgs(app, args)
		err = app.RunContext(ctx, args)
	}
	if err == nil {
		stdout.Write(help.Bytes())
		return exitOK
	}
	msg := redact(err.Error())
	fmt.Fprintf(stderr, "cnab-airgap: %v\n", msg)
	code := exitCode(err) // exitcodes.go
	var ue usageError
	if errors.As(err, &ue) || isRequiredFlagError(err) {
		code = exitUsage
	}
	if code == exitUsage && len(args) > 1 {
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", strings.Join(commandPath(app, args), " "))
	}
	hint := registry.Hint(err)
	if hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", hint)
	}
	var reported reportedError
	if e.format == "json" && !errors.As(err, &reported) {
		_ = writeJSON(stdout, errorOutput{Error: msg, ExitCode: code, Hint: hint}) // nowhere left to report a failure to

	}
	return code
}

// Patterns of credentials that may end up in a message: user:password@ at
// the start of a token (a URL without a scheme), secret-bearing query
// parameters (tokens, signed URLs), and Authorization header values.
var (
	userinfoRE    = regexp.MustCompile(`(^|[\s"'(=,\[/])([^\s"'/@:]+):([^\s"'/@]+)@`)
	secretQueryRE = regexp.MustCompile(`(?i)([?&](?:access_token|refresh_token|token|password|passwd|secret|code|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=)[^&\s"']*`)
	authValueRE   = regexp.MustCompile(`(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{8,}`)
)

// secrets are the credentials this process was given (--password-stdin):
// redact removes them from every message, whatever surrounds them.
var secrets struct {
	sync.Mutex
	values []string
}

// addSecret registers a credential for redaction, with the encodings it
// travels in (basic auth). Values shorter than 4 bytes are not registered:
// replacing them everywhere would garble messages.
func addSecret(user, password string) {
	secrets.Lock()
	defer secrets.Unlock()
	for _, v := range []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password)), url.QueryEscape(password)} {
		if len(v) >= 4 && !slices.Contains(secrets.values, v) {
			secrets.values = append(secrets.values, v)
		}
	}
}

// redactUserinfo replaces user:password@ with REDACTED@, except in a
// reference naming both a tag and a digest (name:tag@sha256:...).
func redactUserinfo(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range userinfoRE.FindAllStringSubmatchIndex(s, -1) {
		rest := s[m[1]:]
		if strings.HasPrefix(rest, "sha256:") || strings.HasPrefix(rest, "sha512:") {
			continue
		}
		b.WriteString(s[last:m[3]])
		b.WriteString("REDACTED@")
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// redact removes credentials from a message: userinfo of URLs (with or
// without a scheme), secret query parameters, Authorization values, and
// every credential registered with addSecret.
func redact(s string) string {
	secrets.Lock()
	for _, v := range secrets.values {
		s = strings.ReplaceAll(s, v, "REDACTED")
	}
	secrets.Unlock()
	s = redactUserinfo(s)
	s = secretQueryRE.ReplaceAllString(s, "${1}REDACTED")
	s = authValueRE.ReplaceAllString(s, "$1 REDACTED")
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
		// Every message, string and error passes redact on its way out.
		return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				switch v := a.Value.Any().(type) {
				case string:
					a.Value = slog.StringValue(redact(v))
				case error:
					a.Value = slog.StringValue(redact(v.Error()))
				case fmt.Stringer:
					a.Value = slog.StringValue(redact(v.String()))
				}
				return a
			}}))
	}
	return slog.New(slog.DiscardHandler)
}

// client builds the registry client from the global flags. The
// --username login goes to its HOST= or, without one, to defaultHost (the
// import target's registry, the exported bundle's registry), and to no
// other registry; "" refuses a --username without HOST=.
func client(c *cli.Context, e *env, defaultHost string) (*registry.Client, error) {
	o := registry.Options{
		PlainHTTP: c.StringSlice("plain-http"),
		Insecure:  c.StringSlice("insecure"),
		CAFiles:   c.StringSlice("ca-file"),
		Jobs:      c.Int("jobs"),
		UserAgent: "cnab-airgap/" + version(),
		Keychain:  keychain(),
	}
	l, err := registryLogin(c, e) // reads --password-stdin once per run
	if err != nil {
		return nil, err
	}
	if l != nil {
		host := l.host
		if host == "" {
			if defaultHost == "" {
				return nil, usagef("--username %s: this command talks to registries named by the bundle, so say which one the login is for: --username HOST=%s", l.user, l.user)
			}
			host = defaultHost
		}
		o.HostAuth = map[string]authn.Authenticator{host: basicAuth(l.user, l.password)}
	}
	return registry.New(o)
}

func outputJSON(c *cli.Context) (bool, error) {
	// The global --output, not a command's own --output (export -o PATH).
	format := ""
	for _, x := range slices.Backward(c.Lineage()) {
		if format = x.String("output"); format != "" {
			break
		}
	}
	switch format {
	case "json":
		return true, nil
	case "text", "":
		return false, nil
	}
	return false, usagef("--output must be text or json, not %q", format)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal (not merely a character
// device such as /dev/null).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
