package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

func newTestServer(t *testing.T, opts Options, apps ...config.App) (*Server, *channels.Hub, string) {
	t.Helper()
	if len(apps) == 0 {
		apps = []config.App{config.DefaultApp()}
	}
	for i := range apps {
		apps[i].ApplyDefaults()
	}
	hub := channels.New(apps, channels.Options{})
	if opts.Transport == "" {
		opts.Transport = testTransport
	}
	srv := New(hub, opts)
	mux := http.NewServeMux()
	mux.Handle("/app/", srv)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return srv, hub, "ws" + strings.TrimPrefix(ts.URL, "http")
}

// testTransport is the transport newTestServer gives a server whose options name none; set
// by forTransports.
var testTransport Transport

// forTransports runs f once per transport (std, then epoll where the platform has it).
func forTransports(t *testing.T, f func(t *testing.T)) {
	for _, tr := range []Transport{TransportStd, TransportEpoll} {
		t.Run(string(tr), func(t *testing.T) {
			testTransport = tr
			defer func() { testTransport = "" }()
			if tr == TransportEpoll {
				if !netpollAvailable() {
					t.Skip("no netpoller here")
				}
			}
			f(t)
		})
	}
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: t, ws: ws}
}

func (c *client) read() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	return string(b), err
}

func (c *client) expect(want string) {
	c.t.Helper()
	got, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v (want %s)", err, want)
	}
	if got != want {
		c.t.Fatalf("frame\n got: %s\nwant: %s", got, want)
	}
}

func (c *client) send(frame string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// handshake reads connection_established and returns the socket id.
func (c *client) handshake() string {
	c.t.Helper()
	got, err := c.read()
	if err != nil {
		c.t.Fatal(err)
	}
	var f struct{ Event, Data string }
	if err := json.Unmarshal([]byte(got), &f); err != nil || f.Event != "pusher:connection_established" {
		c.t.Fatalf("handshake frame %s", got)
	}
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if err := json.Unmarshal([]byte(f.Data), &d); err != nil || !regexp.MustCompile(`^\d+\.\d+$`).MatchString(d.SocketID) || d.ActivityTimeout <= 0 {
		c.t.Fatalf("handshake data %s", f.Data)
	}
	return d.SocketID
}

func (c *client) expectClose(code int) {
	c.t.Helper()
	for {
		_, err := c.read()
		if err != nil {
			if got := int(websocket.CloseStatus(err)); got != code {
				c.t.Fatalf("close code %d (%v), want %d", got, err, code)
			}
			return
		}
	}
}

func TestHandshakePingSubscribePublish(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		_, hub, url := newTestServer(t, Options{})
		c := dial(t, url+"/app/app-key?protocol=7&client=js&version=8.6.0&flash=false")
		c.handshake()
		c.send(`{"event":"pusher:ping","data":{}}`)
		c.expect(`{"event":"pusher:pong"}`)
		c.send(`{"event":"pusher:subscribe","data":{"auth":"","channel":"test-channel"}}`)
		c.expect(`{"event":"pusher_internal:subscription_succeeded","channel":"test-channel","data":"{}"}`)
		if err := hub.Publish("app-id", channels.Event{Name: "my-event", Channels: []string{"test-channel"}, Data: `{"a":1}`}); err != nil {
			t.Fatal(err)
		}
		c.expect(`{"event":"my-event","channel":"test-channel","data":"{\"a\":1}"}`)
	})
}

func TestUnknownAppRefused(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		_, _, url := newTestServer(t, Options{})
		c := dial(t, url+"/app/nope?protocol=7")
		c.expect(`{"event":"pusher:error","data":{"code":4001,"message":"App key nope does not exist"}}`)
		c.expectClose(4001)
	})
}

func TestBadInputKeepsConnection(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		_, _, url := newTestServer(t, Options{MaxMessageBytes: 1024})
		c := dial(t, url+"/app/app-key")
		c.handshake()
		for _, in := range []string{`nope`, `[]`, `{"data":{}}`, `{"event":5}`, `{"event":"pusher:foo"}`, `{"event":"foo"}`} {
			c.send(in)
			got, err := c.read()
			if err != nil || !strings.HasPrefix(got, `{"event":"pusher:error","data":{"code":4000,`) {
				t.Fatalf("input %.20q: got %s, %v", in, got, err)
			}
		}
		c.send(`{"event":"pusher:ping"}`)
		c.expect(`{"event":"pusher:pong"}`)
	})
}

func TestSubscriptionErrorOnBadAuth(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		_, _, url := newTestServer(t, Options{})
		c := dial(t, url+"/app/app-key")
		c.handshake()
		c.send(`{"event":"pusher:subscribe","data":{"auth":"app-key:deadbeef","channel":"private-x"}}`)
		c.expect(`{"event":"pusher:error","data":{"code":4009,"message":"Invalid signature: expected HMAC SHA256 hex digest of socket_id:channel_name"}}`)
		c.expect(`{"event":"pusher:subscription_error","channel":"private-x","data":{"type":"AuthError","error":"Invalid signature: expected HMAC SHA256 hex digest of socket_id:channel_name","status":401,"code":4009}}`)
		c.send(`{"event":"pusher:ping"}`)
		c.expect(`{"event":"pusher:pong"}`)
	})
}

func TestActivityTimeoutPingThenClose(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		_, _, url := newTestServer(t, Options{ActivityTimeout: 200 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
		c := dial(t, url+"/app/app-key")
		c.handshake()
		c.expect(`{"event":"pusher:ping"}`)
		c.send(`{"event":"pusher:pong","data":{}}`)
		c.expect(`{"event":"pusher:ping"}`)
		c.expect(`{"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received in time"}}`)
		c.expectClose(4201)
	})
}

func TestSlowConsumerClosedOthersServed(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		_, hub, url := newTestServer(t, Options{WriteQueueBytes: 1 << 20})
		slow := dial(t, url+"/app/app-key")
		slow.handshake()
		slow.send(`{"event":"pusher:subscribe","data":{"channel":"feed"}}`)
		slow.expect(`{"event":"pusher_internal:subscription_succeeded","channel":"feed","data":"{}"}`)
		fast := dial(t, url+"/app/app-key")
		fast.handshake()
		fast.send(`{"event":"pusher:subscribe","data":{"channel":"feed"}}`)
		fast.expect(`{"event":"pusher_internal:subscription_succeeded","channel":"feed","data":"{}"}`)
		big := strings.Repeat("y", 60000)
		const n = 300
		// Publish at the pace of the reading client: the slow one never reads, so its socket
		// buffers and then its 1 MiB queue fill up.
		for i := 0; i < n; i++ {
			if err := hub.Publish("app-id", channels.Event{Name: "tick", Channels: []string{"feed"}, Data: big}); err != nil {
				t.Fatal(err)
			}
			if _, err := fast.read(); err != nil {
				t.Fatalf("reading client lost event %d: %v", i, err)
			}
		}
		// The slow client never read; it must have been cut off with 4100 rather than holding
		// up the publisher.
		slow.expectCloseOrError(protocol.CodeOverCapacity)
	})
}

func (c *client) expectCloseOrError(code int) {
	c.t.Helper()
	for {
		got, err := c.read()
		if err != nil {
			if st := int(websocket.CloseStatus(err)); st != code {
				c.t.Fatalf("close %d (%v), want %d", st, err, code)
			}
			return
		}
		if strings.HasPrefix(got, `{"event":"pusher:error"`) && !strings.Contains(got, `"code":4100`) {
			c.t.Fatalf("unexpected error frame %s", got)
		}
	}
}

func TestShutdownCloses4200(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		srv, _, url := newTestServer(t, Options{})
		c := dial(t, url+"/app/app-key")
		c.handshake()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()
		c.expect(`{"event":"pusher:error","data":{"code":4200,"message":"Server is shutting down"}}`)
		c.expectClose(4200)
	})
}

// TestShutdownFlushesQueuedEvents: events accepted before shutdown reach the client before
// its 4200 close, even when they are still queued.
func TestShutdownFlushesQueuedEvents(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		srv, hub, url := newTestServer(t, Options{})
		c := dial(t, url+"/app/app-key")
		c.handshake()
		c.send(`{"event":"pusher:subscribe","data":{"channel":"feed"}}`)
		c.expect(`{"event":"pusher_internal:subscription_succeeded","channel":"feed","data":"{}"}`)
		const n = 500
		for i := 0; i < n; i++ {
			if err := hub.Publish("app-id", channels.Event{Name: "tick", Channels: []string{"feed"}, Data: strings.Repeat("z", 1000)}); err != nil {
				t.Fatal(err)
			}
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()
		for i := 0; i < n; i++ {
			got, err := c.read()
			if err != nil || !strings.HasPrefix(got, `{"event":"tick"`) {
				t.Fatalf("event %d of %d: %.80s %v", i, n, got, err)
			}
		}
		c.expect(`{"event":"pusher:error","data":{"code":4200,"message":"Server is shutting down"}}`)
		c.expectClose(4200)
	})
}
