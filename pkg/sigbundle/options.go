package sigbundle

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// Option configures Collect, CollectNotary, Verify and Resign. Each
// function reads the options that concern it and ignores the others.
type Option func(*options) error

type cosignKey struct {
	name string
	key  crypto.PublicKey
}

type options struct {
	jobs             int
	maxMetadata      int64
	log              *slog.Logger
	now              func() time.Time
	referrers        bool
	cosignTags       bool
	transport        http.RoundTripper
	notaryCreds      CredentialFunc // notaryauth.go
	inTotoDir        string
	pins             map[string][]string
	cas              map[string]string
	tofu             bool
	allowExpired     bool
	runInspections   bool
	cosignKeys       []cosignKey
	notationRoots    []notationRoot               // notation.go
	trustedRoot      *root.TrustedRoot            // sigstore.go
	identities       []verify.CertificateIdentity // sigstore.go
	identityNames    []string
	sigstoreTUFRoot  []byte    // sigstoretrust.go
	policies         []*Policy // policy.go
	policyKeys       []cosignKey
	policyIdentities []verify.CertificateIdentity
	require          bool
	allowRename      bool        // names.go
	trustState       *TrustState // truststate.go
	partOfArchive    bool        // WithArchiveOfSeveral (verify.go)
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{jobs: 4, maxMetadata: 8 << 20, log: slog.New(slog.DiscardHandler), now: time.Now,
		referrers: true, cosignTags: true, pins: map[string][]string{}, cas: map[string]string{}}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.transport == nil {
		o.transport = http.DefaultTransport
	}
	return o, nil
}

// WithJobs bounds concurrent registry requests while collecting. The
// default is 4.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return errors.New("sigbundle: jobs must be at least 1")
		}
		o.jobs = n
		return nil
	}
}

// WithMaxMetadata caps every manifest, role file, payload and envelope read
// into memory. The default is 8 MiB.
func WithMaxMetadata(n int64) Option {
	return func(o *options) error {
		if n < 1024 {
			return errors.New("sigbundle: metadata limit must be at least 1 KiB")
		}
		o.maxMetadata = n
		return nil
	}
}

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l != nil {
			o.log = l
		}
		return nil
	}
}

// WithClock sets the clock expiry is judged against. The default is
// time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("sigbundle: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithReferrers turns collection of OCI 1.1 referrers on or off. The
// default is on.
func WithReferrers(b bool) Option { return func(o *options) error { o.referrers = b; return nil } }

// WithCosignTags turns collection of cosign's sha256-<hex>.sig/.att/.sbom
// tags on or off. The default is on.
func WithCosignTags(b bool) Option { return func(o *options) error { o.cosignTags = b; return nil } }

// WithNotaryTransport sets the HTTP transport to the Notary server (TLS
// roots, credentials). The default is http.DefaultTransport.
func WithNotaryTransport(rt http.RoundTripper) Option {
	return func(o *options) error { o.transport = rt; return nil }
}

// WithNotaryPin pins the root of gun to certificate key IDs (the IDs in
// root.json's root role; export prints them). A pin is the strongest trust
// anchor: the operator confirmed the ID out of band. There is no default.
func WithNotaryPin(gun string, keyIDs ...string) Option {
	return func(o *options) error {
		if gun == "" || len(keyIDs) == 0 {
			return errors.New("sigbundle: a Notary pin needs a GUN and a root key ID")
		}
		for _, id := range keyIDs {
			if !isHex(id) || len(id) != 64 {
				return fmt.Errorf("sigbundle: Notary pin for %s: %q is not a 64-hex-digit key ID", gun, id)
			}
		}
		o.pins[gun] = append(o.pins[gun], keyIDs...)
		return nil
	}
}

// ParsePin splits GUN=ROOT_KEY_ID as given on a command line.
func ParsePin(s string) (gun, keyID string, err error) {
	i := strings.LastIndex(s, "=")
	if i <= 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("notary pin %q: want GUN=ROOT_KEY_ID", s)
	}
	return s[:i], s[i+1:], nil
}

// WithNotaryCA accepts roots of GUNs starting with gunPrefix whose root
// certificate chains to a CA in the PEM file caFile. There is no default.
func WithNotaryCA(gunPrefix, caFile string) Option {
	return func(o *options) error {
		if gunPrefix == "" || caFile == "" {
			return errors.New("sigbundle: a Notary CA needs a GUN prefix and a file")
		}
		if _, err := os.Stat(caFile); err != nil {
			return fmt.Errorf("sigbundle: Notary CA: %w", err)
		}
		o.cas[gunPrefix] = caFile
		return nil
	}
}

// WithNotaryTOFU trusts whatever root the archive carries (trust on first
// use). It proves only that the trust data is consistent and that the
// bundle is the one its own root's keys signed, not who holds those keys.
// The default is off.
func WithNotaryTOFU(b bool) Option { return func(o *options) error { o.tofu = b; return nil } }

// WithInTotoDir names a directory holding the in-toto root layout, its
// public keys and the links that a bundle target references in the CNAB
// 301 form (separate TUF targets whose bytes are not in the trust data).
// CollectNotary finds each by the sha256 the trust data signs, checks it
// against every signed hash and its length, verifies the in-toto chain and
// carries the files beside the role files. The default is none: 301-form
// references are then reported and not carried.
func WithInTotoDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("sigbundle: empty in-toto directory")
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("sigbundle: in-toto directory: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("sigbundle: in-toto directory %s is not a directory", dir)
		}
		o.inTotoDir = dir
		return nil
	}
}

// WithAllowExpired accepts expired root, targets and delegation roles (the
// report says which). The default refuses them. Timestamp and snapshot
// freshness is never required offline.
func WithAllowExpired(b bool) Option {
	return func(o *options) error { o.allowExpired = b; return nil }
}

// WithInTotoInspections allows in-toto layouts with inspections; they run
// the commands the layout names, as this process, in a private temporary
// directory. The default refuses such layouts.
func WithInTotoInspections(b bool) Option {
	return func(o *options) error { o.runInspections = b; return nil }
}

// WithCosignKey verifies cosign signatures and attestations with key
// (ECDSA, Ed25519 or RSA). With at least one key, every subject that has
// cosign signatures (or attestations) needs one that verifies. name
// appears in reports. There is no default: without keys only the bindings
// are checked.
func WithCosignKey(name string, key crypto.PublicKey) Option {
	return func(o *options) error {
		if _, err := keyVerifiers(key); err != nil {
			return fmt.Errorf("sigbundle: cosign key %s: %w", name, err)
		}
		o.cosignKeys = append(o.cosignKeys, cosignKey{name, key})
		return nil
	}
}

// WithTrustedRoot verifies keyless cosign signatures and attestations
// (and the log entries of keyed ones) against a Sigstore trusted root
// (trusted_root.json: Fulcio CAs, Rekor and CT log keys, timestamping
// authorities). Without one, keyless signatures are reported, not verified.
func WithTrustedRoot(raw []byte) Option {
	return func(o *options) error {
		tr, err := ParseTrustedRoot(raw)
		if err != nil {
			return err
		}
		o.trustedRoot = tr
		return nil
	}
}

// WithSigstoreTUFRoot pins the TUF root (root.json) that carried Sigstore
// trust material must chain to (offline, by the TUF client workflow). The
// default pins sigstore-go's embedded root for Sigstore's public-good
// repository and trusts no other repository.
func WithSigstoreTUFRoot(raw []byte) Option {
	return func(o *options) error {
		if err := CheckTUFRoot(raw); err != nil {
			return fmt.Errorf("%w: sigbundle: pinned Sigstore TUF root: %w", errdefs.ErrUsage, err)
		}
		o.sigstoreTUFRoot = raw
		return nil
	}
}

// CheckTUFRoot checks that raw is a TUF root.json (its signatures are
// checked when it is used).
func CheckTUFRoot(raw []byte) error {
	var probe struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if probe.Signed.Type != "root" {
		return fmt.Errorf("not a TUF root.json (signed._type is %q)", probe.Signed.Type)
	}
	return nil
}

// WithIdentity accepts keyless signatures whose certificate names id (the
// signer and its OIDC issuer); several calls accept any of them. With at
// least one identity, every subject that has cosign signatures (or
// attestations) needs one that verifies, as with WithCosignKey. Without
// identities a keyless signature that verifies does not count: anyone can
// obtain a certificate.
func WithIdentity(id Identity) Option {
	return func(o *options) error {
		ci, err := id.compile()
		if err != nil {
			return fmt.Errorf("%w: sigbundle: identity %s: %w", errdefs.ErrUsage, id, err)
		}
		o.identities = append(o.identities, ci)
		o.identityNames = append(o.identityNames, id.String())
		return nil
	}
}

// WithRequireSignatures makes a bundle without verified evidence an error
// (ErrUnsigned). Verified evidence is Notary trust data that verified
// against an anchor, or a signature of the bundle index that verified: a
// cosign signature with a WithCosignKey key, or a notation signature
// against the WithNotationCert trust store. The default accepts unsigned bundles.
func WithRequireSignatures(b bool) Option {
	return func(o *options) error { o.require = b; return nil }
}

// WithAllowRename accepts signatures whose claimed name (a cosign
// docker-reference) contradicts the name the bundle is published under, as
// the operator's deliberate rename: they count for WithRequireSignatures,
// and the report marks them NameRenamed. Notary trust data is never
// accepted for another GUN or target. The default refuses to call such a
// bundle signed.
func WithAllowRename(b bool) Option {
	return func(o *options) error { o.allowRename = b; return nil }
}

// WithTrustState refuses Notary trust data older than what s remembers
// (ErrRollback): see TrustState. The default remembers nothing.
func WithTrustState(s *TrustState) Option {
	return func(o *options) error { o.trustState = s; return nil }
}

// LoadPublicKey reads a PEM public key (PKIX "PUBLIC KEY", as cosign
// writes cosign.pub) or a certificate.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(raw)
}

// ParsePublicKey parses a PEM public key or certificate.
func ParsePublicKey(raw []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(raw)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(blk.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(blk.Bytes)
	}
	return nil, fmt.Errorf("PEM block %q is not a public key", blk.Type)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}
