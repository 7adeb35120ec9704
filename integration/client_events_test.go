package integration

import (
	"fmt"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

func testClientEvents(t *testing.T, s *testkit.Server) {
	// Delivered to the other subscriber exactly as sent, never echoed to the sender.
	relayed := []struct {
		name  string
		frame string
	}{
		{"DataObject", `{"event":"client-typing","channel":"private-chat-object","data":{"typing":true}}`},
		{"DataString", `{"event":"client-typing","channel":"private-chat-string","data":"{\"typing\":true}"}`},
		{"DataNumber", `{"event":"client-count","channel":"private-chat-number","data":42}`},
	}
	for _, r := range relayed {
		t.Run("Private"+r.name, func(t *testing.T) {
			t.Parallel()
			f := parseFrame(t, r.frame)
			sender, receiver := connect(t, s), connect(t, s)
			sender.subscribePrivate(t, f.Channel)
			receiver.subscribePrivate(t, f.Channel)
			sender.send(t, r.frame)
			sender.ping(t) // not echoed
			receiver.expect(t, r.frame)
		})
	}

	t.Run("PresenceAddsUserID", func(t *testing.T) {
		t.Parallel()
		const ch = "presence-chat"
		sender, receiver := connect(t, s), connect(t, s)
		sender.subscribePresence(t, ch, `{"user_id":"10","user_info":{"name":"Ten"}}`)
		sender.expectEvent(t, "pusher_internal:subscription_succeeded")
		receiver.subscribePresence(t, ch, `{"user_id":"11"}`)
		receiver.expectEvent(t, "pusher_internal:subscription_succeeded")
		sender.expectEvent(t, "pusher_internal:member_added")
		sender.send(t, `{"event":"client-typing","channel":"presence-chat","data":{"typing":true}}`)
		sender.ping(t)
		receiver.expect(t, `{"event":"client-typing","channel":"presence-chat","data":{"typing":true},"user_id":"10"}`)
	})

	// Refused client events: a 4301 error frame, the connection stays usable and nothing
	// reaches the other subscriber.
	refused := []struct {
		name    string
		channel string
		private bool
		join    bool // the sender subscribes too
	}{
		{"Public", "public-chat", false, true},
		{"PrivateEncrypted", "private-encrypted-chat", true, true},
		{"Cache", "private-cache-chat", true, true},
		{"NotSubscribed", "private-chat-outsider", true, false},
	}
	for _, r := range refused {
		t.Run("Refused"+r.name, func(t *testing.T) {
			t.Parallel()
			sender, receiver := connect(t, s), connect(t, s)
			sub := func(c *client) {
				if r.private {
					c.subscribePrivate(t, r.channel)
				} else {
					c.subscribe(t, r.channel)
				}
				if r.channel == "private-cache-chat" {
					c.expectEvent(t, "pusher:cache_miss")
				}
			}
			sub(receiver)
			if r.join {
				sub(sender)
			}
			sender.sendEvent(t, "client-typing", r.channel, map[string]bool{"typing": true})
			sender.expectError(t, 4301)
			sender.ping(t)
			receiver.ping(t)
		})
	}

	t.Run("RateLimit", func(t *testing.T) {
		t.Parallel()
		const ch = "private-rate"
		sender, receiver := connect(t, s), connect(t, s)
		sender.subscribePrivate(t, ch)
		receiver.subscribePrivate(t, ch)
		// The default is 10 per second: 11 in quick succession, the 11th is refused.
		for i := 1; i <= 11; i++ {
			sender.send(t, fmt.Sprintf(`{"event":"client-n","channel":"private-rate","data":{"i":%d}}`, i))
		}
		sender.expectError(t, 4301)
		sender.ping(t)
		for i := 1; i <= 10; i++ {
			receiver.expect(t, fmt.Sprintf(`{"event":"client-n","channel":"private-rate","data":{"i":%d}}`, i))
		}
		receiver.ping(t)
	})
}
