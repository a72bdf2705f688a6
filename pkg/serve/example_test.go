package serve_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/cnab-airgap/cnab-airgap/internal/testarchive"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
)

// Open verifies every blob of an archive, then the Server answers the
// distribution API from the archive file. Here it runs behind httptest;
// Serve runs it on a listener until its context is cancelled.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "serve-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	fixture, err := testarchive.Write(filepath.Join(dir, "bundle.tar"))
	if err != nil {
		panic(err)
	}
	s, err := serve.Open(context.Background(), fixture.Path)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()

	fmt.Println("repositories:", s.Repositories())
	resp, err := http.Get(srv.URL + "/v2/" + s.BundleRepository() + "/manifests/" + s.BundleTag())
	if err != nil {
		panic(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"))
	fmt.Println(resp.Header.Get("Docker-Content-Digest") == fixture.Index.Digest.String())

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/library/web/blobs/"+fixture.SharedLayer.Digest.String(), nil)
	req.Header.Set("Range", "bytes=0-99")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, len(body))
	// Output:
	// repositories: [app/installer bundles/app library/web]
	// 200 OK application/vnd.oci.image.index.v1+json
	// true
	// 206 Partial Content 100
}
