package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// measure is what one timed step cost: wall time, the CPU time of the
// process that did it (user + system) and its peak resident set.
type measure struct {
	Wall   time.Duration
	CPU    time.Duration
	MaxRSS int64 // bytes
}

// add accumulates the steps of a multi-step phase: times add up, the peak
// resident set is the largest of the steps (they run one after another).
func (m measure) add(o measure) measure {
	return measure{Wall: m.Wall + o.Wall, CPU: m.CPU + o.CPU, MaxRSS: max(m.MaxRSS, o.MaxRSS)}
}

// runCmd runs one program to completion and measures it with the rusage
// the kernel reports for that child alone (wait4). Its standard output is
// returned; on failure the error carries the tail of its standard error.
//
// The peak resident set is taken from GNU time (/usr/bin/time) wrapped
// around the program: Go starts children with vfork, and Linux then counts
// the parent's own peak (this benchmark's registries and buffers) in the
// child's ru_maxrss. GNU time forks from a small process, so the peak it
// reports is the program's own. Without GNU time, ru_maxrss is used and is
// only an upper bound (see timeBin).
func runCmd(ctx context.Context, env []string, name string, args ...string) (measure, []byte, error) {
	var rssFile string
	if timeBin != "" {
		f, err := os.CreateTemp("", "bench-rss-")
		if err != nil {
			return measure{}, nil, err
		}
		rssFile = f.Name()
		f.Close()
		defer os.Remove(rssFile)
		args = append([]string{"-f", "%M", "-o", rssFile, name}, args...)
		name = timeBin
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	m := measure{Wall: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			m.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			m.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
		}
	}
	if rssFile != "" {
		if b, rerr := os.ReadFile(rssFile); rerr == nil {
			// The last line holds %M; earlier ones may report a failure.
			lines := strings.Fields(strings.TrimSpace(string(b)))
			if len(lines) > 0 {
				if kib, perr := strconv.ParseInt(lines[len(lines)-1], 10, 64); perr == nil {
					m.MaxRSS = kib * 1024
				}
			}
		}
	}
	if err != nil {
		tail := stderr.String()
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		return m, stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return m, stdout.Bytes(), nil
}

// timeBin is GNU time, used to measure each child's own peak RSS; "" when
// it is not installed (Debian package "time").
var timeBin = func() string {
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		return "/usr/bin/time"
	}
	return ""
}()
