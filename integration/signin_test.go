package integration

import (
	"net/http"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

func testSignIn(t *testing.T, s *testkit.Server) {
	t.Run("Success", func(t *testing.T) {
		t.Parallel()
		c := connect(t, s)
		c.send(t, `{"event":"pusher:signin","data":{"auth":"`+protocol.AuthToken(testkit.AppKey, testkit.AppSecret, protocol.UserStringToSign(c.socketID, `{"id":"12345","user_info":{"name":"Ann"}}`))+`","user_data":"{\"id\":\"12345\",\"user_info\":{\"name\":\"Ann\"}}"}}`)
		c.expect(t, `{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"12345\",\"user_info\":{\"name\":\"Ann\"}}"}}`)
		c.ping(t)
	})

	badSignIns := []struct {
		name     string
		auth     func(c *client, userData string) string
		userData string
	}{
		{"WrongSecret", func(c *client, ud string) string {
			return protocol.AuthToken(testkit.AppKey, "nope", protocol.UserStringToSign(c.socketID, ud))
		}, `{"id":"bad-1"}`},
		{"OtherSocket", func(_ *client, ud string) string {
			return protocol.AuthToken(testkit.AppKey, testkit.AppSecret, protocol.UserStringToSign("9.9", ud))
		}, `{"id":"bad-2"}`},
		{"ChannelSignature", func(c *client, _ string) string { return c.channelAuth("private-x", "") }, `{"id":"bad-3"}`},
	}
	for _, b := range badSignIns {
		t.Run("Refused"+b.name, func(t *testing.T) {
			t.Parallel()
			c := connect(t, s)
			c.sendEvent(t, "pusher:signin", "", map[string]string{"auth": b.auth(c, b.userData), "user_data": b.userData})
			c.expectError(t, 4009)
			c.ping(t)
		})
	}

	t.Run("UserChannel", func(t *testing.T) {
		t.Parallel()
		const ch = "#server-to-user-user-a"
		a := connect(t, s)
		a.signIn(t, `{"id":"user-a"}`)
		a.send(t, `{"event":"pusher:subscribe","data":{"auth":"","channel":"#server-to-user-user-a"}}`)
		a.expect(t, `{"event":"pusher_internal:subscription_succeeded","channel":"#server-to-user-user-a","data":"{}"}`)

		// Another signed-in user, and an anonymous socket, may not subscribe to it.
		b := connect(t, s)
		b.signIn(t, `{"id":"user-b"}`)
		anon := connect(t, s)
		for _, c := range []*client{b, anon} {
			c.send(t, subscribeFrame(ch, "", ""))
			c.expectError(t, 4009)
			c.expectSubscriptionError(t, ch, "AuthError", 401)
			c.ping(t)
		}

		// A second socket of the same user may, and both get events sent to the user.
		a2 := connect(t, s)
		a2.signIn(t, `{"id":"user-a"}`)
		a2.subscribe(t, ch)
		publish(t, s, map[string]any{"name": "to-user", "channel": ch, "data": `{"msg":"hi"}`})
		want := `{"event":"to-user","channel":"#server-to-user-user-a","data":"{\"msg\":\"hi\"}"}`
		a.expect(t, want)
		a2.expect(t, want)
		b.ping(t)
		anon.ping(t)
	})

	t.Run("Watchlist", func(t *testing.T) {
		t.Parallel()
		watcher := connect(t, s)
		watcher.signIn(t, `{"id":"watcher-1","watchlist":["watched-1","watched-2"]}`)
		watcher.expect(t, `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["watched-1","watched-2"]}]}}`)

		// watched-1 comes online on two sockets: the watcher is told once.
		w1 := connect(t, s)
		w1.signIn(t, `{"id":"watched-1"}`)
		watcher.expect(t, `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"online","user_ids":["watched-1"]}]}}`)
		w1b := connect(t, s)
		w1b.signIn(t, `{"id":"watched-1"}`)
		w1b.ping(t) // the sign-in, watcher notification included, is done
		watcher.ping(t)
		w1.ping(t) // signed-in users without a watchlist get no watchlist frame

		// A second watcher signing in sees the current state.
		watcher2 := connect(t, s)
		watcher2.signIn(t, `{"id":"watcher-2","watchlist":["watched-1","watched-2"]}`)
		watcher2.expect(t, `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"online","user_ids":["watched-1"]},{"name":"offline","user_ids":["watched-2"]}]}}`)

		// watched-1 goes offline when its last socket leaves, not before. Each socket also
		// holds a channel of its own, so the REST API tells when the server has let it go.
		w1.subscribe(t, "watch-probe-1")
		w1b.subscribe(t, "watch-probe-1b")
		w1.close()
		testkit.WaitFor(t, frameTimeout, "first socket of watched-1 to go", func() bool { return !occupied(t, s, "watch-probe-1") })
		watcher.ping(t)
		w1b.close()
		off := `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["watched-1"]}]}}`
		watcher.expect(t, off)
		watcher2.expect(t, off)
		watcher.ping(t)
	})

	t.Run("TerminateConnections", func(t *testing.T) {
		t.Parallel()
		// The user's sockets: two signed in, one only present in a presence channel.
		s1, s2, p := connect(t, s), connect(t, s), connect(t, s)
		s1.signIn(t, `{"id":"doomed"}`)
		s2.signIn(t, `{"id":"doomed"}`)
		p.subscribePresence(t, "presence-terminate", `{"user_id":"doomed"}`)
		p.expectEvent(t, "pusher_internal:subscription_succeeded")
		other := connect(t, s)
		other.signIn(t, `{"id":"survivor"}`)
		other.subscribePresence(t, "presence-terminate", `{"user_id":"survivor"}`)
		other.expectEvent(t, "pusher_internal:subscription_succeeded")
		p.expectEvent(t, "pusher_internal:member_added")

		status, body := apiPost(t, s, "/apps/"+testkit.AppID+"/users/doomed/terminate_connections", []byte(`{}`))
		if status != http.StatusOK {
			t.Fatalf("terminate_connections: HTTP %d %s", status, body)
		}
		for _, c := range []*client{s1, s2, p} {
			c.expect(t, `{"event":"pusher:error","data":{"code":4009,"message":"You got disconnected by the app."}}`)
			c.expectClose(t, 4009)
		}
		other.expect(t, `{"event":"pusher_internal:member_removed","channel":"presence-terminate","data":"{\"user_id\":\"doomed\"}"}`)
		other.ping(t)

		// Terminating a user without sockets is fine too.
		if status, body := apiPost(t, s, "/apps/"+testkit.AppID+"/users/nobody/terminate_connections", []byte(`{}`)); status != http.StatusOK {
			t.Fatalf("terminate_connections of an absent user: HTTP %d %s", status, body)
		}
	})
}
