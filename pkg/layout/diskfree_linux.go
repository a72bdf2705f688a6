//go:build linux

package layout

import "syscall"

// diskFree returns the bytes an unprivileged process may still write in the
// file system holding dir, or -1 if it cannot tell.
func diskFree(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize) //nolint:unconvert // Bsize is int32 on some architectures
}
