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

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/internal/registry"
	"github.com/cnab-airgap/cnab-airgap/internal/retry"
	"github.com/cnab-airgap/cnab-airgap/internal/verify"
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
