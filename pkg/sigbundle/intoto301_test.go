package sigbundle

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/testutils"
)

// repo301 builds a TUF repository (in memory, signed by notary's test
// crypto service) with the CNAB 301 in-toto targets: layout and key in
// the roles given, one link in targets/releases.
func repo301(t *testing.T, layoutRole, keyRole data.RoleName) (*tuf.Repo, map[string][]byte) {
	t.Helper()
	repo, _, err := testutils.EmptyRepo("example.com/org/app", "targets/releases")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"example.com/org/app/in-toto-metadata/root.layout":                        []byte(`{"signed":{}}`),
		"example.com/org/app/in-toto-pubkeys/abc.pub":                             []byte("-----BEGIN PUBLIC KEY-----\n"),
		"example.com/org/app/in-toto-metadata/0123/build.0123abcd.link":           []byte(`{"signed":{"_type":"link"}}`),
		"example.com/org/app/in-toto-metadata/0123/package.89abcdef.link":         []byte(`{"signed":{"_type":"link","name":"package"}}`),
		"example.com/org/app/in-toto-metadata/0123/not a link name.link":          []byte("x"),
		"example.com/org/app/in-toto-metadata/0123/unsigned.0123abcd.link":        []byte("y"),
		"example.com/org/app/in-toto-metadata/0123/elsewhere/build.0123abcd.link": []byte(`{"other":1}`),
	}
	add := func(role data.RoleName, name string, custom []byte) {
		t.Helper()
		meta, err := data.NewFileMeta(bytes.NewReader(files[name]), data.NotaryDefaultHashes...)
		if err != nil {
			t.Fatal(err)
		}
		if custom != nil {
			c := canonicaljson.RawMessage(custom)
			meta.Custom = &c
		}
		if _, err := repo.AddTargets(role, data.Files{name: meta}); err != nil {
			t.Fatal(err)
		}
	}
	add(layoutRole, "example.com/org/app/in-toto-metadata/root.layout", []byte(`{"in-toto":["example.com/org/app/in-toto-pubkeys/abc.pub"]}`))
	add(keyRole, "example.com/org/app/in-toto-pubkeys/abc.pub", nil)
	for _, n := range []string{"build.0123abcd.link", "package.89abcdef.link", "not a link name.link", "elsewhere/build.0123abcd.link"} {
		add("targets/releases", "example.com/org/app/in-toto-metadata/0123/"+n, nil)
	}
	return repo, files
}

func TestResolve301(t *testing.T) {
	t.Parallel()
	const (
		lay   = "example.com/org/app/in-toto-metadata/root.layout"
		key   = "example.com/org/app/in-toto-pubkeys/abc.pub"
		link  = "example.com/org/app/in-toto-metadata/0123/build.0123abcd.link"
		link2 = "example.com/org/app/in-toto-metadata/0123/package.89abcdef.link"
	)
	good, files := repo301(t, data.CanonicalTargetsRole, data.CanonicalTargetsRole)
	get := func(files map[string][]byte) func(string, data.FileMeta) ([]byte, error) {
		return func(n string, _ data.FileMeta) ([]byte, error) {
			b, ok := files[n]
			if !ok {
				return nil, wrapf(ErrInToto, "target %q is referenced but not carried", n)
			}
			return b, nil
		}
	}
	m, used, err := resolve301(good, []string{link2, lay, link}, get(files))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.layout) != string(files[lay]) || len(m.keys) != 1 || string(m.keys[0]) != string(files[key]) || len(m.links) != 2 ||
		string(m.links["build.0123abcd.link"]) != string(files[link]) || strings.Join(used, ",") != strings.Join([]string{link, link2, lay, key}, ",") {
		t.Fatalf("resolved %+v, used %v", m, used)
	}

	delegated, _ := repo301(t, "targets/releases", data.CanonicalTargetsRole)
	keyDelegated, _ := repo301(t, data.CanonicalTargetsRole, "targets/releases")
	changed := map[string][]byte{}
	for k, v := range files {
		changed[k] = v
	}
	changed[link] = []byte(`{"signed":{"_type":"lInk"}}`)
	longer := map[string][]byte{}
	for k, v := range files {
		longer[k] = v
	}
	longer[key] = append([]byte{}, append(files[key], '\n')...)
	cases := []struct {
		name  string
		repo  *tuf.Repo
		refs  []string
		files map[string][]byte
		want  error
		msg   string
	}{
		{"layout signed by a delegation", delegated, []string{lay, link}, files, ErrInToto, "signed by targets/releases, not by the targets role"},
		{"layout key signed by a delegation", keyDelegated, []string{lay, link}, files, ErrInToto, "layout key \"" + key + "\" is signed by targets/releases"},
		{"no layout", good, []string{link}, files, ErrInToto, "name no root layout"},
		{"two layouts", good, []string{lay, "x/other.layout"}, files, ErrInToto, "two layouts"},
		{"unknown kind", good, []string{lay, "x/readme.txt"}, files, ErrInToto, "not a .layout, .link or .pub"},
		{"link not signed", good, []string{lay, "example.com/org/app/in-toto-metadata/0123/unsigned.0123abcd.link"}, files, ErrInToto, "is not a target of targets/releases or targets"},
		{"bad link file name", good, []string{lay, "example.com/org/app/in-toto-metadata/0123/not a link name.link"}, files, ErrInToto, "is not <step>.<keyid8>.link"},
		{"two links of one name", good, []string{lay, link, "example.com/org/app/in-toto-metadata/0123/elsewhere/build.0123abcd.link"}, files, ErrInToto, "two link targets are named"},
		{"link bytes changed", good, []string{lay, link}, changed, ErrInToto, "does not match the hashes"},
		{"key longer than signed", good, []string{lay, link}, longer, ErrInToto, "the trust data signs"},
		{"link not carried", good, []string{lay, link}, map[string][]byte{lay: files[lay], key: files[key]}, ErrInToto, "not carried"},
		{"too many references", good, make([]string, maxInTotoRefs+1), files, ErrInToto, "more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := resolve301(tc.repo, tc.refs, get(tc.files))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, _, err := resolve301(nil, []string{lay}, get(files)); !errors.Is(err, ErrTrustData) {
		t.Fatalf("nil repository: %v", err)
	}
}
