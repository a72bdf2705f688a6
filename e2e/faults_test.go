package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// exportedSample pushes the sample bundle to a fresh source registry and
// exports it; the source is closed afterwards (the import side has no
// route to it).
func exportedSample(t *testing.T, o harness.SampleOptions) (string, *harness.PushedBundle) {
	t.Helper()
	src := startRegistry(t)
	pb := sample(t, src, o)
	archivePath := filepath.Join(t.TempDir(), "bundle.tar")
	if _, err := export.Export(context.Background(), export.Request{Reference: pb.Ref, Output: archivePath}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	src.Close()
	return archivePath, pb
}

// assertTargetHoldsArchive checks, byte for byte, that repo at reg serves every
// manifest of the archive with its exact bytes and every blob with content
// that hashes to its digest, and that every image of the mapping resolves
// to its contentDigest.
func assertTargetHoldsArchive(t *testing.T, reg *harness.Registry, repo, archivePath string, m relocate.Mapping) {
	t.Helper()
	ctx := context.Background()
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rp, err := reg.Repository(repo)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(reg.RemoteOptions(), remote.WithContext(ctx))
	for d, n := range b.Nodes {
		desc, err := remote.Get(rp.Digest(d.String()), opts...)
		if err != nil {
			t.Fatalf("manifest %s at the target: %v", d, err)
		}
		if string(desc.Manifest) != string(n.Raw) || string(desc.MediaType) != n.Desc.MediaType {
			t.Fatalf("manifest %s differs at the target (%d bytes %s, archive %d bytes %s)", d, len(desc.Manifest), desc.MediaType, len(n.Raw), n.Desc.MediaType)
		}
	}
	for d, size := range b.Blobs {
		l, err := remote.Layer(rp.Digest(d.String()), opts...)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("blob %s at the target: %v", d, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || "sha256:"+hex.EncodeToString(h.Sum(nil)) != d.String() || n != size {
			t.Fatalf("blob %s differs at the target (%d bytes, %v)", d, n, err)
		}
	}
	for _, img := range b.Images {
		v, ok := m[img.Ref]
		if !ok {
			t.Fatalf("mapping lacks %s", img.Ref)
		}
		if !strings.HasSuffix(v, "@"+img.Desc.Digest.String()) {
			t.Fatalf("mapping sends %s to %s, contentDigest %s", img.Ref, v, img.Desc.Digest)
		}
	}
}

// tagsAtTarget lists every tag of every repository of reg.
func tagsAtTarget(t *testing.T, reg *harness.Registry) []string {
	t.Helper()
	ctx := context.Background()
	repos, err := reg.Repositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range repos {
		tags, err := reg.Tags(ctx, r)
		if err != nil && !registry.IsNotFound(err) {
			t.Fatal(err)
		}
		for _, tg := range tags {
			out = append(out, r+":"+tg)
		}
	}
	return out
}

// The target sits behind a proxy that answers 503 to blob HEADs, 500 to
// manifest PUTs and to upload PUTs that carried their whole body, 429 with
// Retry-After to blob HEADs, 503 to upload starts, and resets connections in the middle of
// blob uploads (after the registry has received part of the body). The
// import completes, the target holds exactly what the archive carries, and
// the registry was asked to wait as long as it said.
func TestImportThroughFaults(t *testing.T) {
	ctx := context.Background()
	archivePath, _ := exportedSample(t, harness.SampleOptions{})
	dst := startRegistry(t)
	px, err := harness.StartFaultProxy(ctx, dst,
		harness.Fault{Name: "blob HEAD 503", Method: http.MethodHead, Route: harness.FaultBlob, Status: http.StatusServiceUnavailable, Every: 2, Max: 4},
		harness.Fault{Name: "blob HEAD 429", Method: http.MethodHead, Route: harness.FaultBlob, Status: http.StatusTooManyRequests, RetryAfter: time.Second, Every: 3, Max: 2},
		harness.Fault{Name: "upload start 503", Method: http.MethodPost, Route: harness.FaultUpload, Status: http.StatusServiceUnavailable, Every: 3, Max: 2},
		harness.Fault{Name: "reset mid-upload", Method: http.MethodPut, Route: harness.FaultUpload, Reset: true, Every: 2, Max: 4},
		harness.Fault{Name: "upload PUT 500", Method: http.MethodPut, Route: harness.FaultUpload, Status: http.StatusInternalServerError, Every: 3, Max: 2},
		harness.Fault{Name: "manifest PUT 500", Method: http.MethodPut, Route: harness.FaultManifest, Status: http.StatusInternalServerError, Every: 2, Max: 4},
		harness.Fault{Name: "manifest HEAD 502", Method: http.MethodHead, Route: harness.FaultManifest, Status: http.StatusBadGateway, Every: 5, Max: 3},
	)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	c, err := registry.New(registry.Options{PlainHTTP: []string{px.Host}})
	if err != nil {
		t.Fatal(err)
	}
	mapping := filepath.Join(t.TempDir(), "relocation-mapping.json")
	start := time.Now()
	res, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: px.Host + "/airgap", MappingPath: mapping}, importer.WithClient(c))
	if err != nil {
		t.Fatalf("import through faults failed: %v\ninjected: %v", err, px.Injected())
	}
	t.Logf("import through faults took %s, injected %v", time.Since(start).Round(time.Millisecond), px.Injected())
	for name, n := range px.Injected() {
		if n == 0 {
			t.Errorf("fault %q was never injected", name)
		}
	}
	// Retry-After was honoured: the same request came back no sooner.
	events := px.Events()
	waited := 0
	for i, ev := range events {
		if ev.Fault != "blob HEAD 429" {
			continue
		}
		for _, next := range events[i+1:] {
			if next.Key == ev.Key {
				if gap := next.Time.Sub(ev.Time); gap < time.Second {
					t.Errorf("%s retried after %s, the registry asked for 1s", ev.Key, gap)
				}
				waited++
				break
			}
		}
	}
	if waited == 0 {
		t.Error("no request answered 429 was seen again")
	}
	// Resets happened mid-body: the registry received more upload bytes
	// than the blobs hold.
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var blobBytes int64
	for _, s := range b.Blobs {
		blobBytes += s
	}
	b.Close()
	if got := dst.Counts().BlobUploadBytes; got <= blobBytes {
		t.Errorf("the registry read %d upload bytes for %d bytes of blobs: no upload broke mid-body", got, blobBytes)
	}
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(res.BundleReference, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	assertTargetHoldsArchive(t, dst, ref.Context().RepositoryStr(), archivePath, m)
	pulled, err := harness.ReadBundle(ctx, dst, strings.Replace(res.BundleReference, px.Host, dst.Host, 1))
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest.String() != res.IndexDigest {
		t.Fatalf("cnab-to-oci reads index %s at the target, import pushed %s", pulled.Digest, res.IndexDigest)
	}
}

// Faults that never clear fail the import: every failing image is named
// (one does not hide the other), nothing is tagged, no mapping is written,
// and the retries are bounded.
func TestImportReportsEveryFailureAndTagsNothing(t *testing.T) {
	ctx := context.Background()
	archivePath, _ := exportedSample(t, harness.SampleOptions{})
	dst := startRegistry(t)
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A blob that belongs only to component db and one only to worker.
	only := func(label string) digest.Digest {
		t.Helper()
		count := map[digest.Digest]int{}
		for _, e := range b.Images {
			for _, d := range e.Blobs {
				count[d]++
			}
		}
		for _, e := range b.Images {
			if e.Label() == label {
				for _, d := range e.Blobs {
					if count[d] == 1 && b.Blobs[d] > 1024 {
						return d
					}
				}
			}
		}
		t.Fatalf("no blob of its own in %s", label)
		return ""
	}
	dbBlob, workerBlob := only("component db"), only("component worker")
	manifestOf := map[string]digest.Digest{}
	for _, e := range b.Images {
		manifestOf[e.Label()] = e.Desc.Digest
	}
	b.Close()
	px, err := harness.StartFaultProxy(ctx, dst,
		harness.Fault{Name: "always 500", Method: http.MethodPut, Route: harness.FaultUpload, Keys: []string{dbBlob.String(), workerBlob.String()},
			Status: http.StatusInternalServerError, PerKey: 100, Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	c, err := registry.New(registry.Options{PlainHTTP: []string{px.Host}})
	if err != nil {
		t.Fatal(err)
	}
	mapping := filepath.Join(t.TempDir(), "relocation-mapping.json")
	start := time.Now()
	_, err = importer.Import(ctx, importer.Request{Archive: archivePath, Target: px.Host + "/airgap", MappingPath: mapping}, importer.WithClient(c))
	if err == nil {
		t.Fatal("the import succeeded although two blobs could never be uploaded")
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("the retries took %s", d)
	}
	for _, want := range []string{dbBlob.String(), workerBlob.String(), "component db", "component worker", "500"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %q: %v", want, err)
		}
	}
	if n := px.Injected()["always 500"]; n < 4 {
		t.Errorf("the uploads were tried %d times in all: not retried", n)
	}
	if tags := tagsAtTarget(t, dst); len(tags) != 0 {
		t.Fatalf("tags pushed by a failed import: %v", tags)
	}
	if _, err := os.Stat(mapping); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a mapping was written by a failed import: %v", err)
	}

	// The same with manifests: the db and worker manifests are always
	// refused. Both are named; the other images' manifests are pushed all
	// the same (a re-run has less to do); nothing is tagged. A re-run
	// without the faults completes and puts only the missing manifests.
	dst2 := startRegistry(t)
	px2, err := harness.StartFaultProxy(ctx, dst2,
		harness.Fault{Name: "manifest 500", Method: http.MethodPut, Route: harness.FaultManifest,
			Keys: []string{manifestOf["component db"].String(), manifestOf["component worker"].String()}, Status: http.StatusInternalServerError, PerKey: 100, Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer px2.Close()
	c2, err := registry.New(registry.Options{PlainHTTP: []string{px2.Host, dst2.Host}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = importer.Import(ctx, importer.Request{Archive: archivePath, Target: px2.Host + "/airgap", MappingPath: mapping}, importer.WithClient(c2))
	if err == nil {
		t.Fatal("the import succeeded although two manifests were always refused")
	}
	for _, want := range []string{manifestOf["component db"].String(), manifestOf["component worker"].String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name manifest %s: %v", want, err)
		}
	}
	if tags := tagsAtTarget(t, dst2); len(tags) != 0 {
		t.Fatalf("tags pushed by a failed import: %v", tags)
	}
	if _, err := os.Stat(mapping); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a mapping was written by a failed import: %v", err)
	}
	rp, _ := dst2.Repository("airgap/bundles/sample-app")
	if _, err := remote.Head(rp.Digest(manifestOf["component web"].String()), dst2.RemoteOptions()...); err != nil {
		t.Errorf("the web image, which did not fail, was not pushed: %v", err)
	}
	before := dst2.Counts()
	if _, err := importer.Import(ctx, importer.Request{Archive: archivePath, Target: dst2.Host + "/airgap", MappingPath: mapping}, importer.WithClient(c2)); err != nil {
		t.Fatal(err)
	}
	after := dst2.Counts()
	if after.BlobUploadsCompleted != before.BlobUploadsCompleted {
		t.Errorf("the re-run uploaded %d blobs again", after.BlobUploadsCompleted-before.BlobUploadsCompleted)
	}
	// db's and worker's manifests, the bundle index (their parent) and its
	// tag: what the failure left out, nothing more.
	if n := after.ManifestPuts - before.ManifestPuts; n != 4 {
		t.Errorf("the re-run put %d manifests, want 4 (db, worker, the bundle index, its tag)", n)
	}

}

// Downloads that break mid-body (the connection reset after part of a
// blob) are resumed from the next byte with Range requests: the export
// completes and carries exactly the blobs a clean export carries.
func TestExportResumesBrokenDownloads(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	pb := sample(t, src, harness.SampleOptions{})
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.tar")
	if _, err := export.Export(ctx, export.Request{Reference: pb.Ref, Output: clean}, export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	px, err := harness.StartFaultProxy(ctx, src,
		harness.Fault{Name: "cut download", Method: http.MethodGet, Route: harness.FaultBlob, CutResponse: true, Every: 2, PerKey: 2, Max: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	c, err := registry.New(registry.Options{PlainHTTP: []string{px.Host}})
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.tar")
	ref := strings.Replace(pb.Ref, src.Host, px.Host, 1)
	if _, err := export.Export(ctx, export.Request{Reference: ref, Output: broken}, export.WithClient(c)); err != nil {
		t.Fatalf("export through broken downloads: %v\ninjected: %v", err, px.Injected())
	}
	if px.Injected()["cut download"] == 0 {
		t.Fatal("no download was broken")
	}
	resumed := 0
	for _, ev := range px.Events() {
		if ev.Range != "" {
			resumed++
		}
	}
	if resumed == 0 {
		t.Fatalf("no Range request after %d broken downloads", px.Injected()["cut download"])
	}
	t.Logf("%d downloads broken, %d resumed with Range", px.Injected()["cut download"], resumed)
	a, err := archive.Load(ctx, clean, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := archive.Load(ctx, broken, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !maps.Equal(a.Blobs, b.Blobs) || b.Index.Digest != a.Index.Digest {
		t.Fatal("the export through broken downloads carries other content")
	}
	for d, size := range b.Blobs { // every blob verifies
		rd, err := b.Archive.Blob(d, size)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rd); err != nil {
			t.Fatalf("blob %s: %v", d, err)
		}
	}
}
