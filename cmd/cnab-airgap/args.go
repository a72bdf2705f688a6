package main

import (
	"strings"

	"github.com/urfave/cli/v2"
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
