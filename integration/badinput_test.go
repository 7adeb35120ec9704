package integration

import (
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestBadInput sends malformed and refused frames on one connection (with a 1 KB inbound
// message limit). Each gets an error frame, the same connection keeps working, and a
// neighbour connection keeps receiving publishes; a message over the limit closes its
// connection with 1009.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--max-message-kb=1"}})
	longName := strings.Repeat("c", 201)
	cases := []struct {
		name string
		typ  websocket.MessageType
		msg  string
		code int
		// subErr, when set, is the channel of a pusher:subscription_error that follows.
		subErr string
	}{
		{"NotJSON", websocket.MessageText, `hello`, 4000, ""},
		{"TruncatedJSON", websocket.MessageText, `{"event":"pusher:ping"`, 4000, ""},
		{"Empty", websocket.MessageText, ``, 4000, ""},
		{"JSONArray", websocket.MessageText, `[{"event":"pusher:ping"}]`, 4000, ""},
		{"JSONString", websocket.MessageText, `"pusher:ping"`, 4000, ""},
		{"MissingEvent", websocket.MessageText, `{"data":{}}`, 4000, ""},
		{"EmptyEvent", websocket.MessageText, `{"event":"","data":{}}`, 4000, ""},
		{"EventNumber", websocket.MessageText, `{"event":42,"data":{}}`, 4000, ""},
		{"ChannelNumber", websocket.MessageText, `{"event":"client-x","channel":7,"data":{}}`, 4000, ""},
		{"UnknownPusherEvent", websocket.MessageText, `{"event":"pusher:foo","data":{}}`, 4000, ""},
		{"UnknownEvent", websocket.MessageText, `{"event":"my-event","data":{}}`, 4000, ""},
		{"SubscribeMissingChannel", websocket.MessageText, `{"event":"pusher:subscribe","data":{}}`, 4000, ""},
		{"SubscribeNoData", websocket.MessageText, `{"event":"pusher:subscribe"}`, 4000, ""},
		{"SubscribeChannelNumber", websocket.MessageText, `{"event":"pusher:subscribe","data":{"channel":5}}`, 4000, ""},
		{"ChannelNameTooLong", websocket.MessageText, `{"event":"pusher:subscribe","data":{"channel":"` + longName + `"}}`, 4300, longName},
		{"ChannelNameBadCharacter", websocket.MessageText, `{"event":"pusher:subscribe","data":{"channel":"a b"}}`, 4300, "a b"},
		{"UnsubscribeNoData", websocket.MessageText, `{"event":"pusher:unsubscribe"}`, 4000, ""},
		{"ClientEventNoChannel", websocket.MessageText, `{"event":"client-x","data":{}}`, 4301, ""},
		{"Binary", websocket.MessageBinary, `{"event":"pusher:ping","data":{}}`, 4000, ""},
	}

	neighbour := connect(t, s)
	neighbour.subscribe(t, "neighbour")
	c := connect(t, s)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.write(t, tc.typ, []byte(tc.msg))
			c.expectError(t, tc.code)
			if tc.subErr != "" {
				c.expectSubscriptionError(t, tc.subErr, "SubscriptionError", 400)
			}
			c.ping(t)
			publish(t, s, map[string]any{"name": "still-here", "channel": "neighbour", "data": tc.name})
			neighbour.expect(t, eventFrame("still-here", "neighbour", tc.name))
		})
	}

	t.Run("ConnectionStillSubscribes", func(t *testing.T) {
		c.subscribe(t, "after-bad-input")
		publish(t, s, map[string]any{"name": "ok", "channel": "after-bad-input", "data": "ok"})
		c.expect(t, eventFrame("ok", "after-bad-input", "ok"))
	})

	t.Run("JustUnderLimit", func(t *testing.T) {
		pad := strings.Repeat("x", 1024-len(`{"event":"pusher:ping","data":{"pad":""}}`))
		c.send(t, `{"event":"pusher:ping","data":{"pad":"`+pad+`"}}`)
		c.expect(t, `{"event":"pusher:pong"}`)
	})

	// A message over the limit closes its own connection with 1009 (RFC 6455 §7.4.1) at
	// the frame header; the neighbour is unaffected.
	t.Run("TooLargeCloses1009", func(t *testing.T) {
		big := connect(t, s)
		big.write(t, websocket.MessageText, []byte(`{"event":"pusher:ping","data":{"pad":"`+strings.Repeat("x", 2048)+`"}}`))
		big.expectClose(t, websocket.StatusMessageTooBig)
		publish(t, s, map[string]any{"name": "still-here", "channel": "neighbour", "data": "after-1009"})
		neighbour.expect(t, eventFrame("still-here", "neighbour", "after-1009"))
	})
}
