package e2e

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
)

// TestPeersReadArchive copies every image out of an untarred archive with
// the real OCI tools, at the versions tools/peers pins, the ways FORMAT.md
// §11 gives: oras by full name (--from-oci-layout-path), regctl by digest
// (ocidir://DIR@DIGEST), crane by pushing the whole layout as one index.
// Each image arrives at the registry with its digest unchanged.
func TestPeersReadArchive(t *testing.T) {
	ctx := context.Background()
	tool := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s is required (make test builds it from tools/peers: scripts/tools.sh): %v", name, err)
		}
		return p
	}
	oras, regctl, crane := tool("oras"), tool("regctl"), tool("crane")
	src := startRegistry(t)
	dst := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "bundle.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(dir, "layout")
	untar(t, archivePath, layoutDir)
	home := t.TempDir()
	run := func(bin string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "DOCKER_CONFIG=" + filepath.Join(home, "docker"),
			"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
		}
	}
	at := func(repo, ref string) string {
		t.Helper()
		r, err := dst.Reference(repo + ref)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(r, dst.RemoteOptions()...)
		if err != nil {
			t.Fatalf("%s at the target: %v", r, err)
		}
		return d.Digest.String()
	}
	run(regctl, "registry", "set", dst.Host, "--tls", "disabled")
	for _, img := range pb.Images {
		want := img.ContentDigest.String()
		full := strings.SplitN(img.Image, "@", 2)[0]
		run(oras, "cp", "--from-oci-layout-path", layoutDir, full, "--to-plain-http", dst.Ref("oras/"+img.Name+":1"))
		if got := at("oras/"+img.Name, ":1"); got != want {
			t.Errorf("oras copied %s as %s, want %s", full, got, want)
		}
		run(regctl, "image", "copy", "ocidir://"+layoutDir+"@"+want, dst.Ref("regctl/"+img.Name+":1"))
		if got := at("regctl/"+img.Name, ":1"); got != want {
			t.Errorf("regctl copied %s as %s, want %s", want, got, want)
		}
	}
	run(crane, "push", "--insecure", "--index", layoutDir, dst.Ref("crane/all:layout"))
	for _, img := range pb.Images {
		if got := at("crane/all", "@"+img.ContentDigest.String()); got != img.ContentDigest.String() {
			t.Errorf("crane push: %s is %s at the target", img.Image, got)
		}
	}
}

// untar extracts the archive (one this test wrote) into dir.
func untar(t *testing.T, archivePath, dir string) {
	t.Helper()
	f, err := os.Open(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil { //nolint:gosec // the test's own archive
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
