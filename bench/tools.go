package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cnab-airgap/cnab-airgap/e2e/harness"
	"github.com/cnab-airgap/cnab-airgap/pkg/relocate"
)

// image is one image of a workload as the peers see it: the exact image
// string of bundle.json, its path and tag, and its digest.
type image struct {
	Ref    string // 127.0.0.1:PORT/bench/m/svc0:1.0
	Path   string // bench/m/svc0:1.0
	Digest string
}

// prepared is a workload pushed into its source registry.
type prepared struct {
	Name        string
	Src         *harness.Registry
	Bundle      *harness.PushedBundle
	Images      []image
	UniqueBytes int64 // every blob and manifest of the bundle, once
	Blobs       int
	// PeersReimport has the peers re-import too (cnab-airgap always does).
	PeersReimport bool
	// DropPeerTar deletes a peer's tar once unpacked for its import (set
	// only when nothing re-imports it), to need a copy less on disk.
	DropPeerTar bool
}

// outcome is what one tool did in one run of a workload.
type outcome struct {
	Steps        map[string]measure // "export", "export/pull", "import/untar", ...
	ArchiveBytes int64
	Uploaded     int64 // blob bytes the target registry received
	ReUploaded   int64 // blob bytes received during the re-import
	// Requests is every request the target registry served during the
	// tool's "import" and "reimport" (before the benchmark's own checks).
	Requests map[string]int64
}

// tool is one way of moving a bundle across: ours or a peer's.
type tool interface {
	name() string
	// export writes the bundle's images into dir and returns the archive
	// to carry (one file) and the steps it took.
	export(ctx context.Context, w *prepared, dir string, o *outcome) (archive string, err error)
	// importTo pushes the archive into target; phase is "import" or
	// "reimport".
	importTo(ctx context.Context, w *prepared, archive, dir string, target *harness.Registry, phase string, o *outcome) error
}

// ours runs cnab-airgap: the CLI binary when bin is set, else the library
// in a child process of this binary (see ours.go).
type ours struct {
	bin  string
	self string
	jobs int
}

func (ours) name() string { return "cnab-airgap" }

func (t ours) cmd(op string, args ...string) (env []string, prog string, argv []string) {
	if t.jobs > 0 {
		args = append([]string{"-jobs", strconv.Itoa(t.jobs)}, args...)
	}
	return []string{modeEnv + "=ours-" + op}, t.self, args
}

func (t ours) export(ctx context.Context, w *prepared, dir string, o *outcome) (string, error) {
	archive := filepath.Join(dir, "bundle.tar")
	var m measure
	var err error
	if t.bin != "" {
		args := []string{"--plain-http", w.Src.Host, "--quiet"}
		if t.jobs > 0 {
			args = append(args, "--jobs", strconv.Itoa(t.jobs))
		}
		m, _, err = runCmd(ctx, nil, t.bin, append(args, "export", "-o", archive, w.Bundle.Ref)...)
	} else {
		env, prog, argv := t.cmd("export", "-plain-http", w.Src.Host, "-o", archive, w.Bundle.Ref)
		m, _, err = runCmd(ctx, env, prog, argv...)
	}
	if err != nil {
		return "", err
	}
	st, err := os.Stat(archive)
	if err != nil {
		return "", err
	}
	o.Steps["export"] = m
	o.ArchiveBytes = st.Size()
	return archive, nil
}

func (t ours) importTo(ctx context.Context, w *prepared, archive, dir string, target *harness.Registry, phase string, o *outcome) error {
	mapping := filepath.Join(dir, phase+"-mapping.json")
	var m measure
	var err error
	if t.bin != "" {
		args := []string{"--plain-http", target.Host, "--quiet"}
		if t.jobs > 0 {
			args = append(args, "--jobs", strconv.Itoa(t.jobs))
		}
		m, _, err = runCmd(ctx, nil, t.bin, append(args, "import", "--target", target.Host+"/airgap", "--mapping", mapping, archive)...)
	} else {
		env, prog, argv := t.cmd("import", "-plain-http", target.Host, "-target", target.Host+"/airgap", "-mapping", mapping, archive)
		m, _, err = runCmd(ctx, env, prog, argv...)
	}
	if err != nil {
		return err
	}
	o.Steps[phase] = m
	o.Requests[phase] = target.Counts().Requests
	mp, err := relocate.ReadMapping(mapping)
	if err != nil {
		return err
	}
	for _, im := range w.Images {
		if err := checkDigest(ctx, target, mp[im.Ref], im.Digest); err != nil {
			return err
		}
	}
	return nil
}

// crane is go-containerregistry's path, run in a child process of this
// binary: pull every image into one OCI layout, tar it; untar, push.
type crane struct{ self string }

func (crane) name() string { return "crane" }

func (t crane) export(ctx context.Context, w *prepared, dir string, o *outcome) (string, error) {
	layoutDir := filepath.Join(dir, "layout")
	args := []string{"-dir", layoutDir}
	for _, im := range w.Images {
		args = append(args, im.Ref)
	}
	m, _, err := runCmd(ctx, []string{modeEnv + "=crane-export"}, t.self, args...)
	if err != nil {
		return "", err
	}
	o.Steps["export/pull"] = m
	return tarUp(ctx, layoutDir, dir, o)
}

func (t crane) importTo(ctx context.Context, w *prepared, archive, dir string, target *harness.Registry, phase string, o *outcome) error {
	layoutDir, err := untar(ctx, w, archive, dir, phase, o)
	if err != nil {
		return err
	}
	m, _, err := runCmd(ctx, []string{modeEnv + "=crane-import"}, t.self, "-dir", layoutDir, "-target", target.Host)
	if err != nil {
		return err
	}
	o.Steps[phase+"/push"] = m
	o.Requests[phase] = target.Counts().Requests
	return checkPeerTarget(ctx, w, target)
}

// skopeo copies each image with `skopeo copy --all --preserve-digests`
// into one shared `oci:` layout, tars it; untars, copies each image back.
type skopeo struct{ bin string }

func (skopeo) name() string { return "skopeo" }

func (t skopeo) export(ctx context.Context, w *prepared, dir string, o *outcome) (string, error) {
	layoutDir := filepath.Join(dir, "layout")
	var total measure
	for _, im := range w.Images {
		m, _, err := runCmd(ctx, nil, t.bin, "--insecure-policy", "copy", "--all", "--preserve-digests", "--quiet",
			"--src-tls-verify=false", "docker://"+im.Ref, "oci:"+layoutDir+":"+im.Path)
		if err != nil {
			return "", err
		}
		total = total.add(m)
	}
	o.Steps["export/pull"] = total
	return tarUp(ctx, layoutDir, dir, o)
}

func (t skopeo) importTo(ctx context.Context, w *prepared, archive, dir string, target *harness.Registry, phase string, o *outcome) error {
	layoutDir, err := untar(ctx, w, archive, dir, phase, o)
	if err != nil {
		return err
	}
	var total measure
	for _, im := range w.Images {
		m, _, err := runCmd(ctx, nil, t.bin, "--insecure-policy", "copy", "--all", "--preserve-digests", "--quiet",
			"--dest-tls-verify=false", "oci:"+layoutDir+":"+im.Path, "docker://"+target.Host+"/"+im.Path)
		if err != nil {
			return err
		}
		total = total.add(m)
	}
	o.Steps[phase+"/push"] = total
	o.Requests[phase] = target.Counts().Requests
	return checkPeerTarget(ctx, w, target)
}

// tarUp packs a peer's layout directory into one tar (the file an operator
// carries), removes the directory and records the step.
func tarUp(ctx context.Context, layoutDir, dir string, o *outcome) (string, error) {
	archive := filepath.Join(dir, "layout.tar")
	m, _, err := runCmd(ctx, nil, "tar", "-cf", archive, "-C", layoutDir, ".")
	if err != nil {
		return "", err
	}
	o.Steps["export/tar"] = m
	st, err := os.Stat(archive)
	if err != nil {
		return "", err
	}
	o.ArchiveBytes = st.Size()
	return archive, os.RemoveAll(layoutDir)
}

// untar unpacks a peer's tar into a fresh directory and records the step;
// with w.DropPeerTar it then deletes the tar (untimed).
func untar(ctx context.Context, w *prepared, archive, dir, phase string, o *outcome) (string, error) {
	out := filepath.Join(dir, phase+"-layout")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	m, _, err := runCmd(ctx, nil, "tar", "-xf", archive, "-C", out)
	if err != nil {
		return "", err
	}
	o.Steps[phase+"/untar"] = m
	if w.DropPeerTar {
		if err := os.Remove(archive); err != nil {
			return "", err
		}
	}
	return out, nil
}

// checkPeerTarget checks that every image is at its own path in target
// with its original digest.
func checkPeerTarget(ctx context.Context, w *prepared, target *harness.Registry) error {
	for _, im := range w.Images {
		if err := checkDigest(ctx, target, target.Host+"/"+im.Path, im.Digest); err != nil {
			return err
		}
	}
	return nil
}

func checkDigest(ctx context.Context, reg *harness.Registry, ref, want string) error {
	if ref == "" || !strings.HasPrefix(ref, reg.Host+"/") {
		return fmt.Errorf("image reference %q is not on the target %s", ref, reg.Host)
	}
	r, err := name.ParseReference(ref, reg.NameOptions()...)
	if err != nil {
		return err
	}
	d, err := remote.Head(r, append(reg.RemoteOptions(), remote.WithContext(ctx))...)
	if err != nil {
		return fmt.Errorf("target %s: %w", ref, err)
	}
	if d.Digest.String() != want {
		return fmt.Errorf("target %s is %s, want %s", ref, d.Digest, want)
	}
	return nil
}
