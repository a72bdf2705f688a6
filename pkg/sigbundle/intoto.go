package sigbundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"
	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
)

// Forms of in-toto data in a Notary target's custom field.
const (
	// InTotoFormSigny: {"key", "layout", "links"} inlined (Signy).
	InTotoFormSigny = "signy"
	// InTotoForm301: {"in-toto": [target names]} (CNAB 301): the root
	// layout, its public keys and the links are separate TUF targets whose
	// bytes travel beside the role files.
	InTotoForm301 = "cnab-301"
)

// InTotoInfo describes an in-toto verification.
type InTotoInfo struct {
	Form string `json:"form"`
	// Verified is true when the layout, its keys and the links verified and
	// the final product is this bundle.
	Verified bool `json:"verified"`
	// KeyID is the layout key's ID (comma-separated when the layout is
	// verified with several keys).
	KeyID string `json:"keyID,omitempty"`
	// Steps and Inspections name the layout's steps and inspections.
	Steps       []string `json:"steps,omitempty"`
	Inspections []string `json:"inspections,omitempty"`
	// InspectionsRun is true when inspections were allowed and ran.
	InspectionsRun bool `json:"inspectionsRun,omitempty"`
	// References lists the target names of the 301 form.
	References []string `json:"references,omitempty"`
	// Files lists the TUF targets whose bytes were carried and checked
	// against their signed hashes (301 form): layout, public keys, links.
	Files []string `json:"files,omitempty"`
}

// inTotoCustom is what this package reads of a target's custom field.
type inTotoCustom struct {
	Key    []byte            `json:"key"`
	Layout []byte            `json:"layout"`
	Links  map[string][]byte `json:"links"`
	InToto []string          `json:"in-toto"`
}

// inTotoMaterial is what an in-toto verification needs.
type inTotoMaterial struct {
	layout []byte
	// keys are PEM public keys of the layout owner(s).
	keys [][]byte
	// links by file name, <step>.<keyid8>.link.
	links map[string][]byte
}

// linkName is the form in-toto gives link files: <step>.<keyid8>.link.
var linkName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.[0-9a-f]{8}\.link$`)

// maxInTotoRefs bounds the target names one custom field may reference.
const maxInTotoRefs = 1024

// parseInTotoCustom classifies a target's custom field: "" when it holds no
// in-toto data.
func parseInTotoCustom(custom []byte) (string, *inTotoCustom) {
	t := bytes.TrimSpace(custom)
	if len(t) == 0 || string(t) == "null" {
		return "", nil
	}
	var c inTotoCustom
	if err := json.Unmarshal(t, &c); err != nil {
		// Custom data that is not an object of this shape is not in-toto data.
		return "", nil
	}
	switch {
	case len(c.Layout) > 0:
		return InTotoFormSigny, &c
	case len(c.InToto) > 0:
		return InTotoForm301, &c
	}
	return "", nil
}

// verifyInTotoTarget verifies the in-toto data a bundle target carries or
// references against bundleJSON. For the 301 form, files holds the
// referenced targets' bytes (by target name); with none carried it reports
// the references unverified. It returns nil, nil when the target has no
// in-toto data.
func (o *options) verifyInTotoTarget(ctx context.Context, info *NotaryInfo, files map[string][]byte, bundleJSON []byte, mayRun bool) (*InTotoInfo, error) {
	form, c := parseInTotoCustom(info.custom)
	if form == "" {
		if len(files) > 0 {
			return nil, wrapf(ErrTrustData, "the trust data carries target files, but target %q references no in-toto metadata", info.Target)
		}
		return nil, nil
	}
	it := &InTotoInfo{Form: form}
	var m *inTotoMaterial
	switch form {
	case InTotoFormSigny:
		if len(files) > 0 {
			return it, wrapf(ErrTrustData, "the trust data carries target files, but target %q inlines its in-toto metadata", info.Target)
		}
		if len(c.Key) == 0 {
			return it, wrapf(ErrInToto, "the target carries a layout but no layout key")
		}
		m = &inTotoMaterial{layout: c.Layout, keys: [][]byte{c.Key}, links: c.Links}
	case InTotoForm301:
		it.References = c.InToto
		if len(files) == 0 {
			return it, nil
		}
		var used []string
		var err error
		m, used, err = resolve301(info.repo, c.InToto, func(name string, meta data.FileMeta) ([]byte, error) {
			b, ok := files[name]
			if !ok {
				return nil, wrapf(ErrInToto, "target %q is referenced but not carried", name)
			}
			return b, nil
		})
		if err != nil {
			return it, err
		}
		for n := range files {
			if !slices.Contains(used, n) {
				return it, wrapf(ErrTrustData, "the trust data carries target file %q, which the in-toto metadata does not reference", n)
			}
		}
		it.Files = used
	}
	return it, o.runInToto(ctx, m, bundleJSON, mayRun, it)
}

// resolve301 resolves the CNAB 301 in-toto references of a bundle target
// in the verified TUF repository: exactly one root layout and its public
// keys, which the targets role itself must sign (the guarantee rests on
// its offline key), and the links, which targets/releases or targets sign.
// get returns a target's bytes; each is checked against its signed length
// and hashes. It returns the material and the target names used, sorted.
func resolve301(repo *tuf.Repo, refs []string, get func(name string, meta data.FileMeta) ([]byte, error)) (*inTotoMaterial, []string, error) {
	if repo == nil {
		return nil, nil, wrapf(ErrTrustData, "no verified TUF repository to resolve in-toto targets in")
	}
	if len(refs) > maxInTotoRefs {
		return nil, nil, wrapf(ErrInToto, "the target references %d in-toto files, more than %d", len(refs), maxInTotoRefs)
	}
	fetch := func(name string, meta data.FileMeta) ([]byte, error) {
		b, err := get(name, meta)
		if err != nil {
			return nil, err
		}
		if int64(len(b)) != meta.Length {
			return nil, wrapf(ErrInToto, "target %q: %d bytes, the trust data signs %d", name, len(b), meta.Length)
		}
		if err := data.CheckHashes(b, name, meta.Hashes); err != nil {
			return nil, wrapf(ErrInToto, "target %q does not match the hashes the trust data signs: %v", name, err)
		}
		return b, nil
	}
	// topLevel finds a target the targets role itself signs.
	topLevel := func(name, what string) (data.FileMeta, error) {
		if t, ok := repo.Targets[data.CanonicalTargetsRole]; ok {
			if meta, ok := t.Signed.Targets[name]; ok {
				return meta, nil
			}
		}
		if tw, err := client.NewReadOnly(repo).GetTargetByName(name); err == nil {
			return data.FileMeta{}, wrapf(ErrInToto, "%s %q is signed by %s, not by the targets role: CNAB 301 requires layouts and their keys to be signed with the offline targets key", what, name, tw.Role)
		}
		return data.FileMeta{}, wrapf(ErrInToto, "%s %q is not a target of the trust data", what, name)
	}
	m := &inTotoMaterial{links: map[string][]byte{}}
	var layoutName string
	var linkNames, keyNames []string
	for _, r := range refs {
		switch {
		case strings.HasSuffix(r, ".layout"):
			if layoutName != "" {
				return nil, nil, wrapf(ErrInToto, "the target references two layouts, %q and %q", layoutName, r)
			}
			layoutName = r
		case strings.HasSuffix(r, ".link"):
			linkNames = append(linkNames, r)
		case strings.HasSuffix(r, ".pub"):
			keyNames = append(keyNames, r)
		default:
			return nil, nil, wrapf(ErrInToto, "in-toto reference %q is not a .layout, .link or .pub target", r)
		}
	}
	if layoutName == "" {
		return nil, nil, wrapf(ErrInToto, "the in-toto references name no root layout")
	}
	lmeta, err := topLevel(layoutName, "root layout")
	if err != nil {
		return nil, nil, err
	}
	if m.layout, err = fetch(layoutName, lmeta); err != nil {
		return nil, nil, err
	}
	used := []string{layoutName}
	if lmeta.Custom != nil {
		var lc inTotoCustom
		if err := json.Unmarshal(*lmeta.Custom, &lc); err == nil {
			keyNames = append(keyNames, lc.InToto...)
		}
	}
	if len(keyNames) == 0 {
		return nil, nil, wrapf(ErrInToto, "root layout %q names no public keys (its target's custom \"in-toto\" list)", layoutName)
	}
	seen := map[string]bool{}
	for _, k := range keyNames {
		if seen[k] {
			continue
		}
		seen[k] = true
		if !strings.HasSuffix(k, ".pub") {
			return nil, nil, wrapf(ErrInToto, "layout key reference %q is not a .pub target", k)
		}
		meta, err := topLevel(k, "layout key")
		if err != nil {
			return nil, nil, err
		}
		b, err := fetch(k, meta)
		if err != nil {
			return nil, nil, err
		}
		m.keys = append(m.keys, b)
		used = append(used, k)
	}
	ro := client.NewReadOnly(repo)
	for _, l := range linkNames {
		base := path.Base(l)
		if !linkName.MatchString(base) {
			return nil, nil, wrapf(ErrInToto, "link target %q: file name %q is not <step>.<keyid8>.link", l, base)
		}
		if _, dup := m.links[base]; dup {
			return nil, nil, wrapf(ErrInToto, "two link targets are named %q", base)
		}
		tw, err := ro.GetTargetByName(l, "targets/releases", data.CanonicalTargetsRole)
		if err != nil {
			return nil, nil, wrapf(ErrInToto, "link %q is not a target of targets/releases or targets", l)
		}
		b, err := fetch(l, data.FileMeta{Length: tw.Length, Hashes: tw.Hashes})
		if err != nil {
			return nil, nil, err
		}
		m.links[base] = b
		used = append(used, l)
	}
	sort.Strings(used)
	return m, used, nil
}

// runInToto verifies the layout with its keys and the links, refusing
// inspections unless allowed, and requires a product of the final step to
// be bundleJSON.
func (o *options) runInToto(ctx context.Context, m *inTotoMaterial, bundleJSON []byte, mayRun bool, info *InTotoInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cnab-airgap-in-toto-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	linkDir := filepath.Join(dir, "links")
	runDir := filepath.Join(dir, "run")
	for _, d := range []string{linkDir, runDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	layoutPath := filepath.Join(dir, "root.layout")
	if err := os.WriteFile(layoutPath, m.layout, 0o600); err != nil {
		return err
	}
	names := make([]string, 0, len(m.links))
	for n := range m.links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !linkName.MatchString(n) {
			return wrapf(ErrInToto, "link file name %q is not <step>.<keyid8>.link", n)
		}
		if err := os.WriteFile(filepath.Join(linkDir, n), m.links[n], 0o600); err != nil {
			return err
		}
	}
	// Inspections may read the bundle.
	if err := os.WriteFile(filepath.Join(runDir, "bundle.json"), bundleJSON, 0o600); err != nil {
		return err
	}
	md, err := in_toto.LoadMetadata(layoutPath)
	if err != nil {
		return fmt.Errorf("%w: root.layout: %w", ErrInToto, err)
	}
	lay, ok := md.GetPayload().(in_toto.Layout)
	if !ok {
		return wrapf(ErrInToto, "root.layout is not a layout")
	}
	for _, s := range lay.Steps {
		info.Steps = append(info.Steps, s.Name)
	}
	var runs []string
	for _, in := range lay.Inspect {
		info.Inspections = append(info.Inspections, in.Name)
		runs = append(runs, fmt.Sprintf("%s: %q", in.Name, strings.Join(in.Run, " ")))
	}
	if len(lay.Inspect) > 0 && !(mayRun && o.runInspections) {
		return wrapf(ErrInspections, "the layout would run %s; pass --in-toto-run-inspections to allow it", strings.Join(runs, ", "))
	}
	keys := map[string]in_toto.Key{}
	var ids []string
	for i, raw := range m.keys {
		var key in_toto.Key
		if err := key.LoadKeyReaderDefaults(bytes.NewReader(raw)); err != nil {
			return fmt.Errorf("%w: layout key %d: %w (PEM public keys are supported)", ErrInToto, i+1, err)
		}
		if _, dup := keys[key.KeyID]; !dup {
			keys[key.KeyID] = key
			ids = append(ids, key.KeyID)
		}
	}
	info.KeyID = strings.Join(ids, ",")
	// in-toto-golang writes each inspection's link into the process's
	// working directory. Remove exactly the files this call created, so an
	// allowed inspection leaves nothing behind.
	var created []string
	for _, in := range lay.Inspect {
		n := fmt.Sprintf(in_toto.LinkNameFormatShort, in.Name)
		if _, err := os.Lstat(n); os.IsNotExist(err) {
			created = append(created, n)
		} else {
			return wrapf(ErrInToto, "inspection %q would overwrite %s in the working directory", in.Name, n)
		}
	}
	defer func() {
		for _, n := range created {
			os.Remove(n)
		}
	}()
	summary, err := in_toto.InTotoVerifyWithDirectory(md, keys, linkDir, runDir, "", nil, nil, false)
	if err != nil {
		return fmt.Errorf("%w: layout key %s: %w", ErrInToto, info.KeyID, err)
	}
	info.InspectionsRun = len(lay.Inspect) > 0
	link, ok := summary.GetPayload().(in_toto.Link)
	if !ok {
		return wrapf(ErrInToto, "no summary link")
	}
	want := digest.FromBytes(bundleJSON).Encoded()
	for _, p := range link.Products {
		if p["sha256"] == want {
			info.Verified = true
			return nil
		}
	}
	return wrapf(ErrInToto, "no product of the final step %q has sha256 %s (this bundle.json)", lastStep(lay), want)
}

func lastStep(l in_toto.Layout) string {
	if len(l.Steps) == 0 {
		return ""
	}
	return l.Steps[len(l.Steps)-1].Name
}
