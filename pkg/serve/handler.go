package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnab-airgap/cnab-airgap/internal/verify"
)

// Error codes of the distribution spec used in error bodies.
const (
	codeNameUnknown     = "NAME_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeUnsupported     = "UNSUPPORTED"
	codePaginationNum   = "PAGINATION_NUMBER_INVALID"
	codeNameInvalid     = "NAME_INVALID"
)

// maxPage caps the n parameter of the tag list and the catalog.
const maxPage = 1000

// MaxRanges is the most ranges a Range header may ask for. A request for
// more, or for ranges that overlap, is refused with 416 Range Not
// Satisfiable (RFC 9110 section 15.5.17), so a response is never larger
// than the blob plus the multipart headers of MaxRanges parts.
const MaxRanges = 16

// writeChunk is the most a single write to the connection carries; each
// write must complete within the write timeout.
const writeChunk = 32 << 10

// ServeHTTP implements the read-only subset of the OCI distribution API
// described in the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK, rc: http.NewResponseController(w), stall: s.o.writeTimeout}
	rec.extend()
	if r.ContentLength != 0 {
		// A body is never read: close the connection after the answer
		// rather than let the server drain up to 256 KiB of it with no
		// deadline.
		rec.Header().Set("Connection", "close")
	}
	defer func() {
		s.o.log.Debug("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery,
			"range", r.Header.Get("Range"), "status", rec.status, "bytes", rec.bytes,
			"duration", time.Since(start), "remote", r.RemoteAddr)
	}()
	rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	s.route(rec, r)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/v2" || p == "/v2/" {
		if !readMethod(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		writeBody(w, r, []byte("{}"))
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		writeError(w, http.StatusNotFound, codeUnsupported, "not a distribution API path", p)
		return
	}
	if rest == "_catalog" {
		if readMethod(w, r) {
			s.catalog(w, r)
		}
		return
	}
	repo, kind, arg, ok := splitPath(rest)
	if !ok {
		writeError(w, http.StatusNotFound, codeUnsupported, "not a distribution API path", p)
		return
	}
	if kind == "blobs" && strings.HasPrefix(arg, "uploads") {
		writeError(w, http.StatusMethodNotAllowed, codeUnsupported, "this registry is read-only", nil)
		return
	}
	if !readMethod(w, r) {
		return
	}
	if _, known := s.tags[repo]; !known {
		writeError(w, http.StatusNotFound, codeNameUnknown, "repository name not known to registry", map[string]string{"name": repo})
		return
	}
	switch kind {
	case "manifests":
		s.manifest(w, r, repo, arg)
	case "blobs":
		s.blob(w, r, arg)
	case "tags":
		s.tagList(w, r, repo)
	case "referrers":
		s.referrerList(w, r, arg)
	}
}

// splitPath splits "<name>/<kind>/<arg>" where name may contain slashes.
func splitPath(rest string) (repo, kind, arg string, ok bool) {
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok && name != "" {
		return name, "tags", "", true
	}
	for _, k := range []string{"manifests", "blobs", "referrers"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i > 0 {
			arg := rest[i+len(k)+2:]
			if k == "blobs" && strings.Contains(rest[i:], "/blobs/uploads") {
				return rest[:i], k, "uploads", true
			}
			if arg == "" || strings.Contains(arg, "/") {
				return "", "", "", false
			}
			return rest[:i], k, arg, true
		}
	}
	return "", "", "", false
}

// readMethod allows GET and HEAD and refuses every other method.
func readMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, codeUnsupported, "this registry is read-only", nil)
	return false
}

func (s *Server) manifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	d := digest.Digest(ref)
	if strings.Contains(ref, ":") {
		if err := d.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, codeDigestInvalid, "invalid digest", ref)
			return
		}
	} else {
		t, ok := s.tags[repo][ref]
		if !ok {
			writeError(w, http.StatusNotFound, codeManifestUnknown, "manifest unknown", map[string]string{"tag": ref})
			return
		}
		d = t
	}
	n, ok := s.manifests[d]
	if !ok {
		writeError(w, http.StatusNotFound, codeManifestUnknown, "manifest unknown", map[string]string{"digest": d.String()})
		return
	}
	h := w.Header()
	h.Set("Content-Type", n.Desc.MediaType)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Content-Length", strconv.Itoa(len(n.Raw)))
	writeBody(w, r, n.Raw)
}

func (s *Server) blob(w http.ResponseWriter, r *http.Request, ref string) {
	d := digest.Digest(ref)
	if err := d.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, codeDigestInvalid, "invalid digest", ref)
		return
	}
	h := w.Header()
	if n, ok := s.manifests[d]; ok { // manifests are blobs too
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Etag", `"`+d.String()+`"`)
		if rangesRefused(w, r, int64(len(n.Raw))) {
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(n.Raw))
		return
	}
	size, ok := s.blobs[d]
	if !ok {
		writeError(w, http.StatusNotFound, codeBlobUnknown, "blob unknown to registry", map[string]string{"digest": d.String()})
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	if rangesRefused(w, r, size) {
		return
	}
	if r.Header.Get("Range") != "" || r.Method == http.MethodHead {
		// Content verified at startup; a range cannot be verified alone.
		sec, err := s.b.Archive.Section(d)
		if err != nil {
			s.o.log.Error("serving blob", "digest", d, "error", err)
			writeError(w, http.StatusInternalServerError, codeBlobUnknown, "blob unreadable", d.String())
			return
		}
		http.ServeContent(w, r, "", time.Time{}, sec)
		return
	}
	// A whole blob is verified again as it streams; its last chunk is held
	// back until the digest checks out, so a mismatch (the archive changed
	// since startup) never delivers a complete body.
	vr, err := s.b.Archive.Blob(d, size)
	if err != nil {
		s.o.log.Error("serving blob", "digest", d, "error", err)
		writeError(w, http.StatusInternalServerError, codeBlobUnknown, "blob unreadable", d.String())
		return
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	hw := &holdBack{w: w}
	if _, err := io.Copy(hw, vr); err != nil {
		if errors.Is(err, verify.ErrDigestMismatch) || errors.Is(err, verify.ErrSizeMismatch) {
			s.o.log.Error("blob changed since it was verified at startup; connection cut", "digest", d, "error", err)
		} else {
			s.o.log.Debug("blob transfer interrupted", "digest", d, "error", err)
		}
		panic(http.ErrAbortHandler)
	}
	if err := hw.flush(); err != nil {
		s.o.log.Debug("blob transfer interrupted", "digest", d, "error", err)
	}
}

// rangesRefused answers 416 and reports true when the Range header of r
// asks for more than MaxRanges ranges or for ranges that overlap, over
// content of size bytes. Other Range headers, valid or not, are left to
// http.ServeContent (which answers a malformed one with 416 too).
func rangesRefused(w http.ResponseWriter, r *http.Request, size int64) bool {
	v := r.Header.Get("Range")
	if v == "" || r.Method != http.MethodGet {
		return false
	}
	why := checkRanges(v, size)
	if why == "" {
		return false
	}
	w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
	writeError(w, http.StatusRequestedRangeNotSatisfiable, codeUnsupported, why, nil)
	return true
}

// checkRanges returns why a Range header is refused ("" if it is not): more
// than MaxRanges ranges, or ranges that overlap once resolved against size
// the way http.ServeContent resolves them. A header it cannot parse is not
// refused here.
func checkRanges(v string, size int64) string {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return ""
	}
	type span struct{ start, end int64 } // end exclusive
	var spans []span
	n := 0
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n++; n > MaxRanges {
			return fmt.Sprintf("more than %d ranges in one request", MaxRanges)
		}
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return ""
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var sp span
		if first == "" { // suffix: the last N bytes
			k, err := strconv.ParseInt(last, 10, 64)
			if err != nil || k < 0 {
				return ""
			}
			sp = span{size - min(k, size), size}
		} else {
			a, err := strconv.ParseInt(first, 10, 64)
			if err != nil || a < 0 {
				return ""
			}
			b := size - 1
			if last != "" {
				if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
					return ""
				}
				b = min(b, size-1)
			}
			if a >= size {
				continue // not satisfiable: ServeContent drops it
			}
			sp = span{a, b + 1}
		}
		spans = append(spans, sp)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return "overlapping ranges"
		}
	}
	return ""
}

// holdBack writes everything but the latest chunk it was given; flush
// writes that chunk.
type holdBack struct {
	w       io.Writer
	pending []byte
}

func (h *holdBack) Write(p []byte) (int, error) {
	if len(h.pending) > 0 {
		if _, err := h.w.Write(h.pending); err != nil {
			return 0, err
		}
	}
	h.pending = append(h.pending[:0], p...)
	return len(p), nil
}

func (h *holdBack) flush() error {
	if len(h.pending) == 0 {
		return nil
	}
	_, err := h.w.Write(h.pending)
	h.pending = h.pending[:0]
	return err
}

// page applies the n and last parameters to a sorted list and sets the
// Link header when more entries follow.
func page(w http.ResponseWriter, r *http.Request, all []string) ([]string, bool) {
	q := r.URL.Query()
	n := len(all)
	if v := q.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			writeError(w, http.StatusBadRequest, codePaginationNum, "invalid number of results requested", v)
			return nil, false
		}
		n = min(i, maxPage)
	}
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	if n < len(all) {
		if n > 0 {
			next := url.URL{Path: r.URL.Path, RawQuery: url.Values{"n": {strconv.Itoa(n)}, "last": {all[n-1]}}.Encode()}
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, next.String()))
		}
		all = all[:n]
	}
	return all, true
}

func (s *Server) tagList(w http.ResponseWriter, r *http.Request, repo string) {
	tags := make([]string, 0, len(s.tags[repo]))
	for t := range s.tags[repo] {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	tags, ok := page(w, r, tags)
	if !ok {
		return
	}
	writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request) {
	repos, ok := page(w, r, s.Repositories())
	if !ok {
		return
	}
	writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

func (s *Server) referrerList(w http.ResponseWriter, r *http.Request, ref string) {
	d := digest.Digest(ref)
	if err := d.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, codeDigestInvalid, "invalid digest", ref)
		return
	}
	list := []ocispec.Descriptor{}
	want := r.URL.Query().Get("artifactType")
	for _, desc := range s.referrers[d] {
		if want == "" || desc.ArtifactType == want {
			list = append(list, desc)
		}
	}
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: list}
	idx.SchemaVersion = 2
	writeJSON(w, r, ocispec.MediaTypeImageIndex, idx)
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeUnsupported, err.Error(), nil)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	writeBody(w, r, b)
}

// writeBody writes b, or only the headers for HEAD.
func writeBody(w http.ResponseWriter, r *http.Request, b []byte) {
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// writeError writes a distribution-spec error body.
func writeError(w http.ResponseWriter, status int, code, message string, detail any) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	b, _ := json.Marshal(struct {
		Errors []apiError `json:"errors"`
	}{[]apiError{{code, message, detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// recorder remembers the status and size of a response for the log, and
// makes the write timeout a stall timeout: before each write of at most
// writeChunk bytes it moves the connection's write deadline to now plus
// the timeout.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	rc          *http.ResponseController
	stall       time.Duration
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) extend() {
	// Not supported only by writers without a connection (tests with
	// httptest.ResponseRecorder); nothing to protect there.
	_ = r.rc.SetWriteDeadline(time.Now().Add(r.stall))
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status = code
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), writeChunk)]
		r.extend()
		n, err := r.ResponseWriter.Write(chunk)
		written += n
		r.bytes += int64(n)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
