package main

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
)

// outputTypes are the JSON documents each command writes with --output json.
var outputTypes = map[string]any{
	"export":    export.Result{},
	"import":    importer.Result{},
	"inspect":   inspectResult{},
	"verify":    importer.VerifyReport{},
	"inventory": inventoryResult{},
	"serve":     serveOutput{},
	"version":   versionOutput{},
	"error":     errorOutput{},
}

// ownPackages are the packages whose nested objects are documented field by
// field; objects of other packages (signing reports, volume lists) are
// documented as a whole.
var ownPackages = []string{"cnab-airgap/cmd/cnab-airgap", "cnab-airgap/pkg/archive", "cnab-airgap/pkg/relocate", "cnab-airgap/pkg/serve", "cnab-airgap/pkg/export", "cnab-airgap/pkg/importer"}

// jsonPaths lists the field paths of a JSON document type: "images",
// "images[].digest", "relocation.ok" (two levels deep at most).
func jsonPaths(t reflect.Type, prefix string, depth int) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			out = append(out, jsonPaths(f.Type, prefix, depth)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		path := prefix + name
		out = append(out, path)
		if depth >= 1 {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		sep := "."
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			sep = "[]."
		}
		own := false
		for _, p := range ownPackages {
			if strings.HasSuffix(ft.PkgPath(), p) {
				own = true
			}
		}
		if own {
			out = append(out, jsonPaths(ft, path+sep, depth+1)...)
		}
	}
	return out
}

var docFieldRE = regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")

// documentedFields reads docs/OUTPUT.md: "## command" sections with
// tables whose first column is a field path in backquotes.
func documentedFields(t *testing.T) map[string]map[string]bool {
	b, err := os.ReadFile("../../docs/OUTPUT.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, sec := range strings.Split(string(b), "\n## ")[1:] {
		title, body, _ := strings.Cut(sec, "\n")
		cmd := strings.Fields(title)[0]
		out[cmd] = map[string]bool{}
		for _, m := range docFieldRE.FindAllStringSubmatch(body, -1) {
			out[cmd][m[1]] = true
		}
	}
	return out
}

// Every field a command can write with --output json is documented in
// docs/OUTPUT.md, and the document lists no field that does not exist.
func TestJSONFieldsDocumented(t *testing.T) {
	docs := documentedFields(t)
	cmds := make([]string, 0, len(outputTypes))
	for c := range outputTypes {
		cmds = append(cmds, c)
	}
	sort.Strings(cmds)
	for _, cmd := range cmds {
		paths := jsonPaths(reflect.TypeOf(outputTypes[cmd]), "", 0)
		documented, ok := docs[cmd]
		if !ok {
			t.Errorf("docs/OUTPUT.md has no section \"## %s\"", cmd)
			continue
		}
		have := map[string]bool{}
		for _, p := range paths {
			have[p] = true
			if !documented[p] {
				t.Errorf("docs/OUTPUT.md, %s: field `%s` is not documented", cmd, p)
			}
		}
		for p := range documented {
			if !have[p] {
				t.Errorf("docs/OUTPUT.md, %s: documents `%s`, which %s does not write", cmd, p, cmd)
			}
		}
	}
}
