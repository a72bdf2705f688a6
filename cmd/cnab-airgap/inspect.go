package main

import (
	"fmt"
	"slices"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// inspectResult is the JSON form of inspect.
type inspectResult struct {
	archive.BundleID
	Reference   string                 `json:"reference,omitempty"`
	Format      string                 `json:"format"`
	Compression string                 `json:"compression,omitempty"`
	Parts       int                    `json:"parts,omitempty"`
	Images      []archive.ImageSummary `json:"images"`
	Blobs       int                    `json:"blobs"`
	Manifests   int                    `json:"manifests"`
	TotalBytes  int64                  `json:"totalBytes"`
	UniqueBytes int64                  `json:"uniqueBytes"`
	Extra       []inspectExtra         `json:"extra,omitempty"`
	Warnings    []string               `json:"warnings,omitempty"`
	// Bundles lists every bundle of an archive of several, the primary
	// (the fields above) first.
	Bundles []archive.BundleSummary `json:"bundles,omitempty"`
}

type inspectExtra struct {
	Role      string `json:"role"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Subject   string `json:"subject,omitempty"`
	// Signing artifacts (signing.go): what the subject is, the artifact
	// type, how it was found and where, and a cosign tag.
	SubjectLabel string `json:"subjectLabel,omitempty"`
	ArtifactType string `json:"artifactType,omitempty"`
	Via          string `json:"via,omitempty"`
	Repository   string `json:"repository,omitempty"`
	Tag          string `json:"tag,omitempty"`
	// Claims is what a signing artifact says of itself (signer, predicate
	// type, trust material), unverified.
	Claims *sigbundle.Description `json:"claims,omitempty"`
}

func inspectCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "list what an archive carries, without extracting it",
		ArgsUsage: "ARCHIVE",
		Flags:     archiveOptsFlags(), // archiveopts.go
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("inspect takes one archive")
			}
			asJSON, err := outputJSON(c)
			if err != nil {
				return err
			}
			b, _, err := loadArchive(c, nil) // --tmp-dir, --max-archive-size (archiveopts.go)
			if err != nil {
				return err
			}
			defer b.Close()
			r := inspectResult{BundleID: b.ID(), Reference: b.Reference,
				Blobs: len(b.Blobs), Manifests: len(b.Nodes), UniqueBytes: b.UniqueBytes(), Warnings: b.Warnings,
				Format: string(b.Format), Compression: b.Archive.Compressed}
			if p := b.Archive.Parts; p != nil {
				r.Parts = len(p.Parts)
			}
			for _, img := range b.Images {
				r.Images = append(r.Images, img.Summary())
				r.TotalBytes += img.Bytes
			}
			labels := map[digest.Digest]string{}
			var extra []ocispec.Descriptor
			for _, x := range b.All() { // every bundle's entries, each once
				if len(b.Others) > 0 {
					r.Bundles = append(r.Bundles, x.Summary())
				}
				for d, l := range x.Labels() {
					if _, ok := labels[d]; !ok {
						labels[d] = l
					}
				}
				for _, a := range x.Extra {
					if !slices.ContainsFunc(extra, func(y ocispec.Descriptor) bool { return y.Digest == a.Digest }) {
						extra = append(extra, a)
					}
				}
			}
			claims := map[digest.Digest]sigbundle.Description{}
			for _, x := range extra {
				ie := inspectExtra{Role: x.Annotations[layout.AnnotationRole], Digest: x.Digest.String(), MediaType: x.MediaType, Subject: x.Annotations[layout.AnnotationSubject],
					SubjectLabel: subjectLabel(labels, x), ArtifactType: x.ArtifactType,
					Via: x.Annotations[sigbundle.AnnotationVia], Repository: x.Annotations[sigbundle.AnnotationRepository], Tag: cosignTag(x)}
				if ie.Via != "" {
					if d := sigbundle.Describe(c.Context, b, x, layout.DefaultLimits.MaxMetadataBytes); d.Format != "" {
						ie.Claims, claims[x.Digest] = &d, d
					}
				}
				r.Extra = append(r.Extra, ie)
			}
			sort.Slice(r.Extra, func(i, j int) bool {
				return r.Extra[i].Subject+r.Extra[i].Digest < r.Extra[j].Subject+r.Extra[j].Digest
			})
			if asJSON {
				return writeJSON(e.stdout, r)
			}
			if c.Bool("quiet") { // the archive checked out; print nothing
				return nil
			}
			w := e.stdout
			fmt.Fprintf(w, "bundle      %s %s\n", r.Bundle, r.Version)
			if r.Reference != "" {
				fmt.Fprintf(w, "from        %s\n", r.Reference)
			}
			fmt.Fprintf(w, "bundle.json %s\n", r.BundleDigest)
			fmt.Fprintf(w, "index       %s\n", r.IndexDigest)
			form := r.Format
			if r.Compression != "" {
				form += ", " + r.Compression + " compressed"
			}
			if r.Parts > 0 {
				form += fmt.Sprintf(", split in %d parts", r.Parts)
			}
			fmt.Fprintf(w, "format      %s\n", form)
			fmt.Fprintf(w, "images:\n")
			for _, img := range r.Images {
				fmt.Fprintf(w, "  %-10s %-12s %s\n", img.Role, img.Name, img.Reference)
				fmt.Fprintf(w, "             %s %s %s", img.Digest, img.MediaType, humanBytes(img.Bytes))
				if len(img.Platforms) > 0 {
					fmt.Fprintf(w, " [%s]", joinComma(img.Platforms))
				}
				fmt.Fprintln(w)
			}
			for _, x := range r.Extra {
				if x.Via != "" { // signing artifacts are listed per subject below
					continue
				}
				fmt.Fprintf(w, "  %-10s %s %s subject %s\n", x.Role, x.Digest, x.MediaType, x.Subject)
			}
			printBundles(w, r.Bundles) // export.go
			for _, x := range b.All() {
				printSigningArtifacts(w, x, claims) // signing.go
			}
			fmt.Fprintf(w, "content     %d manifests, %d blobs, %s in images, %s unique\n", r.Manifests, r.Blobs, humanBytes(r.TotalBytes), humanBytes(r.UniqueBytes))
			for _, warn := range r.Warnings {
				fmt.Fprintf(e.stderr, "warning: %s\n", warn)
			}
			return nil
		},
	}
}
