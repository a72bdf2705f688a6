package layout

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// ErrInvalidSize is returned by ParseSize.
var ErrInvalidSize = errdefs.New("invalid size", errdefs.ErrUsage)

// sizeUnits are the units ParseSize accepts, longest first: binary ones
// (KiB = 1024 bytes) and decimal ones (KB = 1000 bytes), spelled exactly.
var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50},
	{"KB", 1e3}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15},
	{"B", 1},
}

// ParseSize parses a positive size in bytes: digits, then optionally a unit
// spelled exactly as B, KiB, MiB, GiB, TiB, PiB (powers of 1024) or KB (or
// kB), MB, GB, TB, PB (powers of 1000), with no space, sign or fraction:
// "500GiB", "1TB", "1048576". Anything else, zero and sizes that do not fit
// in an int64 are refused (ErrInvalidSize).
func ParseSize(s string) (int64, error) {
	num, factor := s, int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, factor = rest, u.factor
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %q: want a number of bytes with an optional unit (B, KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB, PB), e.g. 500GiB", ErrInvalidSize, s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/factor {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalidSize, s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %q: the size must be positive", ErrInvalidSize, s)
	}
	return n * factor, nil
}
