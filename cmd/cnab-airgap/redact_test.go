package main

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	addSecret("carol", "s3cret-password")
	cases := []struct{ in, want string }{
		{`Get "https://user:pw@reg.example.com/v2/": EOF`, `Get "https://REDACTED@reg.example.com/v2/": EOF`},
		{`target "carol:pw@127.0.0.1:5000/x": bad`, `target "REDACTED@127.0.0.1:5000/x": bad`},
		{`repository /carol:pw@127.0.0.1:5000/mirror`, `repository /REDACTED@127.0.0.1:5000/mirror`},
		{`GET https://s3.example.com/blob?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA&x=1`, `GET https://s3.example.com/blob?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&x=1`},
		{`token endpoint https://auth/token?scope=x&access_token=eyJhbGciOi`, `token endpoint https://auth/token?scope=x&access_token=REDACTED`},
		{`Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig`, `Authorization: Bearer REDACTED`},
		{`Authorization: Basic Y2Fyb2w6czNjcmV0`, `Authorization: Basic REDACTED`},
		{`wrong password s3cret-password for carol`, `wrong password REDACTED for carol`},
		// References are left alone, digests and tags included.
		{`manifest 127.0.0.1:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae`, `manifest 127.0.0.1:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae`},
		{`image reg.example.com/library/web:1.0@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae`, `image reg.example.com/library/web:1.0@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae`},
		{`web:1.0@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae`, `web:1.0@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae`},
	}
	for _, tc := range cases {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	if got := redact("Y2Fyb2w6czNjcmV0LXBhc3N3b3Jk"); strings.Contains(got, "Y2Fyb2w6") {
		t.Errorf("the basic-auth encoding of a registered secret survives: %q", got)
	}
}
