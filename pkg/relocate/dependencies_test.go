package relocate_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

func bundleWith(custom string) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":"v1.2.0","name":"shop","version":"1.0.0","invocationImages":[{"image":"r.example/shop:1"}],"custom":%s}`, custom)
}

func TestDependencies(t *testing.T) {
	b, err := relocate.ParseBundle(bundleWith(`{
		"io.cnab.dependencies": {"sequence": ["web", "db"], "requires": {
			"db": {"bundle": "r.example/db:15", "version": {"ranges": ["15.x"]}},
			"cache": {"bundle": "r.example/cache:7"},
			"web": {"bundle": "r.example/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}},
		"org.getporter.dependencies@v2": {"requires": {
			"db": {"bundle": "r.example/db:15", "sharing": {"mode": "group"}},
			"monitor": {"bundle": "r.example/monitor:2"},
			"cluster": {"interface": {"credentials": []}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range b.Dependencies {
		got = append(got, d.Alias+"="+d.Bundle+"@"+d.Extension)
	}
	want := []string{ // sequence first, then by alias; an alias in both extensions once
		"web=r.example/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef@io.cnab.dependencies",
		"db=r.example/db:15@io.cnab.dependencies",
		"cache=r.example/cache:7@io.cnab.dependencies",
		"cluster=@org.getporter.dependencies@v2",
		"monitor=r.example/monitor:2@org.getporter.dependencies@v2",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dependencies\n got %q\nwant %q", got, want)
	}
	if string(b.Dependencies[1].Version) != `{"ranges":["15.x"]}` {
		t.Fatalf("version constraint kept as %s", b.Dependencies[1].Version)
	}

	for name, custom := range map[string]string{
		"sequence names an undeclared alias": `{"io.cnab.dependencies": {"sequence": ["x"], "requires": {}}}`,
		"requires is not an object":          `{"io.cnab.dependencies": {"requires": ["db"]}}`,
		"one alias, two bundles":             `{"io.cnab.dependencies": {"requires": {"db": {"bundle": "a/db:1"}}}, "org.getporter.dependencies@v2": {"requires": {"db": {"bundle": "a/db:2"}}}}`,
	} {
		if _, err := relocate.ParseBundle(bundleWith(custom)); !errors.Is(err, relocate.ErrDependency) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if b, err := relocate.ParseBundle(bundleWith(`{}`)); err != nil || len(b.Dependencies) != 0 {
		t.Fatalf("no dependencies: %v %v", b, err)
	}
}
