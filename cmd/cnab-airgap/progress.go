package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
)

// bars turns the library's progress events into what an operator sees on
// standard error:
//
//   - on a terminal, one bar per phase (plan, blobs, manifests, signatures,
//     tags) with bytes or items, rate and ETA; when a phase ends its bar is
//     replaced by a one-line summary;
//   - otherwise, no control characters at all: one plain line per image
//     (resolved at export, pushed at import) and the same one-line summary
//     per phase;
//   - with --quiet, nothing.
//
// Totals are what the library announces (each deduplicated blob once);
// skipped and mounted items count as done; an item's bytes are credited at
// most up to its size, so a bar never passes its total, and the value
// shown never decreases.
type bars struct {
	w     io.Writer
	quiet bool
	tty   bool
	mu    sync.Mutex
	order []*phase
	byKey map[progress.Phase]*phase
	cur   *phase
	done  bool
}

// phase is the state of one phase.
type phase struct {
	name     progress.Phase
	start    time.Time
	total    int64 // announced bytes (0: a phase counted in items)
	count    int   // announced items
	hasTotal bool
	items    map[string]*item
	bytes    int64 // bytes credited to items, each at most its size
	finished int   // items done or skipped
	skipped  int
	skipB    int64
	shown    int64 // the value last given to the bar
	bar      *progressbar.ProgressBar
	closed   bool
}

type item struct {
	size, moved, credited int64
	finished              bool
}

func newProgress(w io.Writer, quiet bool) *bars {
	return &bars{w: w, quiet: quiet, tty: isTerminal(w), byKey: map[progress.Phase]*phase{}}
}

func (b *bars) phase(name progress.Phase) *phase {
	p, ok := b.byKey[name]
	if !ok {
		p = &phase{name: name, start: time.Now(), items: map[string]*item{}}
		b.byKey[name] = p
		b.order = append(b.order, p)
	}
	if b.cur != p {
		if b.cur != nil {
			b.close(b.cur)
		}
		b.cur = p
	}
	return p
}

func (p *phase) item(key string) *item {
	it, ok := p.items[key]
	if !ok {
		it = &item{}
		p.items[key] = it
	}
	return it
}

// credit raises an item's credited bytes to upto (capped at its size).
func (p *phase) credit(it *item, upto int64) {
	if it.size > 0 && upto > it.size {
		upto = it.size
	}
	if upto > it.credited {
		p.bytes += upto - it.credited
		it.credited = upto
	}
}

// value is what the bar shows: bytes for a byte phase, items otherwise,
// never above the announced total.
func (p *phase) value() int64 {
	if p.total > 0 {
		return min(p.bytes, p.total)
	}
	return int64(min(p.finished, max(p.count, 0)))
}

func (p *phase) max() int64 {
	if p.total > 0 {
		return p.total
	}
	return int64(p.count)
}

// event receives the library's events. It may be called concurrently.
func (b *bars) event(e progress.Event) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	p := b.phase(e.Phase)
	if p.closed {
		return
	}
	switch e.State {
	case progress.StateTotal:
		p.total, p.count, p.hasTotal = e.Total, e.Count, true
		if b.tty && p.bar == nil && p.max() > 0 {
			p.bar = b.newBar(p)
		}
	case progress.StateStarted:
		if it := p.item(e.Item); e.Bytes > 0 && it.size == 0 {
			it.size = e.Bytes
		}
	case progress.StateActive:
		if it := p.item(e.Item); !it.finished {
			it.moved += e.Bytes
			p.credit(it, it.moved)
		}
	case progress.StateDone, progress.StateSkipped:
		if e.Item == "" {
			if e.State == progress.StateDone {
				b.close(p)
			}
			return
		}
		it := p.item(e.Item)
		if !it.finished {
			it.finished = true
			p.finished++
			if e.State == progress.StateSkipped {
				p.skipped++
				p.skipB += e.Bytes
			}
		}
		full := e.Bytes
		if full <= 0 {
			full = max(it.size, it.moved)
		}
		p.credit(it, full)
		if !b.tty && e.Image != "" {
			b.imageLine(e)
		}
	}
	if v := p.value(); v > p.shown {
		p.shown = v
		if p.bar != nil {
			_ = p.bar.Set64(v) // a terminal write; the work goes on whatever the screen shows
		}
	}
}

func (b *bars) newBar(p *phase) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-10s", p.name)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(65 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
	}
	if p.total > 0 {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionSetItsString(string(p.name)))
	}
	return progressbar.NewOptions64(p.max(), opts...)
}

// imageLine logs one image's completion without a terminal.
func (b *bars) imageLine(e progress.Event) {
	switch e.Phase {
	case progress.PhasePlan:
		fmt.Fprintf(b.w, "image      %s  %s  %s\n", e.Image, shortRef(e.Item), humanBytes(e.Bytes))
	case progress.PhaseManifests:
		note := "pushed"
		if e.State == progress.StateSkipped {
			note = "already present"
		}
		fmt.Fprintf(b.w, "image      %s -> %s  %s\n", e.Image, e.Item, note)
	default:
		fmt.Fprintf(b.w, "image      %s  %s  %s\n", e.Image, e.Phase, e.State)
	}
}

// close ends a phase: its bar is cleared and a summary line printed.
func (b *bars) close(p *phase) {
	if p.closed {
		return
	}
	p.closed = true
	if p.bar != nil {
		_ = p.bar.Exit() // terminal writes, as above
		_ = p.bar.Clear()
	}
	fmt.Fprintln(b.w, p.summary())
}

// summary is the one-line account of a phase. Numbers are exact so that
// scripts reading standard error can use them.
func (p *phase) summary() string {
	took := time.Since(p.start)
	state := "done"
	if p.hasTotal && p.value() < p.max() {
		state = "stopped"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-10s %s:", p.name, state)
	switch {
	case p.total > 0:
		fmt.Fprintf(&sb, " %d of %d items, %d of %d bytes (%s) in %s", min(p.finished, p.count), p.count, p.value(), p.total,
			humanBytes(p.total), took.Round(time.Millisecond))
		if s := took.Seconds(); s > 0 {
			fmt.Fprintf(&sb, ", %s/s", humanBytes(int64(float64(p.value())/s)))
		}
		if p.skipped > 0 {
			fmt.Fprintf(&sb, "; %d skipped (%d bytes already there)", p.skipped, p.skipB)
		}
	case p.hasTotal:
		fmt.Fprintf(&sb, " %d of %d items in %s", p.value(), p.count, took.Round(time.Millisecond))
		if p.skipped > 0 {
			fmt.Fprintf(&sb, "; %d already present", p.skipped)
		}
	default:
		fmt.Fprintf(&sb, " in %s", took.Round(time.Millisecond))
	}
	return sb.String()
}

// finish closes every open phase; a phase that did not reach its total is
// reported as stopped. It is safe to call more than once.
func (b *bars) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.quiet {
		return
	}
	open := append([]*phase(nil), b.order...)
	sort.SliceStable(open, func(i, j int) bool { return open[i].start.Before(open[j].start) })
	for _, p := range open {
		if !p.closed && (p.hasTotal || len(p.items) > 0 || p == b.cur) {
			b.close(p)
		}
	}
}

func shortRef(item string) string {
	if i := strings.Index(item, "@sha256:"); i >= 0 && len(item) >= i+20 {
		return item[i+1 : i+20]
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
