package metrics

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/httpapi"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/server"
)

// Compile-time checks that *Metrics fits its consumers' interfaces.
var (
	_ server.Metrics  = (*Metrics)(nil)
	_ httpapi.Metrics = (*Metrics)(nil)
	_ interface {
		Delivered(appID string, events int)
		Failed(appID string, status int)
		Retried(appID string)
		Dropped(appID string, events int)
	} = (*Metrics)(nil)
)

// node is a hub, the WebSocket gateway and the REST API on one httptest server, all
// reporting to one Metrics, wired as cmd/pushwire wires them.
type node struct {
	m   *Metrics
	hub *channels.Hub
	ws  *server.Server
	ts  *httptest.Server
	now time.Time // the API's fixed clock: the event rate limit never refills
}

func newNode(t *testing.T, m *Metrics, sopts server.Options) *node {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	app.MaxBackendEventsPerSecond = 2
	hub := channels.New([]config.App{app}, channels.Options{})
	sopts.Metrics = m
	ws := server.New(hub, sopts)
	now := time.Now()
	api := httpapi.New(hub, httpapi.Options{Metrics: m, Ready: ws.Ready, Now: func() time.Time { return now }})
	mux := http.NewServeMux()
	mux.Handle("/app/", ws)
	mux.Handle("/", api)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ws.Shutdown(ctx)
		ts.Close()
	})
	return &node{m: m, hub: hub, ws: ws, ts: ts, now: now}
}

func (n *node) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.ts.URL, "http")+"/app/app-key?protocol=7&client=js&version=8.6.0", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

func read(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func write(t *testing.T, ws *websocket.Conn, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readUntilClosed reads until the socket closes and returns the close code.
func readUntilClosed(t *testing.T, ws *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// publish POSTs one signed event (signature by secret) and returns the status.
func (n *node) publish(t *testing.T, secret, channel string) int {
	t.Helper()
	body := []byte(`{"name":"my-event","channel":"` + channel + `","data":"{\"hello\":1}"}`)
	path := "/apps/app-id/events"
	url := n.ts.URL + path + "?" + protocol.SignAPIRequest("app-key", secret, "POST", path, nil, body, n.now)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// scraper reads the Handler output of a Metrics; safe to use from a WaitFor condition.
type scraper struct {
	t  *testing.T
	m  *Metrics
	mu sync.Mutex
}

func (s *scraper) get(name string, labels map[string]string) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return value(scrape(s.t, s.m), name, labels)
}

// waitValue waits until the sample reaches want (a scrape is the only way to observe it).
func (s *scraper) waitValue(name string, labels map[string]string, want float64) {
	s.t.Helper()
	testkit.WaitFor(s.t, 5*time.Second, name+" = "+strconv.FormatFloat(want, 'g', -1, 64), func() bool {
		return s.get(name, labels) == want
	})
}

func TestEndToEndScrape(t *testing.T) {
	m := New()
	s := &scraper{t: t, m: m}
	n := newNode(t, m, server.Options{WriteQueueMessages: 4})
	app := map[string]string{"app": "app-id"}

	if got := s.get("pushwire_connections", app); got > 0 {
		t.Fatalf("connections before any client: %v", got)
	}

	// A client connects, subscribes, receives a published event, pings, and leaves.
	c := n.dial(t)
	if f := read(t, c); !strings.Contains(f, "pusher:connection_established") {
		t.Fatalf("handshake %s", f)
	}
	write(t, c, `{"event":"pusher:subscribe","data":{"channel":"news"}}`)
	read(t, c)
	s.waitValue("pushwire_connections", app, 1)
	if st := n.publish(t, "app-secret", "news"); st != 200 {
		t.Fatalf("publish: %d", st)
	}
	if f := read(t, c); !strings.Contains(f, `"my-event"`) {
		t.Fatalf("event %s", f)
	}
	if st := n.publish(t, "wrong-secret", "news"); st != 401 {
		t.Fatalf("bad signature publish: %d", st)
	}
	write(t, c, `{"event":"pusher:ping","data":{}}`)
	read(t, c)
	// Written: handshake, subscription_succeeded, my-event, pong. Read: subscribe, ping.
	s.waitValue("pushwire_messages_out_total", app, 4)
	s.waitValue("pushwire_messages_in_total", app, 2)
	if b := s.get("pushwire_bytes_in_total", app); b != float64(len(`{"event":"pusher:subscribe","data":{"channel":"news"}}`)+len(`{"event":"pusher:ping","data":{}}`)) {
		t.Errorf("bytes in %v", b)
	}
	if b := s.get("pushwire_bytes_out_total", app); b < 100 {
		t.Errorf("bytes out %v", b)
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	s.waitValue("pushwire_connections", app, 0)
	s.waitValue("pushwire_disconnects_total", map[string]string{"app": "app-id", "code": "1000", "reason": "client_closed"}, 1)
	if got := s.get("pushwire_connects_total", app); got != 1 {
		t.Errorf("connects %v", got)
	}

	// The app allows 2 backend events per second on a clock that never moves: the first
	// publish took one, this takes the other, the next is refused with 429.
	if st := n.publish(t, "app-secret", "news"); st != 200 {
		t.Fatalf("second publish: %d", st)
	}
	if st := n.publish(t, "app-secret", "news"); st != 429 {
		t.Fatalf("third publish: %d, want 429", st)
	}

	// A slow consumer: subscribed, never reading, with a 4-frame queue.
	slow := n.dial(t)
	read(t, slow)
	write(t, slow, `{"event":"pusher:subscribe","data":{"channel":"feed"}}`)
	read(t, slow)
	big := strings.Repeat("x", 64<<10)
	for i := 0; i < 400 && s.get("pushwire_slow_consumer_closes_total", app) < 1; i++ {
		if err := n.hub.Publish("app-id", channels.Event{Name: "tick", Channels: []string{"feed"}, Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	if code := readUntilClosed(t, slow); code != 4100 {
		t.Fatalf("slow consumer closed with %d, want 4100", code)
	}
	s.waitValue("pushwire_disconnects_total", map[string]string{"app": "app-id", "code": "4100", "reason": "slow_consumer"}, 1)
	s.waitValue("pushwire_connections", app, 0)

	// HTTP requests by route pattern, never the raw path.
	fams := scrape(t, m)
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": "/apps/{appID}/events", "method": "POST", "status": "200"}, 2},
		{map[string]string{"route": "/apps/{appID}/events", "method": "POST", "status": "401"}, 1},
		{map[string]string{"route": "/apps/{appID}/events", "method": "POST", "status": "429"}, 1},
	} {
		if got := value(fams, "pushwire_http_requests_total", tc.labels); got != tc.want {
			t.Errorf("http_requests_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if got := value(fams, "pushwire_http_request_duration_seconds", map[string]string{"route": "/apps/{appID}/events"}); got != 4 {
		t.Errorf("latency observations %v, want 4", got)
	}
	if got := value(fams, "pushwire_http_rate_limited_total", app); got != 1 {
		t.Errorf("rate limited %v", got)
	}
	assertNoRawPaths(t, fams)
}

func TestEndToEndPerIPRefusal(t *testing.T) {
	m := New()
	s := &scraper{t: t, m: m}
	clock := time.Unix(1_700_000_000, 0)
	n := newNode(t, m, server.Options{MaxConnectionsPerIPPerMinute: 1, Now: func() time.Time { return clock }})
	first := n.dial(t)
	read(t, first)
	second := n.dial(t)
	if f := read(t, second); f != `{"event":"pusher:error","data":{"code":4100,"message":"Too many connections from your address"}}` {
		t.Fatalf("refusal frame %s", f)
	}
	if code := readUntilClosed(t, second); code != 4100 {
		t.Fatalf("refusal close %d", code)
	}
	if got := s.get("pushwire_connections_refused_total", map[string]string{"reason": "ip_rate_limited"}); got != 1 {
		t.Fatalf("refused %v", got)
	}
	if got := s.get("pushwire_connects_total", map[string]string{"app": "app-id"}); got != 1 {
		t.Fatalf("connects %v (a refusal is not a connection)", got)
	}
}

// assertNoRawPaths fails if a route label holds a concrete app id rather than a pattern.
func assertNoRawPaths(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for _, name := range []string{"pushwire_http_requests_total", "pushwire_http_request_duration_seconds"} {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && strings.Contains(l.GetValue(), "app-id") {
					t.Errorf("%s has a raw path label %q", name, l.GetValue())
				}
			}
		}
	}
}
