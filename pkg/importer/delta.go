package importer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/cnab-airgap/cnab-airgap/pkg/archive"
	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
	"github.com/cnab-airgap/cnab-airgap/pkg/layout"
)

// ErrDeltaBaseMissing: a delta archive leaves blobs to its base, and the
// target does not hold them.
var ErrDeltaBaseMissing = errdefs.New("delta base missing at the target", errdefs.ErrNotFound, errdefs.ErrInvalidInput)

// checkDelta makes sure, before anything is pushed, that every blob a delta
// archive does not carry is at the target: in each repository that needs
// it, or in another repository of this import it can be mounted from. It
// records where each comes from (p.delta) and names every missing blob and
// the images that need it.
func checkDelta(ctx context.Context, o *options, b *archive.Bundle, p *pushPlan) error {
	if b.Base == nil || len(b.Omitted) == 0 {
		return nil
	}
	type key struct {
		repo string
		d    digest.Digest
	}
	var mu sync.Mutex
	have := map[key]bool{}
	probe := func(keys []key) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(o.Jobs)
		for _, k := range keys {
			g.Go(func() error {
				ok, err := p.stores[k.repo].Exists(gctx, content.BlobDescriptor(k.d, b.Omitted[k.d]))
				if err != nil {
					return fmt.Errorf("blob %s at %s: %w", k.d, k.repo, err)
				}
				mu.Lock()
				have[k] = ok
				mu.Unlock()
				return nil
			})
		}
		return g.Wait()
	}
	var need []key
	for _, r := range sortedKeys(p.repoBlobs) {
		for _, d := range sortedKeys(p.repoBlobs[r]) {
			if _, ok := b.Omitted[d]; ok {
				need = append(need, key{r, d})
			}
		}
	}
	if err := probe(need); err != nil {
		return err
	}
	// Where a repository lacks one, look in every other repository of the
	// import (an earlier import with other names, or this import's own).
	var more []key
	for _, k := range need {
		if !have[k] {
			for _, r := range sortedKeys(p.repos) {
				if _, asked := have[key{r, k.d}]; !asked {
					more = append(more, key{r, k.d})
					have[key{r, k.d}] = false // asked below
				}
			}
		}
	}
	if err := probe(more); err != nil {
		return err
	}
	p.delta = map[string]map[digest.Digest]string{}
	missing := map[digest.Digest]bool{}
	for _, k := range need {
		if p.delta[k.repo] == nil {
			p.delta[k.repo] = map[digest.Digest]string{}
		}
		if have[k] {
			p.delta[k.repo][k.d] = ""
			continue
		}
		src := ""
		for _, r := range sortedKeys(p.repos) {
			if have[key{r, k.d}] {
				src = r
				break
			}
		}
		if src == "" {
			missing[k.d] = true
			continue
		}
		p.delta[k.repo][k.d] = src
	}
	if len(missing) == 0 {
		return nil
	}
	users := map[digest.Digest][]string{}
	for _, e := range b.Images {
		for _, d := range e.Blobs {
			if missing[d] {
				users[d] = append(users[d], e.Label()+" ("+e.Ref+")")
			}
		}
	}
	var lines []string
	for d := range missing {
		u := users[d]
		sort.Strings(u)
		lines = append(lines, fmt.Sprintf("%s (%d bytes, %s)", d, b.Omitted[d], strings.Join(u, ", ")))
	}
	sort.Strings(lines)
	return fmt.Errorf("%w: this delta archive leaves %d of its blobs to its base (%s %s, %s), and the target %s holds none of these %d in any repository of this import (import the base first, or export without a base): %s",
		ErrDeltaBaseMissing, len(b.Omitted), b.Base.Kind, b.Base.Digest, b.Base.Name, targetOf(p), len(missing), strings.Join(lines, "; "))
}

func targetOf(p *pushPlan) string {
	for _, r := range sortedKeys(p.repos) {
		return p.repos[r].RegistryStr()
	}
	return ""
}

// pushOmitted handles a blob a delta archive does not carry: nothing to do
// where it is present, a cross-repository mount where checkDelta found it in
// another repository. It reports false for a blob the archive carries.
func (im *importer) pushOmitted(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	size, ok := im.b.Omitted[d]
	if !ok {
		return false, nil
	}
	src, known := im.p.delta[repo][d]
	if !known {
		return true, fmt.Errorf("%w: blob %s was not checked at %s", ErrDeltaBaseMissing, d, repo)
	}
	if src == "" {
		atomic.AddInt64(&im.res.BlobsSkipped, 1)
		atomic.AddInt64(&im.res.BytesSkipped, size)
		return true, nil
	}
	declined := fmt.Errorf("%w: %w: the delta archive does not carry blob %s and the target cannot take it from %s", ErrDeltaBaseMissing, layout.ErrBlobNotFound, d, src)
	m, ok := im.p.stores[repo].(content.Mounter)
	if !ok {
		return true, declined
	}
	if err := m.Mount(ctx, content.BlobDescriptor(d, size), im.p.repos[src].Name()); err != nil {
		if errors.Is(err, content.ErrUnsupported) {
			return true, declined
		}
		return true, err
	}
	atomic.AddInt64(&im.res.BlobsMounted, 1)
	return true, nil
}
