// Package fsutil holds the file-system steps several packages take the
// same way: a file replaced atomically and durably.
package fsutil

import (
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path through a synced temporary file in
// the same directory and a rename, then syncs the directory: a reader sees
// path absent, old or complete, also after a crash. The temporary file is
// removed on any failure.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, "", perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic creates path from what write writes, through a temporary file
// (tmp, or a fresh name next to path when tmp is "") that is synced and
// renamed to path once write returns nil, then syncs the directory. On any
// failure the temporary file is removed and path is untouched.
func WriteAtomic(path, tmp string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	var f *os.File
	var err error
	if tmp == "" {
		f, err = os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	} else {
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	}
	if err != nil {
		return err
	}
	tmp = f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
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
