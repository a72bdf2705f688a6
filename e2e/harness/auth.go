package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// writeHtpasswd writes an htpasswd file accepting user/pass. bcrypt's
// minimum cost keeps the per-request password check cheap.
func writeHtpasswd(dir, user, pass string) (string, error) {
	if strings.ContainsAny(user, ":\n") {
		return "", fmt.Errorf("harness: invalid htpasswd user name %q", user)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("harness: hashing password: %w", err)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("harness: writing htpasswd: %w", err)
	}
	return path, nil
}

// tokenTTL is the lifetime of issued tokens.
const tokenTTL = 5 * time.Minute

// tokenPath is where the token endpoint is served, on the registry's own
// host:port. go-containerregistry refuses token realms on other loopback or
// private addresses (SSRF protection) unless they match the registry's
// host:port, so a token server on its own port would not be usable.
const tokenPath = "/auth/token"

// tokenServer implements the Docker registry token protocol (GET with basic
// auth, and the OAuth2 password grant over POST) for one user, issuing
// ES256-signed JWTs that distribution's token access controller accepts.
type tokenServer struct {
	realm, service, issuer string
	jwksFile               string

	user, pass string
	key        *ecdsa.PrivateKey
	keyID      string
	counter    *counter
}

func newTokenServer(dir, baseURL, user, pass string, c *counter) (*tokenServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("harness: generating token signing key: %w", err)
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := pub.Bytes() // 0x04 || X || Y
	if len(raw) != 65 {
		return nil, errors.New("harness: unexpected P-256 public key encoding")
	}
	thumb := sha256.Sum256(raw)
	ts := &tokenServer{
		service: "cnab-airgap-harness-registry",
		issuer:  "cnab-airgap-harness-token-issuer",
		user:    user,
		pass:    pass,
		key:     key,
		keyID:   base64.RawURLEncoding.EncodeToString(thumb[:12]),
		counter: c,
	}

	jwks := map[string]any{"keys": []map[string]string{{
		"kty": "EC",
		"crv": "P-256",
		"alg": "ES256",
		"use": "sig",
		"kid": ts.keyID,
		"x":   base64.RawURLEncoding.EncodeToString(raw[1:33]),
		"y":   base64.RawURLEncoding.EncodeToString(raw[33:65]),
	}}}
	jb, err := json.Marshal(jwks)
	if err != nil {
		return nil, err
	}
	ts.jwksFile = filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(ts.jwksFile, jb, 0o644); err != nil {
		return nil, fmt.Errorf("harness: writing JWKS: %w", err)
	}

	ts.realm = baseURL + tokenPath
	return ts, nil
}

// ServeHTTP serves token requests.
func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		user, pass string
		ok         bool
		scopes     []string
		service    string
		oauth      bool
	)
	switch r.Method {
	case http.MethodGet:
		user, pass, ok = r.BasicAuth()
		q := r.URL.Query()
		service = q.Get("service")
		for _, s := range q["scope"] {
			scopes = append(scopes, strings.Fields(s)...)
		}
	case http.MethodPost:
		oauth = true
		if err := r.ParseForm(); err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only the password grant is supported")
			return
		}
		user, pass = r.PostForm.Get("username"), r.PostForm.Get("password")
		ok = user != ""
		service = r.PostForm.Get("service")
		scopes = strings.Fields(r.PostForm.Get("scope"))
	default:
		w.Header().Set("Allow", "GET, POST")
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	if !ok || !ts.credentialsMatch(user, pass) {
		w.Header().Set("WWW-Authenticate", `Basic realm="cnab-airgap-harness-token"`)
		tokenError(w, http.StatusUnauthorized, "invalid_grant", "invalid credentials")
		return
	}
	if service != "" && service != ts.service {
		tokenError(w, http.StatusBadRequest, "invalid_request", "unknown service "+service)
		return
	}

	now := time.Now()
	claims := tokenClaims{
		Issuer:     ts.issuer,
		Subject:    user,
		Audience:   ts.service,
		Expiration: now.Add(tokenTTL).Unix(),
		NotBefore:  now.Add(-time.Second).Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      randomHex(12),
		Access:     parseScopes(scopes),
	}
	token, err := ts.sign(claims)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	ts.counter.tokensIssued.Add(1)

	resp := map[string]any{
		"access_token": token,
		"expires_in":   int(tokenTTL / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339),
	}
	if !oauth {
		resp["token"] = token
	} else {
		resp["scope"] = strings.Join(scopes, " ")
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (ts *tokenServer) credentialsMatch(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(ts.user))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(ts.pass))
	return u&p == 1
}

// tokenClaims is the claim set distribution's token access controller
// verifies (see registry/auth/token.ClaimSet).
type tokenClaims struct {
	Issuer     string            `json:"iss"`
	Subject    string            `json:"sub"`
	Audience   string            `json:"aud"`
	Expiration int64             `json:"exp"`
	NotBefore  int64             `json:"nbf"`
	IssuedAt   int64             `json:"iat"`
	JWTID      string            `json:"jti"`
	Access     []resourceActions `json:"access"`
}

type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// parseScopes turns scope strings such as "repository:library/web:pull,push"
// or "registry:catalog:*" into granted access entries: the harness token
// server grants an authenticated user everything it asks for.
func parseScopes(scopes []string) []resourceActions {
	access := []resourceActions{}
	for _, s := range scopes {
		i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
		if i <= 0 || j <= i+1 {
			continue
		}
		ra := resourceActions{Type: s[:i], Name: s[i+1 : j]}
		for _, a := range strings.Split(s[j+1:], ",") {
			if a != "" {
				ra.Actions = append(ra.Actions, a)
			}
		}
		access = append(access, ra)
	}
	return access
}

// sign returns the compact serialization of an ES256 JWT holding claims.
func (ts *tokenServer) sign(claims tokenClaims) (string, error) {
	header, err := json.Marshal(map[string]string{"typ": "JWT", "alg": "ES256", "kid": ts.keyID})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signingInput := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signingInput))
	der, err := ecdsa.SignASN1(rand.Reader, ts.key, digest[:])
	if err != nil {
		return "", fmt.Errorf("harness: signing token: %w", err)
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return "", fmt.Errorf("harness: decoding signature: %w", err)
	}
	// JWS ES256 signatures are R || S, each left-padded to 32 bytes.
	raw := make([]byte, 64)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(raw), nil
}

func tokenError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg})
}
