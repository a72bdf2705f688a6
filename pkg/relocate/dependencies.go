package relocate

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// The bundle.json extensions that declare dependencies on other bundles.
const (
	// ExtensionDependencies is CNAB-500's extension (also Porter's
	// dependencies v1): custom["io.cnab.dependencies"] = {"sequence": [...],
	// "requires": {"ALIAS": {"bundle": "REF", "version": {...}}}}.
	ExtensionDependencies = "io.cnab.dependencies"
	// ExtensionPorterDependenciesV2 is Porter's dependencies v2:
	// custom["org.getporter.dependencies@v2"] = {"requires": {"ALIAS":
	// {"bundle": "REF", "interface": {...}, "sharing": {...}, ...}}}.
	ExtensionPorterDependenciesV2 = "org.getporter.dependencies@v2"
)

// ErrDependency: a declared dependency cannot be used (no bundle reference,
// a malformed extension, a cycle, or a dependency that cannot be found).
var ErrDependency = errdefs.New("bundle dependency", errdefs.ErrInvalidInput)

// Dependency is one bundle a bundle declares it depends on.
type Dependency struct {
	// Alias is the dependency's key in `requires`.
	Alias string `json:"alias"`
	// Bundle is the dependency's bundle reference as declared ("" when a
	// Porter v2 dependency declares only an interface, to be satisfied by
	// the installer).
	Bundle string `json:"bundle,omitempty"`
	// Extension is the extension that declares it.
	Extension string `json:"extension"`
	// Version is the declared version constraint, as written (informational:
	// cnab-airgap carries the bundle Bundle names, it does not resolve ranges).
	Version json.RawMessage `json:"version,omitempty"`
}

// dependencyExtension is the part of both extensions cnab-airgap reads.
type dependencyExtension struct {
	Sequence []string `json:"sequence"`
	Requires map[string]struct {
		Bundle  string          `json:"bundle"`
		Version json.RawMessage `json:"version"`
	} `json:"requires"`
}

// parseDependencies reads the dependencies bundle.json declares, in
// CNAB-500's sequence order where it gives one, then by alias. A bundle
// declaring the same alias in both extensions must name the same bundle.
func parseDependencies(custom map[string]any) ([]Dependency, error) {
	var out []Dependency
	for _, ext := range []string{ExtensionDependencies, ExtensionPorterDependenciesV2} {
		v, ok := custom[ext]
		if !ok || v == nil {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrDependency, ext, err)
		}
		var de dependencyExtension
		if err := json.Unmarshal(raw, &de); err != nil {
			return nil, fmt.Errorf("%w: %s is not a dependencies extension: %w", ErrDependency, ext, err)
		}
		aliases := make([]string, 0, len(de.Requires))
		for a := range de.Requires {
			aliases = append(aliases, a)
		}
		sort.Slice(aliases, func(i, j int) bool {
			si, sj := slices.Index(de.Sequence, aliases[i]), slices.Index(de.Sequence, aliases[j])
			if (si < 0) != (sj < 0) {
				return si >= 0 // sequenced ones first
			}
			if si != sj {
				return si < sj
			}
			return aliases[i] < aliases[j]
		})
		for _, s := range de.Sequence {
			if _, ok := de.Requires[s]; !ok {
				return nil, fmt.Errorf("%w: %s: sequence names %q, which requires does not declare", ErrDependency, ext, s)
			}
		}
		for _, a := range aliases {
			r := de.Requires[a]
			d := Dependency{Alias: a, Bundle: r.Bundle, Extension: ext, Version: r.Version}
			if i := slices.IndexFunc(out, func(x Dependency) bool { return x.Alias == a }); i >= 0 {
				if out[i].Bundle != d.Bundle {
					return nil, fmt.Errorf("%w: dependency %q names %q in %s and %q in %s", ErrDependency, a, out[i].Bundle, out[i].Extension, d.Bundle, ext)
				}
				continue
			}
			out = append(out, d)
		}
	}
	return out, nil
}
