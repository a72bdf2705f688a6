package main

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// The CLI reference in docs/cli is generated from the command tree by
// cliReference; TestCLIReference fails when the files drift from it, and
// `make docs` rewrites them.

// cliReference returns the reference pages by file name: README.md (the
// program, global flags, exit codes) and one page per command.
func cliReference(app *cli.App) map[string]string {
	pages := map[string]string{}
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }

	p("# %s command reference\n\n", app.Name)
	p("<!-- Generated from the command tree by `make docs`; do not edit. -->\n\n")
	p("%s: %s.\n\n", app.Name, app.Usage)
	p("```\n%s [global flags] COMMAND [flags] [arguments]\n```\n\n", app.Name)
	p("Global flags may also be given after the command name, and a command's flags after its\n")
	p("arguments (`%s import bundle.tar --target registry.local/mirror --output json`).\n", app.Name)
	p("Everything after `--` is an argument.\n\n")
	p("## Commands\n\n")
	p("| command | what it does |\n|---|---|\n")
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		p("| [`%s`](%s.md) | %s |\n", c.Name, c.Name, mdCell(c.Usage))
	}
	p("\n## Global flags\n\n")
	flagTableMD(&sb, app.Flags)
	p("\n## Exit codes\n\n")
	p("| code | meaning |\n|---|---|\n")
	p("| %d | success |\n", exitOK)
	p("| %d | failure: the registry, the network, the file system, or anything else that is not one of the two below |\n", exitFailure)
	p("| %d | usage: unknown command or flag, missing or conflicting arguments, invalid flag value |\n", exitUsage)
	p("| %d | verification: content does not match its digest or size, an archive is malformed, incomplete or unsafe, bundle.json and the carried images disagree, signatures do not verify, or a relocation audit found a problem |\n", exitVerification)
	p("\n## Output\n\n")
	p("Results go to standard output; progress, warnings and errors to standard error. With `--output json` standard\n")
	p("output carries exactly one JSON document, also when the command fails (`{\"error\": ..., \"exitCode\": ...}`);\n")
	p("its fields are listed in [OUTPUT.md](../OUTPUT.md). On a terminal, standard error shows one progress bar per\n")
	p("phase; otherwise one plain line per image and one summary line per phase; `--quiet` leaves only errors.\n")
	pages["README.md"] = sb.String()

	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		sb.Reset()
		p("# %s %s\n\n", app.Name, c.Name)
		p("<!-- Generated from the command tree by `make docs`; do not edit. -->\n\n")
		p("%s.\n\n", upperFirst(c.Usage))
		args := c.ArgsUsage
		if args != "" {
			args = " " + args
		}
		p("```\n%s [global flags] %s [flags]%s\n```\n\n", app.Name, c.Name, args)
		if c.Description != "" {
			p("%s\n\n", strings.TrimSpace(c.Description))
		}
		if len(visibleFlags(c.Flags)) > 0 {
			p("## Flags\n\n")
			flagTableMD(&sb, c.Flags)
			p("\n")
		}
		p("Global flags: see [README.md](README.md#global-flags). JSON output: [OUTPUT.md](../OUTPUT.md#%s).\n", c.Name)
		pages[c.Name+".md"] = sb.String()
	}
	return pages
}

func visibleFlags(fs []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range fs {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

var placeholderRE = regexp.MustCompile("`([^`]+)`")

func flagTableMD(sb *strings.Builder, flags []cli.Flag) {
	fs := visibleFlags(flags)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Names()[0] < fs[j].Names()[0] })
	fmt.Fprintf(sb, "| flag | default | description |\n|---|---|---|\n")
	for _, f := range fs {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		usage := df.GetUsage()
		placeholder := "VALUE"
		if m := placeholderRE.FindStringSubmatch(usage); m != nil {
			placeholder = m[1]
		}
		usage = placeholderRE.ReplaceAllString(usage, "$1")
		var names []string
		for _, n := range f.Names() {
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			if df.TakesValue() {
				names = append(names, fmt.Sprintf("`%s%s %s`", dash, n, placeholder))
			} else {
				names = append(names, fmt.Sprintf("`%s%s`", dash, n))
			}
		}
		def := ""
		if df.TakesValue() {
			if v := df.GetValue(); v != "" {
				def = "`" + strings.Trim(v, `"`) + "`"
			}
		}
		if sf, ok := f.(cli.DocGenerationSliceFlag); ok && sf.IsSliceFlag() && !strings.Contains(usage, "repeatable") {
			usage += " (repeatable)"
		}
		if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
			usage += " **(required)**"
		}
		if env := df.GetEnvVars(); len(env) > 0 {
			usage += " (environment: `" + strings.Join(env, "`, `") + "`)"
		}
		fmt.Fprintf(sb, "| %s | %s | %s |\n", strings.Join(names, ", "), def, mdCell(usage))
	}
}

func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
