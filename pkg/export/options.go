package export

import (
	"errors"
	"log/slog"

	"github.com/cnab-airgap/cnab-airgap/internal/opts"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/registry"
)

// Option configures an export.
type Option func(*options) error

type options struct {
	opts.Common        // client, jobs, logger, progress
	allowMissingDigest bool
	resume             bool
	dryRun             bool
	compression        string
	maxMetadata        int64
	fit                fitOptions     // format, platforms, delta base, split size (formats.go)
	signing            signingOptions // referrers, cosign tags, Notary (signatures.go)
	source             Source         // replaces the registries (source.go)
	noDependencies     bool           // WithDependencies(false) (bundles.go)
}

func makeOptions(opts ...Option) (*options, error) {
	o := &options{maxMetadata: 8 << 20}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if err := o.Defaults(); err != nil {
		return nil, err
	}
	if err := o.fit.check(o); err != nil {
		return nil, err
	}
	return o, nil
}

// WithClient sets the registry client (TLS, plain HTTP, credentials).
// The default is a client with TLS verification and the docker config.
func WithClient(c *registry.Client) Option {
	return func(o *options) error { return o.SetClient("export", c) }
}

// WithJobs bounds how many blobs are fetched at once. The default is 6.
func WithJobs(n int) Option {
	return func(o *options) error { return o.SetJobs("export", n) }
}

// WithProgress receives progress events. The default is none.
func WithProgress(f progress.Func) Option {
	return func(o *options) error { o.Progress = f; return nil }
}

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.SetLogger(l); return nil }
}

// WithAllowMissingDigest accepts images without `contentDigest`: their tag is
// resolved at export time and the archive records it. The default refuses.
func WithAllowMissingDigest(b bool) Option {
	return func(o *options) error { o.allowMissingDigest = b; return nil }
}

// WithResume continues an interrupted export from its staging file,
// re-verifying every blob it keeps. The default starts afresh.
func WithResume(b bool) Option {
	return func(o *options) error { o.resume = b; return nil }
}

// WithDryRun resolves and plans the export but writes nothing.
func WithDryRun(b bool) Option {
	return func(o *options) error { o.dryRun = b; return nil }
}

// WithCompression compresses the archive: "none" (default), "gzip" or
// "zstd". "" chooses by the output name (.tar.gz, .tgz, .tar.zst).
func WithCompression(c string) Option {
	return func(o *options) error {
		switch c {
		case "", layout.CompressionNone, layout.CompressionGzip, layout.CompressionZstd:
			o.compression = c
			return nil
		}
		return errors.New("export: compression must be none, gzip or zstd")
	}
}
