package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// `cnab-airgap serve` bounds what any client costs it, run as the real
// binary on an archive exported from a real registry (with a 24 MiB
// layer): a busy address fails before any verification, connections
// above --max-connections wait until one closes, a Range header cannot
// amplify a response, an idle keep-alive connection is closed after
// --idle-timeout, and a client that stops reading is cut off after
// --write-timeout while a slow one that keeps reading gets every byte.
func TestServeBoundsEveryClient(t *testing.T) {
	ctx := context.Background()
	src := startRegistry(t)
	sample(t, src, harness.SampleOptions{BaseLayerSize: 24 << 20})
	archive := filepath.Join(t.TempDir(), "bundle.tar")
	if _, err := export.Export(ctx, export.Request{Reference: src.Host + "/" + harness.DefaultSampleRepository + ":" + harness.DefaultSampleTag, Output: archive},
		export.WithClient(clientFor(t, src))); err != nil {
		t.Fatal(err)
	}
	src.Close() // the inside has no route to the source
	a, err := layout.Open(ctx, archive, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var big digest.Digest
	var bigSize int64
	for d, size := range a.Blobs() {
		if size > bigSize {
			big, bigSize = d, size
		}
	}
	a.Close()
	if bigSize < 24<<20 {
		t.Fatalf("largest blob %d bytes", bigSize)
	}
	bin := cliBinary(t)

	// A busy address: exit 1 at once, naming the address, and no
	// verification progress (the blobs were never read).
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := holder.Addr().String()
	code, stdout, stderr := runCLIBinary(t, "serve", archive, "--addr", busy)
	holder.Close()
	if code != 1 || !strings.Contains(stderr, "cannot listen on "+busy) || !strings.Contains(stderr, "address already in use") || stdout != "" {
		t.Fatalf("serve on a busy address: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "verify") {
		t.Fatalf("serve on a busy address verified the archive first:\n%s", stderr)
	}

	cmd := exec.Command(bin, "serve", archive, "--addr", "127.0.0.1:0", "-O", "json",
		"--max-connections", "3", "--idle-timeout", "500ms", "--write-timeout", "1s")
	cmd.Env = cliEnv(t)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb lockedBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var doc struct {
		Address      string   `json:"address"`
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(out).Decode(&doc); err != nil {
		t.Fatalf("no JSON document from serve: %v\n%s", err, errb.String())
	}
	go io.Copy(io.Discard, out)
	// Standard error reaches errb through exec's copying goroutine, which
	// may lag behind the JSON document on standard output.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errb.String(), "verify"); {
		if time.Now().After(deadline) {
			t.Fatalf("a serve that starts reports its verification; stderr:\n%s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	addr := doc.Address
	blob := "/v2/" + doc.Repositories[0] + "/blobs/" + big.String()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(time.Minute))
		return c
	}
	request := func(c net.Conn, path, extra string) {
		t.Helper()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n"+extra+"\r\n"); err != nil {
			t.Fatal(err)
		}
	}

	// --max-connections 3: a fourth connection waits unanswered until one
	// of the three closes.
	var held []net.Conn
	for range 3 {
		held = append(held, dial())
	}
	fourth := dial()
	request(fourth, "/v2/", "Connection: close\r\n")
	fourth.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := fourth.Read(make([]byte, 1)); n != 0 || !isNetTimeout(err) {
		t.Fatalf("a fourth connection over --max-connections 3 was answered: %d bytes, %v", n, err)
	}
	held[0].Close()
	fourth.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(fourth), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the queued connection once a slot freed: %v", err)
	}
	for _, c := range append(held, fourth) {
		c.Close()
	}

	// Ranges: 100,000 (400 KB of header) refused before they are read,
	// 10,000 refused with 416, and neither answer is bigger than 1 KiB.
	for _, tc := range []struct {
		n    int
		want int
	}{{100_000, http.StatusRequestHeaderFieldsTooLarge}, {10_000, http.StatusRequestedRangeNotSatisfiable}} {
		c := dial()
		// Written while the answer is read: the server stops reading a
		// refused request, so the write's error does not matter.
		go io.WriteString(c, "GET "+blob+" HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\nRange: bytes="+strings.Repeat("0-0,", tc.n)+"0-0\r\n\r\n")
		raw, _ := io.ReadAll(c)
		var status int
		fmt.Sscanf(string(raw), "HTTP/1.1 %d", &status)
		if status != tc.want || len(raw) > 1024 {
			t.Fatalf("%d one-byte ranges: status %d, %d bytes back; want %d and at most 1 KiB", tc.n, status, len(raw), tc.want)
		}
	}

	// --idle-timeout 500ms: a keep-alive connection is closed once idle.
	c := dial()
	br := bufio.NewReader(c)
	request(c, "/v2/", "")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive request: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	idleFrom := time.Now()
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %d bytes, %v; want it closed", n, err)
	}
	if waited := time.Since(idleFrom); waited < 300*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("idle connection closed after %v with --idle-timeout 500ms", waited)
	}

	// --write-timeout 1s: a client that stops reading the 24 MiB blob is
	// cut off; a client that reads it at 8 MiB/s (3 s) gets all of it.
	c = dial()
	request(c, blob, "")
	time.Sleep(4 * time.Second)
	got, err := io.Copy(io.Discard, c)
	if isNetTimeout(err) || got >= bigSize {
		t.Fatalf("a client that stopped reading got %d of %d bytes (%v); want it cut off", got, bigSize, err)
	}
	c = dial()
	request(c, blob, "")
	start := time.Now()
	resp, err = http.ReadResponse(bufio.NewReader(&rateReader{r: c, rate: 8 << 20}), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("slow reader: %v", err)
	}
	dg := digest.Canonical.Digester()
	if n, err := io.Copy(dg.Hash(), resp.Body); err != nil || dg.Digest() != big {
		t.Fatalf("a slow reader got %d of %d bytes (%v), digest %s", n, bigSize, err, dg.Digest())
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("the slow download took %v, not several times --write-timeout: the test proves nothing", took)
	}

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after SIGINT: %v\n%s", err, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGINT")
	}
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rateReader reads at no more than rate bytes per second on average.
type rateReader struct {
	r     io.Reader
	rate  int64
	start time.Time
	n     int64
}

func (t *rateReader) Read(p []byte) (int, error) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	time.Sleep(time.Until(t.start.Add(time.Duration(t.n * int64(time.Second) / t.rate))))
	k, err := t.r.Read(p[:min(len(p), 16<<10)])
	t.n += int64(k)
	return k, err
}
