package httpapi

import (
	"encoding/json"
	"errors"
	"github.com/pushwire/pushwire/internal/testkit"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

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

// TestUsage: GET /usage answers the caller's app (signed, or the console credential) with
// its connections and occupied channels, and the node's memory, goroutines and uptime; an
// unsigned request is refused (issue 16, finding 6).
func TestUsage(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	hub, ts := setupOpts(t, Options{Now: clock.Now}, nil)
	subscribe(t, hub, "a", "")
	subscribe(t, hub, "a", "")
	subscribe(t, hub, "presence-b", "u1")
	clock.Add(90 * time.Second)
	resp, body := do(t, "GET", ts.URL+"/usage", nil)
	wantError(t, resp, body, 400, "invalid_input")
	resp, body = do(t, "GET", signedURL(ts, "GET", "/usage", nil, nil, "wrong", clock.Now()), nil)
	wantError(t, resp, body, 401, "auth_failed")
	resp, body = do(t, "GET", signedURL(ts, "GET", "/usage", nil, nil, testSecret, clock.Now()), nil)
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
	// The SDKs' get({path: '/usage'}) signs /apps/{id}/usage: the same answer, for that app.
	resp, path := do(t, "GET", signedURL(ts, "GET", "/apps/app-id/usage", nil, nil, testSecret, clock.Now()), nil)
	if resp.StatusCode != 200 || !strings.Contains(string(path), `"apps":{"app-id":{"connections":3,"channels":2}}`) {
		t.Errorf("/apps/app-id/usage: %d %s", resp.StatusCode, path)
	}
	resp, body = do(t, "GET", signedURL(ts, "GET", "/apps/other/usage", nil, nil, testSecret, clock.Now()), nil)
	wantError(t, resp, body, 401, "auth_failed")
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
			clock := testkit.NewClock(time.Now())
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

func TestHealth(t *testing.T) {
	disabled := false
	cases := []struct {
		name   string
		edit   func(*config.App)
		path   string
		status int
		body   string
	}{
		{"live", nil, "/live", 200, ""},
		{"up", nil, "/up", 200, "OK"},
		{"up of an app", nil, "/up/app-id", 200, "OK"},
		{"up of an unknown app", nil, "/up/nope", 404, "NOT_FOUND"},
		{"up of a disabled app", func(a *config.App) { a.Enabled = &disabled }, "/up/app-id", 503, "ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := setupOpts(t, Options{}, tc.edit)
			resp, body := do(t, "GET", ts.URL+tc.path, nil)
			if resp.StatusCode != tc.status || string(body) != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.body != "" && (resp.Header.Get("X-Health-Check") != tc.body || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain")) {
				t.Fatalf("headers %v", resp.Header)
			}
		})
	}
}

// TestRecoverer checks that a panicking handler is logged and answered with the 500
// envelope, and that a handler which had already answered gets its connection aborted.
func TestRecoverer(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		status  int // 0: the connection is aborted
	}{
		{"panic", func(http.ResponseWriter, *http.Request) { panic("boom") }, 500},
		{"panic with an error", func(http.ResponseWriter, *http.Request) { panic(errors.New("boom")) }, 500},
		{"panic after answering", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"partial":`))
			w.(http.Flusher).Flush()
			panic("boom")
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.ErrorLevel)
			fm := &fakeMetrics{}
			a := newAPI(channels.New(nil, channels.Options{}), Options{Logger: zap.New(core), Metrics: fm})
			r := a.router()
			r.Get("/panic", tc.handler)
			ts := httptest.NewUnstartedServer(r)
			ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the aborted case is logged by net/http
			ts.Start()
			defer ts.Close()
			resp, err := http.Get(ts.URL + "/panic")
			if tc.status == 0 {
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Fatal("the connection was not aborted")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != `{"error":"Internal server error","code":"internal_error","status":500}` || resp.StatusCode != 500 {
					t.Fatalf("got %d %s", resp.StatusCode, body)
				}
			}
			entries := logs.FilterMessage("panic in HTTP handler").All()
			if len(entries) != 1 || entries[0].ContextMap()["path"] != "/panic" {
				t.Fatalf("logged %v", logs.All())
			}
			if got, _ := fm.snapshot(); len(got) != 1 || (tc.status != 0 && got[0] != "GET /panic 500") {
				t.Fatalf("observed %v", got)
			}
		})
	}
}

// TestUsageCostIsConstant (issue 16, finding 6): /usage reads maintained counters, so a call
// allocates no more with 10,000 occupied channels than with one.
func TestUsageCostIsConstant(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	api := New(e.hub, Options{})
	perCall := func() uint64 {
		const calls = 20
		reqs := make([]*http.Request, calls)
		for i := range reqs {
			reqs[i] = httptest.NewRequest("GET", signedURL(e.ts, "GET", "/usage", nil, nil, testSecret, time.Now()), nil)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, r := range reqs {
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / calls
	}
	subscribe(t, e.hub, "c-0", "")
	few := perCall()
	for i := 1; i < 10_000; i++ {
		subscribe(t, e.hub, "c-"+strconv.Itoa(i), "")
	}
	many := perCall()
	t.Logf("bytes allocated per /usage call: %d with 1 channel, %d with 10,000", few, many)
	if many > few+4<<10 {
		t.Errorf("a /usage call allocates %d bytes with 10,000 channels, %d with one: it lists them", many, few)
	}
}
