package channels_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

func signinSuccess(userData string) string {
	b, _ := json.Marshal(userData)
	return `{"event":"pusher:signin_success","data":{"user_data":` + string(b) + `}}`
}

func watchlistFrame(events ...string) string {
	return `{"event":"pusher_internal:watchlist_events","data":{"events":[` + strings.Join(events, ",") + `]}}`
}

func online(ids ...string) string  { return watchlistEntry("online", ids) }
func offline(ids ...string) string { return watchlistEntry("offline", ids) }

func watchlistEntry(name string, ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = strconv.Quote(id)
	}
	return `{"name":"` + name + `","user_ids":[` + strings.Join(q, ",") + `]}`
}

func TestSignIn(t *testing.T) {
	const userData = `{"id":"12345","user_info":{"name":"x"}}`
	raw := func(auth, userData string) json.RawMessage {
		b, _ := json.Marshal(map[string]string{"auth": auth, "user_data": userData})
		return b
	}
	sign := func(socketID, userData string) string {
		return protocol.AuthToken(appKey, secret, protocol.UserStringToSign(socketID, userData))
	}
	tests := []struct {
		name string
		edit func(*config.App)
		data func(socketID string) json.RawMessage
		code int // 0: success
	}{
		{name: "valid", data: func(sid string) json.RawMessage { return signinData(sid, userData) }},
		{name: "data as a JSON string", data: func(sid string) json.RawMessage {
			b, _ := json.Marshal(string(signinData(sid, userData)))
			return b
		}},
		{name: "user_data as an object is signed as sent", data: func(sid string) json.RawMessage {
			return json.RawMessage(`{"auth":"` + sign(sid, userData) + `","user_data":` + userData + `}`)
		}},
		{name: "feature on explicitly", edit: func(a *config.App) { a.EnableUserAuthentication = boolPtr(true) },
			data: func(sid string) json.RawMessage { return signinData(sid, userData) }},
		{name: "wrong secret", data: func(sid string) json.RawMessage {
			return raw(protocol.AuthToken(appKey, "nope", protocol.UserStringToSign(sid, userData)), userData)
		}, code: protocol.CodeUnauthorized},
		{name: "signed for another socket", data: func(string) json.RawMessage { return signinData("1.1", userData) }, code: protocol.CodeUnauthorized},
		{name: "signed for other user_data", data: func(sid string) json.RawMessage {
			return raw(sign(sid, `{"id":"other"}`), userData)
		}, code: protocol.CodeUnauthorized},
		{name: "signed as a channel", data: func(sid string) json.RawMessage {
			return raw(channelAuth(sid, "private-x", ""), userData)
		}, code: protocol.CodeUnauthorized},
		{name: "missing auth", data: func(string) json.RawMessage { return raw("", userData) }, code: protocol.CodeGeneric},
		{name: "missing user_data", data: func(sid string) json.RawMessage {
			return json.RawMessage(`{"auth":"` + sign(sid, "") + `"}`)
		}, code: protocol.CodeGeneric},
		{name: "missing data", data: func(string) json.RawMessage { return nil }, code: protocol.CodeGeneric},
		{name: "numeric id", data: func(sid string) json.RawMessage { return signinData(sid, `{"id":5}`) }, code: protocol.CodeUnauthorized},
		{name: "no id", data: func(sid string) json.RawMessage { return signinData(sid, `{"watchlist":[]}`) }, code: protocol.CodeUnauthorized},
		{name: "user_data not an object", data: func(sid string) json.RawMessage { return signinData(sid, `"12345"`) }, code: protocol.CodeUnauthorized},
		{name: "watchlist over 100 ids", data: func(sid string) json.RawMessage {
			ids := make([]string, channels.MaxWatchlistSize+1)
			for i := range ids {
				ids[i] = strconv.Quote(strconv.Itoa(i))
			}
			return signinData(sid, `{"id":"1","watchlist":[`+strings.Join(ids, ",")+`]}`)
		}, code: protocol.CodeUnauthorized},
		{name: "feature off", edit: func(a *config.App) { a.EnableUserAuthentication = boolPtr(false) },
			data: func(sid string) json.RawMessage { return signinData(sid, userData) }, code: protocol.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, tt.edit)
			c, s := connect(t, h)
			err := c.SignIn(tt.data(s.SocketID()))
			userChannel := channels.SubscribeRequest{Channel: "#server-to-user-12345"}
			if tt.code != 0 {
				wantCode(t, "SignIn", err, tt.code)
				wantFrames(t, "connection", s)
				wantCode(t, "user channel after failed sign-in", c.Subscribe(userChannel), protocol.CodeUnauthorized)
				if n := h.TerminateUserConnections(appID, "12345"); n != 0 {
					t.Fatalf("failed sign-in indexed the user: TerminateUserConnections = %d", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("SignIn: %v", err)
			}
			wantFrames(t, "connection", s, signinSuccess(userData))
			if err := c.Subscribe(userChannel); err != nil {
				t.Fatalf("user channel: %v", err)
			}
			wantFrames(t, "connection", s, ack("#server-to-user-12345"))
		})
	}
}

func TestSignInSuccessFrameExact(t *testing.T) {
	h, _ := newHub(t, nil)
	c, s := connect(t, h)
	mustSignIn(t, c, s, `{"id":"12345","watchlist":[]}`)
	wantFrames(t, "connection", s, `{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"12345\",\"watchlist\":[]}"}}`)
	// Signing in again as the same user only confirms again.
	mustSignIn(t, c, s, `{"id":"12345"}`)
	wantFrames(t, "connection", s, `{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"12345\"}"}}`)
	// Another user on the same connection is refused.
	wantCode(t, "sign in as another user", c.SignIn(signinData(s.SocketID(), `{"id":"other"}`)), protocol.CodeUnauthorized)
	wantFrames(t, "connection", s)
}

func TestUserChannelOnlyForThatUser(t *testing.T) {
	h, _ := newHub(t, nil)
	a, as := connect(t, h)
	mustSignIn(t, a, as, `{"id":"A"}`)
	as.Take()
	anon, ans := connect(t, h)
	b, bs := connect(t, h)
	mustSignIn(t, b, bs, `{"id":"B"}`)

	wantCode(t, "A subscribing to B's channel", a.Subscribe(channels.SubscribeRequest{Channel: "#server-to-user-B"}), protocol.CodeUnauthorized)
	wantCode(t, "anonymous subscribing to A's channel", anon.Subscribe(channels.SubscribeRequest{Channel: "#server-to-user-A"}), protocol.CodeUnauthorized)
	wantCode(t, "prefix of the user id", a.Subscribe(channels.SubscribeRequest{Channel: "#server-to-user-AB"}), protocol.CodeUnauthorized)
	wantCode(t, "no user id", a.Subscribe(channels.SubscribeRequest{Channel: "#server-to-user-"}), protocol.CodeChannelError)
	wantFrames(t, "A", as)
	wantFrames(t, "anonymous", ans)

	mustSubscribe(t, a, as, "#server-to-user-A", "")
	wantFrames(t, "A", as, ack("#server-to-user-A"))
	if err := h.Publish(appID, channels.Event{Name: "note", Channels: []string{"#server-to-user-A"}, Data: "hi"}); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, "A", as, `{"event":"note","channel":"#server-to-user-A","data":"hi"}`)
	bs.Take()
	wantFrames(t, "B", bs)

	h2, _ := newHub(t, func(a *config.App) { a.EnableUserAuthentication = boolPtr(false) })
	c, _ := connect(t, h2)
	wantCode(t, "user channel with user authentication off", c.Subscribe(channels.SubscribeRequest{Channel: "#server-to-user-A"}), protocol.CodeUnauthorized)
}

func TestWatchlist(t *testing.T) {
	h, _ := newHub(t, nil)
	type sock struct {
		c *channels.Conn
		s *channelstest.Sub
	}
	signIn := func(userData string) sock {
		t.Helper()
		c, s := connect(t, h)
		mustSignIn(t, c, s, userData)
		return sock{c, s}
	}

	// A watches B while B is offline: A learns B's state after signin_success.
	a1 := signIn(`{"id":"A","watchlist":["B"]}`)
	wantFrames(t, "A1", a1.s, signinSuccess(`{"id":"A","watchlist":["B"]}`), watchlistFrame(offline("B")))

	// B's first socket signing in tells A, in the Pusher shape.
	b1 := signIn(`{"id":"B"}`)
	wantFrames(t, "B1", b1.s, signinSuccess(`{"id":"B"}`))
	wantFrames(t, "A1", a1.s, `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"online","user_ids":["B"]}]}}`)

	// B's second socket changes nothing for A.
	b2 := signIn(`{"id":"B"}`)
	wantFrames(t, "A1", a1.s)
	b2.s.Take()

	// A second socket of A hears about B too; C watching A, B and D gets both states at once.
	a2 := signIn(`{"id":"A","watchlist":["B"]}`)
	wantFrames(t, "A2", a2.s, signinSuccess(`{"id":"A","watchlist":["B"]}`), watchlistFrame(online("B")))
	c1 := signIn(`{"id":"C","watchlist":["A","B","D"]}`)
	wantFrames(t, "C1", c1.s, signinSuccess(`{"id":"C","watchlist":["A","B","D"]}`), watchlistFrame(online("A", "B"), offline("D")))

	// Only B's last socket going away makes B offline; every socket of every watcher hears it.
	b1.c.Disconnect()
	wantFrames(t, "A1", a1.s)
	wantFrames(t, "C1", c1.s)
	b2.c.Disconnect()
	wantFrames(t, "A1", a1.s, `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["B"]}]}}`)
	wantFrames(t, "A2", a2.s, watchlistFrame(offline("B")))
	wantFrames(t, "C1", c1.s, watchlistFrame(offline("B")))

	// D coming online reaches C only.
	d1 := signIn(`{"id":"D"}`)
	wantFrames(t, "C1", c1.s, watchlistFrame(online("D")))
	wantFrames(t, "A1", a1.s)
	d1.s.Take()

	// A going away (both sockets) reaches C once.
	a1.c.Disconnect()
	wantFrames(t, "C1", c1.s)
	a2.c.Disconnect()
	wantFrames(t, "C1", c1.s, watchlistFrame(offline("A")))

	// Once C is gone nobody watches D any more.
	c1.c.Disconnect()
	d1.c.Disconnect()
	for _, s := range []*channelstest.Sub{a1.s, a2.s, b1.s, b2.s, c1.s, d1.s} {
		wantFrames(t, s.ID, s)
	}
	if u, si, w, wl, _ := h.IndexSizes(appID); u+si+w+wl != 0 {
		t.Fatalf("indexes not empty: users %d, signedIn %d, watchers %d, watchlists %d", u, si, w, wl)
	}
}

func TestWatchlistEventsOff(t *testing.T) {
	h, _ := newHub(t, func(a *config.App) { a.EnableWatchlistEvents = boolPtr(false) })
	a, as := connect(t, h)
	mustSignIn(t, a, as, `{"id":"A","watchlist":["B"]}`)
	b, bs := connect(t, h)
	mustSignIn(t, b, bs, `{"id":"B","watchlist":["A"]}`)
	b.Disconnect()
	wantFrames(t, "A", as, signinSuccess(`{"id":"A","watchlist":["B"]}`))
	wantFrames(t, "B", bs, signinSuccess(`{"id":"B","watchlist":["A"]}`))
}

func TestTerminateUserConnections(t *testing.T) {
	h, _ := newHub(t, nil)
	var target []*channelstest.Sub
	// Two signed-in sockets and one that is only a presence member under the same id.
	for range 2 {
		c, s := connect(t, h)
		mustSignIn(t, c, s, `{"id":"u"}`)
		target = append(target, s)
	}
	c, s := connect(t, h)
	mustSubscribe(t, c, s, room, member("u", ""))
	target = append(target, s)
	// A socket signed in and present under the same id counts once.
	c, s = connect(t, h)
	mustSignIn(t, c, s, `{"id":"u"}`)
	mustSubscribe(t, c, s, room, member("u", ""))
	target = append(target, s)

	bystanders := []*channelstest.Sub{}
	c, s = connect(t, h)
	mustSignIn(t, c, s, `{"id":"v"}`)
	bystanders = append(bystanders, s)
	c, s = connect(t, h)
	mustSubscribe(t, c, s, room, member("uu", ""))
	bystanders = append(bystanders, s)
	_, s = connect(t, h)
	bystanders = append(bystanders, s)

	if n := h.TerminateUserConnections(appID, "u"); n != len(target) {
		t.Fatalf("TerminateUserConnections = %d, want %d", n, len(target))
	}
	for _, s := range target {
		closes := s.Closes()
		if len(closes) != 1 || closes[0].Code != protocol.CodeUnauthorized || closes[0].Message != "You got disconnected by the app." {
			t.Errorf("%s closed with %v, want one 4009", s, closes)
		}
	}
	for _, s := range bystanders {
		if s.Closed() != nil {
			t.Errorf("%s closed with %v", s, s.Closed())
		}
	}
	if n := h.TerminateUserConnections(appID, "nobody"); n != 0 {
		t.Fatalf("unknown user: %d", n)
	}
	if n := h.TerminateUserConnections("no-app", "u"); n != 0 {
		t.Fatalf("unknown app: %d", n)
	}
}

// After a user's connections are gone, terminating the user finds none.
func TestTerminateUserConnectionsAfterDisconnect(t *testing.T) {
	h, _ := newHub(t, nil)
	var conns []*channels.Conn
	for range 2 {
		c, s := connect(t, h)
		mustSignIn(t, c, s, `{"id":"u"}`)
		mustSubscribe(t, c, s, room, member("u", ""))
		conns = append(conns, c)
	}
	conns[0].Unsubscribe(room)
	if n := h.TerminateUserConnections(appID, "u"); n != 2 {
		t.Fatalf("still signed in: %d, want 2", n)
	}
	for _, c := range conns {
		c.Disconnect()
	}
	if n := h.TerminateUserConnections(appID, "u"); n != 0 {
		t.Fatalf("after disconnect: %d, want 0", n)
	}
	if got := users(t, h, room); !slices.Equal(got, []string{}) {
		t.Fatalf("Users = %q", got)
	}
}
