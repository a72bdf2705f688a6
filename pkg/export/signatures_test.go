package export

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

func TestTagOfAndGUN(t *testing.T) {
	for ref, want := range map[string]string{
		"example.com/app/web:1.0":                     "1.0",
		"example.com:5000/app/web:1.0":                "1.0",
		"example.com:5000/app/web":                    "",
		"example.com:5000/app/web@sha256:" + hex64:    "",
		"example.com:5000/app/web:v2@sha256:" + hex64: "v2",
		"127.0.0.1:5000/web":                          "",
		"library/alpine:3.20":                         "3.20",
		"alpine":                                      "",
	} {
		if got := tagOf(ref); got != want {
			t.Errorf("tagOf(%q) = %q, want %q", ref, got, want)
		}
	}
	for ref, want := range map[string]string{
		"alpine":                        "docker.io/library/alpine",
		"docker.io/org/app":             "docker.io/org/app",
		"index.docker.io/org/app":       "docker.io/org/app",
		"registry.example.com:5000/a/b": "registry.example.com:5000/a/b",
	} {
		r, err := name.NewRepository(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := sigbundle.GUN(r); got != want {
			t.Errorf("GUN(%q) = %q, want %q", ref, got, want)
		}
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
