package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b bucket
	for i := range 3 {
		if !b.allow(t0, 1, 3) {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	if b.allow(t0, 1, 3) {
		t.Fatal("4th request of a burst of 3 allowed")
	}
	if !b.allow(t0.Add(time.Second), 1, 3) || b.allow(t0.Add(time.Second), 1, 3) {
		t.Fatal("one second at 1/s refills exactly one")
	}
	if !b.allow(t0.Add(time.Hour), 1, 3) || !b.allow(t0.Add(time.Hour), 1, 3) || !b.allow(t0.Add(time.Hour), 1, 3) || b.allow(t0.Add(time.Hour), 1, 3) {
		t.Fatal("a long pause refills the burst, no more")
	}
}

// readUntil reads frames until one contains want, and returns it.
func (c *client) readUntil(want string) string {
	c.t.Helper()
	for {
		got, err := c.read()
		if err != nil {
			c.t.Fatalf("read: %v (waiting for %s)", err, want)
		}
		if strings.Contains(got, want) {
			return got
		}
	}
}

// TestHistoryRequestsRateLimited (issue 16 finding 10): a connection's channel_history
// requests past the burst get a 4301 error frame each (not the hub's answer: here 4300, not
// subscribed), the
// bucket refills with the (injected) clock, and the connection stays open.
func TestHistoryRequestsRateLimited(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
		_, _, url := newTestServer(t, Options{Now: clk.Now, HistoryRequestsPerSecond: 2, HistoryRequestBurst: 3})
		c := dial(t, url+"/app/app-key?protocol=2")
		c.readUntil("connection_established")
		req := `{"event":"sockudo:channel_history","channel":"h","data":{"channel":"h","limit":1}}`
		for i := range 3 {
			c.send(req)
			if got := c.readUntil(`"code":43`); strings.Contains(got, "4301") {
				t.Fatalf("request %d of the burst refused: %s", i+1, got)
			}
		}
		c.send(req)
		if got := c.readUntil(`"code":43`); !strings.Contains(got, `"code":4301`) || !strings.Contains(got, "Rate limit exceeded") {
			t.Fatalf("4th request: %s", got)
		}
		clk.Add(time.Second) // two more
		for i := range 3 {
			c.send(req)
			got := c.readUntil(`"code":43`)
			if limited := strings.Contains(got, `"code":4301`); limited != (i == 2) {
				t.Fatalf("after 1s, request %d: %s", i+1, got)
			}
		}
		// A subscription with rewind counts too: refused with a subscription_error.
		c.send(`{"event":"sockudo:subscribe","data":{"channel":"r","rewind":2}}`)
		if got := c.readUntil(`subscription_error`); !strings.Contains(got, `4301`) || !strings.Contains(got, `"r"`) {
			t.Fatalf("rewind over the limit: %s", got)
		}
		c.send(`{"event":"sockudo:ping"}`)
		c.readUntil("pong")
	})
}

// TestResumeRateLimited: sockudo:resume past its per-minute burst gets 4301.
func TestResumeRateLimited(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
		_, _, url := newTestServer(t, Options{Now: clk.Now, ResumeRequestsPerMinute: 2})
		c := dial(t, url+"/app/app-key?protocol=2")
		c.readUntil("connection_established")
		req := `{"event":"sockudo:resume","data":{"channel_positions":{"x":{"stream_id":"s","serial":1}}}}`
		for i := range 2 {
			c.send(req)
			if got := c.readUntil(`"event"`); strings.Contains(got, "Rate limit") {
				t.Fatalf("resume %d refused: %s", i+1, got)
			}
		}
		c.send(req)
		c.readUntil(`Rate limit exceeded: at most 2 resume requests a minute`)
		clk.Add(30 * time.Second)
		c.send(req)
		if got := c.readUntil(`"event"`); strings.Contains(got, "Rate limit") {
			t.Fatalf("resume after 30s at 2/min refused: %s", got)
		}
	})
}

// TestSubscriptionsPerConnectionCapped: a connection at MaxSubscriptionsPerConnection gets
// 4100 and a subscription_error (LimitReached) for a new channel; subscribing again to one
// it has, or after unsubscribing, works.
func TestSubscriptionsPerConnectionCapped(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		_, _, url := newTestServer(t, Options{MaxSubscriptionsPerConnection: 3})
		c := dial(t, url+"/app/app-key")
		c.handshake()
		sub := func(ch string) string {
			c.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":%q}}`, ch))
			return c.readUntil(fmt.Sprintf(`%q`, ch))
		}
		for i := range 3 {
			if got := sub(fmt.Sprint("c", i)); !strings.Contains(got, "subscription_succeeded") {
				t.Fatalf("subscription %d: %s", i, got)
			}
		}
		c.send(`{"event":"pusher:subscribe","data":{"channel":"c3"}}`)
		c.expect(`{"event":"pusher:error","data":{"code":4100,"message":"Subscription limit reached: at most 3 channels per connection"}}`)
		c.expect(`{"event":"pusher:subscription_error","channel":"c3","data":{"type":"LimitReached","error":"Subscription limit reached: at most 3 channels per connection","status":403,"code":4100}}`)
		if got := sub("c1"); strings.Contains(got, "error") {
			t.Fatalf("subscribing again to a channel it has: %s", got)
		}
		c.send(`{"event":"pusher:unsubscribe","data":{"channel":"c0"}}`)
		if got := sub("c3"); !strings.Contains(got, "subscription_succeeded") {
			t.Fatalf("after an unsubscribe: %s", got)
		}
	})
}

// TestServerHistoryRateShared: the server-wide history rate counts every connection's reads:
// connections each within their own rate get 4301 "Server busy" past it. Its bucket holds a
// twentieth of a second's reads, so reads saved up during a pause cannot run back to back.
func TestServerHistoryRateShared(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	_, _, url := newTestServer(t, Options{Now: clk.Now, ServerHistoryReadsPerSecond: 60, HistoryRequestsPerSecond: 1000, HistoryRequestBurst: 1000})
	a, b := dial(t, url+"/app/app-key?protocol=2"), dial(t, url+"/app/app-key?protocol=2")
	a.readUntil("connection_established")
	b.readUntil("connection_established")
	req := `{"event":"sockudo:channel_history","channel":"h","data":{"channel":"h","limit":1}}`
	burst := func(when string) {
		t.Helper()
		for i, c := range []*client{a, b, a} { // 60/20 = 3
			c.send(req)
			if got := c.readUntil(`"code":43`); strings.Contains(got, "4301") {
				t.Fatalf("%s: read %d refused: %s", when, i+1, got)
			}
		}
		b.send(req)
		b.readUntil(`"code":4301,"message":"Server busy: too many history requests, retry later"`)
	}
	burst("at first")
	clk.Add(time.Second / 50) // a little over a sixtieth: one read's worth
	b.send(req)
	if got := b.readUntil(`"code":43`); strings.Contains(got, "4301") {
		t.Fatalf("a fiftieth of a second later: %s", got)
	}
	clk.Add(time.Minute) // a long quiet spell saves up no more than the bucket's depth
	burst("after a minute")
}
