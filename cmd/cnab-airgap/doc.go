// Command cnab-airgap carries CNAB bundles across air gaps: export a bundle
// and every image it references into one OCI image layout tarball, then
// verify and import it into a disconnected registry.
//
// Commands:
//
//	export      a bundle and every image it references into one archive
//	import      verify an archive and push it into a registry, writing relocation-mapping.json
//	inspect     list what an archive carries, without extracting it
//	verify      check an archive offline; with --target and --mapping, audit a relocation
//	inventory   list what a registry holds, for a delta export
//	serve       serve an archive read-only as an OCI registry
//	completion  print a bash, zsh or fish completion script
//	version     print the version and commit
//
// Results go to standard output (one JSON document with --output json, see
// docs/OUTPUT.md); progress, warnings and errors go to standard error. Exit
// codes: 0 success, 1 failure, 2 usage, 3 verification failed. The full
// reference, generated from the command tree, is in docs/cli.
package main
