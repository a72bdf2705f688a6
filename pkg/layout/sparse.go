package layout

import (
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Annotations on index.json that record what an archive deliberately does
// not carry. An archive without them carries its whole graph.
const (
	// AnnotationPlatforms lists the platforms an export was restricted to
	// ("linux/amd64,linux/arm64"), as given to --platform.
	AnnotationPlatforms = "io.cnab.airgap.platforms"
	// AnnotationAbsent lists, comma-separated and sorted, the digests of
	// index children (platform manifests) that were left out by
	// --platform. The indexes that reference them are kept byte for byte
	// (sparse indexes), so their digests still equal contentDigest.
	AnnotationAbsent = "io.cnab.airgap.absent"

	// AnnotationDeltaBaseKind says what a delta archive was computed
	// against: "archive" (--base) or "inventory" (--base-inventory).
	AnnotationDeltaBaseKind = "io.cnab.airgap.delta.base.kind"
	// AnnotationDeltaBase identifies the base: the digest of the base
	// archive's index.json, or of the inventory file.
	AnnotationDeltaBase = "io.cnab.airgap.delta.base"
	// AnnotationDeltaBaseName describes the base for people ("sample-app
	// 0.1.0", "inventory of registry/prefix").
	AnnotationDeltaBaseName = "io.cnab.airgap.delta.base.name"
	// AnnotationDeltaOmitted lists, comma-separated and sorted, the blobs
	// the delta archive does not carry because its base has them. An
	// import checks that the target holds every one of them before it
	// pushes anything.
	AnnotationDeltaOmitted = "io.cnab.airgap.delta.omitted"
)

// Delta base kinds.
const (
	DeltaBaseArchive   = "archive"
	DeltaBaseInventory = "inventory"
)

// FormatDigestList renders digests as a sorted, comma-separated list.
func FormatDigestList(ds []digest.Digest) string {
	ss := make([]string, len(ds))
	for i, d := range ds {
		ss[i] = d.String()
	}
	slices.Sort(ss)
	return strings.Join(slices.Compact(ss), ",")
}

// ParseDigestList parses a comma-separated list of digests ("" is empty).
// Every digest must be valid (see ValidateDigest).
func ParseDigestList(s string) (map[digest.Digest]bool, error) {
	out := map[digest.Digest]bool{}
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		d := digest.Digest(part)
		if err := ValidateDigest(d); err != nil {
			return nil, err
		}
		out[d] = true
	}
	return out, nil
}

// AbsentChildren returns the index children the archive declares absent
// (AnnotationAbsent).
func (a *Archive) AbsentChildren() (map[digest.Digest]bool, error) {
	m, err := ParseDigestList(a.Index.Annotations[AnnotationAbsent])
	if err != nil {
		return nil, fmt.Errorf("%w: index.json %s: %w", ErrInvalidArchive, AnnotationAbsent, err)
	}
	return m, nil
}

// DeltaOmitted returns the blobs a delta archive declares it leaves out
// (AnnotationDeltaOmitted), and whether the archive declares a base at all.
func (a *Archive) DeltaOmitted() (map[digest.Digest]bool, bool, error) {
	if a.Index.Annotations[AnnotationDeltaBaseKind] == "" {
		return nil, false, nil
	}
	m, err := ParseDigestList(a.Index.Annotations[AnnotationDeltaOmitted])
	if err != nil {
		return nil, true, fmt.Errorf("%w: index.json %s: %w", ErrInvalidArchive, AnnotationDeltaOmitted, err)
	}
	return m, true, nil
}
