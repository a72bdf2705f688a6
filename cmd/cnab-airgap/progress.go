package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
)

// bars turns library progress events into one bar per phase on a terminal,
// or a plain line per finished item otherwise. Totals count each
// deduplicated blob once; skipped blobs count as done.
type bars struct {
	w     io.Writer
	quiet bool
	tty   bool
	mu    sync.Mutex
	bars  map[string]*progressbar.ProgressBar
	done  bool
}

func newProgress(w io.Writer, quiet bool) *bars {
	return &bars{w: w, quiet: quiet, tty: isTerminal(w), bars: map[string]*progressbar.ProgressBar{}}
}

func (b *bars) bar(name string, total int64, bytes bool) *progressbar.ProgressBar {
	if pb, ok := b.bars[name]; ok {
		return pb
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-9s", name)),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(b.w) }),
		progressbar.OptionSetVisibility(b.tty && !b.quiet),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	pb := progressbar.NewOptions64(total, opts...)
	b.bars[name] = pb
	return pb
}

func (b *bars) total(name string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar(name, n, true)
}

func (b *bars) add(name string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if pb, ok := b.bars[name]; ok {
		pb.Add64(n)
	}
}

func (b *bars) event(e progress.Event) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	name := string(e.Phase)
	switch e.State {
	case progress.StateTotal:
		if e.Phase == progress.PhaseBlobs {
			b.bar(name, e.Total, true)
		} else {
			b.bar(name, int64(e.Count), false)
		}
	case progress.StateActive:
		if pb, ok := b.bars[name]; ok {
			pb.Add64(e.Bytes)
		}
	case progress.StateSkipped:
		if pb, ok := b.bars[name]; ok {
			pb.Add64(e.Bytes)
		}
		if !b.tty {
			fmt.Fprintf(b.w, "%s %s present (%s)\n", name, short(e.Item), humanBytes(e.Bytes))
		}
	case progress.StateDone:
		if e.Phase != progress.PhaseBlobs {
			if pb, ok := b.bars[name]; ok {
				pb.Add64(1)
			}
		}
		if !b.tty && e.Item != "" {
			fmt.Fprintf(b.w, "%s %s done (%s)\n", name, short(e.Item), humanBytes(e.Bytes))
		}
	}
}

func (b *bars) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	for _, pb := range b.bars {
		if b.tty && !b.quiet && !pb.IsFinished() {
			pb.Exit()
			fmt.Fprintln(b.w)
		}
	}
}

func short(item string) string {
	if i := strings.Index(item, "sha256:"); i >= 0 && len(item) >= i+19 {
		return item[:i+19]
	}
	return item
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func joinComma(s []string) string { return strings.Join(s, ",") }

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
