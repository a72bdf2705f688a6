// Package opts holds the settings every operation of the library takes the
// same way (export, import, verify, the relocation audit): the registry
// client, a bound on concurrent work, a logger and a progress callback.
// Each package keeps its own exported With* options, whose bodies are the
// setters here, so they check and default alike.
package opts

import (
	"fmt"
	"log/slog"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// DefaultJobs is the default bound on concurrent work.
const DefaultJobs = 6

// Common is embedded in a package's options.
type Common struct {
	Client   *registry.Client
	Jobs     int
	Log      *slog.Logger
	Progress progress.Func
}

// SetClient sets the registry client; op names the operation in the error.
func (c *Common) SetClient(op string, cl *registry.Client) error {
	if cl == nil {
		return fmt.Errorf("%w: %s: nil registry client", errdefs.ErrUsage, op)
	}
	c.Client = cl
	return nil
}

// SetJobs sets the bound on concurrent work (at least 1).
func (c *Common) SetJobs(op string, n int) error {
	if n < 1 {
		return fmt.Errorf("%w: %s: jobs must be at least 1, not %d", errdefs.ErrUsage, op, n)
	}
	c.Jobs = n
	return nil
}

// SetLogger sets the logger; nil keeps the current one.
func (c *Common) SetLogger(l *slog.Logger) {
	if l != nil {
		c.Log = l
	}
}

// Defaults fills what was not set: DefaultJobs, a logger that discards,
// and a registry client with TLS verification and the docker config's
// credentials.
func (c *Common) Defaults() error {
	if c.Jobs == 0 {
		c.Jobs = DefaultJobs
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Client == nil {
		cl, err := registry.New(registry.Options{})
		if err != nil {
			return err
		}
		c.Client = cl
	}
	return nil
}
