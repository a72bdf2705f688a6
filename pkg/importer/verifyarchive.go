package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// VerifyRequest says what Verify checks.
type VerifyRequest struct {
	// Archive is the path of the archive.
	Archive string
	// Target and Mapping, both or neither, add the relocation audit of an
	// earlier import of the archive: Target is the REGISTRY[/PREFIX] it
	// was imported into, Mapping the relocation-mapping.json it wrote.
	Target  string
	Mapping string
}

// VerifyReport says what Verify checked.
type VerifyReport struct {
	Archive string `json:"archive"`
	archive.BundleID
	Images    int      `json:"images"`
	Manifests int      `json:"manifests"`
	Blobs     int      `json:"blobs"`
	Bytes     int64    `json:"bytes"`
	OK        bool     `json:"ok"`
	Warnings  []string `json:"warnings,omitempty"`
	// Signatures is the offline verification of the signing evidence (nil
	// with WithSignatures(false)).
	Signatures *sigbundle.Report `json:"signatures,omitempty"`
	// SigningArtifacts counts the signing artifacts the archive carries,
	// verified or (WithSignatures(false)) not.
	SigningArtifacts int `json:"-"`
	// ArchiveSignature is the archive signature checked (WithArchiveKey).
	ArchiveSignature *ArchiveSignature `json:"archiveSignature,omitempty"`
	// Relocation is the audit of an import at VerifyRequest.Target.
	Relocation *relocate.AuditReport `json:"relocation,omitempty"`
	// Bundles reports every bundle of an archive of several, the primary
	// first (the fields above are then the primary's, and Manifests, Blobs
	// and Bytes the whole archive's): each with its signing evidence and,
	// with a Target, its audit against its own mapping (MappingPaths of
	// VerifyRequest.Mapping).
	Bundles []VerifiedBundle `json:"bundles,omitempty"`
}

// VerifiedBundle is one bundle of an archive of several, as Verify checked it.
type VerifiedBundle struct {
	archive.BundleSummary
	Signatures *sigbundle.Report     `json:"signatures,omitempty"`
	Relocation *relocate.AuditReport `json:"relocation,omitempty"`
}

// Verify checks an archive completely, offline unless an audit is asked
// for, and moves nothing: with WithArchiveKey its signature first, over
// the bytes that are then parsed; everything Load checks; every blob's size
// and digest (WithJobs readers at once, progress.PhaseVerify events); with
// Target and Mapping, the relocation at the target registry (WithClient,
// WithNaming, WithJobs); then the signing evidence, unless
// WithSignatures(false) (trust anchors through WithSigningOptions; a
// WithTrustState file is read, and older trust data than it records is
// refused; Verify never writes it).
//
// A failed audit returns the report, with OK false and Relocation saying
// what is wrong, together with an error wrapping relocate.ErrRelocation;
// any other failure returns no report.
func Verify(ctx context.Context, req VerifyRequest, opts ...Option) (*VerifyReport, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if (req.Target == "") != (req.Mapping == "") {
		return nil, fmt.Errorf("%w: the relocation audit needs both a target and a mapping", errdefs.ErrUsage)
	}
	b, as, err := o.load(ctx, req.Archive)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := b.HashBlobs(ctx, o.Jobs, o.Progress); err != nil {
		return nil, err
	}
	var total int64
	for _, s := range b.Blobs {
		total += s
	}
	r := &VerifyReport{Archive: req.Archive, BundleID: b.ID(), Images: len(b.Images), Manifests: len(b.Nodes), Blobs: len(b.Blobs), Bytes: total,
		OK: true, Warnings: b.Warnings, SigningArtifacts: len(b.SigningArtifacts()), ArchiveSignature: as}

	paths := MappingPaths(req.Mapping, b)
	var auditErrs []error
	var reports []*sigbundle.Report
	each := o.signing.opts // each bundle with its own evidence; a trust anchor need only verify something in one
	if len(b.Others) > 0 {
		each = append(slices.Clone(each), sigbundle.WithArchiveOfSeveral())
	}
	for _, x := range b.All() {
		vb := VerifiedBundle{BundleSummary: x.Summary()}
		if req.Target != "" {
			rq := req
			rq.Mapping = paths[x]
			rel, err := auditArchive(ctx, o, x, rq)
			if err != nil && rel == nil {
				return nil, err
			}
			vb.Relocation = rel
			if err != nil {
				r.OK = false
				if len(b.Others) > 0 {
					err = fmt.Errorf("bundle %s: %w", x.Bundle.Name, err)
				}
				auditErrs = append(auditErrs, err)
			}
		}
		if !o.signing.off {
			so := each
			if o.signing.trustState != "" {
				st, err := sigbundle.ReadTrustState(o.signing.trustState)
				if err != nil {
					return nil, err
				}
				so = append(so[:len(so):len(so)], sigbundle.WithTrustState(st))
			}
			if vb.Signatures, err = x.VerifySignatures(ctx, so...); err != nil {
				if len(b.Others) > 0 {
					return nil, fmt.Errorf("bundle %s: %w", x.Bundle.Name, err)
				}
				return nil, err
			}
		}
		reports = append(reports, vb.Signatures)
		if x == b {
			r.Relocation, r.Signatures = vb.Relocation, vb.Signatures
		}
		if len(b.Others) > 0 {
			r.Bundles = append(r.Bundles, vb)
		}
	}
	if len(b.Others) > 0 && !o.signing.off {
		if err := sigbundle.AnchorsUsed(reports, o.signing.opts...); err != nil {
			return nil, err
		}
	}
	if len(auditErrs) == 1 {
		return r, auditErrs[0]
	}
	return r, errors.Join(auditErrs...)
}

// auditArchive audits the relocation of the archive's bundle at req.Target
// against req.Mapping (relocate.Audit).
func auditArchive(ctx context.Context, o *options, b *archive.Bundle, req VerifyRequest) (*relocate.AuditReport, error) {
	target, err := relocate.ParseTarget(req.Target)
	if err != nil {
		return nil, err
	}
	mapping, err := relocate.ReadMapping(req.Mapping)
	if err != nil {
		return nil, err
	}
	// The archive knows the digest of every image, including those whose
	// contentDigest was resolved at export.
	var images []relocate.Image
	for _, img := range b.Bundle.Images {
		for _, carried := range b.Images {
			if carried.Ref == img.Ref && img.ContentDigest == "" {
				img.ContentDigest = carried.Desc.Digest
			}
		}
		images = append(images, img)
	}
	ar := relocate.AuditRequest{Images: images, Mapping: mapping, Target: target, Absent: map[digest.Digest]bool{}}
	for d := range b.Absent { // platforms an export with --platform left out
		ar.Absent[d] = true
	}
	if names, err := relocate.PlanNames(target, o.naming, b.RepoPath, images, o.limits); err == nil {
		ar.Bundle = &relocate.AuditBundle{Repository: names.BundleRepo, Tag: b.Tag, Digest: b.Index.Digest}
	}
	return relocate.Audit(ctx, ar,
		relocate.WithAuditClient(o.Client),
		relocate.WithAuditJobs(o.Jobs),
		relocate.WithAuditLogger(o.Log),
		relocate.WithAuditProgress(o.Progress),
	)
}
