package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/e2e/sigfixtures"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// containerd is a containerd daemon of the distribution's package, run by
// the test with its own root, state and socket (it needs root, as on a
// node).
type containerd struct {
	sock string
	cmd  *exec.Cmd
	log  bytes.Buffer
}

func startContainerd(t *testing.T) *containerd {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatal("containerd is required (make test installs Debian's package as root: scripts/tools.sh): ", err)
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		t.Fatal("ctr is required (it comes with containerd): ", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("containerd runs as root only; run make test as root (CI does)")
	}
	dir, err := os.MkdirTemp("", "ctrd") // short: the socket path is limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &containerd{sock: filepath.Join(dir, "c.sock")}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc", filepath.Join(dir, "debug.sock"))
	cfgFile := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, "--config", cfgFile)
	c.cmd.Stdout, c.cmd.Stderr = &c.log, &c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		_, _ = c.cmd.Process.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.ctr("version"); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer within 30 s:\n%s", c.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *containerd) ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// images lists a namespace's images: name -> target digest.
func (c *containerd) images(t *testing.T, ns string) map[string]digest.Digest {
	t.Helper()
	out, err := c.ctr("-n", ns, "images", "ls")
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	got := map[string]digest.Digest{}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 3 {
			continue // the header
		}
		got[f[0]] = digest.Digest(f[2])
	}
	return got
}

// TestContainerdImport loads an archive, as exported, straight into
// containerd the way operators do on a node without a registry: `ctr -n
// k8s.io images import --all-platforms`, which also unpacks every image,
// and the way k3s and rke2 import the tarballs of agent/images (all
// platforms, no unpack, then every name must be a tagged reference).
// Every image comes in under its original name with its digest unchanged,
// and nothing else is taken for an image: not the bundle index, not the
// cosign signature carried beside it.
func TestContainerdImport(t *testing.T) {
	ctx := context.Background()
	c := startContainerd(t)
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	// A cosign signature (tag scheme) of web travels too.
	web, _ := pb.Image("web")
	webRepo, webDesc := descriptorAt(t, src, web.DigestRef())
	key, err := sigfixtures.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := sigfixtures.CosignSignature(key, web.Image, webDesc, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sigfixtures.Push(ctx, sigfixtures.Repo{Name: webRepo, Options: src.RemoteOptions()}, a); err != nil {
		t.Fatal(err)
	}
	archivePath := filepath.Join(t.TempDir(), "bundle.tar")
	res, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(clientFor(t, src)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Signatures == nil || res.Signatures.Artifacts != 1 {
		t.Fatalf("the export carries %+v signing artifacts, want the cosign signature", res.Signatures)
	}
	want := map[string]digest.Digest{}
	for _, img := range pb.Images {
		want[layout.ContainerdName(img.Image)] = img.ContentDigest
	}

	out, err := c.ctr("-n", "k8s.io", "images", "import", "--all-platforms", "--snapshotter", "native", archivePath)
	if err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	if got := c.images(t, "k8s.io"); !maps.Equal(got, want) {
		t.Fatalf("ctr import made the images\n%v\nwant\n%v\n%s", got, want, out)
	}
	for n := range want {
		if !strings.Contains(out, n) {
			t.Errorf("ctr did not report unpacking %s:\n%s", n, out)
		}
	}

	// k3s/rke2: all platforms, no unpack; every name must be tagged.
	out, err = c.ctr("-n", "k3s", "images", "import", "--all-platforms", "--no-unpack", archivePath)
	if err != nil {
		t.Fatalf("ctr images import --no-unpack: %v\n%s", err, out)
	}
	got := c.images(t, "k3s")
	if !maps.Equal(got, want) {
		t.Fatalf("the k3s-style import made the images %v, want %v", got, want)
	}
	for n := range got {
		r, err := name.ParseReference(n, name.StrictValidation)
		if _, tagged := r.(name.Tag); err != nil || !tagged {
			t.Errorf("k3s refuses the image name %q: not a tagged reference (%v)", n, err)
		}
	}
}
