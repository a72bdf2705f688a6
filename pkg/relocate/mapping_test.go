package relocate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The mapping reader refuses hostile files before decoding them and names
// the file; the writer never leaves a partial file.
func TestReadMappingRefusesHostileFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ref := "127.0.0.1:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	cases := []struct {
		name string
		data []byte
	}{
		{"larger than the cap", append(append([]byte(`{"a":"`+ref+`","pad":"`), bytes.Repeat([]byte("x"), maxMappingBytes)...), `"}`...)},
		{"deep nesting", append(bytes.Repeat([]byte("["), 1<<20), bytes.Repeat([]byte("]"), 1<<20)...)},
		{"trailing document", []byte(`{"a":"` + ref + `"} {"b":"` + ref + `"}`)},
		{"not an object", []byte(`["` + ref + `"]`)},
		{"null", []byte(`null`)},
		{"value not a reference", []byte(`{"a":"not a reference"}`)},
		{"empty key", []byte(`{"":"` + ref + `"}`)},
		{"nested object", []byte(`{"a":{"b":"` + ref + `"}}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadMapping(path)
			if !errors.Is(err, ErrInvalidMapping) {
				t.Fatalf("want ErrInvalidMapping, got %v", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("the error does not name the file: %v", err)
			}
		})
	}
}

func TestMappingWriteFileIsAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, MappingFile)
	m := Mapping{"registry.example.com/library/web:1.0": "127.0.0.1:5000/app@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}
	if err := m.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	m2 := Mapping{"registry.example.com/library/db:1.0": "127.0.0.1:5000/app@sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"}
	if err := m2.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMapping(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["registry.example.com/library/db:1.0"] == "" {
		t.Fatalf("read back %v", got)
	}
	es, _ := os.ReadDir(dir)
	if len(es) != 1 {
		t.Fatalf("%d files in the directory: a temporary file was left", len(es))
	}
}
