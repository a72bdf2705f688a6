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

// SignyCustom returns the custom field Signy puts on a bundle target: the
// layout (one "build" step whose product is bundle.json), the layout's
// public key and the link of the step, signed with fresh ed25519 keys.
func SignyCustom(bundleJSON []byte, o InTotoOptions) ([]byte, error) {
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
	return json.Marshal(struct {
		Key    []byte            `json:"key"`
		Layout []byte            `json:"layout"`
		Links  map[string][]byte `json:"links"`
	}{owner.PublicPEM, layoutRaw, map[string][]byte{fmt.Sprintf(in_toto.LinkNameFormat, "build", builder.Key.KeyID): linkRaw}})
}
