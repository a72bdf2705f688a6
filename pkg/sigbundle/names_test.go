package sigbundle

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestBindNotary(t *testing.T) {
	t.Parallel()
	d := digest.FromString("bundle index")
	at := func(relocated bool, refs ...string) *Names {
		n := &Names{Relocated: relocated}
		for _, r := range refs {
			n.Add(d, r)
		}
		return n
	}
	const gun, target = "registry.example.com/bundles/shop", "1.4.0"
	cases := []struct {
		name        string
		names       *Names
		allowRename bool
		ok, renamed bool
	}{
		{"same repository and tag", at(false, "registry.example.com/bundles/shop:1.4.0"), false, true, false},
		{"one of several names", at(false, "other.example/x:1", "registry.example.com/bundles/shop:1.4.0"), false, true, false},
		{"another tag", at(false, "registry.example.com/bundles/shop:2.0.0"), true, false, false},
		{"another repository", at(false, "registry.example.com/bundles/cart:1.4.0"), true, false, false},
		{"a longer path that ends differently", at(false, "registry.example.com/bundles/shop-x:1.4.0"), true, false, false},
		{"no tag", at(false, "registry.example.com/bundles/shop"), true, false, false},
		{"no name at all", at(false), true, false, false},
		{"a mirror's prefix, not allowed", at(false, "mirror.internal/airgap/bundles/shop:1.4.0"), false, false, false},
		{"a mirror's prefix, allowed", at(false, "mirror.internal/airgap/bundles/shop:1.4.0"), true, true, true},
		{"another registry, allowed", at(false, "mirror.internal/bundles/shop:1.4.0"), true, true, true},
		{"a partial segment is no prefix", at(false, "mirror.internal/airgapbundles/shop:1.4.0"), true, false, false},
		{"relocated: checked where imported", at(true, "mirror.internal/airgap/bundles/shop:1.4.0"), false, true, false},
		{"relocated: another tag", at(true, "mirror.internal/airgap/bundles/shop:1.5.0"), true, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			renamed, err := tc.names.bindNotary(d, gun, target, tc.allowRename)
			if (err == nil) != tc.ok || renamed != tc.renamed {
				t.Fatalf("ok %v renamed %v (%v), want ok %v renamed %v", err == nil, renamed, err, tc.ok, tc.renamed)
			}
			if err != nil && (!errors.Is(err, ErrNameMismatch) || !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), gun)) {
				t.Fatalf("error %v: want ErrNameMismatch naming %s", err, gun)
			}
		})
	}
}

func TestMatchClaim(t *testing.T) {
	t.Parallel()
	d := digest.FromString("image")
	n := &Names{}
	n.Add(d, "docker.io/library/nginx:1.25")
	for claim, want := range map[string]string{
		"index.docker.io/library/nginx":      NameMatches, // Docker Hub spellings are one name
		"nginx":                              NameMatches,
		"docker.io/library/nginx:1.25":       NameMatches,
		"docker.io/library/nginx:1.24":       NameContradicts,
		"ghcr.io/library/nginx":              NameContradicts, // another registry: the operator decides
		"docker.io/evil/nginx":               NameContradicts,
		"not a reference at all ::":          NameContradicts,
		"registry.example.com/library/nginx": NameContradicts,
	} {
		if got, _ := n.matchClaim(d, claim); got != want {
			t.Errorf("claim %q: %s, want %s", claim, got, want)
		}
	}
	if got, seen := n.matchClaim(digest.FromString("unnamed"), "docker.io/library/nginx"); got != NameContradicts || len(seen) != 0 {
		t.Errorf("a subject without names: %s %v", got, seen)
	}
}

func TestTrustState(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/state.json"
	st, err := ReadTrustState(path)
	if err != nil || len(st.GUNs) != 0 {
		t.Fatalf("a missing file is an empty state: %+v %v", st, err)
	}
	info := func(v int) *NotaryInfo {
		return &NotaryInfo{GUN: "r.example/app", Target: "1.0", Roles: []RoleInfo{{Name: "root", Version: 1}, {Name: "targets", Version: v}, {Name: "snapshot", Version: v}}}
	}
	if err := RecordTrustState(path, &Report{Notary: []*NotaryInfo{info(5)}}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	// Recording lower versions never lowers the state.
	if err := RecordTrustState(path, &Report{Notary: []*NotaryInfo{info(3)}}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if st, err = ReadTrustState(path); err != nil {
		t.Fatal(err)
	}
	if got := st.GUNs["r.example/app"].Roles["targets"]; got != 5 {
		t.Fatalf("targets version %d, want 5", got)
	}
	for v, ok := range map[int]bool{4: false, 5: true, 6: true} {
		err := st.Check(info(v))
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrRollback)) {
			t.Errorf("version %d: %v", v, err)
		}
	}
	if err := st.Check(&NotaryInfo{GUN: "other/app", Roles: []RoleInfo{{Name: "targets", Version: 1}}}); err != nil {
		t.Errorf("another GUN: %v", err)
	}
	for _, bad := range []string{`{"version":2,"guns":{}}`, `{"version":1,"guns":{},"extra":1}`, `[1,2]`, `{"version":1,"guns":{"g":{"roles":{"targets":"x"}}}}`} {
		if _, err := decodeTrustState("x", strings.NewReader(bad)); !errors.Is(err, ErrTrustStateFile) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// FuzzTrustState: the state file is read from disk each run; whatever it
// holds decodes to a usable state or to ErrTrustStateFile, and a decoded
// state checks and records without panicking.
func FuzzTrustState(f *testing.F) {
	f.Add([]byte(`{"version":1,"guns":{"r/a":{"roles":{"targets":3},"target":"1"}}}`))
	f.Add([]byte(`{"version":1,"guns":{"r/a":null}}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := decodeTrustState("fuzz", strings.NewReader(string(raw)))
		if err != nil {
			if !errors.Is(err, ErrTrustStateFile) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		info := &NotaryInfo{GUN: "r/a", Roles: []RoleInfo{{Name: "targets", Version: 2}}}
		_ = st.Check(info)
		st.Record(&Report{Notary: []*NotaryInfo{info}}, time.Unix(0, 0))
		if st.GUNs["r/a"].Roles["targets"] < 2 {
			t.Fatal("record did not raise the version")
		}
	})
}
