package httpapi

import (
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/internal/bytebudget"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/push"
)

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes is zero: 10 MiB.
const DefaultMaxBodyBytes = 10 << 20

// Options tune the API. The zero value gives the defaults.
type Options struct {
	// Logger receives recovered panics and internal errors. Default: no logging.
	Logger *zap.Logger
	// MaxBodyBytes caps a request body (413 payload_too_large over it). Default 10 MiB.
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
	// Idempotency remembers publish idempotency keys. Default: an in-process store.
	Idempotency Idempotency
	// Tap is shown the errors the API answers to apps someone watches (the debug console).
	// Default none.
	Tap channels.Tap
	// ConsoleAuth, when set, authenticates a request by the debug console's credential (its
	// session cookie or HTTP Basic app id and credential), as an alternative to the request
	// signature on GET /stats and /apps/{id}/stats. Default: signatures only.
	ConsoleAuth func(r *http.Request) (appID string, ok bool)
	// HistoryBackend names the history store in GET /stats ("memory", "postgres"; "" none).
	HistoryBackend string
	// Push serves /apps/{id}/push/* (push.go). Default none: those routes are 404.
	Push *push.Service
	// PublishHook is told about each HTTP publish (the push bridge). Default none.
	PublishHook PublishHook
	// InboundBudget is the server-wide cap on bytes held for input still arriving, shared
	// with the WebSocket transports: request bodies reserve their buffers in it and get 503
	// (Retry-After: 1) when it is spent (body.go). Default nil: unlimited.
	InboundBudget *bytebudget.Budget
	// PresenceHistory serves /apps/{id}/channels/{channel}/presence/history*
	// (presence_history.go). Default none: those routes answer 422 feature_disabled.
	PresenceHistory *presencehistory.Service
	// Annotations serves .../messages/{serial}/annotations* (annotations.go). Default none:
	// those routes answer 422 feature_disabled.
	Annotations *annotations.Service
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

// api holds the handlers' shared state.
type api struct {
	hub         *channels.Hub
	presence    *presencehistory.Service
	annotations *annotations.Service
	log         *zap.Logger
	max         int64
	now         func() time.Time
	metrics     Metrics
	ready       func() bool
	start       time.Time
	events      *eventLimiter
	idem        Idempotency
	tap         channels.Tap
	console     func(*http.Request) (string, bool)
	backend     string
	push        *push.Service
	hook        PublishHook
	budget      *bytebudget.Budget
}

// New returns the REST API handler for hub: the signed Pusher endpoints under /apps/ and the
// unsigned health endpoints. Any other path is a 404 with a JSON error body.
func New(hub *channels.Hub, opts Options) http.Handler {
	return newAPI(hub, opts).router()
}

// newAPI applies the option defaults.
func newAPI(hub *channels.Hub, opts Options) *api {
	a := &api{hub: hub, presence: opts.PresenceHistory, annotations: opts.Annotations, log: opts.Logger, max: opts.MaxBodyBytes, now: opts.Now, metrics: opts.Metrics,
		ready: opts.Ready}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.max <= 0 {
		a.max = DefaultMaxBodyBytes
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
	a.idem = opts.Idempotency
	a.tap, a.console, a.backend = opts.Tap, opts.ConsoleAuth, opts.HistoryBackend
	a.push, a.hook = opts.Push, opts.PublishHook
	a.budget = opts.InboundBudget
	if a.idem == nil {
		a.idem = NewMemoryIdempotency(a.now, 0)
	}
	return a
}

// router builds the route table.
func (a *api) router() *chi.Mux {
	r := chi.NewRouter()
	r.Use(a.observe, a.recoverer, a.holdBodies)
	r.Get("/live", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	r.Get("/up", func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, "OK") })
	r.Get("/up/{appID}", a.upApp)
	r.Get("/ready", a.readyz)
	r.Get("/usage", a.usage)
	r.Get("/apps/{appID}/usage", a.pathUsage)
	r.Get("/stats", a.stats)
	r.Get("/apps/{appID}/stats", a.appStats)
	// A group, not a sub-router: its middleware runs once the route matched, so an unknown
	// path is a 404 without a signature check and every request has its full route pattern.
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate)
		r.Post("/apps/{appID}/events", a.postEvents)
		r.Post("/apps/{appID}/batch_events", a.postBatch)
		r.Get("/apps/{appID}/channels", a.getChannels)
		r.Get("/apps/{appID}/channels/{channel}", a.getChannel)
		r.Get("/apps/{appID}/channels/{channel}/users", a.getUsers)
		r.Get("/apps/{appID}/channels/{channel}/history", a.getHistory)
		r.Delete("/apps/{appID}/channels/{channel}/history", a.channelOp(a.deleteHistory))
		r.Get("/apps/{appID}/channels/{channel}/history/state", a.channelOp(a.getHistoryState))
		r.Post("/apps/{appID}/channels/{channel}/history/reset", a.channelOp(a.postHistoryReset))
		r.Post("/apps/{appID}/channels/{channel}/history/purge", a.channelOp(a.postHistoryPurge))
		r.Get("/apps/{appID}/channels/{channel}/presence/history", a.channelOp(a.getPresenceHistory))
		r.Get("/apps/{appID}/channels/{channel}/presence/history/snapshot", a.channelOp(a.getPresenceSnapshot))
		r.Get("/apps/{appID}/channels/{channel}/presence/history/state", a.channelOp(a.getPresenceState))
		r.Post("/apps/{appID}/channels/{channel}/presence/history/reset", a.channelOp(a.postPresenceReset))
		r.Get("/apps/{appID}/channels/{channel}/messages/{serial}", a.getMessage)
		r.Get("/apps/{appID}/channels/{channel}/messages/{serial}/versions", a.getVersions)
		r.Post("/apps/{appID}/channels/{channel}/messages/{serial}/update", a.mutate(protocol.ActionUpdate))
		r.Post("/apps/{appID}/channels/{channel}/messages/{serial}/delete", a.mutate(protocol.ActionDelete))
		r.Post("/apps/{appID}/channels/{channel}/messages/{serial}/append", a.mutate(protocol.ActionAppend))
		r.Post("/apps/{appID}/channels/{channel}/messages/{serial}/annotations", a.postAnnotation)
		r.Get("/apps/{appID}/channels/{channel}/messages/{serial}/annotations", a.getAnnotations)
		r.Delete("/apps/{appID}/channels/{channel}/messages/{serial}/annotations/{annotationSerial}", a.deleteAnnotation)
		r.Post("/apps/{appID}/users/{userID}/terminate_connections", a.terminate)
		r.Post("/apps/{appID}/users/{userID}/force_reconnect", a.forceReconnect)
		r.Post("/apps/{appID}/revocations", a.postRevocation)
	})
	a.mountPush(r)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No route for "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method "+r.Method+" is not allowed on "+r.URL.Path)
	})
	return r
}

// upApp answers GET /up/{appID}: OK for a known enabled app, ERROR (503) for a disabled one,
// NOT_FOUND (404) for an unknown one.
func (a *api) upApp(w http.ResponseWriter, r *http.Request) {
	id, err := pathParam(r, "appID")
	if err != nil {
		text(w, http.StatusNotFound, "NOT_FOUND")
		return
	}
	switch app, ok := a.hub.AppByID(id); {
	case !ok:
		text(w, http.StatusNotFound, "NOT_FOUND")
	case !app.IsEnabled():
		text(w, http.StatusServiceUnavailable, "ERROR")
	default:
		text(w, http.StatusOK, "OK")
	}
}

// readyz answers GET /ready: OK, or 503 DRAINING while the node is shutting down.
func (a *api) readyz(w http.ResponseWriter, _ *http.Request) {
	if a.ready() {
		text(w, http.StatusOK, "OK")
		return
	}
	text(w, http.StatusServiceUnavailable, "DRAINING")
}

// text writes a plain-text health answer, echoed in the X-Health-Check header.
func text(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Health-Check", s)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}
