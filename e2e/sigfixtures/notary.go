package sigfixtures

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf/data"
)

// NotaryServer is a running notary-server process (memory storage, local
// ED25519 trust service, plain HTTP on 127.0.0.1).
type NotaryServer struct {
	URL string
	Log string
	// CAFile and Transport, with TLS: the CA that issued the server's
	// certificate, and a transport trusting it.
	CAFile    string
	Transport http.RoundTripper
	cmd       *exec.Cmd
	done      chan struct{}
}

// StartNotaryServer runs Debian's notary-server binary (package "notary")
// on a free loopback port, with its config and log in dir, and waits until
// it answers its health check. With withTLS it serves HTTPS with a
// certificate for 127.0.0.1 issued by a CA generated here. Each option
// edits the server configuration before it is written (WithTokenAuth).
func StartNotaryServer(ctx context.Context, dir string, withTLS bool, opts ...ServerOption) (*NotaryServer, error) {
	bin, err := exec.LookPath("notary-server")
	if err != nil {
		return nil, fmt.Errorf("notary-server not found (make test provisions it: scripts/tools.sh): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	srv := map[string]any{"http_addr": addr}
	s := &NotaryServer{URL: "http://" + addr, Log: filepath.Join(dir, "notary-server.log"), done: make(chan struct{}), Transport: http.DefaultTransport}
	if withTLS {
		ca, err := writeTLS(dir)
		if err != nil {
			return nil, err
		}
		srv["tls_cert_file"], srv["tls_key_file"] = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		s.URL, s.CAFile, s.Transport = "https://"+addr, filepath.Join(dir, "ca.crt"), ca
	}
	cfg := map[string]any{
		"server":        srv,
		"trust_service": map[string]any{"type": "local"},
		"storage":       map[string]any{"backend": "memory"},
		"logging":       map[string]any{"level": "info"},
	}
	for _, opt := range opts {
		opt(cfg)
	}
	raw, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "notary-server.json")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(s.Log)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "-config", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := (&http.Client{Transport: s.Transport}).Get(s.URL + "/_notary_server/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(s.Log)
			return nil, fmt.Errorf("notary-server exited: %s", log)
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, errors.New("notary-server did not become healthy in 15s")
		}
	}
}

// Close stops the server process (this process's child, by its PID).
func (s *NotaryServer) Close() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

// Publisher publishes Notary targets for one GUN the way Docker Content
// Trust and Signy do: root and targets keys held by the client (in
// TrustDir, passphrase "pass"), snapshot and timestamp managed by the
// server, optionally a targets/releases delegation.
type Publisher struct {
	Server   string
	GUN      string
	TrustDir string
	repo     client.Repository
	releases bool
}

// NewPublisher initializes the GUN on the server: a new ECDSA root key,
// and, with releases, a targets/releases delegation whose key it creates.
func NewPublisher(server, gun, trustDir string, rt http.RoundTripper, releases bool) (*Publisher, error) {
	repo, err := client.NewFileCachedRepository(trustDir, data.GUN(gun), server, rt,
		passphrase.ConstantRetriever("pass"), trustpinning.TrustPinConfig{})
	if err != nil {
		return nil, err
	}
	cs := repo.GetCryptoService()
	root, err := cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if err != nil {
		return nil, err
	}
	if err := repo.Initialize([]string{root.ID()}, data.CanonicalSnapshotRole); err != nil {
		return nil, fmt.Errorf("initialize %s: %w", gun, err)
	}
	p := &Publisher{Server: server, GUN: gun, TrustDir: trustDir, repo: repo, releases: releases}
	if releases {
		k, err := cs.Create("targets/releases", data.GUN(gun), data.ECDSAKey)
		if err != nil {
			return nil, err
		}
		if err := repo.AddDelegation("targets/releases", []data.PublicKey{k}, []string{""}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Publish signs target name with the sha256/sha512 and length of content
// and the given custom data (nil for none), into targets/releases when the
// publisher has the delegation, else into targets.
func (p *Publisher) Publish(name string, content, custom []byte) error {
	return p.PublishAll(Target{Name: name, Content: content, Custom: custom})
}

// PublishAll signs several targets, each in its role, and publishes once.
func (p *Publisher) PublishAll(ts ...Target) error {
	for _, x := range ts {
		meta, err := data.NewFileMeta(bytes.NewReader(x.Content), data.NotaryDefaultHashes...)
		if err != nil {
			return err
		}
		t := &client.Target{Name: x.Name, Hashes: meta.Hashes, Length: meta.Length}
		if x.Custom != nil {
			c := canonicaljson.RawMessage(x.Custom)
			t.Custom = &c
		}
		role := data.RoleName(x.Role)
		if role == "" {
			role = data.CanonicalTargetsRole
			if p.releases {
				role = "targets/releases"
			}
		}
		if err := p.repo.AddTarget(t, role); err != nil {
			return err
		}
	}
	if err := p.repo.Publish(); err != nil {
		return fmt.Errorf("publish %s: %w", p.GUN, err)
	}
	return nil
}

// RootKeyID returns the published root's key ID: what a verifier pins.
func (p *Publisher) RootKeyID() (string, error) {
	raw, err := os.ReadFile(filepath.Join(p.TrustDir, "tuf", filepath.FromSlash(p.GUN), "metadata", "root.json"))
	if err != nil {
		return "", err
	}
	var r struct {
		Signed struct {
			Roles map[string]struct {
				KeyIDs []string `json:"keyids"`
			} `json:"roles"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", err
	}
	ids := r.Signed.Roles["root"].KeyIDs
	if len(ids) != 1 {
		return "", fmt.Errorf("root.json has %d root keys", len(ids))
	}
	return ids[0], nil
}

// Targets lists the targets a fresh client sees for gun on server (TOFU).
func Targets(server, gun string, rt http.RoundTripper) ([]*client.TargetWithRole, error) {
	dir, err := os.MkdirTemp("", "notary-list-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	repo, err := client.NewFileCachedRepository(dir, data.GUN(gun), server, rt,
		passphrase.ConstantRetriever("pass"), trustpinning.TrustPinConfig{})
	if err != nil {
		return nil, err
	}
	return repo.ListTargets()
}

// CA is a certificate authority for Notary root certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// File holds the CA certificate (PEM), for --notary-ca.
	File string
}

// NewCA generates a CA and writes its certificate to dir/name.
func NewCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, Key: key, File: filepath.Join(dir, name+".crt")}
	return ca, os.WriteFile(ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// NewPublisherWithCA is NewPublisher (targets role only) whose root
// certificate is issued by ca (CN = the GUN) instead of self-signed, so
// that verifiers can anchor trust in the CA.
func NewPublisherWithCA(server, gun, trustDir string, rt http.RoundTripper, ca *CA) (*Publisher, error) {
	repo, err := client.NewFileCachedRepository(trustDir, data.GUN(gun), server, rt,
		passphrase.ConstantRetriever("pass"), trustpinning.TrustPinConfig{})
	if err != nil {
		return nil, err
	}
	cs := repo.GetCryptoService()
	root, err := cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(root.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: gun},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	certKey := data.NewECDSAx509PublicKey(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err := repo.InitializeWithCertificate([]string{root.ID()}, []data.PublicKey{certKey}, data.CanonicalSnapshotRole); err != nil {
		return nil, fmt.Errorf("initialize %s: %w", gun, err)
	}
	return &Publisher{Server: server, GUN: gun, TrustDir: trustDir, repo: repo}, nil
}
