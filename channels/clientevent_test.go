package channels_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

func TestClientEventDelivered(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		data    string // raw JSON as the client sent it
		want    string
	}{
		{"private, object data", "private-chat", `{"typing":true}`,
			`{"event":"client-typing","channel":"private-chat","data":{"typing":true}}`},
		{"private, string data kept as sent", "private-chat", `"hi \"there\""`,
			`{"event":"client-typing","channel":"private-chat","data":"hi \"there\""}`},
		{"private, no data", "private-chat", ``,
			`{"event":"client-typing","channel":"private-chat","data":{}}`},
		{"presence adds the sender's user_id", "presence-chat", `{"typing":true}`,
			`{"event":"client-typing","channel":"presence-chat","data":{"typing":true},"user_id":"10"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, nil)
			sender, ss := connect(t, h)
			other, os := connect(t, h)
			v2, v2s := connectSub(t, h, channelstest.NewV2(nextSocketID()))
			mustSubscribe(t, sender, ss, tt.channel, member("10", ""))
			mustSubscribe(t, other, os, tt.channel, member("11", ""))
			mustSubscribe(t, v2, v2s, tt.channel, member("12", ""))
			ss.Take()
			os.Take()
			v2s.Take()
			var data json.RawMessage
			if tt.data != "" {
				data = json.RawMessage(tt.data)
			}
			if err := sender.ClientEvent(protocol.Frame{Event: "client-typing", Channel: tt.channel, Data: data}); err != nil {
				t.Fatalf("ClientEvent: %v", err)
			}
			wantFrames(t, "other", os, tt.want)
			wantFramesV2(t, "V2 other (client event names are never rewritten)", v2s, tt.want)
			wantFrames(t, "sender (never echoed)", ss)
		})
	}
}

func TestClientEventRefused(t *testing.T) {
	const okChannel = "private-chat"
	big := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`) }
	tests := []struct {
		name      string
		edit      func(*config.App)
		subscribe string // channel the sender (and a listener) subscribe to first
		frame     protocol.Frame
		ok        bool
	}{
		{name: "public channel", subscribe: "chat", frame: protocol.Frame{Event: "client-x", Channel: "chat"}},
		{name: "encrypted channel", subscribe: "private-encrypted-chat", frame: protocol.Frame{Event: "client-x", Channel: "private-encrypted-chat"}},
		{name: "public cache channel", subscribe: "cache-chat", frame: protocol.Frame{Event: "client-x", Channel: "cache-chat"}},
		{name: "private cache channel", subscribe: "private-cache-chat", frame: protocol.Frame{Event: "client-x", Channel: "private-cache-chat"}},
		{name: "presence cache channel", subscribe: "presence-cache-chat", frame: protocol.Frame{Event: "client-x", Channel: "presence-cache-chat"}},
		{name: "encrypted cache channel", subscribe: "private-encrypted-cache-chat", frame: protocol.Frame{Event: "client-x", Channel: "private-encrypted-cache-chat"}},
		{name: "not subscribed", subscribe: "private-other", frame: protocol.Frame{Event: "client-x", Channel: okChannel}},
		{name: "no channel", subscribe: okChannel, frame: protocol.Frame{Event: "client-x"}},
		{name: "invalid channel name", subscribe: okChannel, frame: protocol.Frame{Event: "client-x", Channel: "private-a b"}},
		{name: "feature off", edit: func(a *config.App) { a.EnableClientMessages = boolPtr(false) },
			subscribe: okChannel, frame: protocol.Frame{Event: "client-x", Channel: okChannel}},
		{name: "feature on explicitly", edit: func(a *config.App) { a.EnableClientMessages = boolPtr(true) },
			subscribe: okChannel, frame: protocol.Frame{Event: "client-x", Channel: okChannel}, ok: true},
		{name: "event name too long", subscribe: okChannel, frame: protocol.Frame{Event: "client-" + strings.Repeat("x", 194), Channel: okChannel}},
		{name: "event name at the limit", subscribe: okChannel, frame: protocol.Frame{Event: "client-" + strings.Repeat("x", 193), Channel: okChannel}, ok: true},
		{name: "event without the client- prefix", subscribe: okChannel, frame: protocol.Frame{Event: "pusher_internal:member_added", Channel: okChannel}},
		{name: "event named just client-", subscribe: okChannel, frame: protocol.Frame{Event: "client-", Channel: okChannel}},
		{name: "payload over the cap", edit: func(a *config.App) { a.MaxEventPayloadKB = 1 },
			subscribe: okChannel, frame: protocol.Frame{Event: "client-x", Channel: okChannel, Data: big(1025)}},
		{name: "payload at the cap", edit: func(a *config.App) { a.MaxEventPayloadKB = 1 },
			subscribe: okChannel, frame: protocol.Frame{Event: "client-x", Channel: okChannel, Data: big(1024)}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, tt.edit)
			sender, ss := connect(t, h)
			listener, ls := connect(t, h)
			for _, c := range []struct {
				c *channels.Conn
				s *channelstest.Sub
			}{{sender, ss}, {listener, ls}} {
				mustSubscribe(t, c.c, c.s, tt.subscribe, member(c.s.ID, ""))
				if tt.frame.Channel != "" && tt.frame.Channel != tt.subscribe && protocol.ValidateChannelName(tt.frame.Channel, 0) == nil {
					// The listener is in the target channel even when the sender is not.
					if c.c == listener {
						mustSubscribe(t, c.c, c.s, tt.frame.Channel, member(c.s.ID, ""))
					}
				}
			}
			ss.Take()
			ls.Take()
			err := sender.ClientEvent(tt.frame)
			if tt.ok {
				if err != nil {
					t.Fatalf("ClientEvent: %v", err)
				}
				if ls.Len() != 1 {
					t.Fatalf("listener got %q, want the event", ls.Frames())
				}
				return
			}
			wantCode(t, "ClientEvent", err, protocol.CodeClientEventRefused)
			wantFrames(t, "listener", ls)
			wantFrames(t, "sender", ss)
			if ss.Closed() != nil {
				t.Fatalf("refusal closed the connection: %v", ss.Closed())
			}
		})
	}
}

func TestClientEventRateLimit(t *testing.T) {
	for _, terminate := range []bool{false, true} {
		name := "refuse"
		if terminate {
			name = "terminate"
		}
		t.Run(name, func(t *testing.T) {
			h, clk := newHub(t, func(a *config.App) { a.TerminateOnClientEventLimit = terminate })
			sender, ss := connect(t, h)
			listener, ls := connect(t, h)
			mustSubscribe(t, sender, ss, "private-chat", "")
			mustSubscribe(t, listener, ls, "private-chat", "")
			ss.Take()
			ls.Take()
			send := func() *protocol.Error {
				return sender.ClientEvent(protocol.Frame{Event: "client-x", Channel: "private-chat", Data: json.RawMessage(`{}`)})
			}
			for i := range 10 {
				if err := send(); err != nil {
					t.Fatalf("event %d: %v", i+1, err)
				}
				clk.Add(99 * time.Millisecond) // 10 events within 0.99 s
			}
			err := send()
			if terminate {
				if err != nil {
					t.Fatalf("11th event returned %v, want nil (the connection is closed instead)", err)
				}
				cl := ss.Closed()
				if cl == nil || cl.Code != protocol.CodeClientEventRefused {
					t.Fatalf("11th event: closed with %v, want 4301", cl)
				}
			} else {
				wantCode(t, "11th event", err, protocol.CodeClientEventRefused)
				if !strings.Contains(err.Message, "rate limit") {
					t.Errorf("message %q does not mention the rate limit", err.Message)
				}
				if ss.Closed() != nil {
					t.Fatalf("closed with %v", ss.Closed())
				}
			}
			if ls.Len() != 10 {
				t.Fatalf("listener got %d events, want 10", ls.Len())
			}
			if terminate {
				return
			}
			// A new one-second window starts once a second has passed since the first event.
			clk.Add(10 * time.Millisecond)
			for i := range 10 {
				if err := send(); err != nil {
					t.Fatalf("next window, event %d: %v", i+1, err)
				}
			}
			wantCode(t, "next window, 11th event", send(), protocol.CodeClientEventRefused)
			if ls.Len() != 20 {
				t.Fatalf("listener got %d events, want 20", ls.Len())
			}
		})
	}
}

func TestClientEventRateLimitIsPerConnection(t *testing.T) {
	h, _ := newHub(t, func(a *config.App) { a.MaxClientEventsPerSecond = 2 })
	a, as := connect(t, h)
	b, bs := connect(t, h)
	mustSubscribe(t, a, as, "private-c", "")
	mustSubscribe(t, b, bs, "private-c", "")
	f := protocol.Frame{Event: "client-x", Channel: "private-c"}
	for _, c := range []*channels.Conn{a, a, b, b} {
		if err := c.ClientEvent(f); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, "a's third", a.ClientEvent(f), protocol.CodeClientEventRefused)
	wantCode(t, "b's third", b.ClientEvent(f), protocol.CodeClientEventRefused)
}
