package sigbundle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf/data"
)

// ResignRequest says where and as whom to re-sign a verified Notary target
// (CNAB 805's second option: verify, then sign with the destination's own
// keys).
type ResignRequest struct {
	// Server is the destination Notary server's base URL.
	Server string
	// GUN is the relocated name: target registry host and repository.
	GUN string
	// TrustDir holds the signer's keys and the client cache, laid out as
	// the notary CLI's trust directory (private/ keys are read from and,
	// for a new repository, created there). Keys never come from flags.
	TrustDir string
	// Target is the upstream target, verified by Verify: its name,
	// hashes, length and custom data are published unchanged.
	Target *NotaryInfo
	// Passphrase returns the passphrase of a role's key ("root",
	// "targets", "snapshot" or a delegation). The default reads
	// NOTARY_ROOT_PASSPHRASE, NOTARY_TARGETS_PASSPHRASE,
	// NOTARY_SNAPSHOT_PASSPHRASE and NOTARY_DELEGATION_PASSPHRASE.
	Passphrase func(role string) (string, error)
}

// ResignResult describes a re-signed target.
type ResignResult struct {
	Server string `json:"server"`
	GUN    string `json:"gun"`
	Target string `json:"target"`
	// Initialized is true when the GUN was new and a root was created.
	Initialized bool `json:"initialized"`
	// RootKeyIDs are the destination root's key IDs, to pin inside.
	RootKeyIDs []string `json:"rootKeyIDs"`
}

// EnvPassphrase reads NOTARY_<ROLE>_PASSPHRASE (delegations use
// NOTARY_DELEGATION_PASSPHRASE), as the notary CLI does.
func EnvPassphrase(role string) (string, error) {
	v := "NOTARY_" + strings.ToUpper(role) + "_PASSPHRASE"
	if strings.Contains(role, "/") {
		v = "NOTARY_DELEGATION_PASSPHRASE"
	}
	p, ok := os.LookupEnv(v)
	if !ok {
		return "", fmt.Errorf("no passphrase for the %s key: set %s", role, v)
	}
	return p, nil
}

// Resign publishes req.Target under req.GUN on req.Server with the keys in
// req.TrustDir, initializing the repository (new root key, server-managed
// snapshot and timestamp) when the GUN is new. Nothing is taken from the
// upstream trust data but the target itself.
func Resign(ctx context.Context, req ResignRequest, opts ...Option) (*ResignResult, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if req.Server == "" || req.GUN == "" || req.TrustDir == "" || req.Target == nil {
		return nil, errors.New("notary re-sign: server, GUN, trust directory and a verified target are required")
	}
	if len(req.Target.hashes) == 0 {
		return nil, errors.New("notary re-sign: the target has no hashes (verify it first)")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pass := req.Passphrase
	if pass == nil {
		pass = EnvPassphrase
	}
	var passErr error
	retriever := func(keyName, alias string, createNew bool, attempts int) (string, bool, error) {
		if attempts > 0 {
			return "", true, fmt.Errorf("wrong passphrase for the %s key", alias)
		}
		p, err := pass(alias)
		if err != nil {
			passErr = err
			return "", true, err
		}
		return p, false, nil
	}
	if err := os.MkdirAll(req.TrustDir, 0o700); err != nil {
		return nil, err
	}
	fail := func(step string, err error) error {
		if passErr != nil {
			err = passErr
		}
		return fmt.Errorf("notary re-sign of %s at %s: %s: %w", req.GUN, req.Server, step, err)
	}
	repo, err := client.NewFileCachedRepository(req.TrustDir, data.GUN(req.GUN), strings.TrimSuffix(req.Server, "/"), o.notaryRoundTripper(req.Server, req.GUN, true), retriever, trustpinning.TrustPinConfig{})
	if err != nil {
		return nil, fail("open", err)
	}
	res := &ResignResult{Server: req.Server, GUN: req.GUN, Target: req.Target.Target}
	if _, err := repo.ListTargets(); err != nil {
		var ne client.ErrRepositoryNotExist
		if !errors.As(err, &ne) {
			return nil, fail("read", err)
		}
		cs := repo.GetCryptoService()
		ids := cs.ListKeys(data.CanonicalRootRole)
		if len(ids) == 0 {
			k, err := cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
			if err != nil {
				return nil, fail("create root key", err)
			}
			ids = []string{k.ID()}
		}
		if err := repo.Initialize(ids[:1], data.CanonicalSnapshotRole); err != nil {
			return nil, fail("initialize", err)
		}
		res.Initialized = true
	}
	var custom *canonicaljson.RawMessage
	if len(req.Target.custom) > 0 {
		c := canonicaljson.RawMessage(req.Target.custom)
		custom = &c
	}
	t := &client.Target{Name: req.Target.Target, Hashes: req.Target.hashes, Length: req.Target.Length, Custom: custom}
	if err := repo.AddTarget(t, data.CanonicalTargetsRole); err != nil {
		return nil, fail("add target", err)
	}
	if err := repo.Publish(); err != nil {
		return nil, fail("publish", err)
	}
	root, err := os.ReadFile(filepath.Join(req.TrustDir, "tuf", filepath.FromSlash(req.GUN), "metadata", "root.json"))
	if err != nil {
		return nil, fail("read published root", err)
	}
	if res.RootKeyIDs, _, err = rootKeys(root); err != nil {
		return nil, fail("read published root", err)
	}
	return res, nil
}
