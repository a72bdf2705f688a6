package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/fsutil"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// WithBase makes a delta export against the archive at path (any format,
// split or not), typically the previous export that was already imported on
// the other side: blobs the base carries (or itself left out as a delta)
// are left out. Manifests, indexes and bundle.json are always carried, so
// the delta can be checked on its own; only layers and image configs are
// left out. The archive records its base (layout.AnnotationDeltaBase*) and
// the blobs it leaves out. The default is a complete export.
func WithBase(path string) Option {
	return func(o *options) error { o.fit.base = path; return nil }
}

// WithBaseInventory makes a delta export against an inventory of the target
// registry (see TakeInventory, `cnab-airgap inventory`): blobs the target
// already holds are left out. See WithBase.
func WithBaseInventory(path string) Option {
	return func(o *options) error { o.fit.baseInventory = path; return nil }
}

// Base describes the base of a delta export.
type Base struct {
	// Kind is layout.DeltaBaseArchive or layout.DeltaBaseInventory.
	Kind string `json:"kind"`
	// Digest identifies the base (its index.json, or the inventory file).
	Digest string `json:"digest"`
	// Name describes it.
	Name string `json:"name"`
	// OmittedBlobs and OmittedBytes count what the delta leaves out.
	OmittedBlobs int   `json:"omittedBlobs"`
	OmittedBytes int64 `json:"omittedBytes"`
}

// recordDelta decides which blobs a delta leaves out and records the base
// and those blobs in index.json.
func (e *exporter) recordDelta(ctx context.Context, index *ocispec.Index, res *Result) error {
	var have map[digest.Digest]bool
	var base *Base
	var err error
	switch {
	case e.o.fit.base != "":
		have, base, err = baseFromArchive(ctx, e.o.fit.base)
	case e.o.fit.baseInventory != "":
		have, base, err = baseFromInventory(e.o.fit.baseInventory)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	e.fit.omitted = map[digest.Digest]int64{}
	var ds []digest.Digest
	for d, s := range e.blobs {
		// Manifests, indexes and bundle.json are held in memory: always
		// carried. Layers and configs the base has are left out.
		if s.data == nil && have[d] {
			e.fit.omitted[d] = s.size
			ds = append(ds, d)
			base.OmittedBlobs++
			base.OmittedBytes += s.size
		}
	}
	index.Annotations[layout.AnnotationDeltaBaseKind] = base.Kind
	index.Annotations[layout.AnnotationDeltaBase] = base.Digest
	index.Annotations[layout.AnnotationDeltaBaseName] = base.Name
	if len(ds) > 0 {
		index.Annotations[layout.AnnotationDeltaOmitted] = layout.FormatDigestList(ds)
	}
	res.Base = base
	return nil
}

// baseFromArchive lists what a base archive carries, and what it left out
// itself when it is a delta too (the other side has those as well).
func baseFromArchive(ctx context.Context, path string) (map[digest.Digest]bool, *Base, error) {
	a, err := layout.Open(ctx, path, layout.OpenOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("base archive: %w", err)
	}
	defer a.Close()
	have := map[digest.Digest]bool{}
	for d := range a.Blobs() {
		have[d] = true
	}
	omitted, _, err := a.DeltaOmitted()
	if err != nil {
		return nil, nil, fmt.Errorf("base archive %s: %w", path, err)
	}
	for d := range omitted {
		have[d] = true
	}
	nm := strings.TrimSpace(a.Index.Annotations[layout.AnnotationBundleReference])
	if nm == "" {
		nm = path
	}
	return have, &Base{Kind: layout.DeltaBaseArchive, Digest: digest.FromBytes(a.IndexRaw).String(), Name: "archive of " + nm}, nil
}

// InventoryMediaType identifies an inventory file.
const InventoryMediaType = "application/vnd.cnab-airgap.inventory.v1+json"

// maxInventoryBytes caps an inventory file before it is decoded.
const maxInventoryBytes = 64 << 20

// Inventory lists the content a registry (under a prefix) already holds, so
// that an export can leave it out (WithBaseInventory).
type Inventory struct {
	MediaType string `json:"mediaType"`
	// Target is REGISTRY[/PREFIX] the inventory was taken of.
	Target string `json:"target"`
	// Created is when it was taken.
	Created time.Time `json:"created"`
	// Repositories are the repositories listed under the prefix.
	Repositories []string `json:"repositories"`
	// Blobs are the layers and configs found, with their size and the
	// repositories that hold them.
	Blobs map[digest.Digest]InventoryBlob `json:"blobs"`
	// Manifests are the manifests and indexes found.
	Manifests map[digest.Digest]InventoryBlob `json:"manifests"`
}

// InventoryBlob is one inventoried blob.
type InventoryBlob struct {
	Size         int64    `json:"size"`
	Repositories []string `json:"repositories"`
}

// ErrInventory is returned for an inventory that cannot be taken or read.
var ErrInventory = errdefs.New("inventory", errdefs.ErrUnavailable)

// TakeInventory lists what the registry holds under target
// (REGISTRY[/PREFIX]): every repository the catalog lists under the prefix,
// every tag of each, and everything those tags reference (manifests, every
// platform of each index, configs and layers). The registry must serve the
// catalog API (/v2/_catalog). Only WithClient, WithJobs and WithLogger
// apply. Content that is only reachable by digest (not from a tag) is not
// found; cnab-airgap's imports tag every bundle, whose index references all
// of its images.
func TakeInventory(ctx context.Context, target string, opts ...Option) (*Inventory, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	t, err := relocate.ParseTarget(target)
	if err != nil {
		return nil, err
	}
	probe, err := o.Client.Repository(t.Registry + "/inventory")
	if err != nil {
		return nil, err
	}
	repos, err := remote.Catalog(ctx, probe.Registry, o.Client.RemoteOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%w: listing the repositories of %s (the registry must serve /v2/_catalog): %w", ErrInventory, t.Registry, err)
	}
	inv := &Inventory{MediaType: InventoryMediaType, Target: t.String(), Created: time.Now().UTC(),
		Blobs: map[digest.Digest]InventoryBlob{}, Manifests: map[digest.Digest]InventoryBlob{}}
	for _, r := range repos {
		if t.Prefix != "" && r != t.Prefix && !strings.HasPrefix(r, t.Prefix+"/") {
			continue
		}
		inv.Repositories = append(inv.Repositories, r)
	}
	sort.Strings(inv.Repositories)
	add := func(m map[digest.Digest]InventoryBlob, d digest.Digest, size int64, repo string) {
		b := m[d]
		b.Size = size
		if !slices.Contains(b.Repositories, repo) {
			b.Repositories = append(b.Repositories, repo)
		}
		m[d] = b
	}
	for _, r := range inv.Repositories {
		repo, err := o.Client.Repository(t.Registry + "/" + r)
		if err != nil {
			return nil, err
		}
		tags, err := remote.List(repo, append(o.Client.RemoteOptions(), remote.WithContext(ctx))...)
		if err != nil {
			if registry.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("%w: tags of %s: %w", ErrInventory, repo, err)
		}
		// Each tag's graph, with the shared graph walk of pkg/content; a
		// manifest walked for one tag is not walked again for the next.
		seen := map[digest.Digest]bool{}
		store := o.Client.Store(repo)
		wo := content.WalkOptions{
			Concurrency: 1,
			MaxDepth:    8,
			PreVisit: func(_ context.Context, d ocispec.Descriptor, _ int) error {
				if layout.IsManifestOrIndex(d.MediaType) && seen[d.Digest] {
					return content.ErrSkip
				}
				seen[d.Digest] = true
				return nil
			},
			OnError: func(d ocispec.Descriptor, err error) error {
				if errors.Is(err, errdefs.ErrNotFound) {
					return nil // a child the registry does not hold: not in the inventory
				}
				return fmt.Errorf("%w: %s@%s: %w", ErrInventory, repo, d.Digest, err)
			},
		}
		for _, tag := range tags {
			ref, err := o.Client.Tag(repo, tag)
			if err != nil {
				return nil, err
			}
			got, err := o.Client.Puller().Get(ctx, ref)
			if err != nil {
				if registry.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("%w: %s: %w", ErrInventory, ref, err)
			}
			root := ocispec.Descriptor{MediaType: layout.DetectMediaType(got.Manifest), Digest: digest.FromBytes(got.Manifest), Size: int64(len(got.Manifest))}
			if root.MediaType == "" {
				root.MediaType = string(got.MediaType)
			}
			err = content.Walk(ctx, content.WithBytes(store, root, got.Manifest), []ocispec.Descriptor{root}, wo, func(_ context.Context, n content.Node) error {
				if n.IsManifest() {
					add(inv.Manifests, n.Desc.Digest, n.Desc.Size, r)
				} else {
					add(inv.Blobs, n.Desc.Digest, n.Desc.Size, r)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return inv, nil
}

// WriteFile writes the inventory as indented JSON, atomically.
func (inv *Inventory) WriteFile(path string) error {
	raw, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(raw, '\n'), 0o644)
}

// ReadInventory reads and checks an inventory file.
func ReadInventory(path string) (*Inventory, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInventory, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxInventoryBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrInventory, path, err)
	}
	if len(raw) > maxInventoryBytes {
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInventory, path, maxInventoryBytes)
	}
	var inv Inventory
	if err := layout.DecodeJSON(raw, &inv); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrInventory, path, err)
	}
	if inv.MediaType != InventoryMediaType {
		return nil, nil, fmt.Errorf("%w: %s: media type %q is not %s", ErrInventory, path, inv.MediaType, InventoryMediaType)
	}
	for d := range inv.Blobs {
		if err := layout.ValidateDigest(d); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrInventory, path, err)
		}
	}
	return &inv, raw, nil
}

func baseFromInventory(path string) (map[digest.Digest]bool, *Base, error) {
	inv, raw, err := ReadInventory(path)
	if err != nil {
		return nil, nil, err
	}
	have := map[digest.Digest]bool{}
	for d := range inv.Blobs {
		have[d] = true
	}
	return have, &Base{Kind: layout.DeltaBaseInventory, Digest: digest.FromBytes(raw).String(),
		Name: fmt.Sprintf("inventory of %s taken %s", inv.Target, inv.Created.Format(time.RFC3339))}, nil
}
