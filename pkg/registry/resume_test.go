package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/retry"
)

// TestFetchBlobResumes downloads a blob through a proxy that breaks the
// connection twice mid-body: the download continues from the next byte
// with Range requests and verifies; with retries off it fails, saying
// where it broke.
func TestFetchBlobResumes(t *testing.T) {
	ctx := context.Background()
	reg, err := harness.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	data := make([]byte, 3<<20+5)
	rand.NewChaCha8([32]byte{7}).Read(data)
	d := digest.FromBytes(data)
	up, err := registry.New(registry.Options{PlainHTTP: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := up.Repository(reg.Host + "/a/blob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.UploadBlob(ctx, registry.Upload{Repo: repo, Digest: d, Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}); err != nil {
		t.Fatal(err)
	}

	fetch := func(t *testing.T, policy retry.Policy) ([]byte, []harness.FaultEvent, error) {
		px, err := harness.StartFaultProxy(ctx, reg,
			harness.Fault{Name: "cut", Method: http.MethodGet, Route: harness.FaultBlob, CutResponse: true, ResetAfter: 1 << 20, PerKey: 2, Max: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer px.Close()
		c, err := registry.New(registry.Options{PlainHTTP: []string{px.Host}, Retry: policy})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Repository(px.Host + "/a/blob")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.FetchBlob(ctx, r, d, int64(len(data)))
		if err != nil {
			return nil, px.Events(), err
		}
		defer rc.Close()
		vr, err := verify.NewReader(rc, d, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(vr)
		return got, px.Events(), err
	}

	got, events, err := fetch(t, retry.Policy{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download through two breaks: %v", err)
	}
	var ranges []string
	for _, ev := range events {
		if ev.Method == http.MethodGet && strings.Contains(ev.Path, "/blobs/") {
			ranges = append(ranges, ev.Range)
		}
	}
	t.Logf("blob GETs: Range %q", ranges)
	// The first break comes after the first MiB; the resumed request is
	// cut again after one more (its key is the same), the third completes.
	if len(ranges) != 3 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || !strings.HasPrefix(ranges[2], "bytes=") || ranges[1] == ranges[2] {
		t.Fatalf("blob GETs with Range headers %q, want a plain GET then two resumes from later bytes", ranges)
	}

	_, _, err = fetch(t, retry.Policy{MaxAttempts: 1})
	if err == nil || !strings.Contains(err.Error(), "broken after") {
		t.Fatalf("with retries off: %v", err)
	}
	var re *retry.Error
	if !errors.As(err, &re) {
		t.Fatalf("the error does not say retries were used up: %v", err)
	}
}

// TestUploadBlobResumes pushes a blob of ResumableUploadSize or more
// through a proxy that breaks the upload mid-body once: the upload asks the
// session how much arrived and sends only the rest (Content-Range), the
// registry ends up with the right blob, and it read far less than the blob
// twice over.
func TestUploadBlobResumes(t *testing.T) {
	ctx := context.Background()
	defer func(n int64) { registry.ResumableUploadSize = n }(registry.ResumableUploadSize)
	registry.ResumableUploadSize = 1 << 20
	reg, err := harness.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	data := make([]byte, 4<<20+3)
	rand.NewChaCha8([32]byte{9}).Read(data)
	d := digest.FromBytes(data)
	px, err := harness.StartFaultProxy(ctx, reg,
		harness.Fault{Name: "reset mid-PATCH", Method: http.MethodPatch, Route: harness.FaultUpload, Reset: true, ResetAfter: 3 << 20, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	c, err := registry.New(registry.Options{PlainHTTP: []string{px.Host}, Retry: retry.Policy{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.Repository(px.Host + "/big/blob")
	if err != nil {
		t.Fatal(err)
	}
	opens := 0
	res, err := c.UploadBlob(ctx, registry.Upload{Repo: repo, Digest: d, Size: int64(len(data)), Open: func() (io.ReadCloser, error) {
		opens++
		vr, err := verify.NewReader(bytes.NewReader(data), d, int64(len(data)))
		return io.NopCloser(vr), err
	}})
	if err != nil || res != registry.BlobUploaded {
		t.Fatalf("upload through a broken PATCH: %v %v (injected %v)", res, err, px.Injected())
	}
	if px.Injected()["reset mid-PATCH"] != 1 {
		t.Fatal("the upload was not broken")
	}
	var resumed string
	for _, ev := range px.Events() {
		if ev.Method == http.MethodPatch && ev.ContentRange != "" {
			resumed = ev.ContentRange
		}
	}
	got := reg.Counts().BlobUploadBytes
	t.Logf("resumed with Content-Range %q; the registry read %d bytes for a %d-byte blob; content opened %d times", resumed, got, len(data), opens)
	if resumed == "" || strings.HasPrefix(resumed, "0-") {
		t.Fatalf("no PATCH resumed from a later offset (Content-Range %q)", resumed)
	}
	if got >= 2*int64(len(data)) {
		t.Fatalf("the registry read %d bytes: the upload started over", got)
	}
	rc, err := up(t, reg).FetchBlob(ctx, mustRepo(t, reg, "big/blob"), d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	vr, _ := verify.NewReader(rc, d, int64(len(data)))
	if _, err := io.Copy(io.Discard, vr); err != nil {
		t.Fatalf("the registry holds other content: %v", err)
	}
}

func up(t *testing.T, reg *harness.Registry) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.Options{PlainHTTP: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRepo(t *testing.T, reg *harness.Registry, path string) name.Repository {
	t.Helper()
	r, err := up(t, reg).Repository(reg.Host + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
