package main

import (
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// normalizeArgs lets operators write flags where they think of them:
// global flags after the command name (`verify bundle.tar --output json`)
// and command flags after the arguments (`import bundle.tar --target R`).
// urfave/cli v2 accepts neither, so the arguments are reordered into
// `PROGRAM [global flags] COMMAND [command flags] [arguments]` before
// parsing. A flag the command defines itself stays with the command.
// Everything after "--" is kept as arguments. Arguments that name no
// command (help, typos) are left as they are, for urfave/cli to report.
func normalizeArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	globals := flagTable(app.Flags)
	out := []string{args[0]}
	i := 1
	for i < len(args) && isFlagToken(args[i]) {
		n := consumed(globals, args, i)
		out = append(out, args[i:i+n]...)
		i += n
	}
	if i >= len(args) || args[i] == "--" {
		return args
	}
	cmd := findCommand(app, args[i])
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	name := args[i]
	locals := flagTable(cmd.Flags)
	var cmdFlags, positional []string
	for j := i + 1; j < len(args); {
		a := args[j]
		switch {
		case a == "--":
			positional = append(positional, args[j:]...)
			j = len(args)
		case isFlagToken(a):
			fname := flagName(a)
			if _, ok := locals[fname]; ok || globals[fname] == nil {
				n := consumed(locals, args, j)
				cmdFlags = append(cmdFlags, args[j:j+n]...)
				j += n
				continue
			}
			n := consumed(globals, args, j)
			out = append(out, args[j:j+n]...)
			j += n
		default:
			positional = append(positional, a)
			j++
		}
	}
	out = append(out, name)
	out = append(out, cmdFlags...)
	if len(positional) > 0 && positional[0] != "--" && strings.HasPrefix(positional[0], "-") && positional[0] != "-" {
		out = append(out, "--")
	}
	return append(out, positional...)
}

// flagTable maps every name and alias of flags to whether it takes a value.
func flagTable(flags []cli.Flag) map[string]*bool {
	t := map[string]*bool{}
	for _, f := range flags {
		takes := false
		if df, ok := f.(cli.DocGenerationFlag); ok {
			takes = df.TakesValue()
		}
		for _, n := range f.Names() {
			t[n] = &takes
		}
	}
	return t
}

func isFlagToken(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

func flagName(a string) string {
	n := strings.TrimLeft(a, "-")
	n, _, _ = strings.Cut(n, "=")
	return n
}

// consumed returns how many tokens the flag at args[i] uses: 2 when it
// takes a value given as the next token, else 1.
func consumed(table map[string]*bool, args []string, i int) int {
	a := args[i]
	if strings.Contains(a, "=") {
		return 1
	}
	if takes, ok := table[flagName(a)]; ok && *takes && i+1 < len(args) {
		return 2
	}
	return 1
}

func findCommand(app *cli.App, name string) *cli.Command {
	for _, c := range app.Commands {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// checkFormat validates the global --output and records it, so that a
// failure can be reported as JSON too.
func checkFormat(c *cli.Context, e *env) error {
	switch f := c.String("output"); f {
	case "text", "json":
		e.format = f
		return nil
	default:
		return usagef("--output must be text or json, not %q (an archive path is given with -o/--archive)", f)
	}
}

// isRequiredFlagError recognizes urfave/cli's missing required flag error,
// a usage error it reports without OnUsageError and with an unexported
// type, so only its message identifies it.
func isRequiredFlagError(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "Required flag \"") || strings.HasPrefix(m, "Required flags \"")
}

// commandPath returns "cnab-airgap COMMAND" for normalized args, or just
// the program name when no command was given.
func commandPath(app *cli.App, args []string) []string {
	for _, a := range args[1:] {
		if c := findCommand(app, a); c != nil {
			return []string{app.Name, c.Name}
		}
	}
	return []string{app.Name}
}

// hostFlags are the global flags whose value is a registry HOST[:PORT].
var hostFlags = []string{"plain-http", "insecure"}

// checkHostValues refuses a host flag followed by a command name
// (`cnab-airgap --plain-http export ...`): the command would be taken as
// the host, and the rest of the line misread.
func checkHostValues(app *cli.App, args []string) error {
	for i := 1; i+1 < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		if !isFlagToken(a) || strings.Contains(a, "=") || !slices.Contains(hostFlags, flagName(a)) {
			continue
		}
		v := args[i+1]
		if findCommand(app, v) != nil {
			return usagef("--%s takes a registry HOST[:PORT], not the command %q (write --%s HOST, then the command)", flagName(a), v, flagName(a))
		}
		if isFlagToken(v) {
			return usagef("--%s takes a registry HOST[:PORT], not the flag %q", flagName(a), v)
		}
		i++
	}
	return nil
}

// checkGlobals validates the global flags before any command runs (and
// before any archive is opened): host values, --jobs.
func checkGlobals(c *cli.Context) error {
	for _, f := range hostFlags {
		for _, v := range c.StringSlice(f) {
			if _, err := registry.ParseHost(v); err != nil {
				return usagef("--%s takes a registry HOST[:PORT] (HOST alone: every port): %v", f, err)
			}
		}
	}
	if j := c.Int("jobs"); j < 1 {
		return usagef("--jobs must be at least 1, not %d", j)
	}
	if u := c.String("username"); strings.Contains(u, "=") {
		if _, _, err := splitLogin(u); err != nil {
			return err
		}
	}
	return nil
}

// splitLogin splits --username [HOST=]USER.
func splitLogin(u string) (host, user string, err error) {
	host, user, ok := strings.Cut(u, "=")
	if !ok {
		return "", u, nil
	}
	if user == "" {
		return "", "", usagef("--username %s: no user name after the host (want HOST=USER)", u)
	}
	h, err := registry.ParseHost(host)
	if err != nil {
		return "", "", usagef("--username takes [HOST=]USER: %v", err)
	}
	return h, user, nil
}

// commandNames lists the visible commands.
func commandNames(app *cli.App) []string {
	var out []string
	for _, c := range app.Commands {
		if !c.Hidden {
			out = append(out, c.Name)
		}
	}
	return out
}

// targetRegistry returns the registry of a target REGISTRY[/PREFIX] for
// --target flags, refusing anything else (a tag, a digest, a URL) as a
// usage error.
func targetRegistry(flag, t string) (string, error) {
	target, err := relocate.ParseTarget(t)
	if err != nil {
		return "", usagef("--%s takes a REGISTRY[/PREFIX] (no tag, no digest): %v", flag, err)
	}
	return target.Registry, nil
}

// referenceRegistry returns the registry of a bundle reference.
func referenceRegistry(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", usagef("bundle reference %q: %v", ref, err)
	}
	return r.Context().RegistryStr(), nil
}
