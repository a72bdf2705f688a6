package sigbundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	sgtuf "github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// The Sigstore trust material travels in the archive as one artifact bound
// to the bundle index: the trusted root (trusted_root.json) and, when it
// was fetched through TUF, every TUF metadata file the fetch read (each
// root version after the pinned one, timestamp, snapshot, targets), so
// that the other side replays the same TUF client workflow offline against
// its own pinned root and gets the trusted root only if the chain holds.

// Media types, annotations and names of the carried Sigstore trust material.
const (
	ArtifactTypeSigstoreTrust    = "application/vnd.cnab.airgap.sigstore-trust.v1"
	MediaTypeSigstoreTrustedRoot = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
	MediaTypeTUFMetadata         = "application/vnd.cnab.airgap.tuf-metadata.v1+json"
	// AnnotationTUFURL is the TUF repository the material came from ("" for
	// a trusted root given as a file); AnnotationTUFPath a metadata file's
	// path in it (as the TUF client asked for it, e.g. "2.root.json").
	AnnotationTUFURL  = "io.cnab.airgap.sigstore.tuf-url"
	AnnotationTUFPath = "io.cnab.airgap.tuf.path"
	// ViaSigstoreTUF and ViaFile say how the material was obtained.
	ViaSigstoreTUF = "sigstore-tuf"
	ViaFile        = "file"
	// TrustedRootTarget is the TUF target name of the trusted root.
	TrustedRootTarget = "trusted_root.json"
	// DefaultSigstoreTUFURL is Sigstore's public-good TUF repository, whose
	// root sigstore-go embeds.
	DefaultSigstoreTUFURL = sgtuf.DefaultMirror
)

// DefaultSigstoreTUFRoot is the public-good TUF root sigstore-go embeds.
func DefaultSigstoreTUFRoot() []byte { return sgtuf.DefaultRoot() }

// SigstoreRequest asks CollectSigstoreTrust for Sigstore trust material.
type SigstoreRequest struct {
	// URL is the TUF repository (DefaultSigstoreTUFURL for public-good),
	// Root the pinned TUF root.json the fetch starts from (nil: sigstore-go's
	// embedded root, for DefaultSigstoreTUFURL only).
	URL  string
	Root []byte
	// TrustedRoot, instead of URL, is a trusted_root.json given as a file:
	// carried as it is (the other side must be told to trust it).
	TrustedRoot []byte
	// Subjects are the bundle indexes the material is attached to: it is
	// fetched once and carried as one artifact per subject (their blobs
	// are the same), so that each bundle of an archive of several is
	// verified with material of its own.
	Subjects []ocispec.Descriptor
	// Transport reaches the TUF repository (TLS settings); nil:
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// SigstoreTrustInfo describes carried Sigstore trust material and, after
// Verify, whether it was used.
type SigstoreTrustInfo struct {
	Artifact digest.Digest `json:"artifact,omitempty"`
	// Source is "tuf" or "file".
	Source string `json:"source"`
	URL    string `json:"url,omitempty"`
	// TrustedRootSHA256 is the hash of the carried trusted_root.json.
	TrustedRootSHA256 string `json:"trustedRootSHA256"`
	// Roles lists the TUF roles with version and expiry.
	Roles []RoleInfo `json:"roles,omitempty"`
	// Anchor is what Verify checked the TUF chain against: "pin" (a given
	// TUF root) or "embedded" (sigstore-go's public-good root); "operator"
	// when the operator's own trusted root was used instead; "" when the
	// material was not used.
	Anchor string `json:"anchor,omitempty"`
	// ExportedAt is when the material was fetched; ValidAtExport that its
	// TUF metadata was unexpired then.
	ExportedAt    time.Time `json:"exportedAt,omitzero"`
	ValidAtExport bool      `json:"validAtExport,omitempty"`
	// PinnedRoot names the TUF root the chain was checked from,
	// "sha256:<hex>" of the pinned root.json (the trust state remembers
	// role versions under it); empty when the chain was not checked.
	PinnedRoot string `json:"pinnedRoot,omitempty"`
	// Used is true when keyless signatures were verified against it.
	Used bool   `json:"used"`
	Note string `json:"note,omitempty"`
}

// CollectSigstoreTrust fetches the Sigstore trusted root through TUF (or
// takes the given file), once, and returns it as an artifact about each of
// req.Subjects.
func CollectSigstoreTrust(ctx context.Context, req SigstoreRequest, opts ...Option) (*Collection, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	info := &SigstoreTrustInfo{ExportedAt: o.now().UTC().Truncate(time.Second)}
	var files map[string][]byte
	var trusted []byte
	switch {
	case req.TrustedRoot != nil:
		if _, err := ParseTrustedRoot(req.TrustedRoot); err != nil {
			return nil, &Error{Kind: "sigstore", Err: wrapf(ErrTrustData, "%v", err)}
		}
		trusted, info.Source = req.TrustedRoot, "file"
	case req.URL != "":
		pinned := req.Root
		if pinned == nil {
			if strings.TrimRight(req.URL, "/") != DefaultSigstoreTUFURL {
				return nil, fmt.Errorf("sigbundle: the TUF repository %s needs its pinned root.json", req.URL)
			}
			pinned = DefaultSigstoreTUFRoot()
		}
		rt := req.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		rec := &recordingFetcher{ctx: ctx, base: strings.TrimRight(req.URL, "/") + "/", client: &http.Client{Transport: rt}, files: map[string][]byte{}, max: o.maxMetadata}
		trusted, info.Roles, err = tufTrustedRoot(req.URL, pinned, rec, time.Time{})
		if err != nil {
			return nil, &Error{Kind: "sigstore", Err: fmt.Errorf("TUF repository %s: %w", req.URL, err)}
		}
		if _, err := ParseTrustedRoot(trusted); err != nil {
			return nil, &Error{Kind: "sigstore", Err: wrapf(ErrTrustData, "TUF repository %s: %v", req.URL, err)}
		}
		files, info.Source, info.URL, info.ValidAtExport = rec.files, "tuf", req.URL, true
	default:
		return nil, errors.New("sigbundle: a Sigstore request needs a TUF URL or a trusted root")
	}
	sum := sha256.Sum256(trusted)
	info.TrustedRootSHA256 = hex.EncodeToString(sum[:])
	b := newArtifact(ocispec.MediaTypeEmptyJSON)
	b.layer(MediaTypeSigstoreTrustedRoot, trusted, map[string]string{ocispec.AnnotationTitle: TrustedRootTarget})
	for _, p := range slices.Sorted(maps.Keys(files)) {
		b.layer(MediaTypeTUFMetadata, files[p], map[string]string{AnnotationTUFPath: p})
	}
	ann := map[string]string{AnnotationCreated: info.ExportedAt.Format(time.RFC3339)}
	if info.URL != "" {
		ann[AnnotationTUFURL] = info.URL
	}
	via := ViaFile
	if info.Source == "tuf" {
		via = ViaSigstoreTUF
	}
	if len(req.Subjects) == 0 {
		return nil, errors.New("sigbundle: a Sigstore request needs a subject")
	}
	col := &Collection{}
	for _, s := range req.Subjects {
		c, d, err := b.finish(ArtifactTypeSigstoreTrust, s, ann, layout.RoleTrust, via, "")
		if err != nil {
			return nil, err
		}
		if info.Artifact == "" {
			info.Artifact = d
		}
		col.Merge(c)
	}
	col.Sigstore = info
	return col, nil
}

// tufTrustedRoot runs the TUF client workflow from pinned through f and
// returns the verified trusted root and the top-level roles. A zero ref
// checks expiry against the current time.
func tufTrustedRoot(url string, pinned []byte, f tufFetcher, ref time.Time) ([]byte, []RoleInfo, error) {
	cfg, err := config.New(strings.TrimRight(url, "/"), pinned)
	if err != nil {
		return nil, nil, err
	}
	cfg.Fetcher = f
	cfg.DisableLocalCache = true
	up, err := updater.New(cfg)
	if err != nil {
		return nil, nil, wrapf(ErrTrustAnchor, "pinned TUF root: %v", err)
	}
	if !ref.IsZero() {
		up.UnsafeSetRefTime(ref)
	}
	if err := up.Refresh(); err != nil {
		return nil, nil, tufError(err, f)
	}
	ti, err := up.GetTargetInfo(TrustedRootTarget)
	if err != nil {
		return nil, nil, wrapf(ErrTrustData, "target %s: %v", TrustedRootTarget, err)
	}
	_, data, err := up.DownloadTarget(ti, "", "")
	if err != nil {
		return nil, nil, tufError(err, f)
	}
	tm := up.GetTrustedMetadataSet()
	roles := []RoleInfo{{Name: "root", Version: int(tm.Root.Signed.Version), Expires: tm.Root.Signed.Expires}}
	if tm.Timestamp != nil {
		roles = append(roles, RoleInfo{Name: "timestamp", Version: int(tm.Timestamp.Signed.Version), Expires: tm.Timestamp.Signed.Expires})
	}
	if tm.Snapshot != nil {
		roles = append(roles, RoleInfo{Name: "snapshot", Version: int(tm.Snapshot.Signed.Version), Expires: tm.Snapshot.Signed.Expires})
	}
	for _, n := range slices.Sorted(maps.Keys(tm.Targets)) {
		roles = append(roles, RoleInfo{Name: n, Version: int(tm.Targets[n].Signed.Version), Expires: tm.Targets[n].Signed.Expires})
	}
	return data, roles, nil
}

// tufError classifies a TUF client failure through f: expired metadata, a
// version older than one already trusted, a download that failed at export
// (the network's fault), or anything else wrong with the data, a file the
// carried metadata lacks included.
func tufError(err error, f tufFetcher) error {
	var exp *metadata.ErrExpiredMetadata
	var bad *metadata.ErrBadVersionNumber
	switch {
	case errors.As(err, &exp):
		return wrapf(ErrExpired, "TUF: %v", err)
	case errors.As(err, &bad):
		return wrapf(ErrRollback, "TUF: %v", err)
	}
	var dl *metadata.ErrDownloadHTTP
	if _, replay := f.(*replayFetcher); errors.As(err, &dl) && !replay {
		return err // a network failure at export: not the data's fault
	}
	return wrapf(ErrTrustData, "TUF: %v", err)
}

type tufFetcher interface {
	DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error)
}

// recordingFetcher fetches TUF files over HTTP and keeps each one by its
// path below base.
type recordingFetcher struct {
	ctx    context.Context
	base   string
	client *http.Client
	files  map[string][]byte
	max    int64
}

func (f *recordingFetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	rel, ok := strings.CutPrefix(url, f.base)
	if !ok {
		return nil, fmt.Errorf("TUF file %s is outside the repository %s", url, f.base)
	}
	maxLength = min(maxLength, f.max)
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: url}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is larger than %d bytes", url, maxLength)}
	}
	f.files[rel] = raw
	return raw, nil
}

// replayFetcher serves carried TUF files; anything else is absent (404),
// which ends the root rotation as the TUF client expects.
type replayFetcher struct {
	base  string
	files map[string][]byte
}

func (f *replayFetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	rel, _ := strings.CutPrefix(url, f.base)
	raw, ok := f.files[rel]
	if !ok {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: url}
	}
	if int64(len(raw)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is larger than %d bytes", rel, maxLength)}
	}
	return raw, nil
}

// sigstoreTrust checks a carried trust artifact and, when the operator gave
// no trusted root, takes the trusted root from it if its TUF chain holds
// from the pinned root.
func (v *verifier) sigstoreTrust(ctx context.Context, a ocispec.Descriptor, m *manifest) error {
	info := &SigstoreTrustInfo{Artifact: a.Digest, URL: m.Annotations[AnnotationTUFURL], Source: "file"}
	if t, err := time.Parse(time.RFC3339, m.Annotations[AnnotationCreated]); err == nil {
		info.ExportedAt = t
	}
	fail := func(err error) error {
		return &Error{Kind: "sigstore", Artifact: a.Digest, Subject: digest.Digest(a.Annotations[layout.AnnotationSubject]), Err: err}
	}
	var trusted []byte
	files := map[string][]byte{}
	for _, l := range m.Layers {
		raw, err := v.read(ctx, l)
		if err != nil {
			return fail(fmt.Errorf("%w: %w", ErrBinding, err))
		}
		switch l.MediaType {
		case MediaTypeSigstoreTrustedRoot:
			if trusted != nil {
				return fail(wrapf(ErrTrustData, "two trusted roots in one artifact"))
			}
			trusted = raw
		case MediaTypeTUFMetadata:
			p := l.Annotations[AnnotationTUFPath]
			if p == "" || files[p] != nil {
				return fail(wrapf(ErrTrustData, "a TUF metadata file without a path, or twice"))
			}
			files[p] = raw
		default:
			return fail(wrapf(ErrTrustData, "unexpected layer %s", l.MediaType))
		}
	}
	if trusted == nil {
		return fail(wrapf(ErrTrustData, "no trusted root"))
	}
	sum := sha256.Sum256(trusted)
	info.TrustedRootSHA256 = hex.EncodeToString(sum[:])
	v.rep.Sigstore = info
	if len(files) > 0 {
		info.Source = "tuf"
	}
	if v.o.trustedRoot != nil {
		info.Anchor, info.Note = "operator", "not used: the operator's trusted root (--trusted-root) is"
		return nil
	}
	if info.Source != "tuf" {
		info.Note = "not used: a trusted root given as a file at export proves nothing here; pass the same file with --trusted-root if it is the one you trust"
		return nil
	}
	pinned, anchor := v.o.sigstoreTUFRoot, "pin"
	if pinned == nil {
		if strings.TrimRight(info.URL, "/") != DefaultSigstoreTUFURL {
			info.Note = "not used: no pinned TUF root for " + info.URL + " (--sigstore-tuf-root)"
			return nil
		}
		pinned, anchor = DefaultSigstoreTUFRoot(), "embedded"
	}
	// TUF freshness is judged now; with WithAllowExpired, at the time the
	// material was fetched (reported).
	replay := func(ref time.Time) ([]byte, []RoleInfo, error) {
		return tufTrustedRoot(info.URL, pinned, &replayFetcher{base: strings.TrimRight(info.URL, "/") + "/", files: files}, ref)
	}
	got, roles, err := replay(v.o.now())
	if err != nil && errors.Is(err, ErrExpired) && v.o.allowExpired && !info.ExportedAt.IsZero() {
		if got, roles, err = replay(info.ExportedAt); err == nil {
			v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf("sigstore TUF %s: accepted expired metadata, valid when fetched at %s (--allow-expired)", info.URL, info.ExportedAt.Format(time.RFC3339)))
		}
	}
	if err != nil {
		return fail(err)
	}
	if string(got) != string(trusted) {
		return fail(wrapf(ErrTrustData, "the carried trusted root is not the %s target its TUF metadata signs", TrustedRootTarget))
	}
	info.Roles = roles
	info.PinnedRoot = digest.FromBytes(pinned).String()
	if err := v.o.trustState.CheckTUF(info); err != nil {
		return fail(err)
	}
	tr, err := ParseTrustedRoot(trusted)
	if err != nil {
		return fail(wrapf(ErrTrustData, "%v", err))
	}
	v.o.trustedRoot, info.Anchor = tr, anchor
	return nil
}
