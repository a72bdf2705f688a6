package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// result is one in-process run of the CLI.
type result struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return cliCtx(t, t.Context(), args...)
}

func cliCtx(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"cnab-airgap"}, args...), strings.NewReader(""), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// decode parses stdout as exactly one JSON document into v.
func (r result) decode(t *testing.T, command string, v any) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s exited %d:\n%s%s", command, r.code, r.stdout, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: stdout is not one JSON document: %v\n%s", command, err, r.stdout)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON document on stdout", command)
	}
}

// noControl fails if s holds terminal control characters.
func noControl(t *testing.T, what, s string) {
	t.Helper()
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }); i >= 0 {
		t.Fatalf("%s has a control character %q at %d:\n%q", what, s[i], i, s)
	}
}

var summaryRE = regexp.MustCompile(`(?m)^(\w+)\s+(done|stopped): (\d+) of (\d+) items(?:, (\d+) of (\d+) bytes)?`)

// summaries returns the phase summary lines of a run's standard error:
// phase -> [items done, items, bytes done, bytes].
func summaries(stderr string) map[string][4]int64 {
	out := map[string][4]int64{}
	// On a terminal a summary follows the carriage return that cleared its bar.
	for _, m := range summaryRE.FindAllStringSubmatch(strings.ReplaceAll(stderr, "\r", "\n"), -1) {
		var v [4]int64
		for i, s := range []string{m[3], m[4], m[5], m[6]} {
			v[i], _ = strconv.ParseInt(s, 10, 64)
		}
		out[m[1]] = v
	}
	return out
}

// Types holding the documented fields (docs/OUTPUT.md) the tests check.
type exportJSON struct {
	Bundle, Version, Reference, BundleDigest, IndexDigest string
	Images                                                []struct {
		Role, Name, Reference, Digest, MediaType, Source string
		Platforms                                        []string
		Bytes                                            int64
		Resolved                                         bool
	}
	Manifests, Blobs, StreamedBlobs                 int
	BlobBytes, FetchedBytes, ResumedBytes           int64
	Archive, ArchiveDigest, ChecksumFile            string
	ArchiveBytes                                    int64
	Compression, Format                             string
	DryRun                                          bool
	Duration                                        int64
	Warnings                                        []string
	Sparse, Base, Parts, Signatures, Notary, Absent json.RawMessage
}

type importJSON struct {
	Bundle, Version, BundleDigest, IndexDigest, BundleReference string
	Images                                                      []struct{ Role, Name, Reference, Relocated, Digest, MediaType string }
	Mapping                                                     map[string]string
	MappingFile                                                 string
	BlobsUploaded, BytesUploaded, BlobsSkipped, BytesSkipped    int64
	BlobsMounted, ManifestsPushed, ManifestsSkipped             int64
	DryRun                                                      bool
	Duration                                                    int64
	Warnings                                                    []string
	Signatures, Delta, Sparse, Omitted, Resigned                json.RawMessage
}

type inspectJSON struct {
	Bundle, Version, Reference, BundleDigest, IndexDigest string
	Compression                                           string
	Images                                                []struct {
		Role, Name, Reference, Digest, MediaType string
		Platforms                                []string
		Bytes                                    int64
		Resolved                                 bool
	}
	Blobs, Manifests        int
	TotalBytes, UniqueBytes int64
	Extra                   []struct{ Role, Digest, MediaType, Subject string }
	Warnings                []string
	Format                  string
	Sparse, Delta, Parts    json.RawMessage
	Signatures              json.RawMessage
}

type verifyJSON struct {
	Archive, Bundle, Version, BundleDigest, IndexDigest string
	Images, Manifests, Blobs                            int
	Bytes                                               int64
	OK                                                  bool
	Warnings                                            []string
	Signatures                                          json.RawMessage
	Relocation                                          *relocate.AuditReport
}

type errorJSON struct {
	Error    string
	ExitCode int
}

// The whole story through the CLI, with every JSON document checked
// against what is in the registries and in the archive.
func TestCLIRoundTripJSON(t *testing.T) {
	ctx := t.Context()
	src, err := harness.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := harness.StartRegistry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	pb, err := harness.SampleBundle(ctx, src, harness.SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archivePath := filepath.Join(dir, "bundle.tar")

	// export: global flags after the command, --output json anywhere.
	r := runCLI(t, "export", pb.Ref, "-o", archivePath, "--plain-http", src.Host, "--output", "json")
	var ex exportJSON
	r.decode(t, "export", &ex)
	if ex.IndexDigest != pb.Digest.String() || ex.BundleDigest != pb.BundleJSONDigest.String() || ex.Bundle != "sample-app" || ex.Version != "0.1.0" {
		t.Fatalf("export: %+v", ex)
	}
	if len(ex.Images) != len(pb.Images) {
		t.Fatalf("export lists %d images, the bundle has %d", len(ex.Images), len(pb.Images))
	}
	for _, img := range pb.Images {
		ref, err := name.ParseReference(img.Image, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		at, err := remote.Head(ref, remote.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range ex.Images {
			if e.Reference == img.Image {
				found = true
				if e.Digest != at.Digest.String() || e.Digest != img.ContentDigest.String() {
					t.Fatalf("export says %s is %s; the registry has %s", img.Image, e.Digest, at.Digest)
				}
			}
		}
		if !found {
			t.Fatalf("export does not list %s", img.Image)
		}
	}
	raw, err := os.ReadFile(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if ex.ArchiveDigest != "sha256:"+hex.EncodeToString(sum[:]) || ex.ArchiveBytes != int64(len(raw)) || ex.Archive != archivePath {
		t.Fatalf("export says %s (%d bytes), the file is %x (%d)", ex.ArchiveDigest, ex.ArchiveBytes, sum, len(raw))
	}
	b, err := archive.Load(ctx, archivePath, layout.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var blobBytes int64
	for _, s := range b.Blobs {
		blobBytes += s
	}
	fetched := blobBytes - int64(len(b.BundleJSON)) // manifests and bundle.json were already in memory
	b.Close()
	// The counts agree with what inspect and verify say of the archive.
	if ex.Manifests != len(b.Nodes) || ex.Blobs != len(b.Blobs) || ex.BlobBytes != b.UniqueBytes() || ex.FetchedBytes != fetched || ex.StreamedBlobs != len(b.Blobs)-1 {
		t.Fatalf("export counts %d manifests, %d blobs (%d streamed) / %d bytes / %d fetched; the archive holds %d, %d (%d) / %d / %d", ex.Manifests, ex.Blobs, ex.StreamedBlobs,
			ex.BlobBytes, ex.FetchedBytes, len(b.Nodes), len(b.Blobs), len(b.Blobs)-1, b.UniqueBytes(), fetched)
	}
	for _, im := range ex.Images {
		for _, ai := range b.Images {
			if ai.Desc.Digest.String() == im.Digest && ai.Bytes != im.Bytes {
				t.Errorf("export says image %s has %d bytes, the archive %d", im.Reference, im.Bytes, ai.Bytes)
			}
		}
	}
	// Without a terminal: no control characters, one line per image, and
	// a blobs total equal to the deduplicated bytes fetched.
	noControl(t, "export stderr", r.stderr)
	for _, img := range pb.Images {
		if !strings.Contains(r.stderr, "image      "+img.Image+"  "+img.ContentDigest.String()[:19]) {
			t.Fatalf("no line for %s on stderr:\n%s", img.Image, r.stderr)
		}
	}
	if s := summaries(r.stderr)["blobs"]; s[2] != fetched || s[3] != fetched || s[0] != s[1] {
		t.Fatalf("blobs summary %v, want %d of %d bytes:\n%s", s, fetched, fetched, r.stderr)
	}

	// inspect and verify agree with the archive.
	r = runCLI(t, "inspect", archivePath, "-O", "json")
	var in inspectJSON
	r.decode(t, "inspect", &in)
	if in.UniqueBytes != b.UniqueBytes() || in.Blobs != len(b.Blobs) || in.Manifests != len(b.Nodes) || len(in.Images) != len(pb.Images) || in.IndexDigest != pb.Digest.String() ||
		in.Format != "oci" || in.Compression != "" || len(in.Parts) != 0 {
		t.Fatalf("inspect: %+v", in)
	}
	for _, img := range in.Images {
		want, _ := pb.Image(img.Name)
		if img.Name == "0" {
			want, _ = pb.Image(harness.Invocation)
		}
		if img.Digest != want.ContentDigest.String() || img.Reference != want.Image {
			t.Fatalf("inspect: %s is %s, bundle says %s", img.Reference, img.Digest, want.ContentDigest)
		}
	}
	r = runCLI(t, "--output", "json", "verify", archivePath)
	var ve verifyJSON
	r.decode(t, "verify", &ve)
	if !ve.OK || ve.Blobs != len(b.Blobs) || ve.Bytes != blobBytes || ve.Images != len(pb.Images) {
		t.Fatalf("verify: %+v", ve)
	}
	noControl(t, "verify stderr", r.stderr)
	if s := summaries(r.stderr)["verify"]; s[2] != blobBytes || s[3] != blobBytes {
		t.Fatalf("verify summary %v, want %d bytes", s, blobBytes)
	}

	// import: flags after the archive; every relocated reference resolves.
	mapping := filepath.Join(dir, "relocation-mapping.json")
	src.Close() // the inside has no route to the source
	r = runCLI(t, "import", archivePath, "--target", dst.Host+"/airgap", "--mapping", mapping, "--plain-http", dst.Host, "--output", "json")
	var im importJSON
	r.decode(t, "import", &im)
	if im.BundleReference != dst.Host+"/airgap/bundles/sample-app:0.1.0" || im.IndexDigest != pb.Digest.String() || im.MappingFile != mapping {
		t.Fatalf("import: %+v", im)
	}
	if im.BytesUploaded != blobBytes || im.BlobsSkipped != 0 {
		t.Fatalf("import uploaded %d bytes, skipped %d blobs; the archive has %d bytes of blobs", im.BytesUploaded, im.BlobsSkipped, blobBytes)
	}
	onDisk, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	if len(onDisk) != len(pb.Images) || len(im.Images) != len(pb.Images) {
		t.Fatalf("mapping %v, images %v", onDisk, im.Images)
	}
	for _, img := range im.Images {
		if onDisk[img.Reference] != img.Relocated || im.Mapping[img.Reference] != img.Relocated {
			t.Fatalf("%s: JSON says %s, mapping file %s", img.Reference, img.Relocated, onDisk[img.Reference])
		}
		ref, err := name.ParseReference(img.Relocated, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		at, err := remote.Head(ref, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s: %v", img.Relocated, err)
		}
		if at.Digest.String() != img.Digest {
			t.Fatalf("%s resolves to %s, JSON says %s", img.Relocated, at.Digest, img.Digest)
		}
		if !strings.Contains(r.stderr, "image      "+img.Reference+" -> "+img.Relocated) {
			t.Fatalf("no line for %s on stderr:\n%s", img.Reference, r.stderr)
		}
	}
	noControl(t, "import stderr", r.stderr)
	if s := summaries(r.stderr)["blobs"]; s[2] != blobBytes || s[3] != blobBytes {
		t.Fatalf("import blobs summary %v, want %d of %d bytes:\n%s", s, blobBytes, blobBytes, r.stderr)
	}

	// A second import moves nothing; skipped blobs count as done.
	r = runCLI(t, "import", archivePath, "-t", dst.Host+"/airgap", "-m", mapping, "--plain-http", dst.Host, "--output", "json")
	r.decode(t, "import", &im)
	if im.BytesUploaded != 0 || im.BytesSkipped != blobBytes || im.ManifestsPushed != 0 {
		t.Fatalf("second import: %+v", im)
	}
	if s := summaries(r.stderr)["blobs"]; s[2] != blobBytes || s[3] != blobBytes {
		t.Fatalf("second import blobs summary %v, want %d of %d bytes", s, blobBytes, blobBytes)
	}

	// The relocation audit, then the same with a wrong mapping.
	r = runCLI(t, "verify", archivePath, "--target", dst.Host+"/airgap", "--mapping", mapping, "--plain-http", dst.Host, "--output", "json")
	r.decode(t, "verify", &ve)
	if !ve.OK || ve.Relocation == nil || !ve.Relocation.OK || len(ve.Relocation.Images) != len(pb.Images) || ve.Relocation.Blobs == 0 ||
		ve.Relocation.Bundle != dst.Host+"/airgap/bundles/sample-app:0.1.0" {
		t.Fatalf("relocation audit: %+v", ve.Relocation)
	}
	web := mustImage(t, pb, "web")
	db := mustImage(t, pb, "db")
	bad := relocate.Mapping{}
	for k, v := range onDisk {
		bad[k] = v
	}
	bad[web.Image] = onDisk[db.Image]
	badFile := filepath.Join(dir, "bad-mapping.json")
	if err := bad.WriteFile(badFile); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "verify", archivePath, "--target", dst.Host+"/airgap", "--mapping", badFile, "--plain-http", dst.Host, "--output", "json")
	if r.code != exitVerification {
		t.Fatalf("audit of a wrong mapping exited %d, want %d:\n%s", r.code, exitVerification, r.stderr)
	}
	r.code = 0
	r.decode(t, "verify", &ve)
	if ve.OK || ve.Relocation.OK || !strings.Contains(strings.Join(ve.Relocation.Problems, "\n"), "component web ("+web.Image+")") {
		t.Fatalf("audit of a wrong mapping: %+v", ve.Relocation)
	}
	r = runCLI(t, "verify", archivePath, "--target", dst.Host+"/airgap", "--mapping", badFile, "--plain-http", dst.Host)
	if r.code != exitVerification || !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stderr, "relocation does not verify") {
		t.Fatalf("text audit of a wrong mapping: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// --quiet: nothing but errors.
	r = runCLI(t, "-q", "import", archivePath, "-t", dst.Host+"/airgap", "-m", mapping, "--plain-http", dst.Host)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("quiet import printed:\n%q\n%q", r.stdout, r.stderr)
	}
}

func mustImage(t *testing.T, pb *harness.PushedBundle, n string) harness.BundleImage {
	t.Helper()
	img, ok := pb.Image(n)
	if !ok {
		t.Fatalf("no image %s", n)
	}
	return img
}

func TestExitCodesAndJSONErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"import", "--output", "json"}, exitUsage, "Required flag"},
		{[]string{"verify", "--output", "json"}, exitUsage, "verify takes one archive"},
		{[]string{"--output", "yaml", "version"}, exitUsage, "--output must be text or json"},
		{[]string{"export", "--output", "bundle.tar", "example.com/a:1"}, exitUsage, "--output must be text or json"},
		{[]string{"inspect", filepath.Join(dir, "missing.tar"), "--output", "json"}, exitFailure, "missing.tar"},
		{[]string{"completion", "tcsh"}, exitUsage, "unknown shell"},
	} {
		r := runCLI(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
			continue
		}
		if strings.Contains(strings.Join(tc.args, " "), "--output json") {
			var e errorJSON
			r.code = 0
			r.decode(t, "error", &e)
			if e.ExitCode != tc.code || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%v: JSON error %+v", tc.args, e)
			}
		}
	}

	// A corrupted archive is a verification failure (3).
	a := writeFixture(t)
	flipByte(t, a)
	r := runCLI(t, "verify", a, "--output", "json")
	if r.code != exitVerification {
		t.Fatalf("verify of a corrupted archive exited %d:\n%s", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "version", "--output", "json")
	var v versionOutput
	r.decode(t, "version", &v)
	if v.Version == "" || v.Commit == "" || !strings.HasPrefix(v.GoVersion, "go") || v.Module != "github.com/cnab-airgap/cnab-airgap" {
		t.Fatalf("version: %+v", v)
	}
	r = runCLI(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "cnab-airgap "+v.Version+" (commit "+v.Commit) {
		t.Fatalf("version: %q", r.stdout)
	}
}

// normalizeArgs moves global flags before the command and command flags
// before the arguments, leaving everything else alone.
func TestNormalizeArgs(t *testing.T) {
	app := newApp(&env{stdout: io.Discard, stderr: io.Discard})
	for _, tc := range []struct{ in, want string }{
		{"verify a.tar --output json", "--output json verify a.tar"},
		{"import a.tar --target r/p -q --plain-http r", "-q --plain-http r import --target r/p a.tar"},
		{"export ref -o - --jobs=2", "--jobs=2 export -o - ref"},
		{"--debug export --bundle-file b.json -o x.tar", "--debug export --bundle-file b.json -o x.tar"},
		{"verify -- -weird.tar", "verify -- -weird.tar"},
		{"help export", "help export"},
		{"nosuch --output json", "nosuch --output json"},
		{"import a.tar --naming flatten --bogus", "import --naming flatten --bogus a.tar"},
	} {
		got := strings.Join(normalizeArgs(app, append([]string{"cnab-airgap"}, strings.Fields(tc.in)...))[1:], " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, "completion", "bash")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	script := filepath.Join(dir, "cnab-airgap.bash")
	os.WriteFile(script, []byte(r.stdout), 0o644)
	os.WriteFile(filepath.Join(dir, "bundle.tar"), nil, 0o644)
	for _, tc := range []struct {
		words string
		want  string
	}{
		{"cnab-airgap ver", "verify version"},
		{"cnab-airgap import --nam", "--naming"},
		{"cnab-airgap import --naming ''", "bundle-repo preserve flatten"},
		{"cnab-airgap --output ''", "text json"},
		{"cnab-airgap verify bundle.tar --outp", "--output"},
		{"cnab-airgap completion ''", "bash zsh fish"},
		{"cnab-airgap inspect " + filepath.Join(dir, "bun"), filepath.Join(dir, "bundle.tar")},
	} {
		cmd := "source " + script + "; COMP_WORDS=(" + tc.words + "); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _cnab_airgap; echo \"${COMPREPLY[*]}\""
		out, err := execOutput("bash", "-c", cmd)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.words, err, out)
		}
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("completing %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
	// zsh and fish are not installed here: their scripts must at least name
	// every command and every flag of the tree.
	tree := completionTree(newApp(&env{stdout: io.Discard, stderr: io.Discard}))
	for _, shell := range []string{"zsh", "fish"} {
		r := runCLI(t, "completion", shell)
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		for _, c := range tree.commands {
			if !strings.Contains(r.stdout, c.name) {
				t.Errorf("%s script lacks command %s", shell, c.name)
			}
			for _, f := range c.flags {
				if !strings.Contains(r.stdout, f.long) {
					t.Errorf("%s script lacks %s --%s", shell, c.name, f.long)
				}
			}
		}
	}
}

// serve prints where to pull from, writes the mapping onto the served
// address, answers a real client and returns 0 when its context ends.
func TestServeCommand(t *testing.T) {
	archivePath := writeFixture(t)
	mapping := filepath.Join(t.TempDir(), "served-mapping.json")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		c := run(ctx, []string{"cnab-airgap", "serve", archivePath, "--addr", "127.0.0.1:0", "--mapping", mapping, "-O", "json"}, strings.NewReader(""), pw, &stderr)
		pw.Close()
		code <- c
	}()
	var out serveOutput
	if err := json.NewDecoder(pr).Decode(&out); err != nil {
		t.Fatalf("no JSON document: %v", err)
	}
	go io.Copy(io.Discard, pr)
	ref, err := name.ParseReference(out.Reference, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.DigestReference, "@"+desc.Digest.String()) || len(out.Images) != 2 || len(out.Repositories) != 3 {
		t.Fatalf("serve output %+v, bundle resolves to %s", out, desc.Digest)
	}
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range out.Images {
		if want := out.Address + "/bundles/app@" + img.Digest; m[img.Reference] != want {
			t.Fatalf("mapping sends %s to %s, want %s", img.Reference, m[img.Reference], want)
		}
		sref, err := name.ParseReference(img.Served, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := remote.Head(sref, remote.WithContext(ctx)); err != nil || d.Digest.String() != img.Digest {
			t.Fatalf("%s: %v %v", img.Served, d, err)
		}
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("serve exited %d:\n%s", c, stderr.String())
	}
	if !strings.Contains(stderr.String(), "verify     done: 10 of 10 items") {
		t.Fatalf("startup verification not reported:\n%s", stderr.String())
	}
}

// --help says which flags are required (urfave/cli enforces them without
// saying so): export's -o.
func TestHelpShowsRequiredFlags(t *testing.T) {
	r := runCLI(t, "export", "--help")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, line := range strings.Split(r.stdout+r.stderr, "\n") {
		if strings.Contains(line, "--archive PATH, -o PATH") {
			if !strings.HasSuffix(strings.TrimSpace(line), "(required)") {
				t.Fatalf("the -o line does not say it is required: %q", line)
			}
			return
		}
	}
	t.Fatalf("no -o line in export --help:\n%s%s", r.stdout, r.stderr)
}
