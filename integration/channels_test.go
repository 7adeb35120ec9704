package integration

import (
	"strings"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

func testSubscribe(t *testing.T, s *testkit.Server) {
	t.Run("Public", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.send(t, `{"event":"pusher:subscribe","data":{"auth":"","channel":"test-channel"}}`)
		c.expect(t, `{"event":"pusher_internal:subscription_succeeded","channel":"test-channel","data":"{}"}`)
	})

	// Channels that must be accepted, each subscribed with the right kind of auth and then
	// fed by an HTTP publish.
	accepted := []struct {
		name    string
		channel string
	}{
		{"PublicWithColon", "order:ord_123"},
		{"PublicAllCharacters", "AZaz09_-=@,.;:x"},
		{"Public200Bytes", strings.Repeat("n", 200)},
		{"Private", "private-orders"},
		{"PrivateWithColon", "private-order:ord_456"},
		{"PrivateEncrypted", "private-encrypted-vault"},
		{"PrivateCache", "private-cache-prices"},
	}
	for _, a := range accepted {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			c := connect(t, s)
			if protocol.Classify(a.channel).NeedsAuth() {
				c.subscribePrivate(t, a.channel)
			} else {
				c.subscribe(t, a.channel)
			}
			if protocol.Classify(a.channel).Cache {
				c.expect(t, `{"event":"pusher:cache_miss","channel":`+jsonString(a.channel)+`,"data":"{}"}`)
			}
			publish(t, s, map[string]any{"name": "my-event", "channel": a.channel, "data": `{"n":1}`})
			c.expect(t, eventFrame("my-event", a.channel, `{"n":1}`))
		})
	}

	t.Run("SubscribeDataAsString", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.sendEvent(t, "pusher:subscribe", "", `{"channel":"string-data-channel"}`)
		c.expect(t, ackFrame("string-data-channel", "{}"))
	})

	t.Run("Resubscribe", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.subscribe(t, "resubscribe-channel")
		c.subscribe(t, "resubscribe-channel")
		publish(t, s, map[string]any{"name": "once", "channel": "resubscribe-channel", "data": "x"})
		c.expect(t, eventFrame("once", "resubscribe-channel", "x"))
		c.ping(t) // delivered once, not once per subscribe
	})

	t.Run("Unsubscribe", func(t *testing.T) {
		t.Parallel()
		c, other := connect(t, s), connect(t, s)
		c.subscribe(t, "unsubscribe-channel")
		other.subscribe(t, "unsubscribe-channel")
		c.send(t, `{"event":"pusher:unsubscribe","data":{"channel":"unsubscribe-channel"}}`)
		c.ping(t) // no reply to an unsubscribe
		publish(t, s, map[string]any{"name": "after", "channel": "unsubscribe-channel", "data": "x"})
		other.expect(t, eventFrame("after", "unsubscribe-channel", "x"))
		c.ping(t)
	})

	// Refused private subscriptions: a pusher:error 4009, then a pusher:subscription_error on
	// the channel, and the connection stays usable.
	badAuth := []struct {
		name string
		auth func(c *client, ch string) string
	}{
		{"Missing", func(*client, string) string { return "" }},
		{"WrongSecret", func(c *client, ch string) string {
			return protocol.AuthToken(testkit.AppKey, "not-the-secret", protocol.ChannelStringToSign(c.socketID, ch, "", false))
		}},
		{"WrongKey", func(c *client, ch string) string {
			return protocol.AuthToken("other-key", testkit.AppSecret, protocol.ChannelStringToSign(c.socketID, ch, "", false))
		}},
		{"OtherSocket", func(_ *client, ch string) string {
			return protocol.AuthToken(testkit.AppKey, testkit.AppSecret, protocol.ChannelStringToSign("1.2", ch, "", false))
		}},
		{"OtherChannel", func(c *client, ch string) string { return c.channelAuth(ch+"-other", "") }},
		{"UppercaseHex", func(c *client, ch string) string {
			return testkit.AppKey + ":" + strings.ToUpper(strings.TrimPrefix(c.channelAuth(ch, ""), testkit.AppKey+":"))
		}},
		{"SignatureOnly", func(c *client, ch string) string {
			return strings.TrimPrefix(c.channelAuth(ch, ""), testkit.AppKey+":")
		}},
	}
	for _, b := range badAuth {
		t.Run("PrivateBadAuth"+b.name, func(t *testing.T) {
			t.Parallel()
			ch := "private-secret-" + b.name
			c := connect(t, s)
			c.send(t, subscribeFrame(ch, b.auth(c, ch), ""))
			c.expectError(t, 4009)
			c.expectSubscriptionError(t, ch, "AuthError", 401)
			c.ping(t)
			// Not subscribed: a publish to the channel does not reach it.
			publish(t, s, map[string]any{"name": "leak", "channel": ch, "data": "x"})
			c.ping(t)
			// And the same connection can still subscribe properly.
			c.subscribePrivate(t, ch)
		})
	}

	t.Run("EncryptedBadAuth", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.send(t, subscribeFrame("private-encrypted-bad", c.channelAuth("private-encrypted-other", ""), ""))
		c.expectError(t, 4009)
		c.expectSubscriptionError(t, "private-encrypted-bad", "AuthError", 401)
		c.ping(t)
	})

	t.Run("PrivateCacheBadAuth", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.send(t, subscribeFrame("private-cache-bad", "app-key:0000", ""))
		c.expectError(t, 4009)
		c.expectSubscriptionError(t, "private-cache-bad", "AuthError", 401)
		c.ping(t)
	})

	t.Run("InvalidName4300", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		for _, name := range []string{strings.Repeat("x", 201), "bad channel", "bad/channel", "star*"} {
			c.send(t, subscribeFrame(name, "", ""))
			c.expectError(t, 4300)
			c.expectSubscriptionError(t, name, "SubscriptionError", 400)
			c.ping(t)
		}
	})
}

func testPresence(t *testing.T, s *testkit.Server) {
	t.Run("Members", func(t *testing.T) {
		t.Parallel()
		const ch = "presence-room"
		const dataA = `{"user_id":"a","user_info":{"name":"Ann"}}`
		const dataB = `{"user_id":"b","user_info":{"name":"Bob"}}`

		a := connect(t, s)
		a.subscribePresence(t, ch, dataA)
		a.expect(t, ackFrame(ch, `{"presence":{"ids":["a"],"hash":{"a":{"name":"Ann"}},"count":1}}`))

		// b joins: a is told, b gets the full member list and no member_added of its own.
		b1 := connect(t, s)
		b1.subscribePresence(t, ch, dataB)
		b1.expect(t, ackFrame(ch, `{"presence":{"ids":["a","b"],"hash":{"a":{"name":"Ann"},"b":{"name":"Bob"}},"count":2}}`))
		a.expect(t, `{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"b\",\"user_info\":{\"name\":\"Bob\"}}"}`)
		b1.ping(t)

		// A second socket of b is the same member: no member_added, count stays 2.
		b2 := connect(t, s)
		b2.subscribePresence(t, ch, dataB)
		b2.expect(t, ackFrame(ch, `{"presence":{"ids":["a","b"],"hash":{"a":{"name":"Ann"},"b":{"name":"Bob"}},"count":2}}`))
		a.ping(t)
		b1.ping(t)

		// One of b's sockets leaving is not b leaving.
		b1.send(t, `{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
		b1.ping(t)
		a.ping(t)
		b2.ping(t)

		// b's last socket disconnecting is: member_removed to the others.
		b2.close()
		a.expect(t, `{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"b\"}"}`)
		a.ping(t)
	})

	t.Run("UnsubscribeRemovesMember", func(t *testing.T) {
		t.Parallel()
		const ch = "presence-unsub"
		a, b := connect(t, s), connect(t, s)
		a.subscribePresence(t, ch, `{"user_id":"ua"}`)
		a.expect(t, ackFrame(ch, `{"presence":{"ids":["ua"],"hash":{"ua":{}},"count":1}}`))
		b.subscribePresence(t, ch, `{"user_id":"ub","user_info":null}`)
		b.expect(t, ackFrame(ch, `{"presence":{"ids":["ua","ub"],"hash":{"ua":{},"ub":{}},"count":2}}`))
		a.expect(t, `{"event":"pusher_internal:member_added","channel":"presence-unsub","data":"{\"user_id\":\"ub\",\"user_info\":{}}"}`)
		b.send(t, `{"event":"pusher:unsubscribe","data":{"channel":"presence-unsub"}}`)
		a.expect(t, `{"event":"pusher_internal:member_removed","channel":"presence-unsub","data":"{\"user_id\":\"ub\"}"}`)
		b.ping(t)
	})

	t.Run("NumericUserIDIsAString", func(t *testing.T) {
		t.Parallel()
		const ch = "presence-numeric"
		a := connect(t, s)
		a.subscribePresence(t, ch, `{"user_id":10,"user_info":{"n":1}}`)
		a.expect(t, ackFrame(ch, `{"presence":{"ids":["10"],"hash":{"10":{"n":1}},"count":1}}`))
	})

	t.Run("SignatureCoversChannelData", func(t *testing.T) {
		t.Parallel()
		const ch = "presence-forged"
		c := connect(t, s)
		auth := c.channelAuth(ch, `{"user_id":"honest"}`)
		c.send(t, subscribeFrame(ch, auth, `{"user_id":"admin"}`))
		c.expectError(t, 4009)
		c.expectSubscriptionError(t, ch, "AuthError", 401)
		c.ping(t)
	})

	t.Run("MissingChannelData", func(t *testing.T) {
		t.Parallel()
		const ch = "presence-nodata"
		c := connect(t, s)
		c.send(t, subscribeFrame(ch, c.channelAuth(ch, ""), ""))
		c.expectError(t, 4009)
		c.expectSubscriptionError(t, ch, "AuthError", 401)
		c.ping(t)
	})
}

func testCache(t *testing.T, s *testkit.Server) {
	for _, ch := range []string{"cache-prices", "private-cache-rates"} {
		t.Run(ch, func(t *testing.T) {
			t.Parallel()
			sub := func(c *client) {
				if protocol.Classify(ch).NeedsAuth() {
					c.subscribePrivate(t, ch)
				} else {
					c.subscribe(t, ch)
				}
			}
			first := connect(t, s)
			sub(first)
			first.expect(t, `{"event":"pusher:cache_miss","channel":`+jsonString(ch)+`,"data":"{}"}`)

			publish(t, s, map[string]any{"name": "price", "channel": ch, "data": `{"eur":1.08}`})
			want := eventFrame("price", ch, `{"eur":1.08}`)
			first.expect(t, want)

			// A new subscriber gets the cached event right after its ack.
			second := connect(t, s)
			sub(second)
			second.expect(t, want)
			second.ping(t)

			// The cache holds the last event only.
			publish(t, s, map[string]any{"name": "price", "channel": ch, "data": `{"eur":1.09}`})
			want = eventFrame("price", ch, `{"eur":1.09}`)
			first.expect(t, want)
			second.expect(t, want)
			third := connect(t, s)
			sub(third)
			third.expect(t, want)
			third.ping(t)
		})
	}

	t.Run("PublishedWhileEmpty", func(t *testing.T) {
		t.Parallel()
		const ch = "cache-empty-room"
		publish(t, s, map[string]any{"name": "hello", "channel": ch, "data": "stored"})
		c := connect(t, s)
		c.subscribe(t, ch)
		c.expect(t, eventFrame("hello", ch, "stored"))
		c.ping(t)
	})
}
