package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

func testHandshake(t *testing.T, s *testkit.Server) {
	t.Run("ConnectionEstablished", func(t *testing.T) {
		t.Parallel()
		a, b := connect(t, s), connect(t, s)
		if a.socketID == b.socketID {
			t.Fatalf("two connections got the same socket id %s", a.socketID)
		}
	})
	t.Run("ClientPing", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		for _, ping := range []string{
			`{"event":"pusher:ping","data":{}}`,
			`{"event":"pusher:ping"}`,
			`{"event":"pusher:ping","data":"{}"}`,
		} {
			c.send(t, ping)
			c.expect(t, `{"event":"pusher:pong"}`)
		}
	})
	t.Run("NativePing", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
		defer cancel()
		if err := c.ws.Ping(ctx); err != nil {
			t.Fatalf("native ping not answered: %v", err)
		}
		c.ping(t)
	})
	t.Run("PongIsIgnored", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.send(t, `{"event":"pusher:pong","data":{}}`)
		c.ping(t) // no reply to an unsolicited pong, and no error
	})
}

// TestHeartbeat checks the server-side liveness probe with a 1s activity timeout and a 1s
// pong timeout: here the timeouts are the behaviour under test.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--activity-timeout=1s", "--pong-timeout=1s"}})

	t.Run("UnansweredPingCloses4201", func(t *testing.T) {
		t.Parallel()
		c := connectKey(t, s, testkit.AppKey, 1)
		c.expect(t, `{"event":"pusher:ping"}`)
		c.expect(t, `{"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received in time"}}`)
		c.expectClose(t, 4201)
	})

	// V2: native WebSocket pings after max(activity_timeout/2, 5s) of silence, never an
	// app-level ping; a client that answers them (any reading WebSocket client does) stays.
	t.Run("V2NativePingsAnswered", func(t *testing.T) {
		t.Parallel()
		c := connectV2(t, s, v2Options{})
		if m, ok := c.recv(7 * time.Second); ok {
			t.Fatalf("V2 got a frame while idle: %s", m.data)
		}
		c.pingV2(t) // still connected after a native ping cycle
	})
	t.Run("V2UnansweredNativePingCloses4201", func(t *testing.T) {
		t.Parallel()
		c := &v2Client{client: dial(t, v2URL(s, testkit.AppKey, v2Options{}), dialOptions{noReader: true})}
		time.Sleep(8 * time.Second) // not reading: the native ping goes unanswered
		go c.readLoop()
		c.expectV2(t, "sockudo:connection_established", "")
		if msg := c.expectV2Error(t, 4201); msg != "Pong reply not received in time" {
			t.Errorf("message %q", msg)
		}
		c.expectClose(t, 4201)
	})

	answers := []struct {
		name   string
		answer func(t *testing.T, c *client)
	}{
		{"PusherPong", func(t *testing.T, c *client) { c.send(t, `{"event":"pusher:pong","data":{}}`) }},
		{"AnyFrame", func(t *testing.T, c *client) {
			c.send(t, `{"event":"pusher:ping","data":{}}`)
			c.expect(t, `{"event":"pusher:pong"}`)
		}},
		{"NativePing", func(t *testing.T, c *client) {
			ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
			defer cancel()
			if err := c.ws.Ping(ctx); err != nil {
				t.Fatalf("native ping: %v", err)
			}
		}},
	}
	for _, a := range answers {
		t.Run("AnsweredBy"+a.name, func(t *testing.T) {
			t.Parallel()
			c := connectKey(t, s, testkit.AppKey, 1)
			// Two full ping cycles: each outlives the pong timeout of the previous ping.
			for range 2 {
				c.expect(t, `{"event":"pusher:ping"}`)
				a.answer(t, c)
			}
			c.expect(t, `{"event":"pusher:ping"}`)
			c.ping(t)
		})
	}
}

const limitsConfig = `
apps:
  - id: app-id
    key: app-key
    secret: app-secret
  - id: disabled-id
    key: disabled-key
    secret: disabled-secret
    enabled: false
  - id: quota-id
    key: quota-key
    secret: quota-secret
    max_connections: 1
  - id: origin-id
    key: origin-key
    secret: origin-secret
    allowed_origins: ["https://good.example"]
  - id: quiet-id
    key: quiet-key
    secret: quiet-secret
    enable_client_messages: false
  - id: small-id
    key: small-key
    secret: small-secret
    max_presence_members_per_channel: 2
  - id: nousers-id
    key: nousers-key
    secret: nousers-secret
    enable_user_authentication: false
`

// TestAppConfig checks per-app settings from a YAML config. Refusals before the handshake
// are an error frame with the code, then a close with the same code.
func TestAppConfig(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Config: limitsConfig})

	t.Run("UnknownKey4001", func(t *testing.T) {
		c := dial(t, s.WSURL("no-such-key"), dialOptions{})
		c.expectRefused(t, 4001)
	})
	t.Run("DisabledApp4003", func(t *testing.T) {
		c := dial(t, s.WSURL("disabled-key"), dialOptions{})
		c.expectRefused(t, 4003)
	})
	t.Run("AppQuota4004", func(t *testing.T) {
		first := connectKey(t, s, "quota-key", 120)
		second := dial(t, s.WSURL("quota-key"), dialOptions{})
		second.expectRefused(t, 4004)
		first.ping(t)
		// Other apps are not affected by this app's quota.
		connect(t, s).ping(t)
		// The quota frees up when the first socket leaves.
		first.close()
		testkit.WaitFor(t, frameTimeout, "quota to free up", func() bool {
			c := dial(t, s.WSURL("quota-key"), dialOptions{})
			defer c.close()
			return handshakeRE.MatchString(c.next(t))
		})
	})
	origins := []struct {
		name   string
		origin string
		code   int // 0: accepted
	}{
		{"Mismatch4009", "https://evil.example", 4009},
		{"Missing4009", "", 4009},
		{"Allowed", "https://good.example", 0},
		{"AllowedAnyCase", "HTTPS://GOOD.EXAMPLE", 0},
	}
	for _, o := range origins {
		t.Run("Origin"+o.name, func(t *testing.T) {
			h := http.Header{}
			if o.origin != "" {
				h.Set("Origin", o.origin)
			}
			c := dial(t, s.WSURL("origin-key"), dialOptions{header: h})
			if o.code != 0 {
				c.expectRefused(t, o.code)
				return
			}
			c.expectHandshake(t, 120)
			c.ping(t)
		})
	}
	t.Run("OriginIgnoredWithoutAllowList", func(t *testing.T) {
		c := dial(t, s.WSURL(testkit.AppKey), dialOptions{header: http.Header{"Origin": {"https://anything.example"}}})
		c.expectHandshake(t, 120)
	})
	t.Run("ClientMessagesDisabled", func(t *testing.T) {
		sender := connectApp(t, s, "quiet-key", "quiet-secret")
		receiver := connectApp(t, s, "quiet-key", "quiet-secret")
		sender.subscribePrivate(t, "private-quiet")
		receiver.subscribePrivate(t, "private-quiet")
		sender.send(t, `{"event":"client-x","channel":"private-quiet","data":{}}`)
		sender.expectError(t, 4301)
		sender.ping(t)
		receiver.ping(t)
	})
	t.Run("PresenceMembersCap", func(t *testing.T) {
		const ch = "presence-small"
		var members []*client
		for _, id := range []string{"m1", "m2", "m1"} { // m1 twice: still two members
			c := connectApp(t, s, "small-key", "small-secret")
			c.subscribePresence(t, ch, `{"user_id":"`+id+`"}`)
			c.expectEvent(t, "pusher_internal:subscription_succeeded")
			members = append(members, c)
		}
		third := connectApp(t, s, "small-key", "small-secret")
		third.subscribePresence(t, ch, `{"user_id":"m3"}`)
		third.expectError(t, 4100)
		third.expectSubscriptionError(t, ch, "LimitReached", 403)
		third.ping(t)
		members[0].expectEvent(t, "pusher_internal:member_added") // m2 only
		members[0].ping(t)
	})
	t.Run("UserAuthenticationDisabled", func(t *testing.T) {
		c := connectApp(t, s, "nousers-key", "nousers-secret")
		auth := protocol.AuthToken(c.key, c.secret, protocol.UserStringToSign(c.socketID, `{"id":"u"}`))
		c.sendEvent(t, "pusher:signin", "", map[string]string{"auth": auth, "user_data": `{"id":"u"}`})
		c.expectError(t, 4009)
		c.ping(t)
	})
}

// TestNodeCapacity checks --max-connections: the connection over it is refused with 4100.
func TestNodeCapacity(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--max-connections=1"}})
	first := connect(t, s)
	second := dial(t, s.WSURL(testkit.AppKey), dialOptions{})
	second.expectRefused(t, 4100)
	first.ping(t)
	first.close()
	testkit.WaitFor(t, frameTimeout, "capacity to free up", func() bool {
		c := dial(t, s.WSURL(testkit.AppKey), dialOptions{})
		defer c.close()
		return handshakeRE.MatchString(c.next(t))
	})
}

// TestShutdown checks that SIGTERM closes every client with an error frame 4200 and then
// close code 4200, so clients reconnect at once (to another node).
func TestShutdown(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	a, b := connect(t, s), connect(t, s)
	a.subscribe(t, "shutdown-channel")
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.Stop()
	}()
	for _, c := range []*client{a, b} {
		c.expectRefused(t, 4200)
	}
	select {
	case <-stopped:
	case <-time.After(25 * time.Second):
		t.Fatal("server did not stop")
	}
	// Late clients are not accepted any more.
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	if ws, _, err := websocket.Dial(ctx, s.WSURL(testkit.AppKey), nil); err == nil {
		_ = ws.CloseNow()
		t.Fatal("dial after shutdown succeeded")
	}
}
