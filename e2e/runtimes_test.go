package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// TestDockerAndPodmanLoad loads an archive, as exported, with `docker
// load` (Debian's dockerd, classic vfs storage, as on a host without the
// containerd image store) and `podman load`, which read only `docker save`'s
// manifest.json: every image comes in under its original name, its image ID
// the config digest of the image (of its linux/amd64 platform for a
// multi-platform one), as `docker save` and `docker load` keep it. Both run
// as root with their own storage under a temporary directory.
func TestDockerAndPodmanLoad(t *testing.T) {
	for _, bin := range []string{"dockerd", "docker", "podman"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is required (make test installs Debian's docker.io and podman as root: scripts/tools.sh): %v", bin, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("dockerd and podman with their own storage run as root here; run make test as root (CI does)")
	}
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	archivePath := filepath.Join(t.TempDir(), "bundle.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	// What each image's ID must be: its config digest, linux/amd64's for an index.
	want := map[string]string{}
	for _, img := range pb.Images {
		repo, _ := descriptorAt(t, src, img.DigestRef())
		im, err := remote.Image(repo.Digest(img.ContentDigest.String()), append(src.RemoteOptions(), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := im.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		want[layout.ContainerdName(img.Image)] = cfg.String()
	}
	run := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(cctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// images parses "NAME:TAG ID" lines.
	images := func(out string) map[string]string {
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 {
				got[f[0]] = f[1]
			}
		}
		return got
	}
	check := func(t *testing.T, who string, got map[string]string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s loaded %v, want %v", who, got, want)
		}
		for n, id := range want {
			if got[n] != id {
				t.Errorf("%s: %s has image ID %q, want %s", who, n, got[n], id)
			}
		}
	}

	t.Run("podman", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "pd") // short: podman limits the run root to 50 characters
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		p := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
		t.Cleanup(func() { _ = exec.Command("podman", append(p, "system", "reset", "--force")...).Run() })
		run(t, "podman", append(p, "load", "-i", archivePath)...)
		check(t, "podman load", images(run(t, "podman", append(p, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")...)))
	})

	t.Run("docker", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "dk") // short: the socket path is limited
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock := "unix://" + filepath.Join(dir, "d.sock")
		d := exec.Command("dockerd", "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
			"--pidfile", filepath.Join(dir, "pid"), "-H", sock, "--iptables=false", "--ip6tables=false", "--ip-masq=false",
			"--bridge=none", "--storage-driver", "vfs")
		var log strings.Builder
		d.Stdout, d.Stderr = &log, &log
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = d.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _, _ = d.Process.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = d.Process.Kill()
				<-done
			}
		})
		deadline := time.Now().Add(60 * time.Second)
		for exec.Command("docker", "-H", sock, "version").Run() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("dockerd did not answer within 60 s:\n%s", log.String())
			}
			time.Sleep(300 * time.Millisecond)
		}
		run(t, "docker", "-H", sock, "load", "-i", archivePath)
		out := run(t, "docker", "-H", sock, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
		check(t, "docker load", images(out))
	})
}
