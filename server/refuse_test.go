package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/server/wsframe"
)

// TestResumeSizedMessages: a protocol 2 connection may send a sockudo:resume of up to
// MaxResumeMessageBytes (read whole and handled: here without a history store, so refused
// with a 4301 error frame, and the connection stays); any other message over
// MaxMessageBytes closes it with 1009 once read; a frame over MaxResumeMessageBytes closes it
// from its header; on a protocol 7 connection the limit is MaxMessageBytes for every message.
func TestResumeSizedMessages(t *testing.T) {
	opts := Options{MaxMessageBytes: 1024, MaxResumeMessageBytes: 8192}
	positions := make([]string, 0, 40)
	for i := range cap(positions) {
		positions = append(positions, fmt.Sprintf(`\"channel-%03d\":{\"stream_id\":\"s\",\"serial\":%d,\"last_message_id\":\"m\"}`, i, i))
	}
	resume := `{"event":"sockudo:resume","data":"{\"channel_positions\":{` + strings.Join(positions, ",") + `}}"}`
	if len(resume) <= 1024 || len(resume) > 8192 {
		t.Fatalf("resume of %d bytes", len(resume))
	}
	pad := `{"event":"sockudo:ping","data":"` + strings.Repeat("x", 2000) + `"}`
	forTransports(t, func(t *testing.T) {
		_, _, url := newTestServer(t, opts)
		v2 := func() *rawClient {
			c := dialRaw(t, url, "/app/app-key?protocol=2", nil)
			c.expectPrefix(`{"event":"sockudo:connection_established"`)
			return c
		}
		t.Run("resume over the message limit", func(t *testing.T) {
			c := v2()
			c.write(text(resume))
			c.expect(wsframe.OpText, `{"event":"sockudo:error","data":{"code":4301,"message":"Connection recovery is not enabled"}}`)
			c.write(text(`{"event":"sockudo:ping"}`))
			c.expectPrefix(`{"event":"sockudo:pong"`)
		})
		t.Run("another message of that size", func(t *testing.T) {
			c := v2()
			c.write(text(pad))
			c.expectClose(1009)
		})
		t.Run("a frame over the resume limit", func(t *testing.T) {
			c := v2()
			c.write(clientHeader(true, wsframe.OpText, 8193))
			c.expectClose(1009)
		})
		t.Run("protocol 7", func(t *testing.T) {
			c := dialRaw(t, url, "/app/app-key", nil)
			c.expectPrefix(`{"event":"pusher:connection_established"`)
			go func() { _, _ = c.nc.Write(text(resume)) }() // the server may stop reading at the header
			c.expectClose(1009)
		})
	})
}

// TestDefaultMaxResumeMessageBytes: the default fits a resume of every channel a connection
// may hold (at most channels.MaxResumeChannels), and never under the message limit.
func TestDefaultMaxResumeMessageBytes(t *testing.T) {
	for _, tc := range []struct{ subs, want int }{
		{1000, 1000*ResumeBytesPerChannel + 1024},
		{5000, 1000*ResumeBytesPerChannel + 1024},
		{-1, 1000*ResumeBytesPerChannel + 1024},
		{10, 10*ResumeBytesPerChannel + 1024},
	} {
		if got := DefaultMaxResumeMessageBytes(tc.subs); got != tc.want {
			t.Errorf("DefaultMaxResumeMessageBytes(%d) = %d, want %d", tc.subs, got, tc.want)
		}
	}
	o := Options{MaxMessageBytes: 1 << 20, MaxSubscriptionsPerConnection: 10}
	o.applyDefaults()
	if o.MaxResumeMessageBytes != 1<<20 {
		t.Errorf("resume limit %d under a message limit of 1 MiB", o.MaxResumeMessageBytes)
	}
}

// TestRefusalBudgetCloses: a connection may have MaxRefusedRequests requests refused (a
// burst, refilled one a second by the injected clock); the refusal past it is followed by a
// 4301 error frame "Too many refused requests" and close 4301, which the Pusher and Sockudo
// clients do not reconnect from.
func TestRefusalBudgetCloses(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
		fm := newFakeMetrics()
		_, _, url := newTestServer(t, Options{Now: clk.Now, MaxRefusedRequests: 3, MaxSubscriptionsPerConnection: 1, Metrics: fm})
		c := dial(t, url+"/app/app-key")
		c.handshake()
		c.send(`{"event":"pusher:subscribe","data":{"channel":"c0"}}`)
		c.readUntil("subscription_succeeded")
		refused := func(i int) {
			t.Helper()
			c.send(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"c%d"}}`, i))
			c.readUntil(`"pusher:subscription_error"`)
		}
		for i := range 3 {
			refused(i + 1)
		}
		clk.Add(time.Second) // one more
		refused(4)
		c.send(`{"event":"pusher:ping"}`)
		c.expect(`{"event":"pusher:pong"}`)
		c.send(`{"event":"pusher:subscribe","data":{"channel":"c5"}}`)
		c.readUntil(`"pusher:subscription_error"`)
		c.expect(`{"event":"pusher:error","data":{"code":4301,"message":"Too many refused requests: at most 3 (one more a second); closing the connection"}}`)
		c.expectClose(4301)
		fm.waitCount(t, "disconnected app-id 4301 too_many_refusals", 1)
	})
}
