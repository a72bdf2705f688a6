package main

import (
	"embed"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// shell is a shell completion writes a script for.
type shell struct {
	name string
	// install says how to load the script (completion's help).
	install string
	write   func(io.Writer, compTree) error
}

// shells are the shells completion can write a script for: one row each
// for the argument, its help line and its script.
var shells = []shell{
	{"bash", "source <(cnab-airgap completion bash)       or save it in /etc/bash_completion.d/cnab-airgap", writeBash},
	{"zsh", "source <(cnab-airgap completion zsh)        or save it as _cnab-airgap in a directory of $fpath", writeZsh},
	{"fish", "cnab-airgap completion fish | source        or save it in ~/.config/fish/completions/cnab-airgap.fish", writeFish},
}

func shellNames() []string {
	var out []string
	for _, s := range shells {
		out = append(out, s.name)
	}
	return out
}

func completionCommand(e *env) *cli.Command {
	help := []string{"The script completes commands, flags (global flags anywhere), fixed flag values and file names.\n"}
	for _, s := range shells {
		help = append(help, fmt.Sprintf("  %-5s %s", s.name+":", s.install))
	}
	return &cli.Command{
		Name:        "completion",
		Usage:       "print a shell completion script: bash, zsh or fish",
		ArgsUsage:   "SHELL",
		Description: strings.Join(help, "\n"),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion takes one shell: %s", strings.Join(shellNames(), ", "))
			}
			i := slices.IndexFunc(shells, func(s shell) bool { return s.name == c.Args().First() })
			if i < 0 {
				return usagef("completion: unknown shell %q (%s)", c.Args().First(), strings.Join(shellNames(), ", "))
			}
			return shells[i].write(e.stdout, completionTree(c.App))
		},
	}
}

// compFlag is a flag as completion sees it.
type compFlag struct {
	long, short string
	value       bool
	choices     []string
	usage       string
}

// compCommand is a command with the words that may follow it.
type compCommand struct {
	name, usage string
	flags       []compFlag
	args        []string // fixed argument values (completion's shells)
	files       bool     // arguments are files
}

type compTree struct {
	prog     string
	globals  []compFlag
	commands []compCommand
}

// flagChoices lists the fixed values of flags that have them.
var flagChoices = map[string][]string{
	"output":      {"text", "json"},
	"naming":      {"bundle-repo", "preserve", "flatten"},
	"compression": {layout.CompressionNone, layout.CompressionGzip, layout.CompressionZstd},
	"format":      {"oci", "cnab-thick"},
}

func compFlags(flags []cli.Flag) []compFlag {
	var out []compFlag
	for _, f := range flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		cf := compFlag{}
		if df, ok := f.(cli.DocGenerationFlag); ok {
			cf.value = df.TakesValue()
		}
		for _, n := range f.Names() {
			if len(n) == 1 {
				cf.short = n
			} else if cf.long == "" {
				cf.long = n
			}
		}
		if cf.long == "" {
			continue
		}
		if df, ok := f.(cli.DocGenerationFlag); ok {
			cf.usage = df.GetUsage()
		}
		cf.choices = flagChoices[cf.long]
		out = append(out, cf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].long < out[j].long })
	return out
}

func completionTree(app *cli.App) compTree {
	t := compTree{prog: app.Name, globals: compFlags(app.Flags)}
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		cc := compCommand{name: c.Name, usage: c.Usage, flags: compFlags(c.Flags), files: strings.Contains(c.ArgsUsage, "ARCHIVE")}
		if c.Name == "completion" {
			cc.args = shellNames()
		}
		t.commands = append(t.commands, cc)
	}
	return t
}

func (f compFlag) words() []string {
	w := []string{"--" + f.long}
	if f.short != "" {
		w = append(w, "-"+f.short)
	}
	return w
}

func flagWords(flags []compFlag) []string {
	var out []string
	for _, f := range flags {
		out = append(out, f.words()...)
	}
	return out
}

func (t compTree) commandNames() []string {
	var out []string
	for _, c := range t.commands {
		out = append(out, c.name)
	}
	return out
}

// valueCases returns, for every flag that takes a value, its spellings and
// its fixed choices (nil: complete file names).
func (t compTree) valueCases() [][2][]string {
	seen := map[string]bool{}
	var out [][2][]string
	add := func(fs []compFlag) {
		for _, f := range fs {
			if !f.value || seen[f.long+"/"+f.short] {
				continue
			}
			seen[f.long+"/"+f.short] = true
			out = append(out, [2][]string{f.words(), f.choices})
		}
	}
	add(t.globals)
	for _, c := range t.commands {
		add(c.flags)
	}
	return out
}

func funcName(prog string) string { return "_" + strings.ReplaceAll(prog, "-", "_") }

// The bash and zsh scripts are templates (completion/*.tmpl) over
// scriptData: the same tree, spelled in each shell's words.
//
//go:embed completion/bash.tmpl completion/zsh.tmpl
var scriptTemplates embed.FS

var scripts = template.Must(template.New("").Funcs(template.FuncMap{
	"join":  strings.Join,
	"quote": strconv.Quote,
}).ParseFS(scriptTemplates, "completion/*.tmpl"))

// scriptData is what the script templates read.
type scriptData struct {
	Prog, Fn     string
	CommandNames []string
	Globals      []string // words of the global flags
	ValueCases   []valueCase
	Commands     []scriptCommand
}

type valueCase struct{ Words, Choices []string }

type scriptCommand struct {
	Name, Usage string
	Words       []string // its flags, then the global ones
	Args        []string
	Files       bool
}

func newScriptData(t compTree) scriptData {
	d := scriptData{Prog: t.prog, Fn: funcName(t.prog), CommandNames: t.commandNames(), Globals: flagWords(t.globals)}
	for _, vc := range t.valueCases() {
		d.ValueCases = append(d.ValueCases, valueCase{Words: vc[0], Choices: vc[1]})
	}
	for _, c := range t.commands {
		d.Commands = append(d.Commands, scriptCommand{Name: c.name, Usage: c.usage,
			Words: append(flagWords(c.flags), flagWords(t.globals)...), Args: c.args, Files: c.files})
	}
	return d
}

func writeBash(w io.Writer, t compTree) error {
	return scripts.ExecuteTemplate(w, "bash.tmpl", newScriptData(t))
}

func writeZsh(w io.Writer, t compTree) error {
	return scripts.ExecuteTemplate(w, "zsh.tmpl", newScriptData(t))
}

func writeFish(w io.Writer, t compTree) error {
	p := t.prog
	cmds := strings.Join(t.commandNames(), " ")
	fmt.Fprintf(w, "# fish completion for %s; generated by `%s completion fish`.\n", p, p)
	fmt.Fprintf(w, "complete -c %s -f\n", p)
	for _, c := range t.commands {
		fmt.Fprintf(w, "complete -c %s -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n", p, cmds, c.name, fishQuote(c.usage))
	}
	flag := func(cond string, f compFlag) {
		fmt.Fprintf(w, "complete -c %s", p)
		if cond != "" {
			fmt.Fprintf(w, " -n %s", fishQuote(cond))
		}
		fmt.Fprintf(w, " -l %s", f.long)
		if f.short != "" {
			fmt.Fprintf(w, " -s %s", f.short)
		}
		if f.value {
			fmt.Fprintf(w, " -r")
			if f.choices != nil {
				fmt.Fprintf(w, " -a %s", fishQuote(strings.Join(f.choices, " ")))
			} else {
				fmt.Fprintf(w, " -F")
			}
		}
		fmt.Fprintf(w, " -d %s\n", fishQuote(f.usage))
	}
	for _, f := range t.globals {
		flag("", f)
	}
	for _, c := range t.commands {
		cond := "__fish_seen_subcommand_from " + c.name
		for _, f := range c.flags {
			flag(cond, f)
		}
		if len(c.args) > 0 {
			fmt.Fprintf(w, "complete -c %s -n %s -a %s\n", p, fishQuote(cond), fishQuote(strings.Join(c.args, " ")))
		} else if c.files {
			fmt.Fprintf(w, "complete -c %s -n %s -F\n", p, fishQuote(cond))
		}
	}
	return nil
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
