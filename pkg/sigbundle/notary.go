package sigbundle

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/theupdateframework/notary/client"
	store "github.com/theupdateframework/notary/storage"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// emptyJSON is the OCI empty descriptor's content, "{}".
var emptyJSON = []byte("{}")

// GUN returns the Notary Globally Unique Name of a repository: registry
// host and path, with Docker Hub spelled docker.io as Docker Content Trust
// does.
func GUN(repo name.Repository) string {
	if repo.RegistryStr() == name.DefaultRegistry {
		return "docker.io/" + repo.RepositoryStr()
	}
	return repo.Name()
}

// NotaryRequest says which Notary v1 trust data to collect.
type NotaryRequest struct {
	// Server is the Notary server's base URL (https://notary.example.com).
	Server string
	// GUN is the Globally Unique Name: registry host and repository of the
	// bundle reference (reference.ParseNormalizedNamed(ref).Name()).
	GUN string
	// Target is the target name: the bundle's tag.
	Target string
	// Signed is what the target's hashes must be of: the bundle.json config
	// blob for a thin bundle (Object TargetObjectBundleJSON), or the image
	// manifest (TargetObjectManifest).
	Signed ocispec.Descriptor
	Object string
	// Subject is the manifest the trust-data artifact is attached to (the
	// bundle index), and Repository the repository it lives in.
	Subject    ocispec.Descriptor
	Repository name.Repository
	// BundleJSON is the exact bundle.json, for the in-toto check at export.
	BundleJSON []byte
}

// NotaryInfo describes verified Notary v1 trust data.
type NotaryInfo struct {
	GUN        string `json:"gun"`
	Target     string `json:"target"`
	TargetRole string `json:"targetRole"`
	Server     string `json:"server,omitempty"`
	// RootKeyIDs are the root role's key IDs: what an operator pins
	// (GUN=ID) after confirming it out of band.
	RootKeyIDs []string `json:"rootKeyIDs"`
	// SHA256 and Length are what the target signs.
	SHA256 string `json:"sha256"`
	Length int64  `json:"length"`
	// Anchor says what the root was checked against: "pin", "ca" or "tofu".
	Anchor string `json:"anchor"`
	// Roles lists each carried role with its version and expiry.
	Roles []RoleInfo `json:"roles"`
	// ExportedAt is when the data was read from the server (recorded in the
	// archive, not signed).
	ExportedAt time.Time `json:"exportedAt,omitzero"`
	// ValidAtExport reports that timestamp and snapshot were unexpired at
	// ExportedAt: their freshness cannot mean anything offline.
	ValidAtExport bool `json:"validAtExport"`
	// Expired lists roles that have expired (accepted with WithAllowExpired).
	Expired []string `json:"expired,omitempty"`
	// InToto is the in-toto result, when the target carries in-toto data.
	InToto *InTotoInfo `json:"inToto,omitempty"`
	// Artifact is the digest of the trust-data artifact in the archive.
	Artifact digest.Digest `json:"artifact,omitempty"`
	// Object says what the target signs: TargetObjectBundleJSON or
	// TargetObjectManifest; Subject is the manifest the trust data is
	// attached to (the bundle index, or the image manifest it signs).
	Object  string        `json:"object,omitempty"`
	Subject digest.Digest `json:"subject,omitempty"`
	// Renamed is true when the GUN's repository path and the target were
	// accepted under another registry or prefix (WithAllowRename).
	Renamed bool `json:"renamed,omitempty"`

	hashes data.Hashes
	custom []byte
	// repo is the verified TUF repository (resolves 301 in-toto targets).
	repo *tuf.Repo
}

// RoleInfo is one carried TUF role.
type RoleInfo struct {
	Name    string    `json:"name"`
	Version int       `json:"version"`
	Expires time.Time `json:"expires"`
}

// notaryFiles are the role files of one GUN as carried, and the bytes of
// targets they sign that travel with them (by target name).
type notaryFiles struct {
	gun     string
	target  string
	roles   map[string][]byte
	targets map[string][]byte
}

// CollectNotary reads the trust data of req.GUN from the Notary server,
// verifies it online (with a pin, CA or TOFU as configured; TOFU by
// default at export), checks that req.Target signs exactly req.Signed, runs
// the in-toto check when the target carries in-toto data without
// inspections, and returns the role files, unmodified, as one artifact
// whose subject is req.Subject.
func CollectNotary(ctx context.Context, req NotaryRequest, opts ...Option) (*Collection, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if req.Server == "" || req.GUN == "" {
		return nil, errors.New("notary: server and GUN are required")
	}
	if req.Target == "" {
		return nil, fmt.Errorf("notary GUN %s: the bundle reference has no tag, and Notary targets are tags", req.GUN)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rt := o.notaryRoundTripper(req.Server, req.GUN, false) // notaryauth.go
	remote, err := store.NewNotaryServerStore(strings.TrimSuffix(req.Server, "/"), data.GUN(req.GUN), rt)
	if err != nil {
		return nil, fmt.Errorf("notary server %s: %w", req.Server, err)
	}
	cache := store.NewMemoryStore(nil)
	pin, _, err := o.trustPin(req.GUN, true)
	if err != nil {
		return nil, err
	}
	repo, _, err := client.LoadTUFRepo(client.TUFLoadOptions{GUN: data.GUN(req.GUN), TrustPinning: pin, Cache: cache, RemoteStore: remote})
	if err != nil {
		if aerr := notaryAuthFailure(rt); aerr != nil {
			return nil, aerr
		}
		var ne client.ErrRepositoryNotExist
		if errors.As(err, &ne) {
			return nil, fmt.Errorf("notary GUN %s at %s: %w: %w", req.GUN, req.Server, ErrNotFound, err)
		}
		return nil, &Error{Kind: "notary", GUN: req.GUN, Err: fmt.Errorf("%w: online verification at %s: %w", ErrTrustData, req.Server, err)}
	}
	files := notaryFiles{gun: req.GUN, target: req.Target, roles: map[string][]byte{}}
	names := []string{data.CanonicalRootRole.String(), data.CanonicalTimestampRole.String(), data.CanonicalSnapshotRole.String()}
	for r := range repo.Targets {
		names = append(names, r.String())
	}
	for _, r := range names {
		raw, err := cache.GetSized(r, store.NoSizeLimit)
		if err != nil {
			return nil, fmt.Errorf("notary GUN %s: role %s was verified but not cached: %w", req.GUN, r, err)
		}
		files.roles[r] = raw
	}
	exported := o.now().UTC().Truncate(time.Second)
	info, err := o.verifyNotary(ctx, files, true, exported)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(info, req.Signed, req.Object); err != nil {
		return nil, &Error{Kind: "notary", GUN: req.GUN, Role: info.TargetRole, Err: err}
	}
	var warnings []string
	if req.Object == TargetObjectBundleJSON {
		form, c := parseInTotoCustom(info.custom)
		switch {
		case form == InTotoForm301 && o.inTotoDir == "":
			warnings = append(warnings, fmt.Sprintf("notary GUN %s target %s references in-toto metadata as separate targets (CNAB 301: %s); their bytes are not in the trust data and are not carried: pass --in-toto-dir DIR holding them", req.GUN, req.Target, strings.Join(c.InToto, ", ")))
		case form == InTotoForm301:
			files.targets, err = o.gather301(ctx, info, c.InToto)
			if err != nil {
				return nil, &Error{Kind: "in-toto", GUN: req.GUN, Role: info.TargetRole, Err: err}
			}
		case o.inTotoDir != "":
			warnings = append(warnings, fmt.Sprintf("notary GUN %s target %s has no CNAB 301 in-toto references: --in-toto-dir was not used", req.GUN, req.Target))
		}
		it, err := o.verifyInTotoTarget(ctx, info, files.targets, req.BundleJSON, false)
		switch {
		case errors.Is(err, ErrInspections):
			warnings = append(warnings, fmt.Sprintf("notary GUN %s target %s: the in-toto layout has inspections; it was not verified at export (import needs --in-toto-run-inspections)", req.GUN, req.Target))
			info.InToto = it
		case err != nil:
			return nil, &Error{Kind: "in-toto", GUN: req.GUN, Role: info.TargetRole, Err: err}
		default:
			info.InToto = it
		}
	}
	info.Server = req.Server
	info.ExportedAt = exported
	info.Object = req.Object
	info.Subject = req.Subject.Digest
	col, err := notaryArtifact(req, info, files)
	if err != nil {
		return nil, err
	}
	col.Warnings = append(col.Warnings, warnings...)
	return col, nil
}

// notaryArtifact wraps role files in an OCI artifact.
func notaryArtifact(req NotaryRequest, info *NotaryInfo, files notaryFiles) (*Collection, error) {
	b := newArtifact(ArtifactTypeNotary)
	for _, r := range roleOrder(files.roles) {
		b.layer(MediaTypeNotaryRole, files.roles[r], map[string]string{AnnotationNotaryRole: r, ocispec.AnnotationTitle: strings.ReplaceAll(r, "/", "_") + ".json"})
	}
	for _, n := range slices.Sorted(maps.Keys(files.targets)) {
		b.layer(MediaTypeNotaryTargetFile, files.targets[n], map[string]string{AnnotationNotaryTargetName: n, ocispec.AnnotationTitle: path.Base(n)})
	}
	ann := map[string]string{
		AnnotationNotaryGUN:          info.GUN,
		AnnotationNotaryTarget:       info.Target,
		AnnotationNotaryTargetRole:   info.TargetRole,
		AnnotationNotaryTargetSHA256: info.SHA256,
		AnnotationNotaryTargetObject: req.Object,
		AnnotationNotaryServer:       req.Server,
		AnnotationNotaryRootKeyID:    strings.Join(info.RootKeyIDs, ","),
		AnnotationCreated:            info.ExportedAt.Format(time.RFC3339),
	}
	repo := ""
	if req.Repository.RepositoryStr() != "" {
		repo = req.Repository.Name()
	}
	col, d, err := b.finish(ArtifactTypeNotary, req.Subject, ann, layout.RoleTrust, ViaNotary, repo)
	if err != nil {
		return nil, err
	}
	info.Artifact = d
	col.Notary = []*NotaryInfo{info}
	return col, nil
}

// roleOrder returns role names parents first: root, timestamp, snapshot,
// targets, then delegations by depth and name.
func roleOrder(roles map[string][]byte) []string {
	fixed := []string{"root", "timestamp", "snapshot", "targets"}
	var out, dels []string
	for _, r := range fixed {
		if _, ok := roles[r]; ok {
			out = append(out, r)
		}
	}
	for r := range roles {
		if !slices.Contains(fixed, r) {
			dels = append(dels, r)
		}
	}
	sort.Slice(dels, func(i, j int) bool {
		di, dj := strings.Count(dels[i], "/"), strings.Count(dels[j], "/")
		if di != dj {
			return di < dj
		}
		return dels[i] < dels[j]
	})
	return append(out, dels...)
}

// trustPin builds the trust pinning for gun from the options. At export
// (export=true) TOFU is the default; offline it must be asked for.
func (o *options) trustPin(gun string, export bool) (trustpinning.TrustPinConfig, string, error) {
	if ids, ok := o.pins[gun]; ok {
		return trustpinning.TrustPinConfig{Certs: map[string][]string{gun: ids}, DisableTOFU: true}, "pin", nil
	}
	best := ""
	for p := range o.cas {
		if strings.HasPrefix(gun, p) && len(p) > len(best) {
			best = p
		}
	}
	if best != "" {
		return trustpinning.TrustPinConfig{CA: map[string]string{best: o.cas[best]}, DisableTOFU: true}, "ca", nil
	}
	if o.tofu || export {
		return trustpinning.TrustPinConfig{}, "tofu", nil
	}
	pinned := slices.Sorted(func(yield func(string) bool) {
		for g := range o.pins {
			if !yield(g) {
				return
			}
		}
	})
	msg := "no --notary-pin, --notary-ca or --notary-tofu covers it"
	if len(pinned) > 0 {
		msg = fmt.Sprintf("pins were given for %s only", strings.Join(pinned, ", "))
	}
	return trustpinning.TrustPinConfig{}, "", &Error{Kind: "notary", GUN: gun, Err: wrapf(ErrTrustAnchor, "%s", msg)}
}

// verifyNotary rebuilds the TUF repository from carried role files with
// trust pinning, applies the expiry policy and resolves the target.
func (o *options) verifyNotary(ctx context.Context, f notaryFiles, export bool, exportedAt time.Time) (*NotaryInfo, error) {
	fail := func(role string, err error) error { return &Error{Kind: "notary", GUN: f.gun, Role: role, Err: err} }
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rootRaw, ok := f.roles["root"]
	if !ok {
		return nil, fail("root", wrapf(ErrTrustData, "root.json is not carried"))
	}
	for _, r := range []string{"timestamp", "snapshot", "targets"} {
		if _, ok := f.roles[r]; !ok {
			return nil, fail(r, wrapf(ErrTrustData, "%s.json is not carried", r))
		}
	}
	rootIDs, cns, err := rootKeys(rootRaw)
	if err != nil {
		return nil, fail("root", fmt.Errorf("%w: %w", ErrTrustData, err))
	}
	for _, cn := range cns {
		if cn != f.gun {
			return nil, fail("root", wrapf(ErrTrustAnchor, "the root certificate is issued to GUN %q, not %q: Notary v1 trust data is bound to the name it was signed for and cannot vouch for a relocated name", cn, f.gun))
		}
	}
	pin, anchor, err := o.trustPin(f.gun, export)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			se.Key = strings.Join(rootIDs, ",")
			se.Err = fmt.Errorf("%w; the carried root's key ID is %s: confirm it with the publisher out of band, then pass --notary-pin %s=<ID>", se.Err, se.Key, f.gun)
		}
		return nil, err
	}
	b := tuf.NewRepoBuilder(data.GUN(f.gun), nil, pin)
	for _, r := range roleOrder(f.roles) {
		if int64(len(f.roles[r])) > o.maxMetadata {
			return nil, fail(r, wrapf(ErrTrustData, "%s.json is larger than %d bytes", r, o.maxMetadata))
		}
		// Expiry is judged below, against our own clock and policy.
		if err := b.Load(data.RoleName(r), f.roles[r], 1, true); err != nil {
			if r == "root" {
				ids := strings.Join(rootIDs, ",")
				return nil, &Error{Kind: "notary", GUN: f.gun, Role: r, Key: ids,
					Err: fmt.Errorf("%w: root key %s does not satisfy the %s trust anchor: %w", ErrTrustAnchor, ids, anchor, err)}
			}
			return nil, fail(r, fmt.Errorf("%w: %w", ErrTrustData, err))
		}
	}
	repo, _, err := b.Finish()
	if err != nil {
		return nil, fail("", fmt.Errorf("%w: %w", ErrTrustData, err))
	}
	info := &NotaryInfo{GUN: f.gun, Target: f.target, RootKeyIDs: rootIDs, Anchor: anchor, ExportedAt: exportedAt}
	now := o.now()
	add := func(name string, c data.SignedCommon, mustBeLive bool) {
		info.Roles = append(info.Roles, RoleInfo{Name: name, Version: c.Version, Expires: c.Expires})
		if mustBeLive && !c.Expires.After(now) {
			info.Expired = append(info.Expired, name)
		}
	}
	add("root", repo.Root.Signed.SignedCommon, true)
	add("timestamp", repo.Timestamp.Signed.SignedCommon, false)
	add("snapshot", repo.Snapshot.Signed.SignedCommon, false)
	for _, r := range roleOrder(f.roles) {
		if t, ok := repo.Targets[data.RoleName(r)]; ok {
			add(r, t.Signed.SignedCommon, true)
		}
	}
	if !exportedAt.IsZero() {
		info.ValidAtExport = repo.Timestamp.Signed.Expires.After(exportedAt) && repo.Snapshot.Signed.Expires.After(exportedAt)
	}
	if len(info.Expired) > 0 && !o.allowExpired {
		var parts []string
		for _, r := range info.Roles {
			if slices.Contains(info.Expired, r.Name) {
				parts = append(parts, fmt.Sprintf("%s expired %s", r.Name, r.Expires.UTC().Format(time.RFC3339)))
			}
		}
		return nil, fail(info.Expired[0], wrapf(ErrExpired, "%s (now %s; --allow-expired accepts it)", strings.Join(parts, ", "), now.UTC().Format(time.RFC3339)))
	}
	tw, err := client.NewReadOnly(repo).GetTargetByName(f.target, "targets/releases", data.CanonicalTargetsRole)
	if err != nil {
		return nil, fail("targets", wrapf(ErrTargetMismatch, "no target %q in targets/releases or targets: %v", f.target, err))
	}
	info.repo = repo
	info.TargetRole = tw.Role.String()
	info.Length = tw.Length
	info.hashes = tw.Hashes
	if h, ok := tw.Hashes["sha256"]; ok {
		info.SHA256 = hex.EncodeToString(h)
	}
	if tw.Custom != nil {
		info.custom = []byte(*tw.Custom)
	}
	return info, nil
}

// checkTarget compares the signed target with the carried object.
func checkTarget(info *NotaryInfo, signed ocispec.Descriptor, object string) error {
	if info.SHA256 == "" {
		return wrapf(ErrTargetMismatch, "target %q has no sha256 hash", info.Target)
	}
	what := "bundle.json"
	if object == TargetObjectManifest {
		what = "manifest"
	}
	if signed.Digest.Algorithm() != digest.SHA256 || info.SHA256 != signed.Digest.Encoded() {
		return wrapf(ErrTargetMismatch, "target %q in %s signs sha256 %s, the carried %s hashes to %s", info.Target, info.TargetRole, info.SHA256, what, signed.Digest)
	}
	if info.Length != signed.Size {
		return wrapf(ErrTargetMismatch, "target %q in %s signs length %d, the carried %s is %d bytes", info.Target, info.TargetRole, info.Length, what, signed.Size)
	}
	return nil
}

// rootKeys returns the root role's key IDs and the common names of their
// certificates, parsed from root.json before any trust decision (they are
// only used for messages and the GUN check; the builder verifies).
func rootKeys(raw []byte) ([]string, []string, error) {
	var r struct {
		Signed struct {
			Keys  map[string]data.TUFKey `json:"keys"`
			Roles map[string]struct {
				KeyIDs []string `json:"keyids"`
			} `json:"roles"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("root.json: %w", err)
	}
	ids := r.Signed.Roles["root"].KeyIDs
	if len(ids) == 0 {
		return nil, nil, errors.New("root.json names no root keys")
	}
	var cns []string
	for _, id := range ids {
		k, ok := r.Signed.Keys[id]
		if !ok {
			return nil, nil, fmt.Errorf("root.json: root key %s is not listed", id)
		}
		if !strings.HasSuffix(k.Type, "-x509") {
			continue
		}
		blk, _ := pem.Decode(k.Value.Public)
		if blk == nil {
			return nil, nil, fmt.Errorf("root.json: root key %s: certificate is not PEM", id)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("root.json: root key %s: %w", id, err)
		}
		cns = append(cns, c.Subject.CommonName)
	}
	sort.Strings(ids)
	return ids, cns, nil
}

// notaryFilesFrom reads the role files of a trust-data artifact. Layer
// annotations only say which file is which role; the builder checks each
// against the hashes its parents sign.
func notaryFilesFrom(m *manifest, read func(ocispec.Descriptor) ([]byte, error)) (notaryFiles, error) {
	f := notaryFiles{gun: m.Annotations[AnnotationNotaryGUN], target: m.Annotations[AnnotationNotaryTarget], roles: map[string][]byte{}, targets: map[string][]byte{}}
	if f.gun == "" || f.target == "" {
		return f, wrapf(ErrTrustData, "the trust-data artifact does not name its GUN and target")
	}
	for _, l := range m.Layers {
		if l.MediaType == MediaTypeNotaryTargetFile {
			n := l.Annotations[AnnotationNotaryTargetName]
			if n == "" {
				return f, wrapf(ErrTrustData, "target-file layer %s does not name its target", l.Digest)
			}
			if _, dup := f.targets[n]; dup {
				return f, wrapf(ErrTrustData, "target file %q is carried twice", n)
			}
			raw, err := read(l)
			if err != nil {
				return f, err
			}
			f.targets[n] = raw
			continue
		}
		r := l.Annotations[AnnotationNotaryRole]
		if r == "" || l.MediaType != MediaTypeNotaryRole {
			return f, wrapf(ErrTrustData, "layer %s is not a role file", l.Digest)
		}
		if !data.ValidRole(data.RoleName(r)) {
			return f, wrapf(ErrTrustData, "layer %s claims invalid role %q", l.Digest, r)
		}
		if _, dup := f.roles[r]; dup {
			return f, wrapf(ErrTrustData, "role %s is carried twice", r)
		}
		raw, err := read(l)
		if err != nil {
			return f, err
		}
		f.roles[r] = raw
	}
	return f, nil
}
