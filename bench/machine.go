package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
)

// limits are the machine's own rates, measured in the same run as the
// tools, from which the floor of each phase is computed.
type limits struct {
	SHA256       float64 // bytes/s, one core
	DiskWrite    float64 // sequential write then fdatasync, bytes/s
	DiskReadCold float64 // sequential read after evicting the file from the page cache
	DiskReadWarm float64 // sequential read from the page cache
	Pull         float64 // registry blob GETs, body discarded, best of the stream counts tried
	PullStreams  int
	Push         float64 // registry monolithic blob uploads, best of the stream counts tried
	PushStreams  int
}

// measureLimits measures hashing, the disk under dir and a harness
// registry's blob download and upload rates, with diskBytes and netBytes of
// data.
func measureLimits(ctx context.Context, dir string, diskBytes, netBytes int64) (limits, error) {
	var l limits
	l.SHA256 = sha256Rate(512 << 20)
	var err error
	if l.DiskWrite, l.DiskReadCold, l.DiskReadWarm, err = diskRates(dir, diskBytes); err != nil {
		return l, fmt.Errorf("disk: %w", err)
	}
	if err := registryRates(ctx, &l, netBytes); err != nil {
		return l, fmt.Errorf("registry: %w", err)
	}
	return l, nil
}

func sha256Rate(n int64) float64 {
	buf := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(buf)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h := sha256.New()
	start := time.Now()
	for done := int64(0); done < n; done += int64(len(buf)) {
		h.Write(buf)
	}
	h.Sum(nil)
	return float64(n) / time.Since(start).Seconds()
}

// diskRates writes n bytes sequentially and fdatasyncs them, evicts the
// file from the page cache (POSIX_FADV_DONTNEED on clean pages) and reads
// it back cold, then warm. Like the archive writer and reader, the cold
// passes write back and drop behind themselves every 16 MiB, so they
// measure the disk rather than how fast the kernel can hand out fresh
// page-cache pages (slow on VMs that return freed memory to their host).
func diskRates(dir string, n int64) (write, cold, warm float64, err error) {
	path := filepath.Join(dir, "disk-probe")
	defer os.Remove(path)
	buf := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{2}).Read(buf)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	fd := int(f.Fd())
	const window = 16 << 20
	start := time.Now()
	for done := int64(0); done < n; done += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return 0, 0, 0, err
		}
		if end := done + int64(len(buf)); end%window == 0 {
			_ = unix.SyncFileRange(fd, end-window, window, unix.SYNC_FILE_RANGE_WRITE)
			if end > window {
				_ = unix.SyncFileRange(fd, end-2*window, window, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
				_ = unix.Fadvise(fd, end-2*window, window, unix.FADV_DONTNEED)
			}
		}
	}
	if err := unix.Fdatasync(fd); err != nil {
		return 0, 0, 0, err
	}
	write = float64(n) / time.Since(start).Seconds()
	readAll := func(drop bool) (float64, error) {
		start := time.Now()
		for off := int64(0); off < n; off += int64(len(buf)) {
			if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
				return 0, err
			}
			if end := off + int64(len(buf)); drop && end%window == 0 {
				_ = unix.Fadvise(fd, end-window, window, unix.FADV_DONTNEED)
			}
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	if err := evict(path); err != nil {
		return 0, 0, 0, err
	}
	if cold, err = readAll(true); err != nil {
		return 0, 0, 0, err
	}
	if _, err = readAll(false); err != nil { // fill the cache
		return 0, 0, 0, err
	}
	if warm, err = readAll(false); err != nil {
		return 0, 0, 0, err
	}
	return write, cold, warm, nil
}

// evict writes back and drops a file's pages from the page cache, as if it
// had just been carried over on a disk.
func evict(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// registryRates uploads distinct random blobs to a fresh harness registry
// (POST then one PUT with the whole body, the cheapest upload the protocol
// has) with 1, 2 and 4 streams, and downloads them again with 1, 2 and 4
// streams; the best rate of each direction is kept.
func registryRates(ctx context.Context, l *limits, n int64) error {
	reg, err := harness.StartRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	client := &http.Client{Transport: reg.Transport()}
	const blobs = 4
	size := n / blobs
	var all []digest.Digest
	for round, streams := range []int{1, 2, 4} {
		data := make([][]byte, blobs)
		ds := make([]digest.Digest, blobs)
		for i := range data {
			data[i] = make([]byte, size)
			rand.NewChaCha8([32]byte{3, byte(round), byte(i)}).Read(data[i])
			ds[i] = digest.FromBytes(data[i])
		}
		start := time.Now()
		if err := forEach(ctx, blobs, streams, func(ctx context.Context, i int) error {
			return uploadBlob(ctx, client, reg.URL(), "probe/push", ds[i], data[i])
		}); err != nil {
			return err
		}
		if r := float64(n) / time.Since(start).Seconds(); r > l.Push {
			l.Push, l.PushStreams = r, streams
		}
		all = append(all, ds...)
	}
	for _, streams := range []int{1, 2, 4} {
		start := time.Now()
		if err := forEach(ctx, blobs, streams, func(ctx context.Context, i int) error {
			return downloadBlob(ctx, client, reg.URL(), "probe/push", all[i])
		}); err != nil {
			return err
		}
		if r := float64(n) / time.Since(start).Seconds(); r > l.Pull {
			l.Pull, l.PullStreams = r, streams
		}
	}
	return nil
}

func forEach(ctx context.Context, n, streams int, f func(context.Context, int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(streams)
	for i := range n {
		g.Go(func() error { return f(gctx, i) })
	}
	return g.Wait()
}

func uploadBlob(ctx context.Context, c *http.Client, base, repo string, d digest.Digest, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("starting upload of %s: HTTP %d", d, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc+sep+"digest="+d.String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("uploading %s: HTTP %d", d, resp.StatusCode)
	}
	return nil
}

func downloadBlob(ctx context.Context, c *http.Client, base, repo string, d digest.Digest) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+d.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading %s: HTTP %d", d, resp.StatusCode)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// cpuSnapshot is the machine's busy CPU time and this process tree's own,
// to tell how much of the machine other programs used during a run.
type cpuSnapshot struct {
	at         time.Time
	busy, ours time.Duration
	ok         bool
}

func takeCPUSnapshot() cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		var n int64
		fmt.Sscan(v, &n)
		ticks += n
	}
	s.busy = time.Duration(ticks) * time.Second / 100 // USER_HZ
	var self, children unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &self) != nil || unix.Getrusage(unix.RUSAGE_CHILDREN, &children) != nil {
		return s
	}
	for _, r := range []unix.Rusage{self, children} {
		s.ours += time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	s.ok = true
	return s
}

// otherLoad returns how many cores, on average, programs other than this
// benchmark kept busy between two snapshots (kernel threads included).
func otherLoad(a, b cpuSnapshot) (float64, bool) {
	if !a.ok || !b.ok {
		return 0, false
	}
	wall := b.at.Sub(a.at)
	other := (b.busy - a.busy) - (b.ours - a.ours)
	if wall <= 0 {
		return 0, false
	}
	return max(0, other.Seconds()/wall.Seconds()), true
}
