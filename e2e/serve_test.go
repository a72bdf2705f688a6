package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
)

// An air gap without a registry: the archive is served as a registry and
// real clients pull from it. cnab-to-oci pulls the bundle (same index
// digest, same bundle.json, a relocation map onto the served address) and
// skopeo copies images whose manifests hash to their contentDigest.
func TestServeArchiveToRealClients(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is required (make test provisions it: scripts/tools.sh): ", err)
	}
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	archive := filepath.Join(dir, "bundle.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: archive}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	src.Close() // the inside has no route to the source

	logs := &lockedBuffer{}
	s, err := serve.Open(ctx, archive, serve.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx, ln) }()
	host := ln.Addr().String()
	ext, err := harness.External(host)
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	bundleRef := s.BundleRepository() + ":" + s.BundleTag()
	if bundleRef != harness.DefaultSampleRepository+":"+harness.DefaultSampleTag {
		t.Fatalf("bundle served as %s", bundleRef)
	}

	// The bundle as cnab-to-oci and the harness read it.
	read, err := harness.ReadBundle(ctx, ext, bundleRef)
	if err != nil {
		t.Fatal(err)
	}
	if read.Digest != pb.Digest || read.BundleJSONDigest != pb.BundleJSONDigest {
		t.Fatalf("served bundle %s / %s, source %s / %s", read.Digest, read.BundleJSONDigest, pb.Digest, pb.BundleJSONDigest)
	}
	pulled, err := harness.PullBundle(ctx, ext, bundleRef)
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest != pb.Digest || !bytes.Equal(pulled.BundleJSON, pb.BundleJSON) {
		t.Fatalf("cnab-to-oci pulled %s, source %s (bundle.json equal: %v)", pulled.Digest, pb.Digest, bytes.Equal(pulled.BundleJSON, pb.BundleJSON))
	}
	for _, img := range pb.Images {
		got := pulled.RelocationMap[img.Image]
		if !strings.HasPrefix(got, host+"/") || !strings.HasSuffix(got, "@"+img.ContentDigest.String()) {
			t.Fatalf("cnab-to-oci maps %s to %s, want %s/...@%s", img.Image, got, host, img.ContentDigest)
		}
	}

	// skopeo: every image's manifest by its original path and tag, byte for
	// byte (inspect --raw); worker (OCI) and db (Docker schema 2) copied
	// into a dir: layout, every blob hashing to its name.
	for _, n := range []string{harness.Invocation, "web", "db", "worker"} {
		img := mustImage(t, pb, n)
		var path string
		for _, si := range s.Images() {
			if si.Reference == img.Image {
				path = si.Repository + ":" + si.Tag
			}
		}
		raw := runSkopeo(t, skopeo, dir, "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/"+path)
		if got := digest.FromBytes(raw); got != img.ContentDigest {
			t.Fatalf("skopeo reads %s as %s, contentDigest %s", path, got, img.ContentDigest)
		}
		if n != "worker" && n != "db" {
			continue
		}
		out := filepath.Join(dir, "copy-"+n)
		runSkopeo(t, skopeo, dir, "copy", "--src-tls-verify=false", "docker://"+host+"/"+path, "dir:"+out)
		man, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.FromBytes(man); got != img.ContentDigest {
			t.Fatalf("skopeo copied %s with manifest %s, contentDigest %s", path, got, img.ContentDigest)
		}
		entries, _ := os.ReadDir(out)
		blobs := 0
		for _, e := range entries {
			if e.Name() == "manifest.json" || e.Name() == "version" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(out, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if digest.FromBytes(b).Encoded() != e.Name() {
				t.Fatalf("skopeo wrote blob %s that hashes to %s", e.Name(), digest.FromBytes(b))
			}
			blobs++
		}
		if blobs < 2 {
			t.Fatalf("skopeo copied %d blobs of %s", blobs, path)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), "msg=request method=GET path=/v2/"+harness.DefaultSampleRepository+"/manifests/") {
		t.Fatalf("requests were not logged at debug level")
	}
}

func runSkopeo(t *testing.T, skopeo, tmp string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skopeo, append([]string{"--insecure-policy"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
