package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape serves m's handler once and parses the text exposition.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	m.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels include want (a
// histogram gives its sample count); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMethodsMoveSeries(t *testing.T) {
	type sample struct {
		name   string
		labels map[string]string
		want   float64
	}
	app := map[string]string{"app": "a1"}
	cases := []struct {
		name string
		do   func(m *Metrics)
		want []sample
	}{
		{"connect", func(m *Metrics) { m.Connected("a1"); m.Connected("a1") }, []sample{
			{"pushwire_connections", app, 2}, {"pushwire_connects_total", app, 2}}},
		{"disconnect", func(m *Metrics) { m.Connected("a1"); m.Disconnected("a1", 4100, "slow_consumer") }, []sample{
			{"pushwire_connections", app, 0},
			{"pushwire_disconnects_total", map[string]string{"app": "a1", "code": "4100", "reason": "slow_consumer"}, 1}}},
		{"odd client close code is bucketed", func(m *Metrics) { m.Connected("a1"); m.Disconnected("a1", 3999, "client_closed") }, []sample{
			{"pushwire_disconnects_total", map[string]string{"app": "a1", "code": "other", "reason": "client_closed"}, 1}}},
		{"messages", func(m *Metrics) { m.MessageIn("a1", 10); m.MessageIn("a1", 5); m.MessageOut("a1", 7) }, []sample{
			{"pushwire_messages_in_total", app, 2}, {"pushwire_bytes_in_total", app, 15},
			{"pushwire_messages_out_total", app, 1}, {"pushwire_bytes_out_total", app, 7}}},
		{"slow consumer and refusals", func(m *Metrics) { m.SlowConsumer("a1"); m.Refused("ip_rate_limited"); m.Refused("ip_rate_limited") }, []sample{
			{"pushwire_slow_consumer_closes_total", app, 1},
			{"pushwire_connections_refused_total", map[string]string{"reason": "ip_rate_limited"}, 2}}},
		{"poll errors", func(m *Metrics) { m.PollError(); m.PollError() }, []sample{
			{"pushwire_ws_poll_errors_total", nil, 2}}},
		{"http", func(m *Metrics) {
			m.ObserveHTTP("/apps/{appID}/events", "POST", 200, time.Millisecond)
			m.ObserveHTTP("/apps/{appID}/events", "POST", 401, time.Millisecond)
			m.ObserveHTTP("unmatched", "BREW", 404, time.Millisecond)
			m.RateLimited("a1")
		}, []sample{
			{"pushwire_http_requests_total", map[string]string{"route": "/apps/{appID}/events", "method": "POST", "status": "200"}, 1},
			{"pushwire_http_requests_total", map[string]string{"route": "/apps/{appID}/events", "method": "POST", "status": "401"}, 1},
			{"pushwire_http_requests_total", map[string]string{"route": "unmatched", "method": "OTHER", "status": "404"}, 1},
			{"pushwire_http_request_duration_seconds", map[string]string{"route": "/apps/{appID}/events"}, 2},
			{"pushwire_http_rate_limited_total", app, 1}}},
		{"webhooks", func(m *Metrics) {
			m.Delivered("a1", 3)
			m.Failed("a1", 503)
			m.Failed("a1", 0)
			m.Retried("a1")
			m.Dropped("a1", 4)
		}, []sample{
			{"pushwire_webhook_events_delivered_total", app, 3},
			{"pushwire_webhook_failures_total", map[string]string{"app": "a1", "status": "503"}, 1},
			{"pushwire_webhook_failures_total", map[string]string{"app": "a1", "status": "network"}, 1},
			{"pushwire_webhook_retries_total", app, 1},
			{"pushwire_webhook_events_dropped_total", app, 4}}},
		{"runtime collectors", func(*Metrics) {}, []sample{{"go_goroutines", nil, -2}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			tc.do(m)
			fams := scrape(t, m)
			for _, s := range tc.want {
				got := value(fams, s.name, s.labels)
				if s.want == -2 { // present with any value
					if got < 0 {
						t.Errorf("%s missing", s.name)
					}
					continue
				}
				if got != s.want {
					t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
				}
			}
		})
	}
}

func TestLabelBounds(t *testing.T) {
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"normal closure", codeLabel(1000), "1000"},
		{"no status", codeLabel(1005), "1005"},
		{"pusher code", codeLabel(4201), "4201"},
		{"code outside the ranges", codeLabel(4999), "other"},
		{"negative code", codeLabel(-1), "other"},
		{"http status", statusLabel(429), "429"},
		{"no response", statusLabel(0), "network"},
		{"standard method", methodLabel("PATCH"), "PATCH"},
		{"made-up method", methodLabel("get"), "OTHER"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// TestWatchInbound: the inbound budget's use, limit and refusals are read at each scrape.
func TestWatchInbound(t *testing.T) {
	m := New()
	used, refusals := int64(0), int64(0)
	m.WatchInbound(func() int64 { return used }, func() int64 { return refusals }, 64<<20)
	used, refusals = 4096, 3
	fams := scrape(t, m)
	for name, want := range map[string]float64{
		"pushwire_inbound_buffer_bytes": 4096, "pushwire_inbound_buffer_limit_bytes": 64 << 20, "pushwire_inbound_buffer_refusals_total": 3,
	} {
		if got := value(fams, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
