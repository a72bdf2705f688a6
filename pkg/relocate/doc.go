// Package relocate decides where a bundle's images live after an import and
// records it: the images a bundle.json references (read without ever
// re-serializing bundle.json), naming strategies that map each original
// reference to a repository at the target, and the CNAB-103
// relocation-mapping.json file (a flat JSON object from the exact `image`
// strings of bundle.json to digest-pinned relocated references).
package relocate
