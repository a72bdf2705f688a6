package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// AccessError is a registry that could not be reached or refused the
// client as a whole (TLS, plain HTTP, credentials), as found by Check.
type AccessError struct {
	// Registry is the registry host as it was named.
	Registry string
	Err      error
}

func (e *AccessError) Error() string { return fmt.Sprintf("registry %s: %v", e.Registry, e.Err) }

func (e *AccessError) Unwrap() error { return e.Err }

// Check talks to a registry once, before an operation sends it many
// requests: it pings it (TLS, plain-HTTP rules), resolves the credentials
// for it, exchanges them for a token if the registry asks for one, and
// makes one authenticated request (GET /v2/). A failure is returned once,
// as an *AccessError, instead of once per blob; Hint explains it.
func (c *Client) Check(ctx context.Context, registry string) error {
	reg, err := name.NewRegistry(registry, c.nameOptions(registry)...)
	if err != nil {
		return fmt.Errorf("registry %q: %w", registry, err)
	}
	fail := func(err error) error { return &AccessError{Registry: reg.RegistryStr(), Err: err} }
	auth, err := authn.Resolve(ctx, c.keychain, reg)
	if err != nil {
		return fail(fmt.Errorf("credentials: %w", err))
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, c.base, nil)
	if err != nil {
		return fail(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return fail(err)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return fail(err)
	}
	return nil
}

// Hint says what an operator can do about a registry failure: the flag
// that names a CA, a plain-HTTP host or credentials. It returns "" when it
// has nothing to suggest.
func Hint(err error) string {
	if err == nil {
		return ""
	}
	host := "HOST"
	var ae *AccessError
	var pe *PlainHTTPError
	var ue *url.Error
	switch {
	case errors.As(err, &ae):
		host = ae.Registry
	case errors.As(err, &pe):
		host = pe.Host
	case errors.As(err, &ue):
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			host = u.Host
		}
	}
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var te *transport.Error
	switch {
	case errors.Is(err, ErrInsecureRealm):
		return "a registry's token service must be reached over HTTPS, or over plain HTTP on the registry's own host:port"
	case errors.As(err, &hostname):
		return fmt.Sprintf("the certificate of %s does not name that host; connect by a name it holds, or skip verification for that host only with --insecure %s", host, host)
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &verify):
		// Before plain HTTP: go-containerregistry's refused fallback to
		// plain HTTP comes with the TLS failure it followed.
		return fmt.Sprintf("the certificate of %s is not signed by a CA this machine trusts: give the CA with --ca-file FILE (or skip verification for that host only with --insecure %s)", host, host)
	case errors.Is(err, ErrPlainHTTP), errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &record):
		return fmt.Sprintf("if %s speaks plain HTTP (no TLS), name it with --plain-http %s", host, host)
	case errors.As(err, &te) && isAuthFailure(te):
		return fmt.Sprintf("%s refused the credentials: give them with --username %s=USER --password-stdin, or store them with docker login %s", host, host, host)
	}
	return ""
}

func isAuthFailure(te *transport.Error) bool {
	if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.UnauthorizedErrorCode || d.Code == transport.DeniedErrorCode {
			return true
		}
	}
	return false
}
