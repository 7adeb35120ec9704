package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every pushwire metric name.
const Namespace = "pushwire"

// Metrics holds pushwire's Prometheus registry and metrics. Build it with New; it implements
// server.Metrics, httpapi.Metrics and webhook.Metrics. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	connections  *prometheus.GaugeVec
	connects     *prometheus.CounterVec
	disconnects  *prometheus.CounterVec
	messagesIn   *prometheus.CounterVec
	messagesOut  *prometheus.CounterVec
	bytesIn      *prometheus.CounterVec
	bytesOut     *prometheus.CounterVec
	slowConsumer *prometheus.CounterVec
	refused      *prometheus.CounterVec
	pollErrors   prometheus.Counter

	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	httpRateLimited *prometheus.CounterVec

	webhookDelivered *prometheus.CounterVec
	webhookFailures  *prometheus.CounterVec
	webhookRetries   *prometheus.CounterVec
	webhookDropped   *prometheus.CounterVec

	historyErrors *prometheus.CounterVec
	push          pushMetrics

	// apps caches the per-app series of the hot paths (frames in and out), keyed by app id,
	// so a frame costs a map load and an atomic add rather than a label hash.
	apps sync.Map // string -> *appSeries
}

// appSeries are the resolved per-app series touched for every frame and connection.
type appSeries struct {
	connections prometheus.Gauge
	connects    prometheus.Counter
	messagesIn  prometheus.Counter
	messagesOut prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
}

// New builds a Metrics with its own registry, holding the Go runtime and process collectors
// and every pushwire_ metric.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	m.connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "connections",
		Help: "WebSocket connections currently open, by app."}, []string{"app"})
	m.connects = counter("connects_total", "WebSocket connections that completed the handshake, by app.", "app")
	m.disconnects = counter("disconnects_total", "WebSocket connections that ended, by app, close code and close reason.", "app", "code", "reason")
	m.messagesIn = counter("messages_in_total", "WebSocket messages read from clients, by app.", "app")
	m.messagesOut = counter("messages_out_total", "WebSocket messages written to clients, by app.", "app")
	m.bytesIn = counter("bytes_in_total", "WebSocket message bytes read from clients, by app.", "app")
	m.bytesOut = counter("bytes_out_total", "WebSocket message bytes written to clients, by app.", "app")
	m.slowConsumer = counter("slow_consumer_closes_total", "Connections closed with 4100 because their write queue was full, by app.", "app")
	m.refused = counter("connections_refused_total", "WebSocket upgrades refused before the handshake, by reason (ip_rate_limited is the per-IP limit).", "reason")
	m.pollErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "ws_poll_errors_total",
		Help: "Failed epoll_wait calls of the epoll WebSocket transport (each logged and retried; too many in a row stop the server)."})
	m.httpRequests = counter("http_requests_total", "HTTP API requests, by route pattern, method and status.", "route", "method", "status")
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
		Help: "HTTP API request latency, by route pattern.", Buckets: prometheus.DefBuckets}, []string{"route"})
	m.httpRateLimited = counter("http_rate_limited_total", "HTTP API publishes refused with 429 by the per-app backend event limit, by app.", "app")
	m.webhookDelivered = counter("webhook_events_delivered_total", "Webhook events delivered, by app.", "app")
	m.webhookFailures = counter("webhook_failures_total", "Failed webhook requests, by app and HTTP status (network: no response).", "app", "status")
	m.webhookRetries = counter("webhook_retries_total", "Webhook requests retried, by app.", "app")
	m.webhookDropped = counter("webhook_events_dropped_total", "Webhook events dropped (queue full or retries exhausted), by app.", "app")
	m.historyErrors = counter("history_append_errors_total", "Messages delivered live without a serial because the history store failed (history degraded), by app.", "app")

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connections, m.connects, m.disconnects,
		m.messagesIn, m.messagesOut, m.bytesIn, m.bytesOut,
		m.slowConsumer, m.refused, m.pollErrors,
		m.httpRequests, m.httpDuration, m.httpRateLimited,
		m.webhookDelivered, m.webhookFailures, m.webhookRetries, m.webhookDropped,
		m.historyErrors,
	)
	m.push.register(reg)
	return m
}

// InitApps exports every per-app series of these apps at 0 from now on — connections,
// connects, messages and bytes in and out, slow-consumer closes, 429s, webhook deliveries,
// retries and drops, history append errors — so dashboards and absent() alerts see them
// before the first connection. Series with other labels (close code, HTTP status) appear
// when they first happen.
func (m *Metrics) InitApps(appIDs ...string) {
	for _, id := range appIDs {
		m.app(id)
		for _, v := range []*prometheus.CounterVec{m.slowConsumer, m.httpRateLimited, m.webhookDelivered,
			m.webhookRetries, m.webhookDropped, m.historyErrors} {
			v.WithLabelValues(id)
		}
	}
}

// InitRefusals exports connections_refused_total at 0 for each of these reasons
// (server.RefusalReasons).
func (m *Metrics) InitRefusals(reasons ...string) {
	for _, r := range reasons {
		m.refused.WithLabelValues(r)
	}
}

// InitRoutes exports the latency histogram of each route pattern empty from now on
// (httpapi.RoutePatterns).
func (m *Metrics) InitRoutes(routes ...string) {
	for _, r := range routes {
		m.httpDuration.WithLabelValues(r)
	}
}

// HistoryError counts a failed history append (channels.Options.OnHistoryError).
func (m *Metrics) HistoryError(appID string, _ error) { m.historyErrors.WithLabelValues(appID).Inc() }

// Registry returns the registry, so other packages can register their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format; mount it at /metrics on
// the metrics listener.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:      m.reg,
		ErrorHandling: promhttp.ContinueOnError,
	}))
}

func (m *Metrics) app(appID string) *appSeries {
	if s, ok := m.apps.Load(appID); ok {
		return s.(*appSeries)
	}
	s := &appSeries{
		connections: m.connections.WithLabelValues(appID),
		connects:    m.connects.WithLabelValues(appID),
		messagesIn:  m.messagesIn.WithLabelValues(appID),
		messagesOut: m.messagesOut.WithLabelValues(appID),
		bytesIn:     m.bytesIn.WithLabelValues(appID),
		bytesOut:    m.bytesOut.WithLabelValues(appID),
	}
	actual, _ := m.apps.LoadOrStore(appID, s)
	return actual.(*appSeries)
}

// Connected counts a connection of appID that completed the handshake.
func (m *Metrics) Connected(appID string) {
	s := m.app(appID)
	s.connects.Inc()
	s.connections.Inc()
}

// Disconnected counts the end of a connection Connected counted, with the close code sent
// or received and the close reason (slow_consumer, activity_timeout, client_closed, ...).
func (m *Metrics) Disconnected(appID string, code int, reason string) {
	m.app(appID).connections.Dec()
	m.disconnects.WithLabelValues(appID, codeLabel(code), reason).Inc()
}

// MessageIn counts one WebSocket message of n bytes read from a client of appID.
func (m *Metrics) MessageIn(appID string, n int) {
	s := m.app(appID)
	s.messagesIn.Inc()
	s.bytesIn.Add(float64(n))
}

// MessageOut counts one WebSocket message of n bytes written to a client of appID.
func (m *Metrics) MessageOut(appID string, n int) {
	s := m.app(appID)
	s.messagesOut.Inc()
	s.bytesOut.Add(float64(n))
}

// SlowConsumer counts a connection of appID closed because its write queue was full.
func (m *Metrics) SlowConsumer(appID string) { m.slowConsumer.WithLabelValues(appID).Inc() }

// Refused counts a WebSocket upgrade refused before the handshake, by close reason.
func (m *Metrics) Refused(reason string) { m.refused.WithLabelValues(reason).Inc() }

// PollError counts a failed epoll_wait of the epoll WebSocket transport.
func (m *Metrics) PollError() { m.pollErrors.Inc() }

// ObserveHTTP records one HTTP API request: route is the chi route pattern (never the raw
// path), status the response status, d its duration.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// RateLimited counts an HTTP API publish of appID refused with 429.
func (m *Metrics) RateLimited(appID string) { m.httpRateLimited.WithLabelValues(appID).Inc() }

// Delivered counts events webhook events of appID delivered.
func (m *Metrics) Delivered(appID string, events int) {
	m.webhookDelivered.WithLabelValues(appID).Add(float64(events))
}

// Failed counts a failed webhook request of appID; status is the HTTP status, or 0 when no
// response came back (network error, timeout).
func (m *Metrics) Failed(appID string, status int) {
	m.webhookFailures.WithLabelValues(appID, statusLabel(status)).Inc()
}

// Retried counts a webhook request of appID scheduled for retry.
func (m *Metrics) Retried(appID string) { m.webhookRetries.WithLabelValues(appID).Inc() }

// Dropped counts events webhook events of appID given up on.
func (m *Metrics) Dropped(appID string, events int) {
	m.webhookDropped.WithLabelValues(appID).Add(float64(events))
}

// codeLabel keeps the close-code label bounded: standard WebSocket codes (1000-1015) and
// Pusher's range (4000-4399) as themselves, anything else a client may send as "other".
func codeLabel(code int) string {
	if (code >= 1000 && code <= 1015) || (code >= 4000 && code <= 4399) {
		return strconv.Itoa(code)
	}
	return "other"
}

// statusLabel maps an HTTP status to its label; 0 or anything invalid is "network".
func statusLabel(status int) string {
	if status >= 100 && status <= 599 {
		return strconv.Itoa(status)
	}
	return "network"
}

// methodLabel keeps the method label to the standard methods.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// WatchInbound exports the server-wide inbound budget (HTTP bodies and WebSocket frames
// still arriving), read at each scrape: pushwire_inbound_buffer_bytes (held now),
// pushwire_inbound_buffer_limit_bytes (max_inbound_buffer_mb) and
// pushwire_inbound_buffer_refusals_total (input refused because the budget was spent). Call
// it once.
func (m *Metrics) WatchInbound(used, refusals func() int64, limit int64) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "inbound_buffer_bytes",
			Help: "Bytes held for HTTP bodies and WebSocket frames still arriving."}, func() float64 { return float64(used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "inbound_buffer_limit_bytes",
			Help: "The server-wide cap on bytes held for input still arriving (max_inbound_buffer_mb)."}, func() float64 { return float64(limit) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: "inbound_buffer_refusals_total",
			Help: "Inputs refused because the inbound buffer budget was spent (HTTP 503, WebSocket close)."}, func() float64 { return float64(refusals()) }),
	)
}
