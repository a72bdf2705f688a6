package export

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/internal/fsutil"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// Request says what to export and where.
type Request struct {
	// Reference is REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST of a bundle
	// pushed by cnab-to-oci or Porter. Exactly one of Reference and
	// BundleFile is set.
	Reference string
	// BundleFile is the path of a local thin bundle.json; its images are
	// pulled from the references it gives.
	BundleFile string
	// References and BundleFiles are further bundles for the same archive
	// (export REF [REF...]); every blob is stored once across them. The
	// first bundle named (Reference, BundleFile, References, BundleFiles, in
	// that order) is the archive's primary bundle: its bundle.json is the
	// archive root's, and Result reports it at the top level.
	References  []string
	BundleFiles []string
	// Output is the archive path, or "-" for standard output (Stdout).
	Output string
	// Stdout receives the archive when Output is "-".
	Stdout io.Writer
}

// Image is one exported image: the summary inspect gives of it too, and
// where it was read from.
type Image struct {
	archive.ImageSummary
	// Source is where the content was read from.
	Source string `json:"source"`
}

// Result describes a finished (or, with dry run, planned) export.
type Result struct {
	archive.BundleID
	// Reference is the primary bundle's reference ("" for a bundle file).
	Reference string  `json:"reference,omitempty"`
	Images    []Image `json:"images"`
	// Manifests and Blobs count the archive's content as inspect and
	// verify do: manifests and indexes, and every other blob.
	Manifests int `json:"manifests"`
	Blobs     int `json:"blobs"`
	// StreamedBlobs are the blobs streamed from their sources (the blobs
	// progress counts these); the rest were held in memory.
	StreamedBlobs int    `json:"streamedBlobs"`
	BlobBytes     int64  `json:"blobBytes"`
	FetchedBytes  int64  `json:"fetchedBytes"`
	ResumedBytes  int64  `json:"resumedBytes"`
	Archive       string `json:"archive,omitempty"`
	ArchiveBytes  int64  `json:"archiveBytes"`
	ArchiveDigest string `json:"archiveDigest,omitempty"`
	ChecksumFile  string `json:"checksumFile,omitempty"`
	// SignatureFile is the archive signature (WithArchiveSigner).
	SignatureFile string        `json:"signatureFile,omitempty"`
	Compression   string        `json:"compression"`
	DryRun        bool          `json:"dryRun,omitempty"`
	Duration      time.Duration `json:"duration"`
	Warnings      []string      `json:"warnings,omitempty"`
	// Format is the archive format written (oci or cnab-thick).
	Format layout.Format `json:"format"`
	// Bundles lists every bundle of an archive of several (more than one
	// bundle asked for, or dependencies carried), the primary first.
	Bundles []archive.BundleSummary `json:"bundles,omitempty"`
	// Sparse lists the images whose index ships only the selected
	// platforms (WithPlatforms).
	Sparse []SparseImage `json:"sparse,omitempty"`
	// Base describes the base of a delta export (WithBase, WithBaseInventory).
	Base *Base `json:"base,omitempty"`
	// Parts describes the volumes of a split archive (WithSplitSize).
	Parts *layout.Parts `json:"parts,omitempty"`
	// Signatures summarizes the signing evidence carried (signatures.go).
	Signatures *Signatures `json:"signatures,omitempty"`
}

// blobSource says where a blob can be fetched from.
type blobSource struct {
	size  int64
	repos []name.Repository
	urls  []string
	data  []byte // manifests and bundle metadata, already in memory
}

type exporter struct {
	o        *options
	mu       sync.Mutex
	blobs    map[digest.Digest]*blobSource
	warnings []string
	fit      fitState        // absent platforms, delta base (formats.go)
	stores   sync.Map        // repository name -> SourceRepository (source.go)
	images   []Image         // the images of every bundle (bundles.go)
	resolved map[string]bool // image strings resolved so far (bundles.go)
}

func (e *exporter) warn(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.warnings = append(e.warnings, fmt.Sprintf(format, args...))
}

func (e *exporter) addBlob(d digest.Digest, size int64, repo name.Repository, urls []string, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.blobs[d]
	if !ok {
		s = &blobSource{size: size}
		e.blobs[d] = s
	} else if s.size != size {
		return fmt.Errorf("blob %s is described with sizes %d and %d", d, s.size, size)
	}
	if data != nil {
		s.data = data
	}
	if repo.RepositoryStr() != "" && !slices.ContainsFunc(s.repos, func(r name.Repository) bool { return r.Name() == repo.Name() }) {
		s.repos = append(s.repos, repo)
	}
	for _, u := range urls {
		if !slices.Contains(s.urls, u) {
			s.urls = append(s.urls, u)
		}
	}
	return nil
}

// Export resolves the bundle, checks every image against its contentDigest,
// plans the archive and writes it (unless dry run), with a sha256 checksum
// file beside it. On failure nothing is left under the output name; an
// interrupted export keeps its staging file for WithResume.
func Export(ctx context.Context, req Request, opts ...Option) (*Result, error) {
	start := time.Now()
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	specs, err := req.specs()
	if err != nil {
		return nil, err
	}
	if req.Output == "" && !o.dryRun {
		return nil, errors.New("export: no output path")
	}
	if req.Output == "-" && o.signing.verify != nil {
		return nil, fmt.Errorf("%w: export: verifying the written archive needs an archive file, not standard output", errdefs.ErrUsage)
	}
	if req.Output == "-" && o.signing.archive != nil {
		return nil, errors.New("export: an archive written to standard output cannot be signed beside it; write it to a file")
	}
	e := &exporter{o: o, blobs: map[digest.Digest]*blobSource{}}
	o.Progress.Emit(progress.Event{Phase: progress.PhasePlan, State: progress.StateStarted})

	// One conversation with the first bundle's registry first (TLS, plain
	// HTTP, credentials): a registry that refuses the client fails here
	// once.
	if first := specs[0].ref; first != "" && o.source == nil {
		if ref, err := o.Client.ParseReference(first); err == nil {
			if err := o.Client.Check(ctx, ref.Context().RegistryStr()); err != nil {
				return nil, fmt.Errorf("export of %s: %w", first, err)
			}
		}
	}
	// The bundles asked for and those they depend on (bundles.go).
	srcs, err := e.resolveBundles(ctx, specs)
	if err != nil {
		return nil, err
	}
	if len(srcs) > 1 && o.fit.format == layout.FormatCNABThick {
		return nil, fmt.Errorf("%w: export: the cnab-thick format holds one bundle, and this export has %d (%s); use the oci format", errdefs.ErrUsage, len(srcs), bundleLabels(srcs, ", "))
	}
	src := srcs[0]
	for _, s := range srcs {
		for _, w := range s.bundle.Warnings {
			e.warn("%s", w)
		}
	}
	res := &Result{Reference: src.ref}
	res.Bundle = src.bundle.Name               // for messages while the images are resolved
	index, err := e.collectAll(ctx, srcs, res) // every bundle's images (bundles.go)
	if err != nil {
		return nil, err
	}
	res.BundleID = src.id()
	// Platform selection and delta base are recorded in index.json (formats.go).
	if err := e.fitIndex(ctx, index, res); err != nil {
		return nil, err
	}
	// Referrers, cosign tags and Notary trust data of the graph (signatures.go).
	if err := e.collectSignatures(ctx, srcs, index, res); err != nil {
		return nil, err
	}

	indexJSON, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	files := []layout.File{
		{Name: layout.OCILayoutFile, Data: []byte(layout.OCILayoutContent)},
		{Name: layout.IndexFile, Data: indexJSON},
		{Name: layout.BundleFile, Data: src.bundleJSON},
	}
	if e.o.fit.format != layout.FormatCNABThick {
		// docker save's index too, for the runtimes that read only that
		// (dockerarchive.go, FORMAT.md §5.4).
		dm, err := e.dockerManifest(index)
		if err != nil {
			return nil, err
		}
		if dm != nil {
			files = append(files, layout.File{Name: layout.DockerManifestFile, Data: dm})
		}
	}
	var blobs []layout.Blob
	for d, s := range e.blobs {
		blobs = append(blobs, layout.Blob{Digest: d, Size: s.size, Data: s.data})
	}
	plan, err := e.newPlan(files, blobs, res) // oci or cnab-thick, delta blobs left out (formats.go)
	if err != nil {
		return nil, err
	}
	res.Manifests = e.manifestCount(ctx, index)
	res.Blobs = len(e.blobs) - res.Manifests
	res.BlobBytes = plan.BlobBytes()
	res.ArchiveBytes = plan.Size()
	res.Warnings = e.warnings
	streamed := plan.Blobs()
	var fetchTotal int64
	for _, b := range streamed {
		fetchTotal += b.Size
	}
	res.StreamedBlobs = len(streamed)
	o.Progress.Emit(progress.Event{Phase: progress.PhasePlan, State: progress.StateDone})
	if o.dryRun {
		res.DryRun = true
		res.Duration = time.Since(start)
		return res, nil
	}

	compression := o.compression
	if compression == "" {
		compression = compressionFor(req.Output)
	}
	res.Compression = compression
	fetched := &counter{}
	fetch := e.streamFetcher(fetched)
	o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateTotal, Total: fetchTotal, Count: len(streamed)})

	if req.Output == "-" {
		if req.Stdout == nil {
			return nil, errors.New("export: output is - but no standard output writer was given")
		}
		d, err := writeCompressedStream(ctx, plan, req.Stdout, compression, fetch)
		if err != nil {
			return nil, err
		}
		res.ArchiveDigest = d.String()
	} else if compression != layout.CompressionNone {
		if err := e.writeCompressedFile(ctx, plan, req.Output, compression, fetch, res); err != nil {
			return nil, err
		}
	} else {
		fw, err := layout.Create(req.Output, plan, layout.CreateOptions{Resume: o.resume})
		if err != nil {
			return nil, err
		}
		res.ResumedBytes = fw.Resumed()
		if res.ResumedBytes > 0 {
			o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateSkipped, Item: "resumed", Bytes: res.ResumedBytes})
		}
		n, err := e.fill(ctx, fw)
		fetched.add(n)
		if err != nil {
			fw.Close() // keep the staging file: --resume continues from it
			return nil, fmt.Errorf("export of bundle %s: %w (the partial archive %s%s can be resumed with --resume)", res.Bundle, err, req.Output, layout.PartialSuffix)
		}
		d, err := fw.Commit()
		if err != nil {
			fw.Abort()
			return nil, err
		}
		res.ArchiveDigest = d.String()
		res.Archive = req.Output
	}
	if req.Output != "-" && o.signing.verify != nil {
		if err := e.verifyWritten(ctx, req.Output, res); err != nil {
			return nil, err
		}
	}
	if req.Output != "-" {
		res.ChecksumFile = req.Output + ".sha256"
		line := fmt.Sprintf("%s  %s\n", digest.Digest(res.ArchiveDigest).Encoded(), filepath.Base(req.Output))
		if err := fsutil.WriteFileAtomic(res.ChecksumFile, []byte(line), 0o644); err != nil {
			return nil, err
		}
		if s := o.signing.archive; s != nil {
			sig, err := sigbundle.SignArchive(s, digest.Digest(res.ArchiveDigest))
			if err != nil {
				return nil, err
			}
			res.SignatureFile = req.Output + sigbundle.SignatureSuffix
			if err := fsutil.WriteFileAtomic(res.SignatureFile, sig, 0o644); err != nil {
				return nil, err
			}
		}
		if st, err := os.Stat(req.Output); err == nil {
			res.ArchiveBytes = st.Size()
		}
		if err := e.split(ctx, req.Output, res); err != nil { // volumes (formats.go)
			return nil, err
		}
	}
	res.FetchedBytes = fetched.get()
	o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone})
	res.Duration = time.Since(start)
	return res, nil
}

func compressionFor(out string) string {
	switch {
	case strings.HasSuffix(out, ".tar.gz"), strings.HasSuffix(out, ".tgz"):
		return layout.CompressionGzip
	case strings.HasSuffix(out, ".tar.zst"), strings.HasSuffix(out, ".tzst"):
		return layout.CompressionZstd
	}
	return layout.CompressionNone
}

type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) add(n int64) { c.mu.Lock(); c.n += n; c.mu.Unlock() }
func (c *counter) get() int64  { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// Fetch implements content.Fetcher over the sources known for each blob:
// each registry repository known to hold it, then its foreign URLs. The
// bytes are as the source sends them; the archive writer verifies them.
func (e *exporter) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	e.mu.Lock()
	s := e.blobs[d.Digest]
	e.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("blob %s: %w: no source known", d.Digest, content.ErrNotFound)
	}
	var errs []error
	for _, repo := range s.repos {
		store, err := e.store(repo)
		if err == nil {
			var rc io.ReadCloser
			if rc, err = store.Fetch(ctx, content.BlobDescriptor(d.Digest, d.Size)); err == nil {
				return rc, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", repo.Name(), err))
	}
	for _, u := range s.urls {
		rc, err := e.o.Client.FetchURL(ctx, u)
		if err == nil {
			return rc, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// streamFetcher opens blobs for an archive written as one stream, counting
// the bytes fetched and reporting progress as they are read.
func (e *exporter) streamFetcher(fetched *counter) layout.FetchFunc {
	return func(ctx context.Context, b layout.Blob) (io.ReadCloser, error) {
		rc, err := e.Fetch(ctx, ocispec.Descriptor{Digest: b.Digest, Size: b.Size})
		if err != nil {
			return nil, err
		}
		e.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateStarted, Item: b.Digest.String(), Bytes: b.Size})
		return &countingBody{rc: rc, e: e, d: b.Digest, size: b.Size, c: fetched}, nil
	}
}

// fill writes the pending blobs of an archive file with the copy engine:
// fetched from their sources, a few at once in archive order (so the
// archive's digest is computed while they arrive), each verified by the
// writer as it streams.
func (e *exporter) fill(ctx context.Context, fw *layout.FileWriter) (int64, error) {
	var pending []ocispec.Descriptor
	for _, b := range fw.Pending() {
		pending = append(pending, content.BlobDescriptor(b.Digest, b.Size))
	}
	stats, err := content.Copy(ctx, e, fw, pending, content.CopyOptions{
		WalkOptions: content.WalkOptions{Concurrency: e.o.Jobs},
		Progress:    e.o.Progress,
		OmitTotals:  true, // announced with the whole plan, resumed bytes included
	})
	return stats.Bytes, err
}

type countingBody struct {
	rc   io.ReadCloser
	e    *exporter
	d    digest.Digest
	size int64
	n    int64
	c    *counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n += int64(n)
		b.c.add(int64(n))
		b.e.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateActive, Item: b.d.String(), Bytes: int64(n)})
	}
	if err == io.EOF {
		b.e.o.Progress.Emit(progress.Event{Phase: progress.PhaseBlobs, State: progress.StateDone, Item: b.d.String(), Bytes: b.size})
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// writeCompressedStream writes the archive sequentially to w, compressed
// as asked, and returns the sha256 of the bytes written to w.
func writeCompressedStream(ctx context.Context, plan *layout.Plan, w io.Writer, compression string, fetch layout.FetchFunc) (digest.Digest, error) {
	if compression == layout.CompressionNone || compression == "" {
		return plan.WriteStream(ctx, w, fetch)
	}
	dw := digest.SHA256.Digester()
	mw := io.MultiWriter(w, dw.Hash())
	var zw io.WriteCloser
	switch compression {
	case layout.CompressionGzip:
		zw = gzip.NewWriter(mw)
	case layout.CompressionZstd:
		z, err := zstd.NewWriter(mw, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return "", err
		}
		zw = z
	default:
		return "", fmt.Errorf("unknown compression %q", compression)
	}
	if _, err := plan.WriteStream(ctx, zw, fetch); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return dw.Digest(), nil
}

func (e *exporter) writeCompressedFile(ctx context.Context, plan *layout.Plan, out, compression string, fetch layout.FetchFunc, res *Result) error {
	var d digest.Digest
	err := fsutil.WriteAtomic(out, out+layout.PartialSuffix, 0o644, func(w io.Writer) error {
		var err error
		d, err = writeCompressedStream(ctx, plan, w, compression, fetch)
		return err
	})
	if err != nil {
		return err
	}
	res.ArchiveDigest = d.String()
	res.Archive = out
	return nil
}

// bundleSource is the resolved bundle.
type bundleSource struct {
	bundleJSON  []byte
	bundle      *relocate.Bundle
	repo        name.Repository // bundle repository ("" for a local file)
	tag         string
	indexRaw    []byte
	indexDigest digest.Digest
	indexMT     string
	index       *ocispec.Index
	// ref is the reference asked for or declared by a parent ("" for a file).
	ref string
	// requested: the export was asked for this bundle, not only as a
	// dependency; deps are its carried dependencies (bundles.go).
	requested bool
	deps      []depEdge
	// root is the bundle's entry in index.json, images its images.
	root   ocispec.Descriptor
	images []Image
}

func (e *exporter) resolveBundle(ctx context.Context, req bundleSpec) (*bundleSource, error) {
	if req.file != "" {
		f, err := os.Open(req.file)
		if err != nil {
			return nil, fmt.Errorf("bundle file: %w", err)
		}
		defer f.Close()
		raw, err := io.ReadAll(io.LimitReader(f, e.o.maxMetadata+1))
		if err != nil {
			return nil, fmt.Errorf("bundle file %s: %w", req.file, err)
		}
		if int64(len(raw)) > e.o.maxMetadata {
			return nil, fmt.Errorf("bundle file %s: larger than %d bytes", req.file, e.o.maxMetadata)
		}
		b, err := relocate.ParseBundle(raw)
		if err != nil {
			return nil, fmt.Errorf("bundle file %s: %w", req.file, err)
		}
		return &bundleSource{bundleJSON: raw, bundle: b, ref: req.ref}, nil
	}
	ref, err := e.o.Client.ParseReference(req.ref)
	if err != nil {
		return nil, err
	}
	store, err := e.store(ref.Context())
	if err != nil {
		return nil, err
	}
	// The bundle index: by tag (resolved first), or by the digest the
	// reference pins, which the bytes must then hash to.
	top := ocispec.Descriptor{Size: -1}
	if t, ok := ref.(name.Tag); ok {
		if top, err = store.Resolve(ctx, t.TagStr()); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", req.ref, err)
		}
	} else if dref, ok := ref.(name.Digest); ok {
		top.Digest = digest.Digest(dref.DigestStr())
	}
	if top.MediaType != "" && !layout.IsManifestOrIndex(top.MediaType) {
		return nil, fmt.Errorf("bundle %s: %w: it is a %s, not an OCI index or Docker manifest list", req.ref, ErrNotBundle, top.MediaType)
	}
	indexRaw, err := content.ReadAll(ctx, store, top, e.o.maxMetadata)
	if err != nil {
		if errors.Is(err, errdefs.ErrDigestMismatch) {
			return nil, fmt.Errorf("bundle %s: %w: %w", req.ref, ErrDigestMismatch, err)
		}
		return nil, fmt.Errorf("bundle %s: %w", req.ref, err)
	}
	src := &bundleSource{repo: ref.Context(), indexRaw: indexRaw, indexMT: top.MediaType, ref: req.ref}
	if t, ok := ref.(name.Tag); ok {
		src.tag = t.TagStr()
	}
	src.indexDigest = digest.FromBytes(indexRaw)
	if dref, ok := ref.(name.Digest); ok && dref.DigestStr() != src.indexDigest.String() {
		return nil, fmt.Errorf("bundle %s: %w: registry served content hashing to %s", req.ref, ErrDigestMismatch, src.indexDigest)
	}
	if mt := layout.MediaTypeOf(indexRaw); mt != "" && src.indexMT != mt {
		src.indexMT = mt
	}
	if !layout.IsIndex(src.indexMT) {
		return nil, fmt.Errorf("bundle %s: %w: it is a %s, not an OCI index or Docker manifest list", req.ref, ErrNotBundle, src.indexMT)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(indexRaw, &idx); err != nil {
		return nil, fmt.Errorf("bundle %s: %w: index: %w", req.ref, ErrNotBundle, err)
	}
	src.index = &idx
	var cfg *ocispec.Descriptor
	for i, d := range idx.Manifests {
		if d.Annotations[layout.AnnotationCNABManifestType] == "config" {
			if cfg != nil {
				return nil, fmt.Errorf("bundle %s: %w: more than one config descriptor", req.ref, ErrNotBundle)
			}
			cfg = &idx.Manifests[i]
		}
	}
	if cfg == nil {
		return nil, fmt.Errorf("bundle %s: %w: no descriptor annotated %s=config", req.ref, ErrNotBundle, layout.AnnotationCNABManifestType)
	}
	cm, err := e.getManifest(ctx, src.repo, *cfg)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: config manifest: %w", req.ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(cm, &m); err != nil {
		return nil, fmt.Errorf("bundle %s: config manifest: %w", req.ref, err)
	}
	if !layout.IsBundleConfigMediaType(m.Config.MediaType) {
		return nil, fmt.Errorf("bundle %s: %w: config media type %q", req.ref, ErrNotBundle, m.Config.MediaType)
	}
	if m.Config.Size > e.o.maxMetadata {
		return nil, fmt.Errorf("bundle %s: bundle.json is %d bytes, limit %d", req.ref, m.Config.Size, e.o.maxMetadata)
	}
	raw, err := content.ReadAll(ctx, store, m.Config, e.o.maxMetadata)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: bundle.json blob %s: %w", req.ref, m.Config.Digest, err)
	}
	src.bundleJSON = raw
	if src.bundle, err = relocate.ParseBundle(raw); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", req.ref, err)
	}
	if err := e.addBlob(cfg.Digest, cfg.Size, src.repo, nil, cm); err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if err := e.addBlob(l.Digest, l.Size, src.repo, l.URLs, nil); err != nil {
			return nil, err
		}
	}
	if err := e.addBlob(m.Config.Digest, m.Config.Size, src.repo, nil, raw); err != nil {
		return nil, err
	}
	if err := e.addBlob(src.indexDigest, int64(len(indexRaw)), src.repo, nil, indexRaw); err != nil {
		return nil, err
	}
	return src, nil
}

// getManifest fetches a manifest or index by digest from repo and checks it
// against the descriptor (digest, size, media type).
func (e *exporter) getManifest(ctx context.Context, repo name.Repository, d ocispec.Descriptor) ([]byte, error) {
	if d.Size > e.o.maxMetadata {
		return nil, fmt.Errorf("manifest %s: %d bytes, limit %d", d.Digest, d.Size, e.o.maxMetadata)
	}
	b, err := e.getManifestLoose(ctx, repo, d.Digest, d.Size)
	if err != nil {
		return nil, fmt.Errorf("manifest %s@%s: %w", repo.Name(), d.Digest, err)
	}
	return b, nil
}

// resolved is one image's closure.
type resolved struct {
	img       relocate.Image
	desc      ocispec.Descriptor
	source    name.Repository
	platforms []string
	bytes     int64
	resolved  bool
}

// collectImages resolves every image of one bundle, adds the bundle's entry
// and the entries of its images not yet there (seen: by image string and
// digest) to index, and returns the images.
func (e *exporter) collectImages(ctx context.Context, index *ocispec.Index, src *bundleSource, seen map[string]bool) ([]Image, error) {
	out := make([]*resolved, len(src.bundle.Images))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.o.Jobs)
	var errMu sync.Mutex
	var errs []error
	invocation := 0
	for i, img := range src.bundle.Images {
		var bd *ocispec.Descriptor
		if src.index != nil {
			bd = findInIndex(src.index, img, invocation)
		}
		if img.Role == relocate.RoleInvocation {
			invocation++
		}
		if !img.Relocatable() {
			e.warn("%s (%s): image type %q is not an OCI or Docker image and is not carried", img.Label(), img.Ref, img.ImageType)
			continue
		}
		g.Go(func() error {
			r, err := e.resolveImage(gctx, src, img, bd)
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("%s (%s): %w", img.Label(), img.Ref, err))
				errMu.Unlock()
				return nil // report every failing image, not just the first
			}
			out[i] = r
			if e.firstResolution(img.Ref) { // an image string several bundles use is one item
				e.o.Progress.Emit(progress.Event{Phase: progress.PhasePlan, State: progress.StateDone, Item: img.Ref + "@" + r.desc.Digest.String(), Image: img.Ref, Bytes: r.bytes})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("bundle %s: %w", src.bundle.Name, errdefs.JoinDistinct(errs))
	}

	if src.index != nil {
		ref := src.repo.Name()
		if src.tag != "" {
			ref += ":" + src.tag
		} else {
			ref += "@" + src.indexDigest.String()
		}
		src.root = ocispec.Descriptor{
			MediaType: src.indexMT, Digest: src.indexDigest, Size: int64(len(src.indexRaw)),
			Annotations: map[string]string{
				layout.AnnotationReference: ref,
				layout.AnnotationRole:      layout.RoleBundle,
				layout.AnnotationSource:    src.repo.Name() + "@" + src.indexDigest.String(),
			},
		}
	} else {
		d, err := e.synthesizeBundleIndex(src, out)
		if err != nil {
			return nil, err
		}
		src.root = d
	}
	index.Manifests = append(index.Manifests, src.root)
	var images []Image
	for _, r := range out {
		if r == nil {
			continue
		}
		img := Image{ImageSummary: archive.ImageSummary{Role: r.img.Role, Name: r.img.Name, Reference: r.img.Ref, Digest: r.desc.Digest.String(),
			MediaType: r.desc.MediaType, Platforms: r.platforms, Bytes: r.bytes, Resolved: r.resolved},
			Source: r.source.Name() + "@" + r.desc.Digest.String()}
		images = append(images, img)
		key := r.img.Ref + "@" + r.desc.Digest.String()
		if seen[key] {
			continue // the same image twice (in one bundle or several): one entry serves all
		}
		seen[key] = true
		ann := map[string]string{
			layout.AnnotationRefName: r.img.Ref,
			layout.AnnotationRole:    r.img.Role,
			layout.AnnotationSource:  img.Source,
		}
		if n := layout.ContainerdName(r.img.Ref); n != "" {
			ann[layout.AnnotationImageName] = n
		}
		if r.img.Role == relocate.RoleInvocation {
			ann[layout.AnnotationInvocationIndex] = r.img.Name
		} else {
			ann[layout.AnnotationComponent] = r.img.Name
		}
		if r.resolved {
			ann[layout.AnnotationDigestResolved] = "true"
		}
		d := r.desc
		d.Annotations = ann
		d.URLs = nil
		index.Manifests = append(index.Manifests, d)
	}
	return images, nil
}

// findInIndex finds the bundle index descriptor of an image: the n-th
// invocation descriptor, or the component descriptor with its name.
func findInIndex(idx *ocispec.Index, img relocate.Image, invocation int) *ocispec.Descriptor {
	n := 0
	for i, d := range idx.Manifests {
		switch d.Annotations[layout.AnnotationCNABManifestType] {
		case "invocation":
			if img.Role == relocate.RoleInvocation {
				if n == invocation {
					return &idx.Manifests[i]
				}
				n++
			}
		case "component":
			if img.Role == relocate.RoleComponent && d.Annotations[layout.AnnotationCNABComponentName] == img.Name {
				return &idx.Manifests[i]
			}
		}
	}
	return nil
}

func (e *exporter) resolveImage(ctx context.Context, src *bundleSource, img relocate.Image, bd *ocispec.Descriptor) (*resolved, error) {
	r := &resolved{img: img}
	var sources []name.Repository
	var top ocispec.Descriptor
	if bd != nil {
		if img.ContentDigest != "" && bd.Digest != img.ContentDigest {
			return nil, fmt.Errorf("%w: bundle index points at %s but contentDigest is %s", ErrDigestMismatch, bd.Digest, img.ContentDigest)
		}
		top = ocispec.Descriptor{MediaType: bd.MediaType, Digest: bd.Digest, Size: bd.Size}
		sources = append(sources, src.repo)
	}
	ref, perr := e.o.Client.ParseReference(img.Ref)
	if perr == nil {
		sources = append(sources, ref.Context())
	} else if bd == nil {
		return nil, perr
	}
	if top.Digest == "" {
		if img.ContentDigest == "" {
			if !e.o.allowMissingDigest {
				return nil, fmt.Errorf("%w (use --allow-missing-digest to resolve its tag at export time)", ErrMissingDigest)
			}
			tag, ok := ref.(name.Tag)
			if !ok {
				return nil, fmt.Errorf("%w: no contentDigest and no tag to resolve", ErrMissingDigest)
			}
			store, err := e.store(ref.Context())
			if err != nil {
				return nil, err
			}
			if top, err = store.Resolve(ctx, tag.TagStr()); err != nil {
				return nil, fmt.Errorf("resolving tag: %w", err)
			}
			r.resolved = true
			e.warn("%s (%s): no contentDigest; resolved to %s at export time", img.Label(), img.Ref, top.Digest)
		} else {
			top = ocispec.Descriptor{MediaType: img.MediaType, Digest: img.ContentDigest, Size: -1}
		}
	}
	// Fetch the top manifest from the first source that has it.
	var raw []byte
	var errs []error
	for _, repo := range sources {
		b, err := e.getManifestLoose(ctx, repo, top.Digest, top.Size)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", repo.Name(), err))
			continue
		}
		raw = b
		r.source = repo
		break
	}
	if raw == nil {
		return nil, errors.Join(errs...)
	}
	mt := layout.MediaTypeOf(raw)
	if mt == "" {
		mt = top.MediaType
	}
	if mt == "" {
		return nil, fmt.Errorf("manifest %s: no media type", top.Digest)
	}
	if img.MediaType != "" && img.MediaType != mt {
		e.warn("%s (%s): bundle.json says mediaType %s, the manifest is %s", img.Label(), img.Ref, img.MediaType, mt)
	}
	if img.Size != 0 && img.Size != uint64(len(raw)) {
		e.warn("%s (%s): bundle.json says size %d, the manifest is %d bytes", img.Label(), img.Ref, img.Size, len(raw))
	}
	r.desc = ocispec.Descriptor{MediaType: mt, Digest: top.Digest, Size: int64(len(raw))}
	if err := e.walk(ctx, r, r.source, r.desc, raw); err != nil {
		return nil, err
	}
	return r, nil
}

// getManifestLoose fetches a manifest by digest when its size may be unknown
// (size < 0), checking the digest and, when known, the size.
func (e *exporter) getManifestLoose(ctx context.Context, repo name.Repository, d digest.Digest, size int64) ([]byte, error) {
	store, err := e.store(repo)
	if err != nil {
		return nil, err
	}
	raw, err := content.ReadAll(ctx, store, ocispec.Descriptor{Digest: d, Size: size}, e.o.maxMetadata)
	if errors.Is(err, errdefs.ErrDigestMismatch) || errors.Is(err, errdefs.ErrSizeMismatch) {
		return nil, fmt.Errorf("%w: %w", ErrDigestMismatch, err)
	}
	return raw, err
}

// walk records the image's graph below top, whose bytes raw were fetched
// from repo: every manifest and index (read and verified by the shared graph
// walk of pkg/content, through the registry store of repo), every blob with
// its foreign URLs, the platforms, and the image's bytes. Index children of
// platforms not selected (WithPlatforms) are left out.
func (e *exporter) walk(ctx context.Context, r *resolved, repo name.Repository, top ocispec.Descriptor, raw []byte) error {
	leftOut := map[digest.Digest]bool{}
	opts := content.WalkOptions{
		Concurrency:      1, // the images are walked in parallel; one's platforms keep their order
		MaxManifestBytes: e.o.maxMetadata,
		PreVisit: func(_ context.Context, d ocispec.Descriptor, _ int) error {
			if leftOut[d.Digest] {
				return content.ErrSkip
			}
			return nil
		},
	}
	store, err := e.store(repo)
	if err != nil {
		return err
	}
	src := content.WithBytes(store, top, raw)
	return content.Walk(ctx, src, []ocispec.Descriptor{top}, opts, func(_ context.Context, n content.Node) error {
		d := n.Desc
		if err := e.addBlob(d.Digest, d.Size, repo, d.URLs, n.Raw); err != nil {
			return err
		}
		r.bytes += d.Size
		switch {
		case !n.IsManifest():
		case layout.IsIndex(d.MediaType):
			for _, c := range n.Children {
				// Artifacts in an index are carried as plain blobs.
				if layout.IsManifestOrIndex(c.MediaType) && e.leaveOut(r, d, c, n.Children) { // platform.go
					leftOut[c.Digest] = true
				}
			}
		case d.Platform != nil && d.Platform.OS != "unknown":
			p := d.Platform.OS + "/" + d.Platform.Architecture
			if d.Platform.Variant != "" {
				p += "/" + d.Platform.Variant
			}
			r.platforms = append(r.platforms, p)
		}
		return nil
	})
}

// synthesizeBundleIndex builds, for a bundle read from a local file, the
// config manifest and OCI index cnab-to-oci would push (config first, then
// invocation images, then components by name), so that an import can push
// the bundle and cnab-to-oci or Porter can pull it from the target.
func (e *exporter) synthesizeBundleIndex(src *bundleSource, images []*resolved) (ocispec.Descriptor, error) {
	var entries []ocispec.Descriptor
	for _, r := range images {
		if r != nil {
			entries = append(entries, relocate.IndexEntry(r.img, r.desc))
		}
	}
	bj := ocispec.Descriptor{Digest: digest.FromBytes(src.bundleJSON), Size: int64(len(src.bundleJSON))}
	f, err := relocate.NewRegistryForm(src.bundle, bj, entries)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, b := range []struct {
		d   digest.Digest
		raw []byte
	}{{bj.Digest, src.bundleJSON}, {f.ConfigDesc.Digest, f.ConfigManifest}, {f.IndexDesc.Digest, f.Index}} {
		if err := e.addBlob(b.d, int64(len(b.raw)), name.Repository{}, nil, b.raw); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	d := f.IndexDesc
	d.Annotations = map[string]string{
		layout.AnnotationReference:   relocate.SanitizePath(src.bundle.Name) + ":" + relocate.VersionTag(src.bundle.Version),
		layout.AnnotationRole:        layout.RoleBundle,
		"io.cnab.airgap.synthesized": "true",
	}
	return d, nil
}
