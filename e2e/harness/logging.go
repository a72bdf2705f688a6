package harness

import (
	"io"
	"sync"

	"github.com/sirupsen/logrus"
)

// distribution logs through logrus' process-wide standard logger and offers
// no per-instance logger, so the harness points that logger at logSink once
// and fans writes out to the writers of the registries started with
// WithLogging. With none running, logs are discarded.
var (
	logOnce    sync.Once
	logMu      sync.Mutex
	logWriters = map[*Registry]io.Writer{}
)

type logSink struct{}

func (logSink) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	for _, w := range logWriters {
		_, _ = w.Write(p)
	}
	return len(p), nil
}

func acquireLogging(r *Registry, w io.Writer) {
	logOnce.Do(func() { logrus.SetOutput(logSink{}) })
	if w == nil {
		return
	}
	logMu.Lock()
	logWriters[r] = w
	logMu.Unlock()
}

func releaseLogging(r *Registry) {
	logMu.Lock()
	delete(logWriters, r)
	logMu.Unlock()
}
