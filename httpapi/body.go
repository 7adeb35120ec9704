package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
)

// Request bodies are read as bytes arrive, never sized by what the client declares: the
// buffer starts at most bodyStartBytes and doubles as the body fills it, up to the body
// limit. Every byte of buffer capacity is reserved in the server-wide inbound budget
// (Options.InboundBudget, shared with the WebSocket transports) for as long as the request
// is served; when the budget is spent the request is refused at once with 503
// service_unavailable and Retry-After: 1 rather than made to wait, so a flood of slow bodies
// cannot queue work behind it. The HTTP server's read timeout closes a body that stops
// arriving (408 when the handler is still there to answer).
const bodyStartBytes = 16 << 10

// bodyHold counts the budget bytes one request's body holds; released when it is served.
type bodyHold struct {
	mu sync.Mutex
	n  int64
}

type bodyHoldKey struct{}

// holdBodies gives each request a bodyHold and releases what its body reserved once the
// request is served (the handlers keep the body until then).
func (a *api) holdBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r) // nothing to read, nothing to hold
			return
		}
		h := &bodyHold{}
		defer func() {
			h.mu.Lock()
			n := h.n
			h.n = 0
			h.mu.Unlock()
			a.budget.Release(n)
		}()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyHoldKey{}, h)))
	})
}

// reserve reserves n more bytes for r's body and reports whether they fit the budget.
func (a *api) reserve(r *http.Request, n int64) bool {
	if !a.budget.TryReserve(n) {
		return false
	}
	h, _ := r.Context().Value(bodyHoldKey{}).(*bodyHold)
	if h == nil {
		// Not behind holdBodies (a programming error): nothing would release it.
		a.budget.Release(n)
		return true
	}
	h.mu.Lock()
	h.n += n
	h.mu.Unlock()
	return true
}

// readBody reads the whole body once, as it arrives: one over the limit is 413
// payload_too_large (by Content-Length before reading anything), one shorter than its
// Content-Length (the client hung up) 400, one that stopped arriving until the read timeout
// 408, and one the inbound budget has no room for 503.
func (a *api) readBody(r *http.Request) ([]byte, *apiError) {
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, nil
	}
	if r.ContentLength > a.max {
		return nil, tooLarge("Request body is %d bytes, the limit is %d", r.ContentLength, a.max)
	}
	size := min(int64(bodyStartBytes), a.max+1) // +1: room to see a body over the limit
	if r.ContentLength >= 0 {
		size = min(size, r.ContentLength+1) // +1: room to see the end of the body
	}
	if !a.reserve(r, size) {
		return nil, errBusy
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > a.max {
				return nil, tooLarge("Request body is larger than the limit of %d bytes", a.max)
			}
			grown := min(2*int64(cap(buf)), a.max+1)
			if r.ContentLength >= 0 {
				grown = min(grown, r.ContentLength+1)
			}
			if grown <= int64(cap(buf)) {
				grown = int64(cap(buf)) + 1
			}
			if !a.reserve(r, grown-int64(cap(buf))) {
				return nil, errBusy
			}
			next := make([]byte, len(buf), grown)
			copy(next, buf)
			buf = next
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > a.max {
			return nil, tooLarge("Request body is larger than the limit of %d bytes", a.max)
		}
		if r.ContentLength >= 0 && int64(len(buf)) > r.ContentLength {
			return nil, badRequest("Request body is longer than its Content-Length %d", r.ContentLength)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			var ne net.Error
			switch {
			case errors.As(err, &mbe):
				return nil, tooLarge("Request body is larger than the limit of %d bytes", mbe.Limit)
			case errors.As(err, &ne) && ne.Timeout():
				return nil, &apiError{http.StatusRequestTimeout, "request_timeout", "The request body did not arrive within the read timeout"}
			}
			return nil, badRequest("Could not read the request body (truncated?): %v", err)
		}
	}
	if r.ContentLength >= 0 && int64(len(buf)) != r.ContentLength {
		return nil, badRequest("Request body is %d bytes but Content-Length is %d", len(buf), r.ContentLength)
	}
	return buf, nil
}

// errBusy answers a request the inbound budget has no room for.
var errBusy = &apiError{http.StatusServiceUnavailable, "service_unavailable", "The server holds as much incoming data as it may (max_inbound_buffer_mb): retry later"}
