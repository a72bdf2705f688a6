package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// startCluster starts a registry cluster (distribution's registry binary,
// which `make tools` builds: a missing binary fails the test) and, when the
// test fails, logs the end of every node's log.
func startCluster(t *testing.T, o harness.ClusterOptions) *harness.Cluster {
	t.Helper()
	cl, err := harness.StartCluster(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range cl.Nodes {
				l := strings.Split(strings.TrimRight(n.Log(), "\n"), "\n")
				t.Logf("registry node %d, last lines of its log:\n%s", n.Index, strings.Join(l[max(0, len(l)-40):], "\n"))
			}
		}
	})
	return cl
}

// clusterEnv is cliEnv with every proxy pointed at a closed loopback port:
// the CLI talks to the cluster only (loopback is never proxied).
func clusterEnv(t *testing.T) []string {
	return cliEnv(t, "HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost")
}

// assertClusterHoldsBundle checks the import at the cluster: `verify
// --target` passes, every manifest and blob of the archive is there byte
// for byte, every mapped image resolves to its contentDigest, and
// cnab-to-oci pulls the bundle with the source's index and bundle.json.
func assertClusterHoldsBundle(t *testing.T, bin string, env []string, cl *harness.Cluster, archive, mapping string, pb *harness.PushedBundle) {
	t.Helper()
	host := cl.Registry.Host
	if r, code := runCLI(t, bin, env, "", "--plain-http", host, "verify", "--target", host+"/airgap", "--mapping", mapping, archive); code != 0 {
		t.Fatalf("verify --target: exit %d\n%s%s", code, r.stdout.String(), r.stderr.String())
	}
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	assertTargetHoldsArchive(t, cl.Registry, "airgap/bundles/sample-app", archive, m)
	if len(m) != len(pb.Images) {
		t.Fatalf("the mapping has %d images, the bundle %d", len(m), len(pb.Images))
	}
	for _, img := range pb.Images {
		ref, err := name.ParseReference(m[img.Image], name.Insecure)
		if err != nil {
			t.Fatalf("mapping of %s: %v", img.Image, err)
		}
		d, err := remote.Head(ref, cl.Registry.RemoteOptions()...)
		if err != nil {
			t.Fatalf("%s at the cluster: %v", ref, err)
		}
		if d.Digest.String() != img.ContentDigest.String() {
			t.Errorf("%s is %s at the cluster, %s at the source", img.Image, d.Digest, img.ContentDigest)
		}
	}
	pulled, err := harness.PullBundle(context.Background(), cl.Registry, "airgap/bundles/sample-app:0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest != pb.Digest || string(pulled.BundleJSON) != string(pb.BundleJSON) {
		t.Fatalf("cnab-to-oci pulls index %s (bundle.json %d bytes) from the cluster, the source has %s (%d bytes)",
			pulled.Digest, len(pulled.BundleJSON), pb.Digest, len(pb.BundleJSON))
	}
	for _, img := range pb.Images {
		if got := pulled.RelocationMap[img.Image]; !strings.HasSuffix(got, "@"+img.ContentDigest.String()) {
			t.Errorf("cnab-to-oci relocates %s to %s, want digest %s", img.Image, got, img.ContentDigest)
		}
	}
}

// settleNodes waits until every node's own access log has caught up with
// what the proxy sent it (a node logs a request after its response).
func settleNodes(t *testing.T, cl *harness.Cluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range cl.Nodes {
		for n.Served() != n.Counts().Requests {
			if time.Now().After(deadline) {
				t.Fatalf("node %d logged %d requests, the proxy sent it %d", n.Index, n.Served(), n.Counts().Requests)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// An import into two registry processes sharing one storage directory
// and one secret behind a round-robin proxy: with one request per
// connection (every request goes to the other node, so blob uploads opened
// on one node are committed on the other), and with kept-alive
// connections (an L4 balancer). Both nodes serve, and the cluster holds the
// bundle with the source's digests.
func TestClusterImport(t *testing.T) {
	archive, pb := exportedSample(t, harness.SampleOptions{})
	bin := buildCLI(t)
	for _, keepAlive := range []bool{false, true} {
		mode := "one request per connection"
		if keepAlive {
			mode = "keep-alive"
		}
		t.Run(mode, func(t *testing.T) {
			cl := startCluster(t, harness.ClusterOptions{KeepAlive: keepAlive})
			env := clusterEnv(t)
			mapping := filepath.Join(t.TempDir(), "relocation-mapping.json")
			host := cl.Registry.Host
			// One job without keep-alive: the requests alternate between
			// the nodes, so each upload is opened (POST) on one node and
			// committed (PUT) on the other.
			jobs := "1"
			if keepAlive {
				jobs = "3"
			}
			if r, code := runCLI(t, bin, env, "", "--plain-http", host, "--jobs", jobs, "--quiet", "import",
				"--target", host+"/airgap", "--mapping", mapping, archive); code != 0 {
				t.Fatalf("import into the cluster: exit %d\n%s", code, r.stderr.String())
			}
			assertClusterHoldsBundle(t, bin, env, cl, archive, mapping, pb)

			for _, n := range cl.Nodes {
				t.Logf("node %d: %d connections, %d requests in its access log", n.Index, n.Conns(), n.Served())
			}
			if keepAlive {
				// Which node a kept-alive connection reaches is a matter of
				// how many connections the client opens: both were dialled
				// by the client's connections and the checks above.
				for _, n := range cl.Nodes {
					if n.Conns() == 0 {
						t.Errorf("node %d was sent no connection", n.Index)
					}
				}
				return
			}
			// Each node's access log records what the proxy sent it.
			settleNodes(t, cl)
			for _, n := range cl.Nodes {
				c := n.Counts()
				t.Logf("node %d: %d requests, %d upload sessions opened, %d blobs and %d manifests committed",
					n.Index, c.Requests, c.BlobUploadStarts, c.BlobUploadsCompleted, c.ManifestPuts)
				if c.BlobUploadStarts+c.BlobUploadsCompleted == 0 {
					t.Errorf("node %d took no part in the blob uploads", n.Index)
				}
			}
			crossed, total := cl.CrossNodeUploads()
			t.Logf("%d of %d blob uploads were opened on one node and committed on the other", crossed, total)
			if total == 0 || crossed == 0 {
				t.Errorf("%d of %d uploads crossed nodes; want some", crossed, total)
			}
		})
	}
}

// TestImportResumesAfterKill against the cluster: the import is killed
// (after some blobs; in the manifest phase), then one registry node is
// killed with SIGKILL (the cluster answers from the other meanwhile) and
// restarted on a new port; the re-run completes, uploads only what was
// missing, and everything verifies with the source's digests.
func TestClusterImportResumesAfterKill(t *testing.T) {
	archive, pb := exportedSample(t, harness.SampleOptions{})
	bin := buildCLI(t)

	// Reference: what a clean import uploads (the cluster counts the same
	// way an in-process registry does).
	clean := cleanImportCounts(t, bin, clusterEnv(t), archive)

	cases := []struct {
		name   string
		before func(r *http.Request, c harness.Counts) bool
		after  func(r *http.Request, c harness.Counts) bool
	}{
		{name: "after 2 blobs", after: func(r *http.Request, c harness.Counts) bool { return c.BlobUploadsCompleted >= 2 }},
		{name: "in the manifest phase", before: func(r *http.Request, c harness.Counts) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && c.ManifestPuts >= 3
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks := &killSwitch{}
			o := harness.ClusterOptions{}
			if tc.before != nil {
				o.Before = func(cl *harness.Cluster, r *http.Request) bool {
					// A request that kills the client is dropped: no node sees it.
					return !(tc.before(r, cl.Registry.Counts()) && ks.fire())
				}
			}
			if tc.after != nil {
				o.After = func(cl *harness.Cluster, _ int, r *http.Request, _ int) {
					if tc.after(r, cl.Registry.Counts()) {
						ks.fire()
					}
				}
			}
			cl := startCluster(t, o)
			host := cl.Registry.Host
			mapping := filepath.Join(t.TempDir(), "relocation-mapping.json")
			args := []string{"--plain-http", host, "--jobs", "3", "--quiet", "import", "--target", host + "/airgap", "--mapping", mapping, archive}
			env := clusterEnv(t)

			first := killedImport(t, bin, env, args, ks, cl.Registry, mapping)

			// One node dies; the proxy sends everything to the other, which
			// sees what the killed import left (no tag).
			node := cl.Nodes[0]
			oldAddr := node.Addr()
			if err := node.Kill(); err != nil {
				t.Fatal(err)
			}
			if tags := tagsAtTarget(t, cl.Registry); len(tags) != 0 {
				t.Fatalf("a killed import left tags: %v", tags)
			}
			if err := node.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Logf("node 0 killed (was %s) and restarted on %s", oldAddr, node.Addr())
			restarted := node.Counts()
			crossedBefore, totalBefore := cl.CrossNodeUploads()

			second, code := runCLI(t, bin, env, "", args...)
			if code != 0 {
				t.Fatalf("the second import failed: exit %d\n%s", code, second.stderr.String())
			}
			total := settle(cl.Registry)
			crossed, all := cl.CrossNodeUploads()
			checkResumed(t, first, total, clean, fmt.Sprintf(" (%d of %d opened on one node, committed on the other)", crossed-crossedBefore, all-totalBefore))
			if got := node.Counts().Requests - restarted.Requests; got == 0 {
				t.Error("the restarted node served none of the re-run's requests")
			}
			for _, n := range cl.Nodes {
				if n.Served() == 0 {
					t.Errorf("node %d's access log records no request", n.Index)
				}
			}

			assertClusterHoldsBundle(t, bin, env, cl, archive, mapping, pb)
		})
	}
}

// What lets an upload continue on another node is the shared http.secret:
// the session's state travels in the Location's _state parameter, an HMAC
// token. One blob is uploaded by hand, POST then PUT, which the proxy sends
// to different nodes: with one secret the other node commits it, with a
// secret per node it refuses the session (404 BLOB_UPLOAD_INVALID).
func TestClusterUploadSessionAcrossNodes(t *testing.T) {
	blob := []byte("an upload that starts on one node and ends on another\n")
	for _, perNode := range []bool{false, true} {
		mode := "shared secret"
		if perNode {
			mode = "a secret per node"
		}
		t.Run(mode, func(t *testing.T) {
			cl := startCluster(t, harness.ClusterOptions{SecretPerNode: perNode})
			hc := cl.Registry.Client()
			resp, err := hc.Post(cl.Registry.URL()+"/v2/probe/blobs/uploads/", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusAccepted || err != nil {
				t.Fatalf("POST: %s, Location %v", resp.Status, err)
			}
			q := loc.Query()
			q.Set("digest", digest.FromBytes(blob).String())
			loc.RawQuery = q.Encode()
			req, err := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			resp, err = hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// The proxy records an exchange once it has relayed the
			// response, a moment after the client has it.
			settle(cl.Registry)
			ex := cl.Exchanges()
			if len(ex) != 2 || ex[0].Node == ex[1].Node {
				t.Fatalf("the POST and the PUT were not served by two nodes: %+v", ex)
			}
			t.Logf("POST on node %d, PUT on node %d: %s %s", ex[0].Node, ex[1].Node, resp.Status, bytes.TrimSpace(body))
			if !perNode {
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("PUT on the other node: %s %s", resp.Status, body)
				}
				return
			}
			if resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte("BLOB_UPLOAD_INVALID")) {
				t.Fatalf("PUT on a node with another secret: %s %s; want 404 BLOB_UPLOAD_INVALID", resp.Status, body)
			}
		})
	}
}
