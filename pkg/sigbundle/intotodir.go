package sigbundle

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"github.com/theupdateframework/notary/tuf/data"
)

// maxInTotoDirFiles bounds the files an --in-toto-dir may hold.
const maxInTotoDirFiles = 10000

// gather301 reads the targets a CNAB 301 in-toto reference list needs from
// o.inTotoDir. Files are found by the sha256 the trust data signs, not by
// name, so the directory's layout does not matter (a copy of the metadata
// repository, or the files side by side); each is then checked against its
// signed length and every signed hash. It returns the bytes by target name.
func (o *options) gather301(ctx context.Context, info *NotaryInfo, refs []string) (map[string][]byte, error) {
	byHash, err := o.indexInTotoDir(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	_, _, err = resolve301(info.repo, refs, func(name string, meta data.FileMeta) ([]byte, error) {
		h, ok := meta.Hashes["sha256"]
		if !ok {
			return nil, wrapf(ErrInToto, "target %q has no sha256 hash to find it by", name)
		}
		p, ok := byHash[hex.EncodeToString(h)]
		if !ok {
			return nil, wrapf(ErrInToto, "target %q (sha256 %x, %d bytes) is not in --in-toto-dir %s", name, h, meta.Length, o.inTotoDir)
		}
		b, err := readCapped(p, o.maxMetadata)
		if err != nil {
			return nil, err
		}
		out[name] = b
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// indexInTotoDir hashes the regular files under o.inTotoDir (symbolic
// links are not followed; files over the metadata limit are skipped).
func (o *options) indexInTotoDir(ctx context.Context) (map[string]string, error) {
	byHash := map[string]string{}
	n := 0
	err := filepath.WalkDir(o.inTotoDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if n++; n > maxInTotoDirFiles {
			return fmt.Errorf("more than %d files", maxInTotoDirFiles)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > o.maxMetadata {
			return nil
		}
		b, err := readCapped(p, o.maxMetadata)
		if err != nil {
			return err
		}
		h := digest.FromBytes(b).Encoded()
		if _, ok := byHash[h]; !ok {
			byHash[h] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--in-toto-dir %s: %w", o.inTotoDir, err)
	}
	return byHash, nil
}

// readCapped reads a whole file of at most limit bytes.
func readCapped(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errors.New(p + ": larger than the metadata limit")
	}
	return b, nil
}
