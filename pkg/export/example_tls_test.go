package export_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// A module outside cnab-airgap (a CI system, a bundle tool) builds its own
// registry client, here one that trusts a private CA from a PEM file, and
// runs an export and an import through it. Nothing of internal/ is needed.
func Example_tlsRegistryWithCAFile() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "export-tls-example-")
	check(err)
	defer os.RemoveAll(dir)

	// A registry on loopback with a certificate no system trusts, and its
	// CA written to a file as an operator would be given it.
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(nopLogger())))
	srv.Config.ErrorLog = nopLogger() // the refused handshake at the end
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	caFile := filepath.Join(dir, "ca.pem")
	check(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	// One image in it, and a thin bundle.json that pins it by digest.
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("hello across the gap"), types.OCIUncompressedLayer))
	check(err)
	ref, err := name.ParseReference(host + "/app/installer:1.0.0")
	check(err)
	check(remote.Write(ref, img, remote.WithTransport(srv.Client().Transport)))
	dgst, err := img.Digest()
	check(err)
	mt, err := img.MediaType()
	check(err)
	bundle, err := json.Marshal(map[string]any{
		"schemaVersion": "v1.2.0", "name": "app", "version": "1.0.0",
		"invocationImages": []map[string]string{{"imageType": "docker", "image": ref.String(), "contentDigest": dgst.String(), "mediaType": string(mt)}},
	})
	check(err)
	bundleFile := filepath.Join(dir, "bundle.json")
	check(os.WriteFile(bundleFile, bundle, 0o600))

	// The client of the embedding module: the CA file, nothing insecure.
	client, err := registry.New(registry.Options{CAFiles: []string{caFile}, UserAgent: "example/1.0"})
	check(err)

	archive := filepath.Join(dir, "app.tar")
	exp, err := export.Export(ctx, export.Request{BundleFile: bundleFile, Output: archive}, export.WithClient(client))
	check(err)
	fmt.Println("exported", exp.Bundle, exp.Version, "with", len(exp.Images), "image")

	imp, err := importer.Import(ctx, importer.Request{Archive: archive, Target: host + "/mirror"}, importer.WithClient(client))
	check(err)
	for orig, moved := range imp.Mapping {
		repo, d, _ := strings.Cut(moved, "@")
		fmt.Println(strings.TrimPrefix(orig, host), "->", strings.TrimPrefix(repo, host), "same digest:", d == dgst.String())
	}

	// Without the CA the same registry is refused.
	bare, err := registry.New(registry.Options{})
	check(err)
	_, err = importer.Import(ctx, importer.Request{Archive: archive, Target: host + "/other"}, importer.WithClient(bare))
	fmt.Println("without the CA file:", registry.Hint(err) != "")
	// Output:
	// exported app 1.0.0 with 1 image
	// /app/installer:1.0.0 -> /mirror/app same digest: true
	// without the CA file: true
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }
