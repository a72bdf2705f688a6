package sigfixtures

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// TokenIssuer is a token service for notary-server's "token" auth (the
// docker/distribution token specification): HTTPS on 127.0.0.1, HTTP Basic
// authentication of one user, and ES256 JWTs whose x5c header carries the
// signing certificate, which RootCertBundle holds for the server.
type TokenIssuer struct {
	// URL is the issuer's base URL; Realm is its token endpoint.
	URL, Realm string
	// Service and Issuer are the aud and iss of every token.
	Service, Issuer string
	// RootCertBundle is the PEM file of the token signing certificate,
	// for the Notary server's configuration.
	RootCertBundle string
	// CAFile and Transport: the CA of the issuer's TLS certificate, and a
	// transport trusting it.
	CAFile    string
	Transport http.RoundTripper

	user, password string
	key            *ecdsa.PrivateKey
	cert           []byte
	srv            *http.Server
	requests       atomic.Int64
	refusals       atomic.Int64
}

// StartTokenIssuer generates a TLS certificate and a token signing
// certificate in dir and serves tokens to user with password on a free
// loopback port.
func StartTokenIssuer(dir, user, password string) (*TokenIssuer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	rt, err := writeTLS(dir)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "cnab-airgap e2e token signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	bundle := filepath.Join(dir, "token-signer.crt")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ti := &TokenIssuer{URL: "https://" + l.Addr().String(), Service: "notary-server", Issuer: "cnab-airgap-e2e-issuer",
		RootCertBundle: bundle, CAFile: filepath.Join(dir, "ca.crt"), Transport: rt,
		user: user, password: password, key: key, cert: der}
	ti.Realm = ti.URL + "/token"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", ti.serveToken)
	ti.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
	go ti.srv.ServeTLS(l, "", "")
	return ti, nil
}

// Close stops the issuer.
func (ti *TokenIssuer) Close() {
	if ti != nil && ti.srv != nil {
		ti.srv.Close()
	}
}

// Requests counts token requests; Refusals those refused for bad or
// missing credentials.
func (ti *TokenIssuer) Requests() int64 { return ti.requests.Load() }

// Refusals counts token requests refused for bad or missing credentials.
func (ti *TokenIssuer) Refusals() int64 { return ti.refusals.Load() }

// ServerAuth is the "auth" section of a notary-server configuration that
// trusts this issuer.
func (ti *TokenIssuer) ServerAuth() map[string]any {
	return map[string]any{"type": "token", "options": map[string]any{
		"realm": ti.Realm, "service": ti.Service, "issuer": ti.Issuer, "rootcertbundle": ti.RootCertBundle}}
}

type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ti *TokenIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	ti.requests.Add(1)
	u, p, ok := r.BasicAuth()
	if !ok || u != ti.user || p != ti.password {
		ti.refusals.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="cnab-airgap e2e tokens"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	if svc := r.URL.Query().Get("service"); svc != ti.Service {
		http.Error(w, fmt.Sprintf("unknown service %q", svc), http.StatusBadRequest)
		return
	}
	var access []accessEntry
	for _, s := range r.URL.Query()["scope"] {
		// repository:<name>:<actions>; the name may hold a port's colon.
		typ, rest, ok1 := strings.Cut(s, ":")
		i := strings.LastIndex(rest, ":")
		if !ok1 || i <= 0 {
			http.Error(w, fmt.Sprintf("malformed scope %q", s), http.StatusBadRequest)
			return
		}
		access = append(access, accessEntry{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
	}
	tok, err := ti.issue(u, access)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300, "issued_at": time.Now().UTC().Format(time.RFC3339)})
}

// IssueFor returns a token for subject with the given actions on the
// repository gun, as the token endpoint would.
func (ti *TokenIssuer) IssueFor(subject, gun string, actions ...string) (string, error) {
	return ti.issue(subject, []accessEntry{{Type: "repository", Name: gun, Actions: actions}})
}

// issue signs a token for subject granting access.
func (ti *TokenIssuer) issue(subject string, access []accessEntry) (string, error) {
	if access == nil {
		access = []accessEntry{}
	}
	header, err := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ti.cert)}})
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := time.Now()
	claims, err := json.Marshal(map[string]any{"iss": ti.Issuer, "sub": subject, "aud": ti.Service,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": hex.EncodeToString(jti), "access": access})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, ti.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64) // JWS ES256: R and S, 32 bytes each
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig), nil
}

// ServerOption edits a notary-server configuration (StartNotaryServer).
type ServerOption func(cfg map[string]any)

// WithTokenAuth makes the Notary server require tokens from ti.
func WithTokenAuth(ti *TokenIssuer) ServerOption {
	return func(cfg map[string]any) { cfg["auth"] = ti.ServerAuth() }
}
