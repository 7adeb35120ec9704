package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// scrapedNames returns the metric names of a Prometheus text scrape, and the value of each
// series line ("name{labels}" → value).
func scrapedNames(text string) (map[string]bool, map[string]string) {
	names, series := map[string]bool{}, map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		series[key] = val
		name, _, _ := strings.Cut(key, "{")
		names[name] = true
	}
	return names, series
}

// TestMetricsFirstScrape: every series whose labels are known at start — the per-app
// series of each configured app, refusal reasons, HTTP route latencies, the cluster's — is
// exported at 0 by the first scrape of a server nobody used yet.
func TestMetricsFirstScrape(t *testing.T) {
	t.Parallel()
	cfg := `
apps:
  - {id: app-one, key: key-one, secret: secret-one}
  - {id: app-two, key: key-two, secret: secret-two}
`
	s := testkit.Start(t, testkit.Options{Port: -1, Config: cfg,
		Args: []string{"--cluster", "redis", "--redis-url", "redis://" + testkit.RedisAddr(t) + "/0", "--cluster-prefix", clusterPrefix()}})
	_, series := scrapedNames(scrape(t, s))
	var want []string
	for _, app := range []string{"app-one", "app-two"} {
		for _, name := range []string{"connections", "connects_total", "messages_in_total", "messages_out_total",
			"bytes_in_total", "bytes_out_total", "slow_consumer_closes_total", "http_rate_limited_total",
			"webhook_events_delivered_total", "webhook_retries_total", "webhook_events_dropped_total",
			"history_append_errors_total"} {
			want = append(want, fmt.Sprintf(`pushwire_%s{app=%q}`, name, app))
		}
		want = append(want, fmt.Sprintf(`pushwire_cluster_local_only_messages_total{app_id=%q}`, app))
	}
	for _, reason := range []string{"ip_rate_limited", "over_capacity", "app_refused", "auth_failed", "shutdown"} {
		want = append(want, fmt.Sprintf(`pushwire_connections_refused_total{reason=%q}`, reason))
	}
	want = append(want, `pushwire_cluster_refused_envelopes_total`,
		`pushwire_http_request_duration_seconds_count{route="/apps/{appID}/events"}`,
		`pushwire_http_request_duration_seconds_count{route="/apps/{appID}/batch_events"}`)
	for _, w := range want {
		v, ok := series[w]
		switch {
		case !ok:
			t.Errorf("first scrape lacks %s", w)
		case v != "0":
			t.Errorf("%s = %s on an unused server, want 0", w, v)
		}
	}
}

// promIdent matches the identifiers of a PromQL expression; those followed by a selector
// ({ or [) or standing alone as an argument are metric names unless PromQL defines them.
var promIdent = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// promWords are PromQL's functions, aggregations and keywords used in the dashboard, and
// the label names of its by (...) clauses.
var promWords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "rate": true, "increase": true,
	"irate": true, "histogram_quantile": true, "by": true, "without": true, "label_values": true,
	"le": true, "app": true, "app_id": true, "route": true, "status": true, "reason": true, "code": true,
	"instance": true, "job": true,
}

// dashboardMetrics returns every metric name the queries of a Grafana dashboard use.
func dashboardMetrics(t *testing.T, dash map[string]any) []string {
	t.Helper()
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "expr" || k == "definition" || (k == "query" && strings.Contains(s, "("))) {
					exprs = append(exprs, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(dash)
	if len(exprs) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	var names []string
	for _, e := range exprs {
		// Drop label matchers ({...}), range selectors ([...]) and quoted strings first.
		clean := regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]|"[^"]*"`).ReplaceAllString(e, " ")
		found := false
		for _, id := range promIdent.FindAllString(clean, -1) {
			if promWords[id] || strings.HasPrefix(id, "$") {
				continue
			}
			found = true
			if !slices.Contains(names, id) {
				names = append(names, id)
			}
		}
		if !found {
			t.Errorf("query %q names no metric", e)
		}
	}
	return names
}

// TestGrafanaDashboard: every metric a query of deploy/grafana/pushwire-dashboard.json names
// is exported by the real binary — clustered, with a webhook and some traffic, so the series
// that appear on first use (disconnects by code, webhook failures by status) exist too.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(testkit.RepoRoot(), "deploy", "grafana", "pushwire-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	names := dashboardMetrics(t, dash)

	cfg := fmt.Sprintf(`
webhook_retry_for: 1ms
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    webhooks:
      - {url: %q, event_types: [channel_occupied]}
`, failingWebhook(t, http.StatusInternalServerError))
	s := testkit.Start(t, testkit.Options{Port: -1, Config: cfg,
		Args: []string{"--cluster", "redis", "--redis-url", "redis://" + testkit.RedisAddr(t) + "/0", "--cluster-prefix", clusterPrefix()}})
	c := connect(t, s)
	c.subscribe(t, "dashboard-check")
	publish(t, s, map[string]any{"name": "e", "channel": "dashboard-check", "data": "x"})
	c.next(t)
	c.close()
	var have map[string]bool
	testkit.WaitFor(t, 10*time.Second, "a disconnect and a webhook failure counted", func() bool {
		have, _ = scrapedNames(scrape(t, s))
		return have["pushwire_disconnects_total"] && have["pushwire_webhook_failures_total"]
	})
	for _, n := range names {
		if !have[n] {
			t.Errorf("the dashboard queries %s, which pushwire does not export", n)
		}
	}
	t.Logf("%d metric names checked", len(names))
}

// failingWebhook is a webhook receiver that answers every request with status.
func failingWebhook(t *testing.T, status int) string {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(hook.Close)
	return hook.URL
}

// TestStatsEndpoints: GET /stats and /apps/{id}/stats answer in Sockudo's shape, signed with
// the app's key and secret (Pusher's scheme) or with the console credential, and refuse
// anything else.
func TestStatsEndpoints(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--console", "--console-listener=main"}})
	// The console on the main port, under its path, beside the API.
	page, err := http.Get(s.HTTPURL() + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK || page.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /console/ on the main port: %d", page.StatusCode)
	}
	c := connect(t, s)
	c.subscribePresence(t, "presence-stats", `{"user_id":"u1"}`)
	c2 := connect(t, s)
	c2.subscribe(t, "stats-public")

	get := func(path, user, pass string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, s.HTTPURL()+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	signed := func(path string) string {
		return path + "?" + protocol.SignAPIRequest(testkit.AppKey, testkit.AppSecret, http.MethodGet, path, nil, nil, time.Now())
	}
	for _, tc := range []struct {
		name string
		path string
		user string
		pass string
	}{
		{"SignedStats", signed("/stats"), "", ""},
		{"ConsoleStats", "/stats", testkit.AppID, testkit.AppSecret},
	} {
		code, body := get(tc.path, tc.user, tc.pass)
		if code != http.StatusOK {
			t.Fatalf("%s: status %d %v", tc.name, code, body)
		}
		for _, k := range []string{"memory", "history", "presence_history", "totals", "apps"} {
			if _, ok := body[k]; !ok {
				t.Errorf("%s: no %q in %v", tc.name, k, body)
			}
		}
		totals := body["totals"].(map[string]any)
		occ := totals["occupancy"].(map[string]any)
		if totals["connections"] != 2.0 || occ["channels"] != 2.0 || occ["presence_channels"] != 1.0 || occ["presence_members"] != 1.0 || occ["subscriptions"] != 2.0 {
			t.Errorf("%s: totals %v", tc.name, totals)
		}
		if h := body["history"].(map[string]any); h["backend"] != "memory" || h["enabled"] != true {
			t.Errorf("%s: history %v", tc.name, h)
		}
		if mem := body["memory"].(map[string]any); mem["total"].(float64) <= 0 {
			t.Errorf("%s: memory %v", tc.name, mem)
		}
	}
	code, body := get(signed("/apps/app-id/stats"), "", "")
	if code != http.StatusOK || body["app_id"] != "app-id" || body["connections"] != 2.0 {
		t.Errorf("/apps/app-id/stats: %d %v", code, body)
	}
	for _, tc := range []struct{ path, user, pass string }{
		{"/stats", "", ""},
		{"/stats", testkit.AppID, "wrong"},
		{"/apps/app-id/stats", "", ""},
		{"/apps/other/stats", testkit.AppID, testkit.AppSecret},
	} {
		if code, body := get(tc.path, tc.user, tc.pass); code != http.StatusUnauthorized {
			t.Errorf("%s as %q/%q: %d %v, want 401", tc.path, tc.user, tc.pass, code, body)
		}
	}
}
