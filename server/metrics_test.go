package server

import (
	"context"
	"fmt"
	"github.com/pushwire/pushwire/internal/testkit"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// fakeMetrics records every call as a line such as "connected app-id" and lets a test wait
// for a line without sleeping.
type fakeMetrics struct {
	mu      sync.Mutex
	calls   []string
	bytesIn int
	out     int
	changed chan struct{}
}

func newFakeMetrics() *fakeMetrics { return &fakeMetrics{changed: make(chan struct{})} }

func (f *fakeMetrics) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeMetrics) Connected(appID string) { f.record("connected " + appID) }
func (f *fakeMetrics) Disconnected(appID string, code int, reason string) {
	f.record(fmt.Sprintf("disconnected %s %d %s", appID, code, reason))
}
func (f *fakeMetrics) MessageIn(appID string, n int) {
	f.mu.Lock()
	f.bytesIn += n
	f.mu.Unlock()
	f.record("in " + appID)
}
func (f *fakeMetrics) MessageOut(appID string, n int) {
	f.mu.Lock()
	f.out += n
	f.mu.Unlock()
	f.record("out " + appID)
}
func (f *fakeMetrics) SlowConsumer(appID string) { f.record("slow " + appID) }
func (f *fakeMetrics) Refused(reason string)     { f.record("refused " + reason) }
func (f *fakeMetrics) PollError()                { f.record("poll_error") }

// count returns how many recorded calls equal call.
func (f *fakeMetrics) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

// waitCount blocks until call was recorded at least n times, failing after 5s.
func (f *fakeMetrics) waitCount(t *testing.T, call string, n int) {
	t.Helper()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		got := 0
		for _, c := range f.calls {
			if c == call {
				got++
			}
		}
		changed := f.changed
		calls := slices.Clone(f.calls)
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("metrics call %q seen %d times, want %d; calls: %v", call, got, n, calls)
		}
	}
}

func TestMetricsConnectMessagesDisconnect(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		cases := []struct {
			name  string
			close func(c *client)
			want  string
		}{
			{"client normal close", func(c *client) { _ = c.ws.Close(websocket.StatusNormalClosure, "bye") }, "disconnected app-id 1000 client_closed"},
			{"client going away", func(c *client) { _ = c.ws.Close(websocket.StatusGoingAway, "") }, "disconnected app-id 1001 client_closed"},
			{"socket dropped", func(c *client) { _ = c.ws.CloseNow() }, "disconnected app-id 1006 client_closed"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				fm := newFakeMetrics()
				_, _, url := newTestServer(t, Options{Metrics: fm})
				c := dial(t, url+"/app/app-key?protocol=7")
				c.handshake()
				fm.waitCount(t, "connected app-id", 1)
				c.send(`{"event":"pusher:ping","data":{}}`)
				c.expect(`{"event":"pusher:pong"}`)
				// Two frames written (handshake, pong), one read (ping).
				fm.waitCount(t, "out app-id", 2)
				fm.waitCount(t, "in app-id", 1)
				tc.close(c)
				fm.waitCount(t, tc.want, 1)
				fm.mu.Lock()
				bytesIn, out := fm.bytesIn, fm.out
				fm.mu.Unlock()
				if bytesIn != len(`{"event":"pusher:ping","data":{}}`) {
					t.Errorf("bytes in %d", bytesIn)
				}
				if out < len(`{"event":"pusher:pong"}`) {
					t.Errorf("bytes out %d", out)
				}
			})
		}
	})
}

func TestMetricsServerCloses(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		cases := []struct {
			name string
			opts Options
			run  func(t *testing.T, c *client, hub *channels.Hub, srv *Server, fm *fakeMetrics)
			want []string
		}{
			{
				name: "activity timeout",
				opts: Options{ActivityTimeout: 50 * time.Millisecond, PongTimeout: 50 * time.Millisecond},
				run: func(t *testing.T, c *client, _ *channels.Hub, _ *Server, _ *fakeMetrics) {
					c.expectClose(protocol.CodePongTimeout)
				},
				want: []string{"disconnected app-id 4201 activity_timeout"},
			},
			{
				name: "shutdown",
				run: func(t *testing.T, c *client, _ *channels.Hub, srv *Server, _ *fakeMetrics) {
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						_ = srv.Shutdown(ctx)
					}()
					c.expectClose(protocol.CodeReconnect)
				},
				want: []string{"disconnected app-id 4200 shutdown"},
			},
			{
				name: "slow consumer",
				opts: Options{WriteQueueMessages: 4},
				run: func(t *testing.T, c *client, hub *channels.Hub, _ *Server, fm *fakeMetrics) {
					c.send(`{"event":"pusher:subscribe","data":{"channel":"feed"}}`)
					c.expect(`{"event":"pusher_internal:subscription_succeeded","channel":"feed","data":"{}"}`)
					// The client does not read; enough large events overflow its socket buffers
					// and then its 4-frame queue.
					big := strings.Repeat("z", 64<<10)
					for i := 0; i < 400 && fm.count("slow app-id") == 0; i++ {
						if err := hub.Publish("app-id", channels.Event{Name: "e", Channels: []string{"feed"}, Data: big}); err != nil {
							t.Fatal(err)
						}
					}
					// Reading now lets the blocked writer finish and send the close.
					c.expectCloseOrError(protocol.CodeOverCapacity)
				},
				want: []string{"slow app-id", "disconnected app-id 4100 slow_consumer"},
			},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				fm := newFakeMetrics()
				tc.opts.Metrics = fm
				srv, hub, url := newTestServer(t, tc.opts)
				c := dial(t, url+"/app/app-key")
				c.handshake()
				tc.run(t, c, hub, srv, fm)
				for _, w := range tc.want {
					fm.waitCount(t, w, 1)
				}
				if n := fm.count("connected app-id"); n != 1 {
					t.Fatalf("connected %d times", n)
				}
			})
		}
	})
}

func TestPerIPLimitRefuses4100(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
		fm := newFakeMetrics()
		_, _, url := newTestServer(t, Options{MaxConnectionsPerIPPerMinute: 2, Now: clock.Now, Metrics: fm})
		for i := 0; i < 2; i++ {
			dial(t, url+"/app/app-key").handshake()
		}
		c := dial(t, url+"/app/app-key")
		c.expect(`{"event":"pusher:error","data":{"code":4100,"message":"Too many connections from your address"}}`)
		c.expectClose(4100)
		if n := fm.count("refused ip_rate_limited"); n != 1 {
			t.Fatalf("refused ip_rate_limited %d times", n)
		}
		clock.Add(30 * time.Second) // half a minute refills one of two tokens
		dial(t, url+"/app/app-key").handshake()
		c = dial(t, url+"/app/app-key")
		c.expect(`{"event":"pusher:error","data":{"code":4100,"message":"Too many connections from your address"}}`)
		c.expectClose(4100)
	})
}

func TestDraining(t *testing.T) {
	srv, _, _ := newTestServer(t, Options{})
	if srv.Draining() || !srv.Ready() {
		t.Fatal("new server draining")
	}
	srv.SetDraining(true)
	if !srv.Draining() || srv.Ready() {
		t.Fatal("SetDraining(true) not reported")
	}
	srv.SetDraining(false)
	if srv.Draining() {
		t.Fatal("SetDraining(false) not reported")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !srv.Draining() {
		t.Fatal("Shutdown did not mark the server draining")
	}
}

func TestRefusalsCounted(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		fm := newFakeMetrics()
		srv, _, url := newTestServer(t, Options{Metrics: fm, MaxConnections: 1})
		dial(t, url+"/app/nope").expectClose(protocol.CodeAppNotFound)
		fm.waitCount(t, "refused app_refused", 1)
		// The refused connection counts until the server has finished closing it.
		for deadline := time.Now().Add(5 * time.Second); srv.Connections() != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("refused connection still counted")
			}
		}
		dial(t, url+"/app/app-key").handshake()
		dial(t, url+"/app/app-key").expectCloseOrError(protocol.CodeOverCapacity)
		fm.waitCount(t, "refused over_capacity", 1)
		if n := fm.count("connected app-id"); n != 1 {
			t.Fatalf("connected %d times, want 1 (refusals are not connections)", n)
		}
	})
}

func TestIPLimiter(t *testing.T) {
	type step struct {
		after time.Duration // advance the clock first
		key   string
		want  bool
	}
	cases := []struct {
		name      string
		perMinute int
		steps     []step
	}{
		{"burst then refused", 3, []step{{0, "a", true}, {0, "a", true}, {0, "a", true}, {0, "a", false}, {0, "a", false}}},
		{"addresses are independent", 1, []step{{0, "a", true}, {0, "b", true}, {0, "a", false}, {0, "b", false}}},
		{"refills per minute", 2, []step{{0, "a", true}, {0, "a", true}, {0, "a", false}, {29 * time.Second, "a", false}, {time.Second, "a", true}, {0, "a", false}, {time.Minute, "a", true}, {0, "a", true}, {0, "a", false}}},
		{"refill caps at the burst", 2, []step{{0, "a", true}, {time.Hour, "a", true}, {0, "a", true}, {0, "a", false}}},
		{"refused attempts do not extend the wait", 1, []step{{0, "a", true}, {10 * time.Second, "a", false}, {20 * time.Second, "a", false}, {30 * time.Second, "a", true}}},
		{"clock going back", 1, []step{{0, "a", true}, {-time.Hour, "a", false}, {time.Hour + time.Minute, "a", true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
			l := newIPLimiter(tc.perMinute, clock.Now)
			for i, s := range tc.steps {
				clock.Add(s.after)
				if got := l.allow(s.key); got != s.want {
					t.Fatalf("step %d (%+v): allow = %v", i, s, got)
				}
			}
		})
	}
}

func TestIPLimiterMemoryBounded(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	l := newIPLimiter(5, clock.Now)
	l.maxEntries = 100
	for i := 0; i < 1000; i++ {
		l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if n := l.len(); n > 100 {
		t.Fatalf("%d entries tracked, cap 100", n)
	}
	// A minute later every bucket is full again: the next call sweeps them all.
	clock.Add(time.Minute)
	l.allow("192.0.2.1")
	if n := l.len(); n != 1 {
		t.Fatalf("%d entries after a minute idle, want 1", n)
	}
}

func TestClientKey(t *testing.T) {
	cases := []struct {
		name   string
		remote string
		xff    string
		trust  bool
		want   string
	}{
		{"ipv4 peer", "192.0.2.7:5555", "", false, "192.0.2.7"},
		{"forwarded ignored by default", "192.0.2.7:5555", "198.51.100.1", false, "192.0.2.7"},
		{"forwarded trusted", "192.0.2.7:5555", "198.51.100.1, 10.0.0.1", true, "198.51.100.1"},
		{"forwarded garbage falls back to peer", "192.0.2.7:5555", "unknown", true, "192.0.2.7"},
		{"ipv6 per /64", "[2001:db8:1:2:3:4:5:6]:443", "", false, "2001:db8:1:2::/64"},
		{"ipv4-mapped ipv6", "[::ffff:192.0.2.9]:443", "", false, "192.0.2.9"},
		{"forwarded ipv6", "192.0.2.7:5555", "2001:db8::1", true, "2001:db8::/64"},
		{"no port", "192.0.2.8", "", false, "192.0.2.8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/app/k", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := clientKey(r, tc.trust); got != tc.want {
				t.Fatalf("clientKey = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCloseCode(t *testing.T) {
	cases := []struct {
		name   string
		err    *protocol.Error
		reason CloseReason
		read   error
		wsCode int
		want   int
	}{
		{"server error code", &protocol.Error{Code: 4100}, reasonSlowConsumer, nil, 0, 4100},
		{"client close 1000", nil, reasonClient, websocket.CloseError{Code: websocket.StatusNormalClosure}, 0, 1000},
		{"client close without status", nil, reasonClient, websocket.CloseError{Code: websocket.StatusNoStatusRcvd}, 0, 1005},
		{"client dropped", nil, reasonClient, fmt.Errorf("EOF"), 0, 1006},
		{"write failed", nil, reasonWriteFailed, nil, 0, 1006},
		{"too big", nil, reasonTooBig, nil, 0, 1009},
		{"protocol error", nil, reasonProtocol, nil, 1002, 1002},
		{"invalid UTF-8", nil, reasonProtocol, nil, 1007, 1007},
		{"server close without error", nil, reasonServer, nil, 0, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := closeCode(tc.err, tc.reason, tc.read, tc.wsCode); got != tc.want {
				t.Fatalf("closeCode = %d, want %d", got, tc.want)
			}
		})
	}
}
