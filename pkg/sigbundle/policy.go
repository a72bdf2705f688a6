package sigbundle

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"go.yaml.in/yaml/v3"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// A Policy says which signers must have signed the images whose reference
// matches one of its globs, and which attestations they must have: the
// shape of sigstore policy-controller's ClusterImagePolicy (spec.images
// globs, spec.authorities with key or keyless identities and attestation
// predicate types). An image matched by several policies must satisfy
// each; a policy is satisfied by any one of its authorities. An authority
// that lists attestations is satisfied by those attestations, verified and
// made by it; one that lists none, by a verified signature made by it.
type Policy struct {
	Name        string
	Images      []string // globs: "*" within a path segment, "**" across
	Authorities []Authority
}

// Authority is one signer a policy accepts.
type Authority struct {
	Name string
	// Key is a public key (PEM); KeyName names it in reports.
	Key     crypto.PublicKey
	KeyName string
	// Identities are keyless signers (any one).
	Identities []Identity
	// Attestations are the predicate types that must be present.
	Attestations []string
}

// policyDoc is the ClusterImagePolicy document, as far as it is read:
// every other field is refused, so that no constraint is silently dropped.
type policyDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Images []struct {
			Glob string `yaml:"glob"`
		} `yaml:"images"`
		Authorities []struct {
			Name string `yaml:"name"`
			Key  *struct {
				Data string `yaml:"data"`
				Path string `yaml:"path"`
			} `yaml:"key"`
			Keyless *struct {
				Identities []struct {
					Issuer        string `yaml:"issuer"`
					Subject       string `yaml:"subject"`
					IssuerRegExp  string `yaml:"issuerRegExp"`
					SubjectRegExp string `yaml:"subjectRegExp"`
				} `yaml:"identities"`
			} `yaml:"keyless"`
			Attestations []struct {
				Name          string `yaml:"name"`
				PredicateType string `yaml:"predicateType"`
			} `yaml:"attestations"`
		} `yaml:"authorities"`
	} `yaml:"spec"`
}

// predicateTypes are cosign's short names for predicate types, which
// policy-controller accepts as well.
var predicateTypes = map[string]string{
	"slsaprovenance":   "https://slsa.dev/provenance/v0.2",
	"slsaprovenance02": "https://slsa.dev/provenance/v0.2",
	"slsaprovenance1":  "https://slsa.dev/provenance/v1",
	"spdx":             "https://spdx.dev/Document",
	"spdxjson":         "https://spdx.dev/Document",
	"cyclonedx":        "https://cyclonedx.org/bom",
	"vuln":             "https://cosign.sigstore.dev/attestation/vuln/v1",
	"openvex":          "https://openvex.dev/ns",
	"custom":           "https://cosign.sigstore.dev/attestation/v1",
}

// ErrPolicy: an image does not satisfy a policy that matches it.
var ErrPolicy = errdefs.New("image policy not satisfied", ErrVerification)

// LoadPolicy reads a policy file: one or more ClusterImagePolicy documents
// in YAML or JSON. A key given by path is read relative to the file.
func LoadPolicy(path string) ([]*Policy, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: policy: %w", errdefs.ErrUsage, err)
	}
	return ParsePolicy(raw, filepath.Dir(path))
}

// ParsePolicy parses policy documents; key paths are relative to dir.
func ParsePolicy(raw []byte, dir string) ([]*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var out []*Policy
	for i := 0; ; i++ {
		var d policyDoc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: policy document %d: %w", errdefs.ErrUsage, i+1, err)
		}
		p, err := d.policy(i+1, dir)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrUsage, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: policy: no document", errdefs.ErrUsage)
	}
	return out, nil
}

func (d *policyDoc) policy(n int, dir string) (*Policy, error) {
	p := &Policy{Name: d.Metadata.Name}
	if p.Name == "" {
		p.Name = fmt.Sprintf("policy %d", n)
	}
	if d.Kind != "" && d.Kind != "ClusterImagePolicy" {
		return nil, fmt.Errorf("policy %s: kind %q is not ClusterImagePolicy", p.Name, d.Kind)
	}
	for _, im := range d.Spec.Images {
		if im.Glob == "" {
			return nil, fmt.Errorf("policy %s: an image entry without a glob", p.Name)
		}
		p.Images = append(p.Images, im.Glob)
	}
	if len(p.Images) == 0 || len(d.Spec.Authorities) == 0 {
		return nil, fmt.Errorf("policy %s: needs spec.images and spec.authorities", p.Name)
	}
	for i, da := range d.Spec.Authorities {
		a := Authority{Name: da.Name}
		if a.Name == "" {
			a.Name = fmt.Sprintf("authority-%d", i)
		}
		where := fmt.Sprintf("policy %s, authority %s", p.Name, a.Name)
		if (da.Key == nil) == (da.Keyless == nil) {
			return nil, fmt.Errorf("%s: give exactly one of key and keyless", where)
		}
		if k := da.Key; k != nil {
			pemData := []byte(k.Data)
			a.KeyName = p.Name + "/" + a.Name
			if (k.Data == "") == (k.Path == "") {
				return nil, fmt.Errorf("%s: key needs exactly one of data and path", where)
			}
			if k.Path != "" {
				f := k.Path
				if !filepath.IsAbs(f) {
					f = filepath.Join(dir, f)
				}
				var err error
				if pemData, err = os.ReadFile(f); err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				a.KeyName = filepath.Base(f)
			}
			key, err := ParsePublicKey(pemData)
			if err != nil {
				return nil, fmt.Errorf("%s: key: %w", where, err)
			}
			if _, err := keyVerifiers(key); err != nil {
				return nil, fmt.Errorf("%s: key: %w", where, err)
			}
			a.Key = key
		}
		if kl := da.Keyless; kl != nil {
			if len(kl.Identities) == 0 {
				return nil, fmt.Errorf("%s: keyless needs identities", where)
			}
			for _, id := range kl.Identities {
				ident := Identity{Subject: id.Subject, SubjectRegexp: id.SubjectRegExp, Issuer: id.Issuer, IssuerRegexp: id.IssuerRegExp}
				if _, err := ident.compile(); err != nil {
					return nil, fmt.Errorf("%s: identity %s: %w", where, ident, err)
				}
				a.Identities = append(a.Identities, ident)
			}
		}
		for _, at := range da.Attestations {
			pt := at.PredicateType
			if long, ok := predicateTypes[pt]; ok {
				pt = long
			}
			if pt == "" {
				return nil, fmt.Errorf("%s: attestation %q without a predicateType", where, at.Name)
			}
			a.Attestations = append(a.Attestations, pt)
		}
		p.Authorities = append(p.Authorities, a)
	}
	for _, g := range p.Images {
		if _, err := globRegexp(g); err != nil {
			return nil, fmt.Errorf("policy %s: glob %q: %w", p.Name, g, err)
		}
	}
	return p, nil
}

// globRegexp compiles a policy-controller image glob: "**" matches
// anything, "*" anything but "/", "?" one character but "/".
func globRegexp(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch {
		case strings.HasPrefix(g[i:], "**"):
			b.WriteString(".*")
			i++
		case g[i] == '*':
			b.WriteString("[^/]*")
		case g[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// matches reports whether the policy applies to ref: a glob matches the
// repository (registry and path) or the whole reference.
func (p *Policy) matches(ref string) bool {
	cands := []string{ref}
	if r, err := name.ParseReference(ref); err == nil {
		cands = append(cands, r.Context().Name(), r.Name())
	}
	for _, g := range p.Images {
		re, err := globRegexp(g)
		if err != nil {
			continue
		}
		for _, c := range cands {
			if re.MatchString(c) {
				return true
			}
		}
	}
	return false
}

// WithPolicy requires every image (and the bundle) whose reference a
// policy matches to satisfy it (ErrPolicy). The policies' keys and
// identities verify signatures like WithCosignKey and WithIdentity, but
// only the images a policy matches must be signed by them.
func WithPolicy(policies ...*Policy) Option {
	return func(o *options) error {
		for _, p := range policies {
			for _, a := range p.Authorities {
				if a.Key != nil {
					o.policyKeys = append(o.policyKeys, cosignKey{a.KeyName, a.Key})
				}
				for _, id := range a.Identities {
					ci, err := id.compile()
					if err != nil {
						return err
					}
					o.policyIdentities = append(o.policyIdentities, ci)
				}
			}
		}
		o.policies = append(o.policies, policies...)
		return nil
	}
}

// PolicyResult is the policy outcome for one image or the bundle.
type PolicyResult struct {
	Reference string        `json:"reference"`
	Digest    digest.Digest `json:"digest"`
	// Policies are the policies that matched.
	Policies []string `json:"policies"`
	// Satisfied lists, per matched policy, the authority that satisfied it
	// ("POLICY/AUTHORITY").
	Satisfied []string `json:"satisfied,omitempty"`
	// Violations says, per policy not satisfied, what each authority lacked.
	Violations []string `json:"violations,omitempty"`
}

// evaluatePolicies checks every subject against the policies that match
// it, from the verified artifacts of the report.
func (v *verifier) evaluatePolicies() error {
	if len(v.o.policies) == 0 {
		return nil
	}
	var failed []string
	for _, s := range v.c.Subjects {
		res := PolicyResult{Reference: s.Reference, Digest: s.Digest}
		for _, p := range v.o.policies {
			if !p.matches(s.Reference) {
				continue
			}
			res.Policies = append(res.Policies, p.Name)
			var lacks []string
			ok := false
			for _, a := range p.Authorities {
				missing := v.authorityLacks(a, s.Digest)
				if missing == "" {
					res.Satisfied = append(res.Satisfied, p.Name+"/"+a.Name)
					ok = true
					break
				}
				lacks = append(lacks, a.Name+": "+missing)
			}
			if !ok {
				res.Violations = append(res.Violations, fmt.Sprintf("policy %s: %s", p.Name, strings.Join(lacks, "; ")))
			}
		}
		if len(res.Policies) == 0 {
			continue
		}
		v.rep.Policy = append(v.rep.Policy, res)
		if len(res.Violations) > 0 {
			failed = append(failed, fmt.Sprintf("%s (%s): %s", s.Reference, s.Digest, strings.Join(res.Violations, "; ")))
		}
	}
	if len(failed) > 0 {
		return &Error{Kind: "policy", Err: wrapf(ErrPolicy, "%s", strings.Join(failed, "\n  "))}
	}
	return nil
}

// authorityLacks says what a lacks for subject d ("" when satisfied).
func (v *verifier) authorityLacks(a Authority, d digest.Digest) string {
	by := func(ar ArtifactReport) bool {
		if !ar.Verified || ar.Subject != d || ar.Signer == nil {
			return false
		}
		if a.Key != nil {
			return ar.verifiedWith(a.Key)
		}
		for _, id := range a.Identities {
			if id.matches(ar.Signer.Identity, ar.Signer.Issuer) {
				return true
			}
		}
		return false
	}
	signer := a.KeyName
	if a.Key == nil {
		var ids []string
		for _, id := range a.Identities {
			ids = append(ids, id.String())
		}
		signer = strings.Join(ids, " or ")
	}
	if len(a.Attestations) == 0 {
		for _, ar := range v.rep.Artifacts {
			if ar.Format == "cosign" && by(ar) {
				return ""
			}
		}
		return "no verified signature by " + signer
	}
	var missing []string
	for _, pt := range a.Attestations {
		found := slices.ContainsFunc(v.rep.Artifacts, func(ar ArtifactReport) bool {
			return ar.Format == "cosign-attestation" && ar.PredicateType == pt && by(ar)
		})
		if !found {
			missing = append(missing, pt)
		}
	}
	if len(missing) > 0 {
		return "no verified attestation " + strings.Join(missing, ", ") + " by " + signer
	}
	return ""
}

// matches reports whether a certificate's signer and issuer are id's.
func (id Identity) matches(subject, issuer string) bool {
	ci, err := id.compile()
	if err != nil {
		return false
	}
	sum := certificate.Summary{SubjectAlternativeName: subject, Extensions: certificate.Extensions{Issuer: issuer}}
	return ci.SubjectAlternativeName.Verify(sum) == nil && ci.Issuer.Verify(sum) == nil
}
