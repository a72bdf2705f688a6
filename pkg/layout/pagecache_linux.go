//go:build linux

package layout

import (
	"os"

	"golang.org/x/sys/unix"
)

// The archive is written and read once, front to back, by ranges: keeping
// those pages cached helps nothing and pushes everything else out of
// memory, so the writer writes them back early and both sides drop them
// once used (see FileWriter.flushBehind and dropBehind). All of it is
// advisory; errors are ignored, and the final fsync still decides
// durability.

// startWriteback starts writing back the dirty pages of [off, off+n)
// without waiting for them.
func startWriteback(f *os.File, off, n int64) {
	control(f, func(fd int) { _ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

// finishWriteback waits until [off, off+n) is written back, then drops it
// from the page cache.
func finishWriteback(f *os.File, off, n int64) {
	control(f, func(fd int) {
		_ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		_ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
	})
}

// dropCache drops the clean cached pages of [off, off+n).
func dropCache(f *os.File, off, n int64) {
	control(f, func(fd int) { _ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) })
}

// control runs fn on f's descriptor while holding a reference to it, so a
// concurrent Close cannot hand the number to another file meanwhile.
func control(f *os.File, fn func(fd int)) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
}
