package errdefs

import (
	"errors"
	"fmt"
)

// JoinDistinct joins errors like errors.Join, but reports each distinct
// root cause once: errors whose innermost cause reads the same (thirteen
// blobs refused for the same unknown CA) become the first of them with a
// count of the others. errors.Is and errors.As see the first error of each
// cause.
func JoinDistinct(errs []error) error {
	type group struct {
		first error
		more  int
	}
	var order []string
	groups := map[string]*group{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		k := rootCause(err).Error()
		if g, ok := groups[k]; ok {
			g.more++
			continue
		}
		groups[k] = &group{first: err}
		order = append(order, k)
	}
	if len(order) == len(errs) {
		return errors.Join(errs...)
	}
	out := make([]error, 0, len(order))
	for _, k := range order {
		g := groups[k]
		if g.more == 0 {
			out = append(out, g.first)
			continue
		}
		out = append(out, &sameCause{first: g.first, more: g.more})
	}
	return errors.Join(out...)
}

// sameCause is one error standing for more with the same root cause.
type sameCause struct {
	first error
	more  int
}

func (e *sameCause) Error() string {
	return fmt.Sprintf("%v (and %d more with the same cause)", e.first, e.more)
}

func (e *sameCause) Unwrap() error { return e.first }

// rootCause follows single wraps down to the innermost error.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
