package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// login is the --username/--password-stdin pair, read once per run. host
// is the HOST of --username HOST=USER ("" when not given: the command's
// own registry, see client).
type login struct{ host, user, password string }

// keychain resolves credentials when no --username is given: the docker
// config and its credential helpers. Registries and Notary servers share
// it.
func keychain() authn.Keychain { return authn.DefaultKeychain }

// registryLogin returns the --username/--password-stdin credentials, or nil
// when none are given. Standard input is read once per run (the first
// caller reads it, later callers get the same pair); the password is
// registered for redaction.
func registryLogin(c *cli.Context, e *env) (*login, error) {
	if e.login != nil {
		return e.login, nil
	}
	if !c.Bool("password-stdin") {
		if c.String("username") != "" {
			return nil, usagef("--username needs --password-stdin (passwords are never taken as flags)")
		}
		return nil, nil
	}
	if c.String("username") == "" {
		return nil, usagef("--password-stdin needs --username")
	}
	host, user, err := splitLogin(c.String("username")) // args.go
	if err != nil {
		return nil, err
	}
	pw, err := io.ReadAll(io.LimitReader(e.stdin, 1<<16))
	if err != nil {
		return nil, err
	}
	e.login = &login{host: host, user: user, password: strings.TrimRight(string(pw), "\r\n")}
	addSecret(e.login.user, e.login.password) // never printed (redact)
	return e.login, nil
}

// notaryCredentials gives the Notary server credentials: the login of
// --username with --password-stdin (the Notary server is named by
// --notary-server, so the login goes to it and its token service), else
// the docker config and credential helpers (for the Notary server's host,
// then for the registry of the GUN, as Docker's trust client does).
func notaryCredentials(c *cli.Context, e *env) (sigbundle.Option, error) {
	f, err := notaryCredentialFunc(c, e)
	if err != nil {
		return nil, err
	}
	return sigbundle.WithNotaryCredentials(f), nil
}

func notaryCredentialFunc(c *cli.Context, e *env) (sigbundle.CredentialFunc, error) {
	l, err := registryLogin(c, e)
	if err != nil {
		return nil, err
	}
	if l != nil {
		return func(context.Context, string) (string, string, error) { return l.user, l.password, nil }, nil
	}
	kc := keychain()
	return func(ctx context.Context, host string) (string, string, error) {
		reg, err := name.NewRegistry(host)
		if err != nil {
			return "", "", fmt.Errorf("host %q: %w", host, err)
		}
		a, err := authn.Resolve(ctx, kc, reg)
		if err != nil {
			return "", "", err
		}
		cfg, err := authn.Authorization(ctx, a)
		if err != nil {
			return "", "", err
		}
		return cfg.Username, cfg.Password, nil
	}, nil
}
