package harness

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// Counts is a snapshot of the requests a Registry has served since it started
// or since the last ResetCounts. Apart from Requests, Unauthorized and
// BlobUploadBytes, a request is counted only if the registry answered it with
// a status below 400. Requests answered by a WithMiddleware middleware
// without reaching the registry are not counted at all.
type Counts struct {
	// Requests is the number of requests that reached the registry.
	Requests int64
	// Unauthorized is the number of requests answered 401.
	Unauthorized int64
	// BlobUploadStarts counts POST /v2/<name>/blobs/uploads/ that opened an
	// upload session (202), including cross-repository mount attempts that
	// fell back to an upload.
	BlobUploadStarts int64
	// BlobMounts counts POST /v2/<name>/blobs/uploads/?mount=... that
	// mounted the blob from another repository (201).
	BlobMounts int64
	// BlobUploadsCompleted counts PUT /v2/<name>/blobs/uploads/<id> that
	// committed a blob (201).
	BlobUploadsCompleted int64
	// BlobUploadBytes is the number of body bytes the registry read from
	// PATCH and PUT requests on /v2/<name>/blobs/uploads/, whatever the
	// outcome.
	BlobUploadBytes int64
	// BlobHeads and BlobGets count HEAD and GET /v2/<name>/blobs/<digest>
	// that found the blob; BlobProbes counts every such HEAD, whatever the
	// answer (a client asking whether to upload).
	BlobHeads, BlobGets int64
	BlobProbes          int64
	// ManifestPuts, ManifestHeads and ManifestGets count PUT, HEAD and GET
	// /v2/<name>/manifests/<reference>.
	ManifestPuts, ManifestHeads, ManifestGets int64
	// TagLists counts GET /v2/<name>/tags/list.
	TagLists int64
	// Catalogs counts GET /v2/_catalog.
	Catalogs int64
	// TokensIssued counts tokens handed out by the token server
	// (WithTokenAuth only).
	TokensIssued int64
}

// Counts returns a snapshot of the registry's request counters.
func (r *Registry) Counts() Counts { return r.counter.snapshot() }

// ResetCounts sets all request counters to zero.
func (r *Registry) ResetCounts() { r.counter.reset() }

type counter struct {
	requests, unauthorized                    atomic.Int64
	uploadStarts, mounts, uploadsDone         atomic.Int64
	uploadBytes                               atomic.Int64
	blobHeads, blobGets, blobProbes           atomic.Int64
	manifestPuts, manifestHeads, manifestGets atomic.Int64
	tagLists, catalogs                        atomic.Int64
	tokensIssued                              atomic.Int64
}

func (c *counter) all() []*atomic.Int64 {
	return []*atomic.Int64{
		&c.requests, &c.unauthorized, &c.uploadStarts, &c.mounts, &c.uploadsDone,
		&c.uploadBytes, &c.blobHeads, &c.blobGets, &c.blobProbes, &c.manifestPuts, &c.manifestHeads,
		&c.manifestGets, &c.tagLists, &c.catalogs, &c.tokensIssued,
	}
}

func (c *counter) reset() {
	for _, v := range c.all() {
		v.Store(0)
	}
}

func (c *counter) snapshot() Counts {
	return Counts{
		Requests:             c.requests.Load(),
		Unauthorized:         c.unauthorized.Load(),
		BlobUploadStarts:     c.uploadStarts.Load(),
		BlobMounts:           c.mounts.Load(),
		BlobUploadsCompleted: c.uploadsDone.Load(),
		BlobUploadBytes:      c.uploadBytes.Load(),
		BlobHeads:            c.blobHeads.Load(),
		BlobGets:             c.blobGets.Load(),
		BlobProbes:           c.blobProbes.Load(),
		ManifestPuts:         c.manifestPuts.Load(),
		ManifestHeads:        c.manifestHeads.Load(),
		ManifestGets:         c.manifestGets.Load(),
		TagLists:             c.tagLists.Load(),
		Catalogs:             c.catalogs.Load(),
		TokensIssued:         c.tokensIssued.Load(),
	}
}

// route classifies a registry API request path.
type route int

const (
	routeOther route = iota
	routeCatalog
	routeUpload // /v2/<name>/blobs/uploads/...
	routeBlob
	routeManifest
	routeTags
)

func classify(path string) route {
	p, ok := strings.CutPrefix(path, "/v2/")
	if !ok || p == "" {
		return routeOther
	}
	switch {
	case p == "_catalog":
		return routeCatalog
	case strings.HasSuffix(p, "/tags/list"):
		return routeTags
	case strings.Contains(p, "/blobs/uploads/") || strings.HasSuffix(p, "/blobs/uploads"):
		return routeUpload
	case strings.Contains(p, "/blobs/"):
		return routeBlob
	case strings.Contains(p, "/manifests/"):
		return routeManifest
	}
	return routeOther
}

func (c *counter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		rt := classify(r.URL.Path)
		if rt == routeUpload && (r.Method == http.MethodPatch || r.Method == http.MethodPut) && r.Body != nil {
			r.Body = &countingBody{ReadCloser: r.Body, n: &c.uploadBytes}
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusUnauthorized {
			c.unauthorized.Add(1)
		}
		if rt == routeBlob && r.Method == http.MethodHead {
			c.blobProbes.Add(1)
		}
		if status >= 400 {
			return
		}
		switch rt {
		case routeCatalog:
			c.catalogs.Add(1)
		case routeTags:
			c.tagLists.Add(1)
		case routeUpload:
			switch r.Method {
			case http.MethodPost:
				if status == http.StatusCreated {
					c.mounts.Add(1)
				} else {
					c.uploadStarts.Add(1)
				}
			case http.MethodPut:
				c.uploadsDone.Add(1)
			}
		case routeBlob:
			switch r.Method {
			case http.MethodHead:
				c.blobHeads.Add(1)
			case http.MethodGet:
				c.blobGets.Add(1)
			}
		case routeManifest:
			switch r.Method {
			case http.MethodPut:
				c.manifestPuts.Add(1)
			case http.MethodHead:
				c.manifestHeads.Add(1)
			case http.MethodGet:
				c.manifestGets.Add(1)
			}
		}
	})
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// statusWriter records the status code sent by the wrapped handler.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
