package testsigstore

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TUF is a TUF repository (go-tuf v2 metadata, consistent snapshots) that
// publishes one target, trusted_root.json, served over HTTP on loopback
// the way Sigstore's TUF CDN serves its files.
type TUF struct {
	URL string

	mu     sync.Mutex
	files  map[string][]byte
	root   *metadata.Metadata[metadata.RootType]
	keys   map[string]ed25519.PrivateKey // by role
	roots  [][]byte                      // every root version, 1 first
	target []byte
	ver    int64 // timestamp, snapshot and targets version
	srv    *http.Server
}

// NewTUF starts a repository on 127.0.0.1 publishing trustedRoot, with
// every role expiring after expires, over plain HTTP.
func NewTUF(trustedRoot []byte, expires time.Duration) (*TUF, error) {
	return newTUF(trustedRoot, expires, "", "")
}

// NewTUFTLS is NewTUF over HTTPS with the certificate and key in certFile
// and keyFile (PEM).
func NewTUFTLS(trustedRoot []byte, expires time.Duration, certFile, keyFile string) (*TUF, error) {
	return newTUF(trustedRoot, expires, certFile, keyFile)
}

func newTUF(trustedRoot []byte, expires time.Duration, certFile, keyFile string) (*TUF, error) {
	t := &TUF{files: map[string][]byte{}, keys: map[string]ed25519.PrivateKey{}, target: trustedRoot}
	t.root = metadata.Root(time.Now().Add(expires))
	for _, role := range []string{metadata.ROOT, metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS} {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		k, err := metadata.KeyFromPublicKey(pub)
		if err != nil {
			return nil, err
		}
		if err := t.root.Signed.AddKey(k, role); err != nil {
			return nil, err
		}
		t.keys[role] = priv
	}
	if err := t.signRoot(t.keys[metadata.ROOT]); err != nil {
		return nil, err
	}
	if err := t.Publish(trustedRoot, expires); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t.srv = &http.Server{Handler: t, ReadHeaderTimeout: 5 * time.Second}
	if certFile == "" {
		t.URL = "http://" + ln.Addr().String()
		go t.srv.Serve(ln) //nolint:errcheck // ends with Close
		return t, nil
	}
	t.URL = "https://" + ln.Addr().String()
	go t.srv.ServeTLS(ln, certFile, keyFile) //nolint:errcheck // ends with Close
	return t, nil
}

// Close stops the server.
func (t *TUF) Close() error { return t.srv.Close() }

func (t *TUF) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	raw, ok := t.files[strings.TrimPrefix(r.URL.Path, "/")]
	t.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(raw)
}

// Root is root.json version 1: the root a client pins.
func (t *TUF) Root() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.roots[0]
}

func signer(k ed25519.PrivateKey) (signature.Signer, error) {
	return signature.LoadSignerVerifier(k, crypto.Hash(0))
}

// signRoot signs the current root with k (and, for a rotation, the
// previous root's key) and publishes it as <version>.root.json.
func (t *TUF) signRoot(keys ...ed25519.PrivateKey) error {
	t.root.Signatures = nil
	for _, k := range keys {
		s, err := signer(k)
		if err != nil {
			return err
		}
		if _, err := t.root.Sign(s); err != nil {
			return err
		}
	}
	raw, err := t.root.ToBytes(false)
	if err != nil {
		return err
	}
	t.roots = append(t.roots, raw)
	t.files[fmt.Sprintf("%d.root.json", t.root.Signed.Version)] = raw
	return nil
}

// RotateRoot publishes a new root version with a new root key, signed by
// the old and the new one.
func (t *TUF) RotateRoot() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return err
	}
	old := t.keys[metadata.ROOT]
	oldKey, err := metadata.KeyFromPublicKey(old.Public())
	if err != nil {
		return err
	}
	oldID, err := oldKey.ID()
	if err != nil {
		return err
	}
	if err := t.root.Signed.RevokeKey(oldID, metadata.ROOT); err != nil {
		return err
	}
	if err := t.root.Signed.AddKey(k, metadata.ROOT); err != nil {
		return err
	}
	t.root.Signed.Version++
	t.keys[metadata.ROOT] = priv
	return t.signRoot(old, priv)
}

// Publish signs a new version of targets, snapshot and timestamp for
// trustedRoot, expiring after expires (negative: already expired).
func (t *TUF) Publish(trustedRoot []byte, expires time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ver++
	exp := time.Now().Add(expires)
	targets := metadata.Targets(exp)
	targets.Signed.Version = t.ver
	tf, err := metadata.TargetFile().FromBytes("trusted_root.json", trustedRoot, "sha256")
	if err != nil {
		return err
	}
	targets.Signed.Targets["trusted_root.json"] = tf
	snapshot := metadata.Snapshot(exp)
	snapshot.Signed.Version = t.ver
	snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(t.ver)
	timestamp := metadata.Timestamp(exp)
	timestamp.Signed.Version = t.ver
	timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(t.ver)
	sign := func(role string, md interface {
		Sign(signature.Signer) (*metadata.Signature, error)
		ToBytes(bool) ([]byte, error)
	}, name string) error {
		s, err := signer(t.keys[role])
		if err != nil {
			return err
		}
		if _, err := md.Sign(s); err != nil {
			return err
		}
		raw, err := md.ToBytes(false)
		if err != nil {
			return err
		}
		t.files[name] = raw
		return nil
	}
	if err := sign(metadata.TARGETS, targets, fmt.Sprintf("%d.targets.json", t.ver)); err != nil {
		return err
	}
	if err := sign(metadata.SNAPSHOT, snapshot, fmt.Sprintf("%d.snapshot.json", t.ver)); err != nil {
		return err
	}
	if err := sign(metadata.TIMESTAMP, timestamp, "timestamp.json"); err != nil {
		return err
	}
	t.files[fmt.Sprintf("targets/%x.trusted_root.json", []byte(tf.Hashes["sha256"]))] = trustedRoot
	t.target = trustedRoot
	return nil
}
