package sigbundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

// AnchorsUsed judges the trust anchors over the bundles of an archive
// together: a key that verified a signature in any bundle is used, one
// that verified nothing anywhere is refused, as is a pin for a GUN no
// bundle carries.
func TestAnchorsUsed(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := WithCosignKey("release.pub", &ec.PublicKey)
	unsigned := &Report{}
	signed := &Report{Artifacts: []ArtifactReport{{Format: "cosign", Verified: true, Keys: []string{"release.pub"}, verifiedBy: []crypto.PublicKey{&ec.PublicKey}}}}
	other := &Report{Artifacts: []ArtifactReport{{Format: "cosign"}}}

	if err := AnchorsUsed([]*Report{unsigned, signed, nil}, key); err != nil {
		t.Fatalf("the key verified a signature of one bundle: %v", err)
	}
	if err := AnchorsUsed([]*Report{unsigned, other}, key); !errors.Is(err, ErrTrustAnchor) {
		t.Fatalf("the key verified nothing in any bundle: %v", err)
	}
	// Another key under the same file name did the verifying: the key is
	// judged by itself, not its name.
	ec2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := AnchorsUsed([]*Report{signed}, WithCosignKey("release.pub", &ec2.PublicKey)); !errors.Is(err, ErrTrustAnchor) {
		t.Fatalf("a namesake key: %v", err)
	}
	pin := WithNotaryPin("registry.example/bundles/db", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	withDB := &Report{Notary: []*NotaryInfo{{GUN: "registry.example/bundles/db"}}}
	if err := AnchorsUsed([]*Report{unsigned, withDB}, pin); err != nil {
		t.Fatalf("the pinned GUN's trust data is in one bundle: %v", err)
	}
	if err := AnchorsUsed([]*Report{unsigned, signed}, pin); !errors.Is(err, ErrTrustAnchor) {
		t.Fatalf("no bundle carries the pinned GUN: %v", err)
	}
}
