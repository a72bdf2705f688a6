// Command cnab-airgap carries CNAB bundles across air gaps: export a bundle
// and every image it references into one OCI image layout tarball, then
// verify and import it into a disconnected registry.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
