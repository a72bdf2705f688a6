package relocate

import (
	"errors"
	"strings"
	"testing"
)

// TestParseBundleSchema checks bundle.json against the CNAB schema,
// offline: valid bundles parse; each violation is refused with
// ErrInvalidBundle and its JSON path.
func TestParseBundleSchema(t *testing.T) {
	t.Parallel()
	const inv = `"invocationImages":[{"imageType":"docker","image":"example.com/app/installer:1.0","contentDigest":"sha256:` +
		`0000000000000000000000000000000000000000000000000000000000000000"}]`
	valid := `{"schemaVersion":"v1.2.0","name":"app","version":"1.0.0",` + inv +
		`,"parameters":{"port":{"definition":"port","destination":{"env":"PORT"}}},"definitions":{"port":{"type":"integer","default":80}}}`
	if _, err := ParseBundle([]byte(valid)); err != nil {
		t.Fatalf("a valid bundle: %v", err)
	}
	cases := []struct{ name, json, msg string }{
		{"no version", `{"schemaVersion":"v1.2.0","name":"app",` + inv + `}`, "version is required"},
		{"name of the wrong type", `{"schemaVersion":"v1.2.0","name":7,"version":"1.0.0",` + inv + `}`, "name"},
		{"a top-level field outside custom", `{"schemaVersion":"v1.2.0","name":"app","version":"1.0.0",` + inv +
			`,"vendorExtension":{"x":1}}`, "vendorExtension"},
		{"parameter without a destination", `{"schemaVersion":"v1.2.0","name":"app","version":"1.0.0",` + inv +
			`,"parameters":{"p":{"definition":"d"}},"definitions":{"d":{"type":"string"}}}`, "destination"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBundle([]byte(tc.json))
			if !errors.Is(err, ErrInvalidBundle) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrInvalidBundle naming %q", err, tc.msg)
			}
		})
	}
	// Many violations are listed up to a bound.
	var b strings.Builder
	b.WriteString(`{"schemaVersion":"v1.2.0","name":"app","version":"1.0.0",` + inv + `,"images":{`)
	for i := range 30 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"i` + strings.Repeat("x", i) + `":{"image":5}`)
	}
	b.WriteString(`}}`)
	err := ValidateSchema([]byte(b.String()))
	if !errors.Is(err, ErrInvalidBundle) || !strings.Contains(err.Error(), "more") || strings.Count(err.Error(), ";") != maxSchemaErrors {
		t.Fatalf("many violations: %v", err)
	}
}
