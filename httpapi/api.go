package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// Options tune the API. The zero value gives the defaults.
type Options struct {
	// Logger receives request errors and recovered panics. Default: no logging.
	Logger *zap.Logger
	// MaxBodyBytes caps a request body (413 over it). Default 10 MiB.
	MaxBodyBytes int64
	// Now is the clock for auth_timestamp checks, the backend event rate limit and uptime.
	// Default time.Now.
	Now func() time.Time
	// Metrics receives one observation per request and the 429s of the event rate limit.
	// Default: none.
	Metrics Metrics
	// Ready reports whether the node should get new clients; GET /ready answers 503
	// DRAINING while it returns false. Default: always ready.
	Ready func() bool
	// AppIDs are the apps GET /usage reports on. Default none (only node totals).
	AppIDs []string
}

// Metrics receives the API's counters. It is defined here, where it is consumed;
// *metrics.Metrics implements it. Methods must be cheap and safe for concurrent use.
type Metrics interface {
	// ObserveHTTP records one request: route is the chi route pattern (such as
	// /apps/{appID}/events, or "unmatched"), never the raw path.
	ObserveHTTP(route, method string, status int, d time.Duration)
	// RateLimited counts a publish of appID refused with 429 by MaxBackendEventsPerSecond.
	RateLimited(appID string)
}

type nopMetrics struct{}

func (nopMetrics) ObserveHTTP(string, string, int, time.Duration) {}
func (nopMetrics) RateLimited(string)                             {}

type api struct {
	hub     *channels.Hub
	log     *zap.Logger
	max     int64
	now     func() time.Time
	metrics Metrics
	ready   func() bool
	appIDs  []string
	start   time.Time
	events  *eventLimiter
}

// New returns the REST API handler for hub.
func New(hub *channels.Hub, opts Options) http.Handler {
	a := &api{hub: hub, log: opts.Logger, max: opts.MaxBodyBytes, now: opts.Now, metrics: opts.Metrics,
		ready: opts.Ready, appIDs: slices.Clone(opts.AppIDs)}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.max <= 0 {
		a.max = 10 << 20
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.metrics == nil {
		a.metrics = nopMetrics{}
	}
	if a.ready == nil {
		a.ready = func() bool { return true }
	}
	a.start = a.now()
	a.events = newEventLimiter(a.now)
	r := chi.NewRouter()
	r.Use(a.observe, a.recoverer)
	r.Get("/up", func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, "OK") })
	r.Get("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if a.ready() {
			text(w, http.StatusOK, "OK")
		} else {
			text(w, http.StatusServiceUnavailable, "DRAINING")
		}
	})
	r.Get("/usage", a.usage)
	r.Get("/live", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	r.Get("/up/{appID}", func(w http.ResponseWriter, r *http.Request) {
		if app, ok := hub.AppByID(chi.URLParam(r, "appID")); !ok {
			text(w, http.StatusNotFound, "NOT_FOUND")
		} else if !app.IsEnabled() {
			text(w, http.StatusServiceUnavailable, "ERROR")
		} else {
			text(w, http.StatusOK, "OK")
		}
	})
	// A group, not a sub-router: its middleware runs once the route matched, so an unknown
	// path is a 404 without a signature check and every request has its full route pattern.
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate)
		r.Post("/apps/{appID}/events", a.postEvents)
		r.Post("/apps/{appID}/batch_events", a.postBatch)
		r.Get("/apps/{appID}/channels", a.getChannels)
		r.Get("/apps/{appID}/channels/{channel}", a.getChannel)
		r.Get("/apps/{appID}/channels/{channel}/users", a.getUsers)
		r.Post("/apps/{appID}/users/{userID}/terminate_connections", a.terminate)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No route for "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method "+r.Method+" is not allowed on "+r.URL.Path)
	})
	return r
}

// apiError is an HTTP error with its JSON code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "invalid_input", fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "code": code, "status": status})
}

func fail(w http.ResponseWriter, err *apiError) { writeError(w, err.status, err.code, err.msg) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"Internal server error","code":"internal_error","status":500}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func text(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Health-Check", s)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}

func (a *api) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("panic in HTTP handler", zap.Any("panic", p), zap.String("method", r.Method),
					zap.String("path", r.URL.Path), zap.ByteString("stack", debug.Stack()))
				writeError(w, http.StatusInternalServerError, "internal_error", "Internal server error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type ctxKey int

const (
	ctxApp ctxKey = iota
	ctxBody
)

// authenticate checks the Pusher request signature and stores the app and body.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := protocol.ParseAPIQuery(r.URL.RawQuery)
		if err != nil {
			fail(w, badRequest("%v: signed requests need auth_key, auth_timestamp, auth_version, auth_signature (and body_md5 on POST)", err))
			return
		}
		app, ok := a.hub.AppByKey(q.AuthKey)
		if !ok {
			writeError(w, http.StatusNotFound, "app_not_found", "Application key not found")
			return
		}
		if id := chi.URLParam(r, "appID"); id != app.ID {
			writeError(w, http.StatusUnauthorized, "auth_failed", "auth_key does not belong to app "+id)
			return
		}
		if err := q.CheckTimestamp(a.now()); err != nil {
			writeError(w, http.StatusUnauthorized, "auth_failed", "Invalid auth_timestamp: "+err.Error()+" (allowed skew 600 s)")
			return
		}
		body, aerr := a.readBody(r)
		if aerr != nil {
			fail(w, aerr)
			return
		}
		if err := q.CheckBodyMD5(r.Method, body); err != nil {
			writeError(w, http.StatusUnauthorized, "auth_failed", "Invalid body_md5: "+err.Error())
			return
		}
		if !q.VerifyAPISignature(app.Secret, r.Method, r.URL.EscapedPath()) {
			writeError(w, http.StatusUnauthorized, "auth_failed", "Invalid signature: expected HMAC-SHA256 hex digest of METHOD\\nPATH\\nsorted query, keyed with the app secret")
			return
		}
		ctx := context.WithValue(r.Context(), ctxApp, app)
		ctx = context.WithValue(ctx, ctxBody, body)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// readBody reads the whole body, refusing one over the limit (413) or shorter than its
// Content-Length (400).
func (a *api) readBody(r *http.Request) ([]byte, *apiError) {
	if r.Body == nil {
		return []byte{}, nil
	}
	if r.ContentLength > a.max {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("Request body is larger than %d bytes", a.max)}
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, a.max+1))
	if n > a.max {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("Request body is larger than %d bytes", a.max)}
	}
	if err != nil {
		return nil, badRequest("Could not read the request body (truncated?): %v", err)
	}
	if r.ContentLength >= 0 && n != r.ContentLength {
		return nil, badRequest("Request body is %d bytes, Content-Length said %d", n, r.ContentLength)
	}
	return buf.Bytes(), nil
}

func appOf(r *http.Request) config.App { return r.Context().Value(ctxApp).(config.App) }
func bodyOf(r *http.Request) []byte    { return r.Context().Value(ctxBody).([]byte) }

// decodeJSON decodes a request body, naming the field on a type error.
func decodeJSON(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("Request body is empty: expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return badRequest("Invalid JSON body: field %q must be %s, got %s", te.Field, te.Type.String(), te.Value)
		case errors.As(err, &se):
			return badRequest("Invalid JSON body: syntax error at offset %d", se.Offset)
		default:
			return badRequest("Invalid JSON body: %v", err)
		}
	}
	if dec.More() {
		return badRequest("Invalid JSON body: trailing data after the object")
	}
	return nil
}

// protocolError maps a channels validation error to HTTP 400.
func protocolError(err error) *apiError {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return badRequest("%s", pe.Message)
	}
	return &apiError{http.StatusInternalServerError, "internal_error", "Internal server error"}
}

func splitInfo(s string) map[string]bool {
	m := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}
