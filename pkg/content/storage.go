// Package content is the content-store interface of cnab-airgap and the one
// graph walk and copy that run over it.
//
// A store holds content addressed by OCI descriptors. Every place content
// lives is one: an archive being read ([layout.Archive]), an archive being
// written ([layout.FileWriter]), a registry repository ([registry.Store]) and
// memory ([Memory], for tests and small tools). [Walk] visits a descriptor
// graph once per digest with bounded concurrency, checking every manifest it
// reads; [Copy] walks a graph in one store and puts it in another, children
// before parents, skipping what the destination already holds, mounting
// where the destination can, and verifying every byte as it streams.
//
// The division of labour on integrity is fixed: Fetch returns the bytes as
// stored, unverified; Push checks what it receives against the descriptor
// (size and digest) while it streams and keeps nothing that fails. So each
// byte that moves is hashed exactly once, by whoever receives it. Code that
// reads content itself uses [Open] or [ReadAll], which verify.
package content

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// Errors of the stores. Each wraps one root class of [errdefs].
var (
	// ErrNotFound: the store does not hold the content or name.
	ErrNotFound = errdefs.New("content not found", errdefs.ErrNotFound)
	// ErrUnsupported: the store cannot do this (a read-only archive asked
	// to take content, a writer asked for a blob it did not plan).
	ErrUnsupported = errdefs.New("operation not supported by the store", errdefs.ErrUsage)
	// ErrTooLarge: a manifest is larger than the walk accepts. It is
	// layout.ErrTooLarge, the archive reader's refusal of oversized content.
	ErrTooLarge = layout.ErrTooLarge
	// ErrTooDeep: manifests are nested deeper than the walk accepts.
	ErrTooDeep = errdefs.New("manifests nested too deep", errdefs.ErrInvalidInput)
	// ErrInvalidManifest: a manifest or index cannot be parsed. It is
	// layout.ErrInvalidManifest: one sentinel whichever layer refuses.
	ErrInvalidManifest = layout.ErrInvalidManifest
)

// MediaTypeBlob is the media type given to a descriptor of content that is
// a blob whatever it holds (a layer, a config, a blob planned into an
// archive): stores read it through their blob path and Walk and Copy copy
// it as it is, never parse it.
const MediaTypeBlob = "application/octet-stream"

// BlobDescriptor describes blob d of size (MediaTypeBlob).
func BlobDescriptor(d digest.Digest, size int64) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: MediaTypeBlob, Digest: d, Size: size}
}

// Fetcher reads content.
type Fetcher interface {
	// Fetch opens the content desc names, as stored: the caller verifies it
	// (Open and ReadAll do). desc.Size may be -1 when a manifest's size is
	// not known (a digest taken from bundle.json). A store that does not
	// hold the content returns an error wrapping errdefs.ErrNotFound (as
	// ErrNotFound does).
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// Pusher stores content.
type Pusher interface {
	// Push stores the content read from r under desc. It verifies size and
	// digest while it reads and stores nothing that does not match; the
	// error then wraps errdefs.ErrDigestMismatch or errdefs.ErrSizeMismatch.
	// Pushing content the store already holds is not an error. When r is an
	// io.Seeker the store may seek back to its start to send it again after
	// a failed attempt (a Fetcher that can, returns such readers).
	Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error
}

// Exister tells whether a store holds content.
type Exister interface {
	Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error)
}

// ReadOnlyStorage is a store that content is read from.
type ReadOnlyStorage interface {
	Fetcher
	Exister
}

// Storage is a store that content is read from and written to.
type Storage interface {
	Fetcher
	Pusher
	Exister
}

// Tagger is a store that names content (a registry tag, an archive's
// reference annotation).
type Tagger interface {
	// Tag points ref at desc, which the store must already hold.
	Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error
}

// Resolver is a store that resolves names to descriptors.
type Resolver interface {
	// Resolve returns the descriptor ref points at, or ErrNotFound.
	Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error)
}

// Mounter is a store that can take a blob from another of its
// repositories without the bytes passing through the client (the
// distribution spec's cross-repository mount).
type Mounter interface {
	// Mount makes the store hold blob desc, taken from repository from of
	// the same registry. It returns an error wrapping ErrUnsupported when
	// the registry declines, so that the caller pushes the bytes instead.
	Mount(ctx context.Context, desc ocispec.Descriptor, from string) error
}

// ReferrerLister is a store that lists the manifests whose subject is a
// given manifest (the OCI referrers API, or its tag fallback).
type ReferrerLister interface {
	// Referrers returns the descriptors of the manifests that refer to
	// subject, only those of artifactType when it is not "".
	Referrers(ctx context.Context, subject ocispec.Descriptor, artifactType string) ([]ocispec.Descriptor, error)
}
