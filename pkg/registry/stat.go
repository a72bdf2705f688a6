package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
)

// StatBlob asks repo for blob d with a HEAD request and returns the size
// the registry announces. A 404 is (0, false, nil); the size is -1 when
// the registry sends no Content-Length.
func (c *Client) StatBlob(ctx context.Context, repo name.Repository, d digest.Digest) (int64, bool, error) {
	rt, err := c.repoTransport(ctx, repo, transport.PullScope)
	if err != nil {
		if IsNotFound(err) {
			return 0, false, nil
		}
		return 0, false, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return 0, false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.ContentLength, true, nil
	case http.StatusNotFound:
		return 0, false, nil
	}
	return 0, false, transport.CheckError(resp, http.StatusOK)
}
