package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// MaxManifestBytes bounds a manifest a Store reads or pushes.
const MaxManifestBytes = content.DefaultMaxManifestBytes

// Store is one repository of a registry as a content store: it implements
// content.Storage, content.Tagger, content.Resolver, content.Mounter and
// content.ReferrerLister over the client's transports, retries and
// credentials. Manifests and indexes (told by media type; an empty one is
// taken to be a manifest) go through the manifests endpoint, everything
// else through the blobs endpoint. It is safe for concurrent use.
type Store struct {
	c    *Client
	repo name.Repository
	// absent remembers the blobs Exists found missing, so that a Push or
	// Mount right after sends no second HEAD.
	absent sync.Map
	// pushed keeps the bytes of the manifests pushed through the store, so
	// that tagging one sends no GET.
	pushed sync.Map
}

// Store returns the content store of repository repo.
func (c *Client) Store(repo name.Repository) *Store { return &Store{c: c, repo: repo} }

// Repository returns the repository the store reads and writes.
func (s *Store) Repository() name.Repository { return s.repo }

func isManifest(mt string) bool { return mt == "" || layout.IsManifestOrIndex(mt) }

// notFound marks a registry 404 with content.ErrNotFound, keeping the
// registry's error.
func notFound(err error) error {
	if err != nil && IsNotFound(err) {
		return fmt.Errorf("%w: %w", content.ErrNotFound, err)
	}
	return err
}

// Fetch implements content.Fetcher. Blob bodies are streamed as the
// registry sends them (resumed with Range requests when a connection
// breaks); manifests are read whole, capped at MaxManifestBytes.
func (s *Store) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if !isManifest(desc.MediaType) {
		rc, err := s.c.FetchBlob(ctx, s.repo, desc.Digest, desc.Size)
		return rc, notFound(err)
	}
	ref, err := s.c.Digest(s.repo, desc.Digest)
	if err != nil {
		return nil, err
	}
	got, err := s.c.Puller().Get(ctx, ref)
	if err != nil {
		return nil, notFound(err)
	}
	if int64(len(got.Manifest)) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: manifest %s is %d bytes, limit %d", content.ErrTooLarge, ref, len(got.Manifest), MaxManifestBytes)
	}
	return io.NopCloser(bytes.NewReader(got.Manifest)), nil
}

// Exists implements content.Exister with a HEAD request.
func (s *Store) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if isManifest(desc.MediaType) {
		ref, err := s.c.Digest(s.repo, desc.Digest)
		if err != nil {
			return false, err
		}
		if _, err := s.c.Puller().Head(ctx, ref); err != nil {
			if IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		return true, nil
	}
	ok, err := s.c.BlobExists(ctx, s.repo, desc.Digest)
	if err == nil && !ok {
		s.absent.Store(desc.Digest, true)
	}
	return ok, err
}

// Push implements content.Pusher. A blob streams to the registry through a
// verifying reader: content that does not match desc fails the upload and
// its session is cancelled, so the registry keeps nothing of it. A blob
// read from an io.Seeker can be sent again when an attempt fails; other
// readers get one attempt. A manifest is read (at most MaxManifestBytes),
// verified and put by digest, byte for byte.
func (s *Store) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if desc.Size < 0 {
		return fmt.Errorf("%w: push of %s without a size", content.ErrUnsupported, desc.Digest)
	}
	if isManifest(desc.MediaType) {
		raw, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes+1))
		if err != nil {
			return err
		}
		if int64(len(raw)) > MaxManifestBytes {
			return fmt.Errorf("%w: manifest %s is larger than %d bytes", content.ErrTooLarge, desc.Digest, MaxManifestBytes)
		}
		if err := content.VerifyBytes(raw, desc); err != nil {
			return err
		}
		ref, err := s.c.Digest(s.repo, desc.Digest)
		if err != nil {
			return err
		}
		if err := s.c.Pusher().Put(ctx, ref, rawManifest{raw: raw, mt: desc.MediaType}); err != nil {
			return err
		}
		s.pushed.Store(desc.Digest, raw)
		return nil
	}
	u := Upload{Repo: s.repo, Digest: desc.Digest, Size: desc.Size, Open: VerifiedOpener(r, desc)}
	if _, ok := s.absent.LoadAndDelete(desc.Digest); ok {
		u.Absent = true
	}
	_, err := s.c.UploadBlob(ctx, u)
	return err
}

// VerifiedOpener returns an Upload.Open that sends r through a verifying
// reader (desc's size and digest). A retry seeks r back to its start when it
// is an io.Seeker; other readers get one attempt.
func VerifiedOpener(r io.Reader, desc ocispec.Descriptor) func() (io.ReadCloser, error) {
	opened := false
	return func() (io.ReadCloser, error) {
		if opened {
			sk, ok := r.(io.Seeker)
			if !ok {
				return nil, errors.New("the content cannot be read a second time for a retry")
			}
			if _, err := sk.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
		}
		opened = true
		vr, err := content.NewVerifyReader(r, desc)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(vr), nil
	}
}

// errMountOnly is what a mount-only upload's content opener returns when
// the registry declines the mount and asks for the bytes.
var errMountOnly = fmt.Errorf("%w: the registry declined the cross-repository mount", content.ErrUnsupported)

// Mount implements content.Mounter: a cross-repository mount of blob desc
// from repository from (a path on the same registry, or a full name). When
// the registry declines, the error wraps content.ErrUnsupported and the
// session it opened is cancelled.
func (s *Store) Mount(ctx context.Context, desc ocispec.Descriptor, from string) error {
	src, err := s.c.Repository(from)
	if err != nil || src.RegistryStr() != s.repo.RegistryStr() {
		if src, err = s.c.Repository(s.repo.RegistryStr() + "/" + from); err != nil {
			return err
		}
	}
	u := Upload{Repo: s.repo, Digest: desc.Digest, Size: desc.Size, MountFrom: &src,
		Open: func() (io.ReadCloser, error) { return nil, errMountOnly }}
	if _, ok := s.absent.LoadAndDelete(desc.Digest); ok {
		u.Absent = true
	}
	res, err := s.c.UploadBlob(ctx, u)
	if err != nil {
		return err
	}
	if res == BlobUploaded {
		return errMountOnly // cannot happen: the opener never gives content
	}
	return nil
}

// Tag implements content.Tagger: ref (a tag) is pointed at manifest desc,
// whose bytes (those pushed through the store, or read back from the
// repository) are put under the tag.
func (s *Store) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	var raw []byte
	if b, ok := s.pushed.Load(desc.Digest); ok {
		raw = b.([]byte)
	} else {
		var err error
		if raw, err = content.ReadAll(ctx, s, desc, MaxManifestBytes); err != nil {
			return err
		}
	}
	mt := desc.MediaType
	if mt == "" {
		mt = layout.MediaTypeOf(raw)
	}
	tag, err := s.c.Tag(s.repo, ref)
	if err != nil {
		return err
	}
	return s.c.Pusher().Push(ctx, tag, rawManifest{raw: raw, mt: mt})
}

// Resolve implements content.Resolver for a tag of the repository.
func (s *Store) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	tag, err := s.c.Tag(s.repo, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d, err := s.c.Puller().Head(ctx, tag)
	if err != nil {
		return ocispec.Descriptor{}, notFound(err)
	}
	return ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}, nil
}

// Referrers implements content.ReferrerLister with the OCI referrers API,
// falling back to the sha256-<hex> tag schema on registries without it.
func (s *Store) Referrers(ctx context.Context, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error) {
	ref, err := s.c.Digest(s.repo, subject.Digest)
	if err != nil {
		return nil, err
	}
	opts := append(slices.Clone(s.c.RemoteOptions()), remote.WithContext(ctx), remote.Reuse(s.c.Puller()))
	if artifactType != "" {
		opts = append(opts, remote.WithFilter("artifactType", artifactType))
	}
	idx, err := remote.Referrers(ref, opts...)
	if err != nil {
		return nil, notFound(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, d := range im.Manifests {
		if artifactType != "" && d.ArtifactType != artifactType {
			continue
		}
		out = append(out, ociDescriptor(d))
	}
	return out, nil
}

func ociDescriptor(d v1.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size,
		ArtifactType: d.ArtifactType, Annotations: d.Annotations}
}

// rawManifest puts exact manifest bytes with their media type.
type rawManifest struct {
	raw []byte
	mt  string
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(m.mt), nil }
