package main

import (
	"crypto/tls"
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
	"github.com/cnab-airgap/cnab-airgap/pkg/serve"
)

// serveOutput is the JSON document serve writes once it is listening.
type serveOutput struct {
	Archive string `json:"archive"`
	Address string `json:"address"`
	URL     string `json:"url"`
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	// Served is where to pull the bundle and its images: reference,
	// digestReference, images.
	serve.Served
	Repositories []string `json:"repositories"`
	MappingFile  string   `json:"mappingFile,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
}

func serveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve an archive read-only as an OCI registry, for air gaps without a registry",
		ArgsUsage: "ARCHIVE",
		Description: "The address is bound first (a busy address fails at once), then every blob is verified before\n" +
			"the first request is answered; whole-blob reads are verified again as they stream. The bundle is\n" +
			"served under the repository and tag it was exported from, each image under its original repository\n" +
			"path and tag. Connections are bounded: at most --max-connections are served at once (more wait in\n" +
			"the accept queue), an idle keep-alive connection is closed after --idle-timeout, a response that\n" +
			"makes no progress for --write-timeout is cut off, and a Range header with more than 16 or\n" +
			"overlapping ranges is refused (416). Stop with Ctrl-C (SIGINT) or SIGTERM.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:5000", Usage: "listen on `HOST:PORT` (port 0 picks a free port)"},
			&cli.StringFlag{Name: "mapping", Aliases: []string{"m"}, Usage: "write a relocation-mapping.json `FILE` pointing every image at the served address"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with the certificate (chain) in this PEM `FILE` (with --tls-key)"},
			&cli.StringFlag{Name: "tls-key", Usage: "the private key of --tls-cert, a PEM `FILE`"},
			&cli.IntFlag{Name: "max-connections", Value: serve.DefaultMaxConnections, Usage: "serve at most `N` connections at once; more wait, unanswered, until one closes"},
			&cli.DurationFlag{Name: "idle-timeout", Value: serve.DefaultIdleTimeout, Usage: "close a keep-alive connection that sends no request for `DURATION`"},
			&cli.DurationFlag{Name: "write-timeout", Value: serve.DefaultWriteTimeout, Usage: "cut off a response that makes no progress (a client that stopped reading) for `DURATION`; a slow download that keeps moving is not cut"},
		}, append(archiveKeyFlags(), archiveOptsFlags()...)...), // archivesig.go, archiveopts.go
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("serve takes one archive")
			}
			path := c.Args().First()
			var tlsConfig *tls.Config
			switch cert, key := c.String("tls-cert"), c.String("tls-key"); {
			case cert != "" && key != "":
				pair, err := tls.LoadX509KeyPair(cert, key)
				if err != nil {
					return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", cert, key, err)
				}
				tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
			case cert != "" || key != "":
				return usagef("--tls-cert and --tls-key go together")
			}
			if n := c.Int("max-connections"); n < 1 {
				return usagef("--max-connections must be at least 1, not %d", n)
			}
			for _, f := range []string{"idle-timeout", "write-timeout"} {
				if d := c.Duration(f); d <= 0 {
					return usagef("--%s must be positive, not %v", f, d)
				}
			}
			ak, err := archiveKey(c) // --archive-key (archivesig.go)
			if err != nil {
				return err
			}
			// --tmp-dir, --max-archive-size; the archive key checked over
			// the bytes parsed, before anything else (archiveopts.go).
			oo, _, err := archiveOpenOptions(c, ak)
			if err != nil {
				return err
			}
			// Bind before verifying: a busy address fails now, not after
			// minutes of verification. Nothing is answered before Serve.
			ln, err := serve.Listen(c.Context, c.String("addr"))
			if err != nil {
				return err
			}
			defer ln.Close()
			opts := []serve.Option{serve.WithOpenOptions(oo), serve.WithLogger(logger(c, e)), serve.WithMaxConnections(c.Int("max-connections")),
				serve.WithIdleTimeout(c.Duration("idle-timeout")), serve.WithWriteTimeout(c.Duration("write-timeout"))}
			scheme := "http"
			if tlsConfig != nil {
				opts, scheme = append(opts, serve.WithTLSConfig(tlsConfig)), "https"
			}
			bars := newProgress(e.stderr, c.Bool("quiet"))
			s, err := serve.Open(c.Context, path, append(opts, serve.WithProgress(func(ev progress.Event) {
				ev.Phase = "verify" // the blobs are read to be verified, not moved
				bars.event(ev)
			}))...)
			bars.finish()
			if err != nil {
				return err
			}
			defer s.Close()
			host := ln.Addr().String()
			b := s.Bundle()
			out := serveOutput{Archive: path, Address: host, URL: scheme + "://" + host, Bundle: b.Bundle.Name, Version: b.Bundle.Version,
				Served: s.Served(host), Repositories: s.Repositories(), Warnings: s.Warnings()}
			if m := c.String("mapping"); m != "" {
				if err := s.Mapping(host).WriteFile(m); err != nil {
					return err
				}
				out.MappingFile = m
			}
			if e.format == "json" {
				if err := writeJSON(e.stdout, out); err != nil {
					return err
				}
			} else if !c.Bool("quiet") {
				printServe(e, out)
			}
			if err := s.Serve(c.Context, ln); err != nil {
				if e.format == "json" {
					return reportedError{err} // stdout already holds the document
				}
				return err
			}
			return nil
		},
	}
}

func printServe(e *env, o serveOutput) {
	w := e.stdout
	how := "plain HTTP"
	if strings.HasPrefix(o.URL, "https:") {
		how = "TLS"
	}
	fmt.Fprintf(w, "serving     %s %s from %s, read-only, at %s (%s)\n", o.Bundle, o.Version, o.Archive, o.URL, how)
	fmt.Fprintf(w, "bundle      %s\n", o.Reference)
	fmt.Fprintf(w, "            %s\n", o.DigestReference)
	for _, ob := range o.OtherBundles {
		fmt.Fprintf(w, "bundle      %s\n", ob)
	}
	imgs := append([]serve.ServedImage(nil), o.Images...)
	sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].Role > imgs[j].Role })
	for _, img := range imgs {
		fmt.Fprintf(w, "  %-10s %-12s %s\n", img.Role, img.Name, img.Served)
	}
	if o.MappingFile != "" {
		fmt.Fprintf(w, "mapping     %s\n", o.MappingFile)
	}
	for _, warn := range o.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", warn)
	}
	if how == "TLS" {
		fmt.Fprintf(w, "clients must trust the CA of the served certificate; stop with Ctrl-C\n")
		return
	}
	fmt.Fprintf(w, "clients need plain HTTP for this address (e.g. skopeo --src-tls-verify=false, crane --insecure), or serve with --tls-cert and --tls-key; stop with Ctrl-C\n")
}
