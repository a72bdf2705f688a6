package content

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Memory is a store in memory, for tests and small tools. It implements
// Storage, Tagger, Resolver and ReferrerLister. It is safe for concurrent
// use. Content is keyed by digest; a descriptor's media type is kept as
// it was first pushed.
type Memory struct {
	mu    sync.RWMutex
	blobs map[digest.Digest][]byte
	descs map[digest.Digest]ocispec.Descriptor
	tags  map[string]ocispec.Descriptor
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{blobs: map[digest.Digest][]byte{}, descs: map[digest.Digest]ocispec.Descriptor{}, tags: map[string]ocispec.Descriptor{}}
}

// Fetch implements Fetcher.
func (m *Memory) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	m.mu.RLock()
	b, ok := m.blobs[desc.Digest]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", desc.Digest, ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Push implements Pusher: the content is read into memory, verified, and
// kept only when it matches desc.
func (m *Memory) Push(_ context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if desc.Size < 0 {
		return fmt.Errorf("%w: push of %s without a size", ErrUnsupported, desc.Digest)
	}
	vr, err := NewVerifyReader(r, desc)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(vr)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[desc.Digest]; !ok {
		m.blobs[desc.Digest] = b
		m.descs[desc.Digest] = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, ArtifactType: desc.ArtifactType}
	}
	return nil
}

// Exists implements Exister.
func (m *Memory) Exists(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.blobs[desc.Digest]
	return ok, nil
}

// Tag implements Tagger.
func (m *Memory) Tag(_ context.Context, desc ocispec.Descriptor, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[desc.Digest]; !ok {
		return fmt.Errorf("tag %s: %s: %w", ref, desc.Digest, ErrNotFound)
	}
	m.tags[ref] = m.descs[desc.Digest]
	return nil
}

// Resolve implements Resolver.
func (m *Memory) Resolve(_ context.Context, ref string) (ocispec.Descriptor, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d, ok := m.tags[ref]
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	return d, nil
}

// Referrers implements ReferrerLister: the manifests held whose subject is
// subject, in digest order.
func (m *Memory) Referrers(_ context.Context, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []ocispec.Descriptor
	for d, desc := range m.descs {
		if desc.MediaType != ocispec.MediaTypeImageManifest && desc.MediaType != ocispec.MediaTypeImageIndex {
			continue
		}
		var head struct {
			ArtifactType string              `json:"artifactType"`
			Config       ocispec.Descriptor  `json:"config"`
			Subject      *ocispec.Descriptor `json:"subject"`
			Annotations  map[string]string   `json:"annotations"`
		}
		if json.Unmarshal(m.blobs[d], &head) != nil || head.Subject == nil || head.Subject.Digest != subject.Digest {
			continue
		}
		at := head.ArtifactType
		if at == "" && desc.MediaType == ocispec.MediaTypeImageManifest {
			at = head.Config.MediaType
		}
		if artifactType != "" && at != artifactType {
			continue
		}
		out = append(out, ocispec.Descriptor{MediaType: desc.MediaType, Digest: d, Size: desc.Size, ArtifactType: at, Annotations: head.Annotations})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// Len returns how many distinct contents the store holds.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.blobs)
}
