package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// Signing flags. Keys and passphrases never come from flags: --cosign-key
// names a public key file, --notary-trust-dir a directory of key files,
// and passphrases come from NOTARY_*_PASSPHRASE variables.

func exportSigningFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.BoolFlag{Name: "no-signatures", Usage: "do not collect OCI referrers and cosign tags (signatures, attestations, SBOMs)"},
		&cli.StringFlag{Name: "notary-server", Usage: "collect the bundle tag's Notary v1 (CNAB-Security) trust data from this `URL` (TLS and credentials as for registries: --ca-file, --insecure, --username/--password-stdin or the docker config)"},
		&cli.BoolFlag{Name: "notary-images", Usage: "with --notary-server, also collect the trust data of every tagged image (fails naming each image without it)"},
		&cli.StringFlag{Name: "in-toto-dir", Usage: "`DIR` holding the in-toto layout, keys and links a CNAB 301 bundle target references (found by their signed sha256; carried)"},
		&cli.StringSliceFlag{Name: "notary-pin", Usage: "check the online root against `GUN=ROOT_KEY_ID` too (default at export: trust on first use)"},
		&cli.BoolFlag{Name: "sigstore-trust", Usage: "carry the Sigstore trusted root with the TUF metadata that proves it, fetched from --sigstore-tuf-url, so keyless signatures verify offline on the other side"},
		&cli.StringFlag{Name: "sigstore-tuf-url", Usage: "the Sigstore TUF repository `URL` for --sigstore-trust (default: public-good, " + sigbundle.DefaultSigstoreTUFURL + ", pinned by the root sigstore-go embeds)"},
		&cli.StringFlag{Name: "sigstore-tuf-root", Usage: "the pinned TUF root.json `FILE` of --sigstore-tuf-url (needed for any repository but public-good)"},
		&cli.StringFlag{Name: "trusted-root", Usage: "carry this Sigstore trusted root `FILE` as it is, instead of fetching one (the other side must be given the same file)"},
		&cli.BoolFlag{Name: "verify", Usage: "verify the written archive's signatures as import will (with --cosign-key, --certificate-identity, --policy, the Sigstore trust material carried); an archive that fails is removed and the export exits 3"},
	}, exportVerifyFlags()...)
}

// cosignKeyUsage is the help of --cosign-key at verify and import; at
// export it applies with --verify, and says so first (exportVerifyFlags).
const cosignKeyUsage = "verify cosign signatures and attestations with this public key `FILE` (repeatable)"

// signerFlags are the flags sigstoreOptions reads that say whom a keyless
// signature must name and what an image policy requires. Verify and import
// check against them, export only with --verify: each has a help for
// verify and import and a shorter one for export.
var signerFlags = []struct{ name, usage, exportUsage string }{
	{"certificate-identity", "accept keyless signatures whose certificate names this `SIGNER` (as cosign's flag; needs an issuer)", "accept keyless signatures whose certificate names this `SIGNER`"},
	{"certificate-identity-regexp", "accept keyless signatures whose certificate signer matches this `REGEXP`", "the keyless signer as a `REGEXP`"},
	{"certificate-oidc-issuer", "the OIDC `ISSUER` the keyless signer logged in with (as cosign's flag)", "the OIDC `ISSUER` of the keyless signer"},
	{"certificate-oidc-issuer-regexp", "the OIDC issuer, as a `REGEXP`", "the OIDC issuer as a `REGEXP`"},
	{"policy", "require what this image policy `FILE` says (YAML or JSON, sigstore policy-controller's ClusterImagePolicy: image globs, the keys or keyless identities that must have signed them, the attestations they must have)", "require what this image policy `FILE` says (as for import)"},
}

// exportVerifyFlags are the flags that say what export --verify checks the
// written archive against (cosignAnchors); each needs --verify.
func exportVerifyFlags() []cli.Flag {
	out := []cli.Flag{&cli.StringSliceFlag{Name: "cosign-key", Usage: "with --verify: " + cosignKeyUsage}}
	for _, f := range signerFlags {
		out = append(out, &cli.StringFlag{Name: f.name, Usage: "with --verify: " + f.exportUsage})
	}
	return out
}

func verifySigningFlags() []cli.Flag {
	out := []cli.Flag{
		&cli.BoolFlag{Name: "no-signatures", Usage: "skip signing evidence entirely (nothing is verified or re-published)"},
		&cli.StringSliceFlag{Name: "notary-pin", Usage: "trust the Notary root of GUN only if its key ID is ROOT_KEY_ID: `GUN=ROOT_KEY_ID` (repeatable; get the ID from the publisher out of band)"},
		&cli.StringSliceFlag{Name: "notary-ca", Usage: "trust Notary roots of GUNs starting with PREFIX whose certificate chains to a CA in FILE: `PREFIX=FILE` (repeatable)"},
		&cli.BoolFlag{Name: "notary-tofu", Usage: "trust whatever Notary root the archive carries: proves consistency, not who signed"},
		&cli.BoolFlag{Name: "allow-expired", Usage: "accept expired Notary root, targets and delegation roles (reported)"},
		&cli.BoolFlag{Name: "in-toto-run-inspections", Usage: "allow in-toto layouts with inspections: they run the commands the layout names"},
		&cli.StringSliceFlag{Name: "cosign-key", Usage: cosignKeyUsage},
		&cli.StringFlag{Name: "trusted-root", Usage: "verify keyless cosign signatures against this Sigstore trusted root `FILE` (trusted_root.json: Fulcio CAs, Rekor and CT log keys, timestamp authorities), offline; default: the trusted root the archive carries, if its TUF chain holds"},
		&cli.StringFlag{Name: "sigstore-tuf-root", Usage: "check the Sigstore trust material the archive carries against this pinned TUF root.json `FILE` (default: the public-good root sigstore-go embeds, for public-good material only)"},
	}
	for _, f := range signerFlags {
		out = append(out, &cli.StringFlag{Name: f.name, Usage: f.usage})
	}
	return append(out,
		&cli.StringSliceFlag{Name: "notation-cert", Usage: "verify notation signatures against the CA or signing certificates in this PEM `FILE` (the notation trust store; repeatable)"},
		&cli.BoolFlag{Name: "require-signatures", Usage: "fail unless the bundle has Notary trust data or a signature of its index (cosign or notation) that verified for the name it is published under"},
		&cli.BoolFlag{Name: "allow-rename", Usage: "count signatures whose claimed name (cosign docker-reference) contradicts the bundle's repository path or tag (reported); Notary trust data is never accepted for another name"},
		&cli.StringFlag{Name: "trust-state", Usage: "refuse Notary trust data older than the versions remembered in this `FILE` (import also records the versions it accepts there)"},
	)
}

func importSigningFlags() []cli.Flag {
	return append(verifySigningFlags(),
		&cli.BoolFlag{Name: "notary-resign", Usage: "after the push, publish the verified Notary target under the relocated name at --notary-server with the keys in --notary-trust-dir (passphrases from NOTARY_ROOT_PASSPHRASE, NOTARY_TARGETS_PASSPHRASE, NOTARY_SNAPSHOT_PASSPHRASE)"},
		&cli.StringFlag{Name: "notary-server", Usage: "destination Notary server `URL` for --notary-resign"},
		&cli.StringFlag{Name: "notary-trust-dir", EnvVars: []string{"NOTARY_TRUST_DIR"}, Usage: "`DIR` holding the destination's Notary keys (created for a new repository)"},
	)
}

// serverTransport builds the HTTP transport to the server at URL server
// (a Notary server, a Sigstore TUF repository; flag names it in errors)
// with the global TLS settings (--ca-file, --insecure).
func serverTransport(c *cli.Context, flag, server string) (http.RoundTripper, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range c.StringSlice("ca-file") {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates found", f)
		}
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, usagef("--%s %q: want an http or https URL", flag, server)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	skip := slices.Contains(c.StringSlice("insecure"), u.Host) || slices.Contains(c.StringSlice("insecure"), u.Hostname())
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, InsecureSkipVerify: skip} //nolint:gosec // only for hosts named with --insecure
	return t, nil
}

// notaryServerOptions reach the Notary server at URL server (--notary-server
// at export, the destination of --notary-resign at import) with the TLS
// settings and credentials of registries (notaryauth.go).
func notaryServerOptions(c *cli.Context, e *env, server string) ([]sigbundle.Option, error) {
	rt, err := serverTransport(c, "notary-server", server)
	if err != nil {
		return nil, err
	}
	creds, err := notaryCredentials(c, e)
	if err != nil {
		return nil, err
	}
	return []sigbundle.Option{sigbundle.WithNotaryTransport(rt), creds}, nil
}

func pinOptions(c *cli.Context) ([]sigbundle.Option, error) {
	var out []sigbundle.Option
	for _, p := range c.StringSlice("notary-pin") {
		gun, id, err := sigbundle.ParsePin(p)
		if err != nil {
			return nil, usagef("--notary-pin: %v", err)
		}
		out = append(out, sigbundle.WithNotaryPin(gun, id))
	}
	return out, nil
}

func exportSigningOptions(c *cli.Context, e *env) ([]export.Option, error) {
	out := []export.Option{export.WithSignatures(!c.Bool("no-signatures"))}
	pins, err := pinOptions(c)
	if err != nil {
		return nil, err
	}
	so := pins
	if s := c.String("notary-server"); s != "" {
		ns, err := notaryServerOptions(c, e, s)
		if err != nil {
			return nil, err
		}
		so = append(so, ns...)
		out = append(out, export.WithNotaryServer(s), export.WithNotaryImages(c.Bool("notary-images")))
		if d := c.String("in-toto-dir"); d != "" {
			so = append(so, sigbundle.WithInTotoDir(d))
		}
	} else if c.Bool("notary-images") || c.String("in-toto-dir") != "" {
		return nil, usagef("--notary-images and --in-toto-dir need --notary-server")
	}
	sig, err := exportSigstoreOption(c)
	if err != nil {
		return nil, err
	}
	if sig != nil {
		out = append(out, sig)
	}
	vo, err := exportVerifyOptions(c)
	if err != nil {
		return nil, err
	}
	if vo != nil {
		out = append(out, export.WithVerify(vo...))
	}
	return append(out, export.WithSigningOptions(so...)), nil
}

// cosignAnchors reads what cosign signatures are verified against:
// --cosign-key, and the keyless flags and policy (sigstoreOptions).
func cosignAnchors(c *cli.Context) ([]sigbundle.Option, error) {
	out, err := sigstoreOptions(c)
	if err != nil {
		return nil, err
	}
	for _, f := range c.StringSlice("cosign-key") {
		k, err := sigbundle.LoadPublicKey(f)
		if err != nil {
			return nil, usagef("--cosign-key %s: %v", f, err)
		}
		out = append(out, sigbundle.WithCosignKey(filepath.Base(f), k))
	}
	return out, nil
}

// exportVerifyOptions reads --verify and the anchors it checks against.
func exportVerifyOptions(c *cli.Context) ([]sigbundle.Option, error) {
	if !c.Bool("verify") {
		for _, f := range exportVerifyFlags() {
			if n := f.Names()[0]; c.IsSet(n) {
				return nil, usagef("--%s at export needs --verify", n)
			}
		}
		return nil, nil
	}
	anchors, err := cosignAnchors(c)
	if err != nil {
		return nil, err
	}
	return append([]sigbundle.Option{sigbundle.WithJobs(c.Int("jobs"))}, anchors...), nil
}

// exportSigstoreOption reads --sigstore-trust and its companions.
func exportSigstoreOption(c *cli.Context) (export.Option, error) {
	url, pin, file := c.String("sigstore-tuf-url"), c.String("sigstore-tuf-root"), c.String("trusted-root")
	fetch := c.Bool("sigstore-trust") || url != ""
	switch {
	case file != "" && fetch:
		return nil, usagef("--trusted-root carries a file; --sigstore-trust and --sigstore-tuf-url fetch one through TUF: give one or the other")
	case file != "":
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, usagef("--trusted-root: %v", err)
		}
		if _, err := sigbundle.ParseTrustedRoot(raw); err != nil {
			return nil, usagef("--trusted-root %s: %v", file, err)
		}
		return export.WithSigstoreTrust(sigbundle.SigstoreRequest{TrustedRoot: raw}), nil
	case !fetch:
		if pin != "" {
			return nil, usagef("--sigstore-tuf-root needs --sigstore-trust")
		}
		return nil, nil
	}
	if url == "" {
		url = sigbundle.DefaultSigstoreTUFURL
	}
	rt, err := serverTransport(c, "sigstore-tuf-url", url)
	if err != nil {
		return nil, err
	}
	req := sigbundle.SigstoreRequest{URL: url, Transport: rt}
	if pin != "" {
		raw, err := readTUFRoot(pin)
		if err != nil {
			return nil, err
		}
		req.Root = raw
	} else if strings.TrimRight(url, "/") != sigbundle.DefaultSigstoreTUFURL {
		return nil, usagef("--sigstore-tuf-url %s needs its pinned root: --sigstore-tuf-root FILE", url)
	}
	return export.WithSigstoreTrust(req), nil
}

// readTUFRoot reads a pinned TUF root.json.
func readTUFRoot(file string) ([]byte, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--sigstore-tuf-root: %v", err)
	}
	if err := sigbundle.CheckTUFRoot(raw); err != nil {
		return nil, usagef("--sigstore-tuf-root %s: %v", file, err)
	}
	return raw, nil
}

// verifyOptions turns the verify/import flags into sigbundle options.
func verifyOptions(c *cli.Context, e *env) ([]sigbundle.Option, error) {
	out, err := pinOptions(c)
	if err != nil {
		return nil, err
	}
	for _, p := range c.StringSlice("notary-ca") {
		prefix, file, ok := strings.Cut(p, "=")
		if !ok || prefix == "" || file == "" {
			return nil, usagef("--notary-ca %q: want PREFIX=FILE", p)
		}
		out = append(out, sigbundle.WithNotaryCA(prefix, file))
	}
	for _, f := range c.StringSlice("notation-cert") {
		out = append(out, sigbundle.WithNotationCert(f))
	}
	anchors, err := cosignAnchors(c)
	if err != nil {
		return nil, err
	}
	out = append(out, anchors...)
	if p := c.String("trust-state"); p != "" {
		st, err := sigbundle.ReadTrustState(p)
		if err != nil {
			return nil, err
		}
		out = append(out, sigbundle.WithTrustState(st))
	}
	if c.Bool("notary-tofu") && !c.Bool("quiet") {
		fmt.Fprintln(e.stderr, "warning: --notary-tofu trusts the Notary root the archive carries: this proves the bundle is what that root's keys signed, not who holds them; pin the root key ID (--notary-pin) to prove the publisher")
	}
	return append(out,
		sigbundle.WithNotaryTOFU(c.Bool("notary-tofu")),
		sigbundle.WithAllowExpired(c.Bool("allow-expired")),
		sigbundle.WithInTotoInspections(c.Bool("in-toto-run-inspections")),
		sigbundle.WithRequireSignatures(c.Bool("require-signatures")),
		sigbundle.WithAllowRename(c.Bool("allow-rename")),
		sigbundle.WithJobs(c.Int("jobs")),
	), nil
}

// sigstoreOptions reads the keyless flags: the trusted root and the signer
// identity (cosign's flag names).
func sigstoreOptions(c *cli.Context) ([]sigbundle.Option, error) {
	var out []sigbundle.Option
	if f := c.String("trusted-root"); f != "" {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, usagef("--trusted-root: %v", err)
		}
		if _, err := sigbundle.ParseTrustedRoot(raw); err != nil {
			return nil, usagef("--trusted-root %s: %v", f, err)
		}
		out = append(out, sigbundle.WithTrustedRoot(raw))
	}
	if f := c.String("sigstore-tuf-root"); f != "" {
		raw, err := readTUFRoot(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sigbundle.WithSigstoreTUFRoot(raw))
	}
	if f := c.String("policy"); f != "" {
		ps, err := sigbundle.LoadPolicy(f)
		if err != nil {
			return nil, usagef("--policy %s: %v", f, err)
		}
		out = append(out, sigbundle.WithPolicy(ps...))
	}
	id := sigbundle.Identity{Subject: c.String("certificate-identity"), SubjectRegexp: c.String("certificate-identity-regexp"),
		Issuer: c.String("certificate-oidc-issuer"), IssuerRegexp: c.String("certificate-oidc-issuer-regexp")}
	if id == (sigbundle.Identity{}) {
		return out, nil
	}
	if (id.Subject == "") == (id.SubjectRegexp == "") {
		return nil, usagef("give one of --certificate-identity and --certificate-identity-regexp")
	}
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return nil, usagef("give one of --certificate-oidc-issuer and --certificate-oidc-issuer-regexp with a certificate identity")
	}
	return append(out, sigbundle.WithIdentity(id)), nil
}

func importSigningOptions(c *cli.Context, e *env) ([]importer.Option, error) {
	if c.Bool("no-signatures") {
		if err := noSignaturesConflicts(c, "notary-resign"); err != nil {
			return nil, err
		}
		return []importer.Option{importer.WithSignatures(false)}, nil
	}
	so, err := verifyOptions(c, e)
	if err != nil {
		return nil, err
	}
	out := []importer.Option{importer.WithSigningOptions(so...)}
	if p := c.String("trust-state"); p != "" {
		out = append(out, importer.WithTrustState(p))
	}
	if c.Bool("notary-resign") {
		server, dir := c.String("notary-server"), c.String("notary-trust-dir")
		if server == "" || dir == "" {
			return nil, usagef("--notary-resign needs --notary-server and --notary-trust-dir")
		}
		ns, err := notaryServerOptions(c, e, server)
		if err != nil {
			return nil, err
		}
		out = append(out, importer.WithNotaryResign(importer.NotaryResign{Server: server, TrustDir: dir, Options: ns}))
	} else if c.String("notary-server") != "" {
		return nil, usagef("--notary-server at import is the destination of --notary-resign")
	}
	return out, nil
}

// printExportSignatures prints what an export carries, and the root key ID
// to pin on the other side.
func printExportSignatures(w io.Writer, s *export.Signatures) {
	if s == nil {
		return
	}
	var parts []string
	for _, r := range sortedKeysOf(s.ByRole) {
		parts = append(parts, fmt.Sprintf("%d %s", s.ByRole[r], r))
	}
	fmt.Fprintf(w, "signing     %d artifacts (%s)\n", s.Artifacts, strings.Join(parts, ", "))
	if t := s.Sigstore; t != nil {
		if t.Source == "tuf" {
			fmt.Fprintf(w, "sigstore    trusted root sha256 %s through TUF from %s (%s), carried with its TUF metadata\n", t.TrustedRootSHA256, t.URL, roleVersions(t.Roles))
		} else {
			fmt.Fprintf(w, "sigstore    trusted root sha256 %s from a file, carried (the other side must be given the same file with --trusted-root)\n", t.TrustedRootSHA256)
		}
	}
	all := s.NotaryImages
	if s.Notary != nil {
		all = append([]*sigbundle.NotaryInfo{s.Notary}, all...)
	}
	pins := map[string]bool{}
	for _, n := range all {
		what := "bundle.json"
		if n.Object == sigbundle.TargetObjectManifest {
			what = "manifest"
		}
		fmt.Fprintf(w, "notary      GUN %s target %s in %s signs %s sha256 %s, verified online\n", n.GUN, n.Target, n.TargetRole, what, n.SHA256)
		if it := n.InToto; it != nil {
			switch {
			case it.Verified:
				fmt.Fprintf(w, "in-toto     %s form, layout key %s, %d files carried, verified\n", it.Form, it.KeyID, len(it.Files))
			case it.Form == sigbundle.InTotoForm301 && len(it.Files) == 0:
				fmt.Fprintf(w, "in-toto     %s form, %d references NOT carried (see the warning)\n", it.Form, len(it.References))
			default:
				fmt.Fprintf(w, "in-toto     %s form, layout key %s, not verified at export\n", it.Form, it.KeyID)
			}
		}
		for _, id := range n.RootKeyIDs {
			if pins[n.GUN+"="+id] {
				continue
			}
			pins[n.GUN+"="+id] = true
			fmt.Fprintf(w, "root key    %s\n", id)
			fmt.Fprintf(w, "            pin on the other side, after confirming it out of band: --notary-pin %s=%s\n", n.GUN, id)
		}
	}
}

// printSigningReport prints an offline verification.
func printSigningReport(w io.Writer, rep *sigbundle.Report) {
	if rep == nil {
		return
	}
	for _, n := range rep.Notary {
		fmt.Fprintf(w, "notary      GUN %s target %s in %s verified (root %s, anchor %s)\n", n.GUN, n.Target, n.TargetRole, strings.Join(n.RootKeyIDs, ","), n.Anchor)
		if !n.ExportedAt.IsZero() {
			state := "valid"
			if !n.ValidAtExport {
				state = "NOT valid"
			}
			fmt.Fprintf(w, "            timestamp and snapshot %s at export time %s\n", state, n.ExportedAt.Format("2006-01-02T15:04:05Z07:00"))
		}
		if it := n.InToto; it != nil {
			fmt.Fprintf(w, "in-toto     %s form: steps %s, %d carried files checked against their signed hashes, verified %v\n", it.Form, strings.Join(it.Steps, ","), len(it.Files), it.Verified)
		}
	}
	if t := rep.Sigstore; t != nil {
		switch t.Anchor {
		case "pin", "embedded":
			fmt.Fprintf(w, "sigstore    trusted root sha256 %s from %s: TUF chain verified offline against the %s root (%s), used: %v\n", t.TrustedRootSHA256, t.URL,
				map[string]string{"pin": "pinned", "embedded": "embedded public-good"}[t.Anchor], roleVersions(t.Roles), t.Used)
		default:
			fmt.Fprintf(w, "sigstore    carried trusted root sha256 %s %s\n", t.TrustedRootSHA256, t.Note)
		}
	}
	for _, p := range rep.Policy {
		state := "satisfied by " + strings.Join(p.Satisfied, ", ")
		if len(p.Violations) > 0 {
			state = "NOT satisfied: " + strings.Join(p.Violations, "; ")
		}
		fmt.Fprintf(w, "policy      %s (%s): %s %s\n", p.Reference, shortDigest(p.Digest.String()), strings.Join(p.Policies, ", "), state)
	}
	bound, verified := 0, 0
	for _, a := range rep.Artifacts {
		if a.Bound {
			bound++
		}
		if a.Verified {
			verified++
		}
	}
	fmt.Fprintf(w, "signing     %d artifacts bound to their subjects, %d verified, bundle signed: %v\n", bound, verified, rep.Signed)
	printSigners(w, rep)
	// The names signers claimed, where they claimed one (names.go).
	for _, a := range rep.Artifacts {
		if a.ClaimedName == "" || !a.Verified {
			continue
		}
		how := map[string]string{sigbundle.NameMatches: "matches", sigbundle.NameContradicts: "CONTRADICTS the published name",
			sigbundle.NameRenamed: "renamed (--allow-rename)", "": "not compared"}[a.NameMatch]
		label := a.SubjectLabel
		if label == "" {
			label = a.Subject.String()
		}
		fmt.Fprintf(w, "            %s %s of %s claims %s: %s\n", a.Format, shortDigest(a.Digest.String()), label, a.ClaimedName, how)
	}
}

// roleVersions lists TUF roles as "root v2, timestamp v7, ...".
func roleVersions(roles []sigbundle.RoleInfo) string {
	var out []string
	for _, r := range roles {
		out = append(out, fmt.Sprintf("%s v%d", r.Name, r.Version))
	}
	return strings.Join(out, ", ")
}

// printSigners prints, per cosign signature and attestation, who signed
// it and when it was logged, or why it did not verify.
func printSigners(w io.Writer, rep *sigbundle.Report) {
	for _, a := range rep.Artifacts {
		if a.Format != "cosign" && a.Format != "cosign-attestation" {
			continue
		}
		label := a.SubjectLabel
		if label == "" {
			label = a.Subject.String()
		}
		what := "signature"
		if a.Format == "cosign-attestation" {
			what = "attestation " + a.PredicateType
		}
		state := "verified"
		if !a.Verified {
			state = "NOT verified"
		}
		line := fmt.Sprintf("            %s %s of %s: %s", what, shortDigest(a.Digest.String()), label, state)
		if s := a.Signer; s != nil {
			switch {
			case s.Identity != "":
				line += fmt.Sprintf(", signer %s (issuer %s)", s.Identity, s.Issuer)
			case s.Key != "":
				line += ", key " + s.Key
			}
			if s.LogIndex != nil {
				line += fmt.Sprintf(", log index %d", *s.LogIndex)
			}
			if !s.IntegratedTime.IsZero() {
				line += ", logged " + s.IntegratedTime.Format(time.RFC3339)
			}
		}
		if a.Note != "" {
			line += ": " + a.Note
		}
		fmt.Fprintln(w, line)
	}
}

// printSigningArtifacts lists an archive's signing artifacts per subject.
func printSigningArtifacts(w io.Writer, b *archive.Bundle, claims map[digest.Digest]sigbundle.Description) {
	arts := b.SigningArtifacts()
	if len(arts) == 0 {
		return
	}
	labels := b.Labels()
	for _, a := range arts { // a referrer of a referrer: name it by its subject's role
		if _, ok := labels[a.Digest]; !ok {
			labels[a.Digest] = a.Annotations[layout.AnnotationRole] + " artifact"
		}
	}
	bySubject := map[string][]int{}
	for i, a := range arts {
		s := a.Annotations[layout.AnnotationSubject]
		bySubject[s] = append(bySubject[s], i)
	}
	fmt.Fprintf(w, "signing artifacts (per subject):\n")
	for _, s := range sortedKeysOf(bySubject) {
		label := labels[digest.Digest(s)]
		if label == "" {
			label = "artifact"
		}
		fmt.Fprintf(w, "  %s %s\n", label, s)
		for _, i := range bySubject[s] {
			a := arts[i]
			how, what := a.Annotations[sigbundle.AnnotationVia], a.ArtifactType
			if t := cosignTag(a); t != "" {
				how += " " + t
				what = a.Annotations[sigbundle.AnnotationCosignKind]
			}
			if g := a.Annotations[sigbundle.AnnotationNotaryGUN]; g != "" {
				how += " " + g + ":" + a.Annotations[sigbundle.AnnotationNotaryTarget]
			}
			fmt.Fprintf(w, "    %-11s %s %s (%s)\n", a.Annotations[layout.AnnotationRole], a.Digest, what, how)
			if d, ok := claims[a.Digest]; ok {
				fmt.Fprintf(w, "                claims %s (not verified here: verify checks it)\n", describeClaims(d))
			}
		}
	}
}

// describeClaims says in a few words what an artifact claims.
func describeClaims(d sigbundle.Description) string {
	var parts []string
	switch d.Format {
	case "sigstore-trust":
		from := "a file"
		if d.TUFURL != "" {
			from = "TUF " + d.TUFURL
		}
		return "Sigstore trusted root sha256 " + d.TrustedRootSHA256 + " from " + from
	case "cosign-attestation":
		parts = append(parts, "attestation "+d.PredicateType)
	default:
		parts = append(parts, "signature")
	}
	switch {
	case d.Keyless && d.Identity != "":
		parts = append(parts, "keyless by "+d.Identity+" (issuer "+d.Issuer+")")
	case d.Keyless:
		parts = append(parts, "keyless")
	default:
		parts = append(parts, "with a key")
	}
	if d.Logged {
		parts = append(parts, "logged")
	}
	return strings.Join(parts, ", ")
}

func sortedKeysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// printImportSignatures prints the verification and what was re-published.
func printImportSignatures(w io.Writer, s *importer.SignatureResult) {
	if s == nil {
		return
	}
	if s.Skipped {
		fmt.Fprintf(w, "signing     skipped (--no-signatures): nothing verified, no signing artifact pushed\n")
		return
	}
	printSigningReport(w, s.Report)
	fmt.Fprintf(w, "signing     artifacts pushed %d, already present %d, cosign tags %d\n", s.Pushed, s.Present, s.Tags)
	for _, r := range s.Resigned {
		fmt.Fprintf(w, "re-signed   GUN %s target %s at %s (new root: %v)\n", r.GUN, r.Target, r.Server, r.Initialized)
		for _, id := range r.RootKeyIDs {
			fmt.Fprintf(w, "root key    %s: pin inside with --notary-pin %s=%s\n", id, r.GUN, id)
		}
	}
}

// verifyCommandFlags are verify's own flags.
func verifyCommandFlags() []cli.Flag {
	return append(append(verifySigningFlags(), archiveKeyFlags()...),
		&cli.StringFlag{Name: "reference", Usage: "verify the signing evidence of the bundle `REGISTRY/REPO:TAG` where it was imported, instead of an archive"})
}

// verifyRefResult is the JSON form of verify --reference.
type verifyRefResult struct {
	Reference    string            `json:"reference"`
	IndexDigest  string            `json:"indexDigest"`
	BundleDigest string            `json:"bundleDigest"`
	Artifacts    int               `json:"artifacts"`
	OK           bool              `json:"ok"`
	Signatures   *sigbundle.Report `json:"signatures"`
}

// verifyReference verifies a bundle's signing evidence at a registry.
func verifyReference(c *cli.Context, e *env) error {
	if c.NArg() != 0 {
		return usagef("verify takes an archive or --reference, not both")
	}
	if c.Bool("no-signatures") {
		return usagef("verify --reference checks signatures; --no-signatures leaves nothing to do")
	}
	asJSON, err := outputJSON(c)
	if err != nil {
		return err
	}
	so, err := verifyOptions(c, e)
	if err != nil {
		return err
	}
	ref := c.String("reference")
	host, _ := referenceRegistry(ref)
	cl, err := client(c, e, host)
	if err != nil {
		return err
	}
	rem, err := sigbundle.CollectRemote(c.Context, cl, ref, so...)
	if err != nil {
		return err
	}
	rep, err := sigbundle.Verify(c.Context, rem.Store, rem.Carried, so...)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", ref, err)
	}
	r := verifyRefResult{Reference: ref, IndexDigest: rem.Carried.Index.Digest.String(),
		BundleDigest: digest.FromBytes(rem.Carried.BundleJSON).String(), Artifacts: len(rem.Carried.Artifacts), OK: true, Signatures: rep}
	if asJSON {
		return writeJSON(e.stdout, r)
	}
	if !c.Bool("quiet") {
		for _, w := range append(rem.Collection.Warnings, rep.Warnings...) {
			fmt.Fprintf(e.stderr, "warning: %s\n", w)
		}
		fmt.Fprintf(e.stdout, "ok: %s (index %s, bundle.json %s): %d signing artifacts\n", ref, r.IndexDigest, r.BundleDigest, r.Artifacts)
		printSigningReport(e.stdout, rep)
	}
	return nil
}

// cosignTag returns the cosign tag an artifact was carried under, if any.
func cosignTag(x ocispec.Descriptor) string {
	if x.Annotations[sigbundle.AnnotationVia] != sigbundle.ViaCosignTag {
		return ""
	}
	return layout.CosignTag(x)
}

// subjectLabel names the subject of an index.json entry.
func subjectLabel(labels map[digest.Digest]string, x ocispec.Descriptor) string {
	return labels[digest.Digest(x.Annotations[layout.AnnotationSubject])]
}

// noSignaturesConflicts refuses --no-signatures together with a flag that
// asks for signing evidence to be checked: a trust anchor that would
// silently check nothing.
func noSignaturesConflicts(c *cli.Context, extra ...string) error {
	for _, f := range append([]string{"require-signatures", "notary-pin", "notary-ca", "notary-tofu", "cosign-key", "notation-cert", "trust-state", "allow-rename"}, extra...) {
		if c.IsSet(f) {
			return usagef("--no-signatures cannot be combined with --%s: nothing would be verified", f)
		}
	}
	return nil
}
