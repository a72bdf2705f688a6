package sigbundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"
)

// Forms of in-toto data in a Notary target's custom field.
const (
	// InTotoFormSigny: {"key", "layout", "links"} inlined (Signy).
	InTotoFormSigny = "signy"
	// InTotoForm301: {"in-toto": [target names]} (CNAB 301), bytes not inlined.
	InTotoForm301 = "cnab-301"
)

// InTotoInfo describes an in-toto verification.
type InTotoInfo struct {
	Form string `json:"form"`
	// Verified is true when the layout, its key and the links verified and
	// the final product is this bundle.
	Verified bool `json:"verified"`
	// KeyID is the layout key's ID.
	KeyID string `json:"keyID,omitempty"`
	// Steps and Inspections name the layout's steps and inspections.
	Steps       []string `json:"steps,omitempty"`
	Inspections []string `json:"inspections,omitempty"`
	// InspectionsRun is true when inspections were allowed and ran.
	InspectionsRun bool `json:"inspectionsRun,omitempty"`
	// References lists the target names of the 301 form.
	References []string `json:"references,omitempty"`
}

type signyCustom struct {
	Key    []byte            `json:"key"`
	Layout []byte            `json:"layout"`
	Links  map[string][]byte `json:"links"`
	InToto []string          `json:"in-toto"`
}

// linkName is the form in-toto gives link files: <step>.<keyid8>.link.
var linkName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.[0-9a-f]{8}\.link$`)

// verifyInTotoCustom verifies the in-toto data of a target's custom field
// against bundleJSON. It returns nil, nil when there is none.
func (o *options) verifyInTotoCustom(ctx context.Context, custom, bundleJSON []byte, mayRun bool) (*InTotoInfo, error) {
	if len(bytes.TrimSpace(custom)) == 0 || string(bytes.TrimSpace(custom)) == "null" {
		return nil, nil
	}
	var c signyCustom
	if err := json.Unmarshal(custom, &c); err != nil {
		// Custom data that is not an object is not in-toto data.
		return nil, nil
	}
	if len(c.Layout) == 0 {
		if len(c.InToto) > 0 {
			return &InTotoInfo{Form: InTotoForm301, References: c.InToto}, nil
		}
		return nil, nil
	}
	info := &InTotoInfo{Form: InTotoFormSigny}
	if len(c.Key) == 0 {
		return info, wrapf(ErrInToto, "the target carries a layout but no layout key")
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	dir, err := os.MkdirTemp("", "cnab-airgap-in-toto-")
	if err != nil {
		return info, err
	}
	defer os.RemoveAll(dir)
	linkDir := filepath.Join(dir, "links")
	runDir := filepath.Join(dir, "run")
	for _, d := range []string{linkDir, runDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return info, err
		}
	}
	layoutPath := filepath.Join(dir, "root.layout")
	if err := os.WriteFile(layoutPath, c.Layout, 0o600); err != nil {
		return info, err
	}
	names := make([]string, 0, len(c.Links))
	for n := range c.Links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !linkName.MatchString(n) {
			return info, wrapf(ErrInToto, "link file name %q is not <step>.<keyid8>.link", n)
		}
		if err := os.WriteFile(filepath.Join(linkDir, n), c.Links[n], 0o600); err != nil {
			return info, err
		}
	}
	// Inspections may read the bundle.
	if err := os.WriteFile(filepath.Join(runDir, "bundle.json"), bundleJSON, 0o600); err != nil {
		return info, err
	}
	md, err := in_toto.LoadMetadata(layoutPath)
	if err != nil {
		return info, fmt.Errorf("%w: root.layout: %w", ErrInToto, err)
	}
	lay, ok := md.GetPayload().(in_toto.Layout)
	if !ok {
		return info, wrapf(ErrInToto, "root.layout is not a layout")
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
		return info, wrapf(ErrInspections, "the layout would run %s; pass --in-toto-run-inspections to allow it", strings.Join(runs, ", "))
	}
	var key in_toto.Key
	if err := key.LoadKeyReaderDefaults(bytes.NewReader(c.Key)); err != nil {
		return info, fmt.Errorf("%w: layout key: %w", ErrInToto, err)
	}
	info.KeyID = key.KeyID
	// in-toto-golang writes each inspection's link into the process's
	// working directory. Remove exactly the files this call created, so an
	// allowed inspection leaves nothing behind.
	var created []string
	for _, in := range lay.Inspect {
		n := fmt.Sprintf(in_toto.LinkNameFormatShort, in.Name)
		if _, err := os.Lstat(n); os.IsNotExist(err) {
			created = append(created, n)
		} else {
			return info, wrapf(ErrInToto, "inspection %q would overwrite %s in the working directory", in.Name, n)
		}
	}
	defer func() {
		for _, n := range created {
			os.Remove(n)
		}
	}()
	summary, err := in_toto.InTotoVerifyWithDirectory(md, map[string]in_toto.Key{key.KeyID: key}, linkDir, runDir, "", nil, nil, false)
	if err != nil {
		return info, fmt.Errorf("%w: layout key %s: %w", ErrInToto, key.KeyID, err)
	}
	info.InspectionsRun = len(lay.Inspect) > 0
	link, ok := summary.GetPayload().(in_toto.Link)
	if !ok {
		return info, wrapf(ErrInToto, "no summary link")
	}
	want := digest.FromBytes(bundleJSON).Encoded()
	for _, p := range link.Products {
		if p["sha256"] == want {
			info.Verified = true
			return info, nil
		}
	}
	return info, wrapf(ErrInToto, "no product of the final step %q has sha256 %s (this bundle.json)", lastStep(lay), want)
}

func lastStep(l in_toto.Layout) string {
	if len(l.Steps) == 0 {
		return ""
	}
	return l.Steps[len(l.Steps)-1].Name
}
