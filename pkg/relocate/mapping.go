package relocate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cnab-airgap/cnab-airgap/internal/fsutil"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// MappingFile is the conventional name of the relocation mapping (CNAB 103).
const MappingFile = "relocation-mapping.json"

// maxMappingBytes caps a mapping file before it is decoded.
const maxMappingBytes = 8 << 20

// ErrInvalidMapping is returned for a relocation mapping that cannot be used.
var ErrInvalidMapping = errdefs.New("invalid relocation mapping", errdefs.ErrInvalidInput)

// Mapping maps the exact `image` strings of bundle.json to relocated,
// digest-pinned references.
type Mapping map[string]string

// Marshal renders the mapping as indented JSON with sorted keys.
func (m Mapping) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]string(m)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile writes the mapping atomically: to a temporary file in the same
// directory, synced, then renamed over path.
func (m Mapping) WriteFile(path string) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, b, 0o644)
}

// ParseMapping decodes a relocation mapping: a flat JSON object whose
// values are non-empty strings that parse as references.
func ParseMapping(b []byte) (Mapping, error) {
	if len(b) > maxMappingBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidMapping, len(b), maxMappingBytes)
	}
	var m map[string]string
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMapping, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrInvalidMapping)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidMapping)
	}
	for k, v := range m {
		if k == "" {
			return nil, fmt.Errorf("%w: empty key", ErrInvalidMapping)
		}
		if _, err := name.ParseReference(v); err != nil {
			return nil, fmt.Errorf("%w: value for %q: %w", ErrInvalidMapping, k, err)
		}
	}
	return Mapping(m), nil
}

// ReadMapping reads and parses a mapping file.
func ReadMapping(path string) (Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMappingBytes+1))
	if err != nil {
		return nil, err
	}
	m, err := ParseMapping(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
