package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeMetrics records ObserveHTTP calls as "METHOD route status" and RateLimited calls.
type fakeMetrics struct {
	mu          sync.Mutex
	requests    []string
	rateLimited map[string]int
}

func (f *fakeMetrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d < 0 {
		panic("negative duration")
	}
	f.requests = append(f.requests, fmt.Sprintf("%s %s %d", method, route, status))
}

func (f *fakeMetrics) RateLimited(appID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rateLimited == nil {
		f.rateLimited = map[string]int{}
	}
	f.rateLimited[appID]++
}

func (f *fakeMetrics) snapshot() ([]string, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rl := map[string]int{}
	for k, v := range f.rateLimited {
		rl[k] = v
	}
	return append([]string(nil), f.requests...), rl
}

// setupOpts starts the API with opts for one default app changed by edit.
func setupOpts(t *testing.T, opts Options, edit func(*config.App)) (*channels.Hub, *httptest.Server) {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	if edit != nil {
		edit(&app)
	}
	hub := channels.New([]config.App{app}, channels.Options{})
	ts := httptest.NewServer(New(hub, opts))
	t.Cleanup(ts.Close)
	return hub, ts
}

func do(t *testing.T, method, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestReady(t *testing.T) {
	cases := []struct {
		name   string
		ready  func() bool
		status int
		body   string
	}{
		{"default ready", nil, 200, "OK"},
		{"ready", func() bool { return true }, 200, "OK"},
		{"draining", func() bool { return false }, 503, "DRAINING"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := setupOpts(t, Options{Ready: tc.ready}, nil)
			resp, body := do(t, "GET", ts.URL+"/ready", nil)
			if resp.StatusCode != tc.status || string(body) != tc.body || resp.Header.Get("X-Health-Check") != tc.body {
				t.Fatalf("got %d %q (X-Health-Check %q), want %d %q", resp.StatusCode, body, resp.Header.Get("X-Health-Check"), tc.status, tc.body)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	hub, ts := setupOpts(t, Options{Now: clock.Now, AppIDs: []string{"app-id", "not-configured"}}, nil)
	subscribe(t, hub, "a", "")
	subscribe(t, hub, "a", "")
	subscribe(t, hub, "presence-b", "u1")
	clock.Add(90 * time.Second)
	resp, body := do(t, "GET", ts.URL+"/usage", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	var u struct {
		Connections int `json:"connections"`
		Apps        map[string]struct {
			Connections int `json:"connections"`
			Channels    int `json:"channels"`
		} `json:"apps"`
		Memory struct {
			AllocBytes uint64 `json:"alloc_bytes"`
			SysBytes   uint64 `json:"sys_bytes"`
		} `json:"memory"`
		Goroutines    int   `json:"goroutines"`
		UptimeSeconds int64 `json:"uptime_seconds"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatal(err)
	}
	app, ok := u.Apps["app-id"]
	if u.Connections != 3 || !ok || app.Connections != 3 || app.Channels != 2 || len(u.Apps) != 1 {
		t.Errorf("counts: %s", body)
	}
	if u.Memory.AllocBytes == 0 || u.Memory.SysBytes < u.Memory.AllocBytes || u.Goroutines == 0 || u.UptimeSeconds != 90 {
		t.Errorf("runtime: %s", body)
	}
}

func TestBackendEventRateLimit(t *testing.T) {
	type req struct {
		after  time.Duration // advance the clock first
		events int           // 1: POST /events; more: POST /batch_events with that many items
		status int
	}
	cases := []struct {
		name      string
		perSecond int
		reqs      []req
	}{
		{"unlimited", 0, []req{{0, 1, 200}, {0, 10, 200}, {0, 10, 200}, {0, 1, 200}}},
		{"events up to the limit", 3, []req{{0, 1, 200}, {0, 1, 200}, {0, 1, 200}, {0, 1, 429}, {400 * time.Millisecond, 1, 200}, {0, 1, 429}, {time.Second, 1, 200}}},
		{"batch items count", 5, []req{{0, 4, 200}, {0, 2, 429}, {0, 1, 200}, {0, 1, 429}, {time.Second, 5, 200}, {0, 1, 429}}},
		{"batch over the limit needs a full bucket", 2, []req{{0, 1, 200}, {0, 5, 429}, {time.Second, 5, 200}, {time.Second, 1, 429}, {time.Second, 1, 200}}},
		{"refused requests take nothing", 1, []req{{0, 1, 200}, {0, 1, 429}, {0, 1, 429}, {time.Second, 1, 200}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Now()}
			fm := &fakeMetrics{}
			_, ts := setupOpts(t, Options{Now: clock.Now, Metrics: fm}, func(a *config.App) { a.MaxBackendEventsPerSecond = tc.perSecond })
			limited := 0
			for i, r := range tc.reqs {
				clock.Add(r.after)
				path, body := "/apps/app-id/events", []byte(`{"name":"e","channel":"c","data":"x"}`)
				if r.events > 1 {
					path = "/apps/app-id/batch_events"
					body = []byte(`{"batch":[` + strings.Repeat(`{"name":"e","channel":"c","data":"x"},`, r.events-1) + `{"name":"e","channel":"c","data":"x"}]}`)
				}
				resp, got := do(t, "POST", signedURL(ts, "POST", path, nil, body, "app-secret", clock.Now()), body)
				if resp.StatusCode != r.status {
					t.Fatalf("request %d (%+v): %d %s", i, r, resp.StatusCode, got)
				}
				if r.status == 429 {
					limited++
					var e struct {
						Error  string
						Code   string
						Status int
					}
					if json.Unmarshal(got, &e) != nil || e.Code != "rate_limited" || e.Status != 429 || e.Error == "" || resp.Header.Get("Retry-After") != "1" {
						t.Fatalf("request %d: 429 body %s, Retry-After %q", i, got, resp.Header.Get("Retry-After"))
					}
				}
			}
			if _, rl := fm.snapshot(); rl["app-id"] != limited {
				t.Fatalf("RateLimited counted %d, want %d", rl["app-id"], limited)
			}
		})
	}
}

func TestObserveRoutePatterns(t *testing.T) {
	fm := &fakeMetrics{}
	_, ts := setupOpts(t, Options{Metrics: fm, Ready: func() bool { return false }}, nil)
	now := time.Now()
	ev := []byte(`{"name":"e","channel":"c","data":"x"}`)
	cases := []struct {
		method, url string
		body        []byte
		want        string
	}{
		{"POST", signedURL(ts, "POST", "/apps/app-id/events", nil, ev, "app-secret", now), ev, "POST /apps/{appID}/events 200"},
		{"POST", signedURL(ts, "POST", "/apps/app-id/events", nil, ev, "wrong", now), ev, "POST /apps/{appID}/events 401"},
		{"GET", signedURL(ts, "GET", "/apps/app-id/channels/my-channel", nil, nil, "app-secret", now), nil, "GET /apps/{appID}/channels/{channel} 200"},
		{"GET", signedURL(ts, "GET", "/apps/app-id/channels/presence-x/users", nil, nil, "app-secret", now), nil, "GET /apps/{appID}/channels/{channel}/users 200"},
		{"GET", ts.URL + "/apps/app-id/channels", nil, "GET /apps/{appID}/channels 400"},
		{"GET", ts.URL + "/apps/app-id/nope", nil, "GET unmatched 404"},
		{"GET", ts.URL + "/favicon.ico", nil, "GET unmatched 404"},
		{"DELETE", ts.URL + "/apps/app-id/events", nil, "DELETE unmatched 405"},
		{"GET", ts.URL + "/up/app-id", nil, "GET /up/{appID} 200"},
		{"GET", ts.URL + "/ready", nil, "GET /ready 503"},
		{"GET", ts.URL + "/live", nil, "GET /live 200"},
	}
	for i, tc := range cases {
		do(t, tc.method, tc.url, tc.body)
		got, _ := fm.snapshot()
		if len(got) != i+1 || got[i] != tc.want {
			t.Fatalf("request %d %s %s: observed %v, want last %q", i, tc.method, tc.url, got, tc.want)
		}
	}
}
