package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// maxCosignLayers bounds the signatures one merged cosign object may hold,
// and maxTagManifest the size of the object read from the target.
const (
	maxCosignLayers = 1000
	maxTagManifest  = 8 << 20
)

// putCosignTag recreates a cosign tag-scheme object (sha256-<hex>.sig,
// .att, .sbom) at repo:tag. A tag that already names the carried object, or
// an object holding every carried signature, is left alone. A .sig or .att
// object the target already has with other signatures (signed inside, or
// carried by another import) keeps them: the tag then names a new object
// with the union of both layer lists, existing first, as `cosign sign` and
// `cosign attest` append to an existing object. Anything else under that
// tag (an .sbom, which cosign replaces too, or a foreign object) is
// replaced, with a warning naming what was there.
func (im *importer) putCosignTag(ctx context.Context, repo string, store Repository, d ocispec.Descriptor, raw []byte, tag string) error {
	ref := repo + ":" + tag
	push := func(mt string, b []byte) error {
		desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := store.Push(ctx, desc, bytes.NewReader(b)); err != nil {
			return fmt.Errorf("signing artifact %s as %s: %w", d.Digest, ref, err)
		}
		if err := store.Tag(ctx, desc, tag); err != nil {
			return fmt.Errorf("signing artifact %s as %s: %w", d.Digest, ref, err)
		}
		atomic.AddInt64(&im.sig.res.Tags, 1)
		return nil
	}
	cur, err := store.Resolve(ctx, tag)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return push(d.MediaType, raw)
		}
		return fmt.Errorf("signing artifact %s: reading %s: %w", d.Digest, ref, err)
	}
	if cur.Digest == d.Digest {
		return nil
	}
	if cur.Size > maxTagManifest {
		return fmt.Errorf("signing artifact %s: %s at the target is larger than %d bytes", d.Digest, ref, maxTagManifest)
	}
	curRaw, err := content.ReadAll(ctx, store, cur, maxTagManifest)
	if err != nil {
		return fmt.Errorf("signing artifact %s: reading %s: %w", d.Digest, ref, err)
	}
	var have, want ocispec.Manifest
	mergeable := (strings.HasSuffix(tag, ".sig") || strings.HasSuffix(tag, ".att")) &&
		json.Unmarshal(curRaw, &have) == nil && json.Unmarshal(raw, &want) == nil &&
		cosignShaped(cur.MediaType, &have) && cosignShaped(d.MediaType, &want)
	if !mergeable {
		im.warnf("%s named %s (%s) at the target; it now names the carried %s", ref, cur.Digest, cur.MediaType, d.Digest)
		return push(d.MediaType, raw)
	}
	key := func(l ocispec.Descriptor) string {
		return l.Digest.String() + " " + l.Annotations[sigbundle.AnnotationCosignSignature]
	}
	seen := map[string]bool{}
	for _, l := range have.Layers {
		seen[key(l)] = true
	}
	layers := append([]ocispec.Descriptor{}, have.Layers...)
	for _, l := range want.Layers {
		if !seen[key(l)] {
			seen[key(l)] = true
			layers = append(layers, l)
		}
	}
	if len(layers) == len(have.Layers) {
		// Every carried signature is there already.
		return nil
	}
	if len(layers) > maxCosignLayers {
		return fmt.Errorf("signing artifact %s: merging into %s would make %d signatures, more than %d", d.Digest, ref, len(layers), maxCosignLayers)
	}
	cfg, err := cosignConfig(layers)
	if err != nil {
		return err
	}
	cfgDesc := ocispec.Descriptor{MediaType: want.Config.MediaType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	if err := store.Push(ctx, cfgDesc, bytes.NewReader(cfg)); err != nil {
		return fmt.Errorf("signing artifact %s: config of the merged %s: %w", d.Digest, ref, err)
	}
	merged := want
	merged.Config = cfgDesc
	merged.Layers = layers
	out, err := json.Marshal(merged)
	if err != nil {
		return err
	}
	if err := push(d.MediaType, out); err != nil {
		return err
	}
	atomic.AddInt64(&im.sig.res.TagsMerged, 1)
	im.warnf("%s at the target held %d other signatures; it now names %s, which keeps them beside the %d carried", ref, len(have.Layers), digest.FromBytes(out), len(want.Layers))
	return nil
}

// cosignShaped reports whether a manifest looks like a cosign tag-scheme
// object: an image manifest with no subject and only in-line layers.
func cosignShaped(mediaType string, m *ocispec.Manifest) bool {
	if mediaType != ocispec.MediaTypeImageManifest && mediaType != layout.MediaTypeDockerManifest {
		return false
	}
	if m.Subject != nil || len(m.Layers) == 0 {
		return false
	}
	for _, l := range m.Layers {
		if len(l.URLs) > 0 {
			return false
		}
	}
	return true
}

// cosignConfig is the image config cosign writes for a signature object:
// one uncompressed layer per signature, so the diff IDs are the layer
// digests.
func cosignConfig(layers []ocispec.Descriptor) ([]byte, error) {
	type history struct {
		Created string `json:"created"`
	}
	c := struct {
		Architecture string            `json:"architecture"`
		Config       map[string]string `json:"config"`
		Created      string            `json:"created"`
		History      []history         `json:"history"`
		OS           string            `json:"os"`
		RootFS       struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}{Config: map[string]string{}, Created: "0001-01-01T00:00:00Z"}
	c.RootFS.Type = "layers"
	for _, l := range layers {
		c.History = append(c.History, history{Created: "0001-01-01T00:00:00Z"})
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, l.Digest.String())
	}
	return json.Marshal(c)
}

// warnf adds a finding to the import's result.
func (im *importer) warnf(format string, args ...any) {
	im.res.Warnings = append(im.res.Warnings, fmt.Sprintf(format, args...))
}
