package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// Set at build time by `make build`:
//
//	-ldflags "-X main.buildVersion=v1.2.3 -X main.buildCommit=<sha>"
var (
	buildVersion string
	buildCommit  string
)

// versionOutput is the JSON form of version.
type versionOutput struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Module    string `json:"module"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func versionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit and Go version of this build",
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("version takes no arguments")
			}
			v := versionInfo()
			if e.format == "json" {
				return writeJSON(e.stdout, v)
			}
			fmt.Fprintf(e.stdout, "cnab-airgap %s (commit %s, %s, %s)\n", v.Version, v.Commit, v.GoVersion, v.Platform)
			return nil
		},
	}
}

func versionInfo() versionOutput {
	return versionOutput{Version: version(), Commit: commit(), Module: modulePath(),
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

// version is the module version: set at build time, else the version `go
// install module@version` recorded, else "dev".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// commit is the VCS revision: set at build time, else the one the Go
// toolchain stamped (builds with VCS stamping on), else "unknown".
func commit() string {
	if buildCommit != "" {
		return buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

func modulePath() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path != "" {
		return bi.Main.Path
	}
	return "github.com/cnab-airgap/cnab-airgap"
}
