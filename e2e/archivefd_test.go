package e2e

import (
	"archive/tar"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// signBlob writes path+".sig" as cosign sign-blob does: base64 of an ECDSA
// signature over the file's SHA-256.
func signBlob(t *testing.T, k *ecdsa.PrivateKey, path string) {
	t.Helper()
	h := sha256.Sum256(mustRead(t, path))
	sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".sig", []byte(base64.StdEncoding.EncodeToString(sig)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writePublicKey(t *testing.T, k *ecdsa.PrivateKey, path string) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveKeyCheckedOverParsedBytes: --archive-key is checked over the
// very bytes that are parsed, before anything is decompressed or parsed.
// A decompression bomb with a bogus signature is refused before a byte is
// written to --tmp-dir; an archive swapped on disk while the import runs
// changes nothing: the signed content is what is pushed.
func TestArchiveKeyCheckedOverParsedBytes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "archive.pub")
	writePublicKey(t, key, pub)

	t.Run("bomb with a bogus signature", func(t *testing.T) {
		bomb := filepath.Join(dir, "bomb.tar.zst")
		zstdArchive(t, bomb, nil, func(w io.Writer) {
			tw := tar.NewWriter(w)
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: layout.IndexFile, Size: 2 << 30, Mode: 0o644})
			zero := make([]byte, 1<<20)
			for range 2 << 10 {
				tw.Write(zero)
			}
			tw.Close()
		})
		signBlob(t, other, bomb) // signed, by somebody else
		tmp := t.TempDir()
		written := int64(0)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // the largest --tmp-dir ever got
			defer close(done)
			for {
				filepath.WalkDir(tmp, func(_ string, d fs.DirEntry, err error) error {
					if err == nil && d.Type().IsRegular() {
						if i, err := d.Info(); err == nil {
							written = max(written, i.Size())
						}
					}
					return nil
				})
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		start := time.Now()
		code, stdout, stderr := runCLIBinary(t, "verify", "--tmp-dir", tmp, "--archive-key", pub, bomb)
		took := time.Since(start)
		close(stop)
		<-done
		if code != 3 || !strings.Contains(stderr, bomb+".sig") || !strings.Contains(stderr, "signature does not verify") {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if es, _ := os.ReadDir(tmp); written != 0 || len(es) != 0 {
			t.Fatalf("%d bytes written to --tmp-dir before the signature was refused (%d entries left)", written, len(es))
		}
		t.Logf("refused in %v, nothing written", took)
	})

	t.Run("archive swapped during the import", func(t *testing.T) {
		signed, pb := exportedSample(t, harness.SampleOptions{})
		swapped, pb2 := exportedSample(t, harness.SampleOptions{Seed: 77, Tag: "9.9.9"})
		if pb.Digest == pb2.Digest {
			t.Fatal("the two samples are the same bundle")
		}
		signBlob(t, key, signed)
		k, err := sigbundle.LoadPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		dst := startRegistry(t)
		swappedOnce := false
		res, err := importer.Import(ctx, importer.Request{Archive: signed, Target: dst.Host + "/mirror"},
			importer.WithClient(clientFor(t, dst)), importer.WithArchiveKey(importer.ArchiveKey{Key: k}),
			importer.WithProgress(func(e progress.Event) {
				// After the archive was opened and checked, before any
				// byte is hashed for the push: another file takes its name.
				if e.Phase == progress.PhaseVerify && !swappedOnce {
					swappedOnce = true
					if err := os.Rename(swapped, signed); err != nil {
						t.Error(err)
					}
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		if !swappedOnce || res.ArchiveSignature == nil || res.IndexDigest != pb.Digest.String() {
			t.Fatalf("swapped %v, signature %+v, pushed %s, want the signed %s", swappedOnce, res.ArchiveSignature, res.IndexDigest, pb.Digest)
		}
		ref, err := dst.Reference("mirror/" + harness.DefaultSampleRepository + ":" + harness.DefaultSampleTag)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(ref, dst.RemoteOptions()...)
		if err != nil || d.Digest.String() != pb.Digest.String() {
			t.Fatalf("the target holds %v (%v), want the signed bundle %s", d, err, pb.Digest)
		}
		// The file now at that path is the other one: its signature check fails.
		code, _, stderr := runCLIBinary(t, "verify", "--archive-key", pub, signed)
		if code != 3 || !strings.Contains(stderr, "signature does not verify") {
			t.Fatalf("the swapped-in file verified: exit %d\n%s", code, stderr)
		}
	})
}
