// Package fsutil holds the file-system steps several packages take the
// same way: a file replaced atomically and durably.
package fsutil

import (
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path through a synced temporary file in
// the same directory and a rename, then syncs the directory: a reader sees
// path absent, old or complete, also after a crash. The temporary file is
// removed on any failure.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	SyncDir(dir)
	return nil
}

// SyncDir flushes a directory's entries (a rename into it) to disk. It is
// best effort: some file systems cannot sync a directory, and the data
// itself was synced before.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
