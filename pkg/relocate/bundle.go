package relocate

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cnabio/cnab-go/bundle"
	"github.com/cnabio/cnab-go/schema"
	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// Role of an image in a bundle.
const (
	RoleInvocation = "invocation"
	RoleComponent  = "component"
)

// Image is one image a bundle.json references.
type Image struct {
	// Role is RoleInvocation or RoleComponent.
	Role string
	// Name is the key in bundle.json `images` (components) or the position
	// in `invocationImages` as a decimal string (invocation images).
	Name string
	// Ref is the exact `image` string of bundle.json.
	Ref string
	// ContentDigest is `contentDigest` (may be empty).
	ContentDigest digest.Digest
	// MediaType and Size are the optional `mediaType` and `size` fields.
	MediaType string
	Size      uint64
	// ImageType is `imageType` ("" means oci).
	ImageType string
}

// Label returns a short human name: "invocation image 0" or "component web".
func (i Image) Label() string {
	if i.Role == RoleInvocation {
		return "invocation image " + i.Name
	}
	return "component " + i.Name
}

// Relocatable reports whether the image is an OCI or Docker image that can
// be copied between registries.
func (i Image) Relocatable() bool {
	return i.ImageType == "" || i.ImageType == "oci" || i.ImageType == "docker"
}

// ErrInvalidBundle is returned for a bundle.json that cannot be used.
var ErrInvalidBundle = errdefs.New("invalid bundle.json", errdefs.ErrInvalidInput)

// Bundle is what cnab-airgap reads from bundle.json. The raw bytes are the
// source of truth and are never re-serialized.
type Bundle struct {
	Name    string
	Version string
	Images  []Image // invocation images in order, then components sorted by name
	Parsed  *bundle.Bundle
	// Dependencies are the bundles it declares it depends on
	// (ExtensionDependencies, ExtensionPorterDependenciesV2).
	Dependencies []Dependency
	// Warnings are findings that do not stop a move: bundle.json not in
	// canonical form (RFC 8785).
	Warnings []string
}

// maxSchemaErrors bounds the schema violations an error lists.
const maxSchemaErrors = 10

// ValidateSchema checks bundle.json offline against the CNAB bundle schema
// (the one cnab-go embeds; nothing is fetched). The error wraps
// ErrInvalidBundle and lists the violations, each with its JSON path.
func ValidateSchema(raw []byte) error {
	errs, err := schema.ValidateBundle(raw)
	if err != nil {
		return fmt.Errorf("%w: schema validation: %w", ErrInvalidBundle, err)
	}
	if len(errs) == 0 {
		return nil
	}
	var msgs []string
	for i, e := range errs {
		if i == maxSchemaErrors {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(errs)-i))
			break
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("%w: it does not validate against the CNAB bundle schema: %s", ErrInvalidBundle, strings.Join(msgs, "; "))
}

// ParseBundle reads the fields cnab-airgap needs from bundle.json bytes,
// after checking it against the CNAB bundle schema (ValidateSchema).
func ParseBundle(raw []byte) (*Bundle, error) {
	b, err := bundle.Unmarshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
	}
	if len(b.InvocationImages) == 0 {
		return nil, fmt.Errorf("%w: no invocation images", ErrInvalidBundle)
	}
	if err := ValidateSchema(raw); err != nil {
		return nil, err
	}
	out := &Bundle{Name: b.Name, Version: b.Version, Parsed: b}
	if canon, err := jsoncanonicalizer.Transform(raw); err != nil || !bytes.Equal(canon, raw) {
		out.Warnings = append(out.Warnings, "bundle.json is not canonical JSON (RFC 8785); it is carried byte for byte, unchanged")
	}
	if out.Dependencies, err = parseDependencies(b.Custom); err != nil {
		return nil, err
	}
	add := func(role, n string, bi bundle.BaseImage) error {
		img := Image{Role: role, Name: n, Ref: bi.Image, MediaType: bi.MediaType, Size: bi.Size, ImageType: bi.ImageType}
		if bi.Image == "" {
			return fmt.Errorf("%w: %s has no image reference", ErrInvalidBundle, img.Label())
		}
		if bi.Digest != "" {
			d, err := digest.Parse(bi.Digest)
			if err != nil {
				return fmt.Errorf("%w: %s (%s): contentDigest %q: %w", ErrInvalidBundle, img.Label(), bi.Image, bi.Digest, err)
			}
			img.ContentDigest = d
		}
		out.Images = append(out.Images, img)
		return nil
	}
	for i, ii := range b.InvocationImages {
		if err := add(RoleInvocation, strconv.Itoa(i), ii.BaseImage); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(b.Images))
	for k := range b.Images {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if err := add(RoleComponent, k, b.Images[k].BaseImage); err != nil {
			return nil, err
		}
	}
	return out, nil
}
