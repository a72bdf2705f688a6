package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// TestUploadBlob pushes blobs to a real distribution registry: a new blob
// is uploaded in one PUT, a present one is skipped, one held by another
// repository is mounted, an empty one works, and content that fails
// verification is refused without a retry and leaves nothing behind.
func TestUploadBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg, err := harness.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c, err := registry.New(registry.Options{PlainHTTP: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	repo := func(p string) name.Repository {
		r, err := c.Repository(reg.Host + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	data := make([]byte, 3<<20+17)
	rand.NewChaCha8([32]byte{4}).Read(data)
	d := digest.FromBytes(data)
	opens := 0
	upload := func(r name.Repository, content []byte, want digest.Digest, from *name.Repository) (registry.UploadResult, error) {
		return c.UploadBlob(ctx, registry.Upload{Repo: r, Digest: want, Size: int64(len(content)), MountFrom: from,
			Open: func() (io.ReadCloser, error) {
				opens++
				vr, err := verify.NewReader(bytes.NewReader(content), want, int64(len(content)))
				return io.NopCloser(vr), err
			}})
	}

	tests := []struct {
		name      string
		repo      string
		content   []byte
		digest    digest.Digest
		from      string
		want      registry.UploadResult
		wantErr   error
		wantOpens int
		uploads   int64 // bytes the registry receives
	}{
		{name: "new blob", repo: "a/one", content: data, digest: d, want: registry.BlobUploaded, wantOpens: 1, uploads: int64(len(data))},
		{name: "present", repo: "a/one", content: data, digest: d, want: registry.BlobPresent},
		{name: "mounted", repo: "b/two", content: data, digest: d, from: "a/one", want: registry.BlobMounted},
		{name: "empty", repo: "a/one", content: []byte{}, digest: digest.FromBytes(nil), want: registry.BlobUploaded, wantOpens: 1},
		{name: "corrupt content", repo: "c/three", content: append([]byte{data[0] ^ 1}, data[1:]...), digest: d,
			wantErr: verify.ErrDigestMismatch, wantOpens: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opens = 0
			reg.ResetCounts()
			var from *name.Repository
			if tc.from != "" {
				r := repo(tc.from)
				from = &r
			}
			got, err := upload(repo(tc.repo), tc.content, tc.digest, from)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				ok, err := c.BlobExists(ctx, repo(tc.repo), tc.digest)
				if err != nil || ok {
					t.Fatalf("after a refused upload the blob exists: %v %v", ok, err)
				}
				// The session the refused content was sent into was cancelled.
				if n, err := reg.UploadSessions(); err != nil || n != 0 {
					t.Fatalf("after a refused upload %d upload sessions are left (%v)", n, err)
				}
			} else if err != nil || got != tc.want {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
			if opens != tc.wantOpens {
				t.Fatalf("content opened %d times, want %d", opens, tc.wantOpens)
			}
			if tc.uploads > 0 && reg.Counts().BlobUploadBytes != tc.uploads {
				t.Fatalf("registry received %d bytes, want %d", reg.Counts().BlobUploadBytes, tc.uploads)
			}
			if tc.wantErr == nil {
				if ok, err := c.BlobExists(ctx, repo(tc.repo), tc.digest); err != nil || !ok {
					t.Fatalf("blob not at %s after upload: %v %v", tc.repo, ok, err)
				}
			}
		})
	}
}
