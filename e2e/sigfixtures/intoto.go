package sigfixtures

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"
)

// InTotoKey is an ed25519 in-toto key with its public PEM.
type InTotoKey struct {
	Key       in_toto.Key
	PublicPEM []byte
}

// NewInTotoKey generates an ed25519 key.
func NewInTotoKey() (*InTotoKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	var k in_toto.Key
	if err := k.LoadKeyReaderDefaults(bytes.NewReader(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))); err != nil {
		return nil, err
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &InTotoKey{Key: k, PublicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder})}, nil
}

func (k *InTotoKey) public() in_toto.Key {
	p := k.Key
	p.KeyVal.Private = ""
	return p
}

// InTotoOptions shape the supply chain of SignyCustom.
type InTotoOptions struct {
	// Inspection, when set, adds an inspection that runs this command.
	Inspection []string
	// ProductDigest overrides the digest the build step reports for
	// bundle.json (default: the real bundle.json's).
	ProductDigest digest.Digest
}

// SupplyChain is a generated in-toto supply chain for one bundle.json: a
// layout with one "build" step whose product is bundle.json, signed by a
// fresh owner key, and the build step's link, signed by a fresh builder
// key.
type SupplyChain struct {
	// Layout is the signed root.layout.
	Layout []byte
	// OwnerKeyID and OwnerPublicPEM are the layout key.
	OwnerKeyID     string
	OwnerPublicPEM []byte
	// Links holds the link files by name (<step>.<keyid8>.link).
	Links map[string][]byte
}

// NewSupplyChain generates the supply chain of bundleJSON.
func NewSupplyChain(bundleJSON []byte, o InTotoOptions) (*SupplyChain, error) {
	owner, err := NewInTotoKey()
	if err != nil {
		return nil, err
	}
	builder, err := NewInTotoKey()
	if err != nil {
		return nil, err
	}
	allow := [][]string{{"ALLOW", "*"}}
	lay := in_toto.Layout{Type: "layout", Expires: time.Now().Add(24 * time.Hour).UTC().Format(in_toto.ISO8601DateSchema),
		Keys: map[string]in_toto.Key{builder.Key.KeyID: builder.public()}, Inspect: []in_toto.Inspection{},
		Steps: []in_toto.Step{{Type: "step", PubKeys: []string{builder.Key.KeyID}, Threshold: 1, ExpectedCommand: []string{},
			SupplyChainItem: in_toto.SupplyChainItem{Name: "build", ExpectedMaterials: allow, ExpectedProducts: allow}}}}
	if len(o.Inspection) > 0 {
		lay.Inspect = append(lay.Inspect, in_toto.Inspection{Type: "inspection", Run: o.Inspection,
			SupplyChainItem: in_toto.SupplyChainItem{Name: "check", ExpectedMaterials: allow, ExpectedProducts: allow}})
	}
	lmb := in_toto.Metablock{Signed: lay}
	if err := lmb.Sign(owner.Key); err != nil {
		return nil, err
	}
	layoutRaw, err := json.Marshal(&lmb)
	if err != nil {
		return nil, err
	}
	pd := o.ProductDigest
	if pd == "" {
		pd = digest.FromBytes(bundleJSON)
	}
	link := in_toto.Link{Type: "link", Name: "build", Materials: map[string]in_toto.HashObj{},
		Products:   map[string]in_toto.HashObj{"bundle.json": {"sha256": pd.Encoded()}},
		ByProducts: map[string]any{}, Command: []string{}, Environment: map[string]any{}}
	kmb := in_toto.Metablock{Signed: link}
	if err := kmb.Sign(builder.Key); err != nil {
		return nil, err
	}
	linkRaw, err := json.Marshal(&kmb)
	if err != nil {
		return nil, err
	}
	return &SupplyChain{Layout: layoutRaw, OwnerKeyID: owner.Key.KeyID, OwnerPublicPEM: owner.PublicPEM,
		Links: map[string][]byte{fmt.Sprintf(in_toto.LinkNameFormat, "build", builder.Key.KeyID): linkRaw}}, nil
}

// SignyCustom returns the custom field Signy puts on a bundle target: the
// layout, the layout's public key and the links of NewSupplyChain inlined.
func SignyCustom(bundleJSON []byte, o InTotoOptions) ([]byte, error) {
	sc, err := NewSupplyChain(bundleJSON, o)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Key    []byte            `json:"key"`
		Layout []byte            `json:"layout"`
		Links  map[string][]byte `json:"links"`
	}{sc.OwnerPublicPEM, sc.Layout, sc.Links})
}

// Target is a Notary target to publish in a role.
type Target struct {
	Name    string
	Content []byte
	// Custom is the target's custom field (nil for none).
	Custom []byte
	// Role is "targets" or "targets/releases" ("" means the publisher's
	// default, as Publish).
	Role string
}

// Layout301 lays sc out as the CNAB 301 in-toto extension for gun: the
// targets role signs <gun>/in-toto-metadata/root.layout (custom lists the
// key) and <gun>/in-toto-pubkeys/<keyid>.pub; the links are targets under
// <gun>/in-toto-metadata/<bundle sha256>/, in targets/releases; the bundle
// target's custom lists the layout and the links. It returns those
// targets (without the bundle's) and the bundle target's custom field.
func Layout301(gun string, bundleJSON []byte, sc *SupplyChain) ([]Target, []byte, error) {
	layoutName := gun + "/in-toto-metadata/root.layout"
	keyName := gun + "/in-toto-pubkeys/" + sc.OwnerKeyID + ".pub"
	layoutCustom, err := json.Marshal(map[string][]string{"in-toto": {keyName}})
	if err != nil {
		return nil, nil, err
	}
	ts := []Target{
		{Name: layoutName, Content: sc.Layout, Custom: layoutCustom, Role: "targets"},
		{Name: keyName, Content: sc.OwnerPublicPEM, Role: "targets"},
	}
	refs := []string{layoutName}
	for n, raw := range sc.Links {
		ln := gun + "/in-toto-metadata/" + digest.FromBytes(bundleJSON).Encoded() + "/" + n
		ts = append(ts, Target{Name: ln, Content: raw, Role: "targets/releases"})
		refs = append(refs, ln)
	}
	custom, err := json.Marshal(map[string][]string{"in-toto": refs})
	return ts, custom, err
}
