package export

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// dockerArchiveEntry is one image of `docker save`'s manifest.json.
type dockerArchiveEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// dockerManifest writes manifest.json, the index of a `docker save`
// archive, over the blobs the archive already holds (FORMAT.md §5.4): one
// entry per image, for one platform of a multi-platform image (linux/amd64
// when carried, else the first carried linux platform). Docker with a
// classic storage driver and `podman load` read archives only through it.
// Images whose manifest or config is not carried (a delta archive) are left
// out; nil when no image can be listed.
func (e *exporter) dockerManifest(index *ocispec.Index) ([]byte, error) {
	held := func(d digest.Digest) []byte {
		e.mu.Lock()
		defer e.mu.Unlock()
		if s := e.blobs[d]; s != nil {
			return s.data
		}
		return nil
	}
	carried := func(d digest.Digest) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, ok := e.blobs[d]
		_, omitted := e.fit.omitted[d]
		return ok && !omitted
	}
	var out []dockerArchiveEntry
	at := map[digest.Digest]int{} // manifest -> its entry: two names of one image share it
	for _, d := range index.Manifests {
		role := d.Annotations[layout.AnnotationRole]
		if role != layout.RoleInvocation && role != layout.RoleComponent {
			continue
		}
		m := d
		if layout.IsIndex(d.MediaType) {
			var ix ocispec.Index
			if json.Unmarshal(held(d.Digest), &ix) != nil {
				continue
			}
			pick := -1
			for i, c := range ix.Manifests {
				if c.Platform == nil || c.Platform.OS != "linux" || !layout.IsManifest(c.MediaType) || held(c.Digest) == nil {
					continue
				}
				if pick < 0 || c.Platform.Architecture == "amd64" && ix.Manifests[pick].Platform.Architecture != "amd64" {
					pick = i
				}
			}
			if pick < 0 {
				continue
			}
			m = ix.Manifests[pick]
		}
		// RepoTags take tags only: a reference by digest loads untagged
		// ("@" appears in a reference only before its digest).
		tag := d.Annotations[layout.AnnotationImageName]
		if strings.Contains(tag, "@") {
			tag = ""
		}
		if i, ok := at[m.Digest]; ok {
			if tag != "" && !slices.Contains(out[i].RepoTags, tag) {
				out[i].RepoTags = append(out[i].RepoTags, tag)
			}
			continue
		}
		var mf ocispec.Manifest
		if json.Unmarshal(held(m.Digest), &mf) != nil || !carried(mf.Config.Digest) {
			continue
		}
		entry := dockerArchiveEntry{Config: layout.BlobName(mf.Config.Digest), RepoTags: []string{}}
		ok := true
		for _, l := range mf.Layers {
			ok = ok && carried(l.Digest)
			entry.Layers = append(entry.Layers, layout.BlobName(l.Digest))
		}
		if !ok {
			continue
		}
		if tag != "" {
			entry.RepoTags = append(entry.RepoTags, tag)
		}
		at[m.Digest] = len(out)
		out = append(out, entry)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return json.Marshal(out)
}
