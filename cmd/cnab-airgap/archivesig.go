package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/cnab-airgap/cnab-airgap/pkg/export"
	"github.com/cnab-airgap/cnab-airgap/pkg/importer"
	"github.com/cnab-airgap/cnab-airgap/pkg/sigbundle"
)

// Archive signatures: export --sign-key signs the archive file as `cosign
// sign-blob --key` does (ARCHIVE.sig); verify and import --archive-key
// check it first. The private key's passphrase comes from COSIGN_PASSWORD,
// as for cosign, never from a flag.

func exportArchiveSigFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sign-key", Usage: "sign the archive with this private key `FILE` (cosign's encrypted key, passphrase from COSIGN_PASSWORD, or a PEM key) into ARCHIVE.sig, as `cosign sign-blob` does"},
	}
}

func archiveKeyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "archive-key", Usage: "first check the archive's signature (export --sign-key, cosign sign-blob) with this public key `FILE`"},
		&cli.StringFlag{Name: "archive-signature", Usage: "the signature `FILE` for --archive-key (default: ARCHIVE.sig)"},
	}
}

// exportArchiveSigner loads --sign-key.
func exportArchiveSigner(c *cli.Context) ([]export.Option, error) {
	f := c.String("sign-key")
	if f == "" {
		return nil, nil
	}
	if c.String("archive") == "-" {
		return nil, usagef("--sign-key needs an archive file: the signature is written beside it")
	}
	s, err := sigbundle.LoadPrivateKey(f, []byte(os.Getenv("COSIGN_PASSWORD")))
	if err != nil {
		return nil, usagef("--sign-key: %v", err)
	}
	if err := sigbundle.CheckArchiveSigner(s); err != nil {
		return nil, usagef("--sign-key: %v", err) // before any byte moves
	}
	return []export.Option{export.WithArchiveSigner(s)}, nil
}

// archiveKey reads --archive-key and --archive-signature.
func archiveKey(c *cli.Context) (*importer.ArchiveKey, error) {
	f := c.String("archive-key")
	if f == "" {
		if c.String("archive-signature") != "" {
			return nil, usagef("--archive-signature needs --archive-key")
		}
		return nil, nil
	}
	k, err := sigbundle.LoadPublicKey(f)
	if err != nil {
		return nil, usagef("--archive-key %s: %v", f, err)
	}
	return &importer.ArchiveKey{Key: k, Signature: c.String("archive-signature")}, nil
}
