package channels_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

func TestSubscribeAcks(t *testing.T) {
	tests := []struct {
		name        string
		channel     string
		channelData string
		want        []string
	}{
		{"public", "my-channel", "", []string{ack("my-channel")}},
		{"public with every allowed character", "a-Z_0=@,.;:x", "", []string{ack("a-Z_0=@,.;:x")}},
		{"private", "private-orders", "", []string{ack("private-orders")}},
		{"encrypted", "private-encrypted-chat", "", []string{ack("private-encrypted-chat")}},
		{"presence", "presence-room", member("10", `{"name":"Mr. Channels"}`), []string{
			`{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"10\"],\"hash\":{\"10\":{\"name\":\"Mr. Channels\"}},\"count\":1}}"}`,
		}},
		{"presence without user_info", "presence-room", `{"user_id":"u1"}`, []string{
			`{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"u1\"],\"hash\":{\"u1\":{}},\"count\":1}}"}`,
		}},
		{"presence with null user_info", "presence-room", `{"user_id":"u1","user_info":null}`, []string{
			`{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"u1\"],\"hash\":{\"u1\":{}},\"count\":1}}"}`,
		}},
		{"presence numeric user_id becomes a string", "presence-room", `{"user_id":42,"user_info":{"n":1}}`, []string{
			`{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"42\"],\"hash\":{\"42\":{\"n\":1}},\"count\":1}}"}`,
		}},
		{"cache (public) miss", "cache-prices", "", []string{
			ack("cache-prices"),
			`{"event":"pusher:cache_miss","channel":"cache-prices","data":"{}"}`,
		}},
		{"private cache miss", "private-cache-prices", "", []string{
			ack("private-cache-prices"),
			`{"event":"pusher:cache_miss","channel":"private-cache-prices","data":"{}"}`,
		}},
		{"encrypted cache miss", "private-encrypted-cache-x", "", []string{
			ack("private-encrypted-cache-x"),
			`{"event":"pusher:cache_miss","channel":"private-encrypted-cache-x","data":"{}"}`,
		}},
		{"presence cache miss", "presence-cache-room", member("7", ""), []string{
			`{"event":"pusher_internal:subscription_succeeded","channel":"presence-cache-room","data":"{\"presence\":{\"ids\":[\"7\"],\"hash\":{\"7\":{}},\"count\":1}}"}`,
			`{"event":"pusher:cache_miss","channel":"presence-cache-room","data":"{}"}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, nil)
			c, s := connect(t, h)
			mustSubscribe(t, c, s, tt.channel, tt.channelData)
			wantFrames(t, "subscriber", s, tt.want...)
			if got := occupied(t, h); !slices.Equal(got, []string{tt.channel}) {
				t.Errorf("Channels = %q, want [%s]", got, tt.channel)
			}
		})
	}
}

// The hub accepts the subscribe data pusher-js sends, as an object or a JSON string.
func TestParseSubscribe(t *testing.T) {
	tests := []struct {
		name string
		data string
		want channels.SubscribeRequest
		code int
	}{
		{"pusher-js public", `{"channel":"my-channel","auth":""}`, channels.SubscribeRequest{Channel: "my-channel"}, 0},
		{"presence", `{"channel":"presence-room","auth":"k:s","channel_data":"{\"user_id\":\"10\"}"}`,
			channels.SubscribeRequest{Channel: "presence-room", Auth: "k:s", ChannelData: `{"user_id":"10"}`}, 0},
		{"channel_data as an object is kept as raw JSON", `{"channel":"presence-room","auth":"k:s","channel_data":{"user_id":"10"}}`,
			channels.SubscribeRequest{Channel: "presence-room", Auth: "k:s", ChannelData: `{"user_id":"10"}`}, 0},
		{"data as a string", `"{\"channel\":\"c\"}"`, channels.SubscribeRequest{Channel: "c"}, 0},
		{"null auth", `{"channel":"c","auth":null}`, channels.SubscribeRequest{Channel: "c"}, 0},
		{"missing data", ``, channels.SubscribeRequest{}, 4000},
		{"missing channel", `{"auth":""}`, channels.SubscribeRequest{}, 4000},
		{"empty channel", `{"channel":""}`, channels.SubscribeRequest{}, 4000},
		{"numeric channel", `{"channel":5}`, channels.SubscribeRequest{}, 4000},
		{"numeric auth", `{"channel":"c","auth":5}`, channels.SubscribeRequest{}, 4000},
		{"array", `[1]`, channels.SubscribeRequest{}, 4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParseSubscribe(json.RawMessage(tt.data))
			if tt.code != 0 {
				wantCode(t, "ParseSubscribe", err, tt.code)
				return
			}
			if err != nil {
				t.Fatalf("ParseSubscribe: %v", err)
			}
			if got != tt.want {
				t.Fatalf("ParseSubscribe = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSubscribeRefusedChangesNothing(t *testing.T) {
	const data = `{"user_id":"10"}`
	tests := []struct {
		name string
		req  func(socketID string) channels.SubscribeRequest
		code int
	}{
		{"private without auth", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-a"}
		}, protocol.CodeUnauthorized},
		{"private signed with the wrong secret", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-a", Auth: protocol.AuthToken(appKey, "wrong", sid+":private-a")}
		}, protocol.CodeUnauthorized},
		{"private signed with the wrong key", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-a", Auth: protocol.AuthToken("other-key", secret, sid+":private-a")}
		}, protocol.CodeUnauthorized},
		{"private signed for another socket", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-a", Auth: channelAuth("1.1", "private-a", "")}
		}, protocol.CodeUnauthorized},
		{"private signed for another channel", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-a", Auth: channelAuth(sid, "private-b", "")}
		}, protocol.CodeUnauthorized},
		{"private signature only", func(sid string) channels.SubscribeRequest {
			a := channelAuth(sid, "private-a", "")
			return channels.SubscribeRequest{Channel: "private-a", Auth: a[strings.IndexByte(a, ':')+1:]}
		}, protocol.CodeUnauthorized},
		{"private uppercase hex", func(sid string) channels.SubscribeRequest {
			a := channelAuth(sid, "private-a", "")
			return channels.SubscribeRequest{Channel: "private-a", Auth: appKey + ":" + strings.ToUpper(a[len(appKey)+1:])}
		}, protocol.CodeUnauthorized},
		{"encrypted without auth", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-encrypted-a"}
		}, protocol.CodeUnauthorized},
		{"encrypted bad signature", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-encrypted-a", Auth: channelAuth(sid, "private-a", "")}
		}, protocol.CodeUnauthorized},
		{"private cache bad signature", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "private-cache-a", Auth: appKey + ":00"}
		}, protocol.CodeUnauthorized},
		{"presence without auth", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", ChannelData: data}
		}, protocol.CodeUnauthorized},
		{"presence signed as a private channel", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", ChannelData: data, Auth: channelAuth(sid, "private-a", "")}
		}, protocol.CodeUnauthorized},
		{"presence channel_data changed after signing", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", ChannelData: `{"user_id":"11"}`, Auth: channelAuth(sid, "presence-a", data)}
		}, protocol.CodeUnauthorized},
		{"presence channel_data re-serialised", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", ChannelData: `{"user_id": "10"}`, Auth: channelAuth(sid, "presence-a", data)}
		}, protocol.CodeUnauthorized},
		{"presence signed but no channel_data", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", Auth: channelAuth(sid, "presence-a", "")}
		}, protocol.CodeUnauthorized},
		{"presence channel_data without user_id", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", ChannelData: `{}`, Auth: channelAuth(sid, "presence-a", `{}`)}
		}, protocol.CodeGeneric},
		{"presence channel_data not JSON", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", ChannelData: `nope`, Auth: channelAuth(sid, "presence-a", `nope`)}
		}, protocol.CodeGeneric},
		{"presence boolean user_id", func(sid string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "presence-a", ChannelData: `{"user_id":true}`, Auth: channelAuth(sid, "presence-a", `{"user_id":true}`)}
		}, protocol.CodeGeneric},
		{"invalid channel name", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "bad channel"}
		}, protocol.CodeChannelError},
		{"channel name too long", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: strings.Repeat("a", 201)}
		}, protocol.CodeChannelError},
		{"user channel while not signed in", func(string) channels.SubscribeRequest {
			return channels.SubscribeRequest{Channel: "#server-to-user-10"}
		}, protocol.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, nil)
			// A member already there must not hear anything either.
			other, os := connect(t, h)
			name := tt.req("0.0").Channel
			if protocol.ValidateChannelName(name, 0) == nil && protocol.Classify(name).Type != protocol.User {
				od := ""
				if protocol.Classify(name).Type == protocol.Presence {
					od = member("99", "")
				}
				mustSubscribe(t, other, os, name, od)
				os.Take()
			}
			before := occupied(t, h)
			beforeUsers := users(t, h, name)

			c, s := connect(t, h)
			wantCode(t, "Subscribe", c.Subscribe(tt.req(s.SocketID())), tt.code)

			wantFrames(t, "refused subscriber", s)
			wantFrames(t, "existing subscriber", os)
			if got := occupied(t, h); !slices.Equal(got, before) {
				t.Errorf("Channels = %q, want %q", got, before)
			}
			if got := users(t, h, name); !slices.Equal(got, beforeUsers) {
				t.Errorf("Users = %q, want %q", got, beforeUsers)
			}
			// The connection is not subscribed: a client event there is refused as such.
			if protocol.Classify(name).AllowsClientEvents() {
				err := c.ClientEvent(protocol.Frame{Event: "client-x", Channel: name, Data: json.RawMessage(`{}`)})
				wantCode(t, "ClientEvent after refused subscribe", err, protocol.CodeClientEventRefused)
				if !strings.Contains(err.Message, "not subscribed") {
					t.Errorf("ClientEvent error %q, want a not-subscribed refusal", err.Message)
				}
			}
		})
	}
}

func TestResubscribeAcksAgainAndChangesNothing(t *testing.T) {
	h, _ := newHub(t, nil)
	a, as := connect(t, h)
	b, bs := connect(t, h)
	mustSubscribe(t, a, as, "presence-r", member("a", ""))
	mustSubscribe(t, b, bs, "presence-r", member("b", ""))
	as.Take()
	bs.Take()
	mustSubscribe(t, b, bs, "presence-r", member("b", ""))
	wantFrames(t, "b", bs, `{"event":"pusher_internal:subscription_succeeded","channel":"presence-r","data":"{\"presence\":{\"ids\":[\"a\",\"b\"],\"hash\":{\"a\":{},\"b\":{}},\"count\":2}}"}`)
	wantFrames(t, "a", as)
	if ci, _ := h.Channel(appID, "presence-r"); ci.SubscriptionCount != 2 || ci.UserCount != 2 {
		t.Fatalf("Channel = %+v, want 2 subscriptions and 2 users", ci)
	}
	// One unsubscribe is enough to leave: the second subscribe did not count twice.
	b.Unsubscribe("presence-r")
	wantFrames(t, "a", as, `{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"b\"}"}`)
}

func TestUnsubscribe(t *testing.T) {
	h, _ := newHub(t, nil)
	c, s := connect(t, h)
	c.Unsubscribe("never-subscribed") // ignored
	mustSubscribe(t, c, s, "a", "")
	mustSubscribe(t, c, s, "private-b", "")
	s.Take()
	c.Unsubscribe("a")
	if got := occupied(t, h); !slices.Equal(got, []string{"private-b"}) {
		t.Fatalf("Channels = %q", got)
	}
	c.Unsubscribe("a") // twice: ignored
	if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"a", "private-b"}, Data: "x"}); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, "subscriber", s, `{"event":"e","channel":"private-b","data":"x"}`)
	wantFrames(t, "subscriber (nothing sent on unsubscribe)", s)
}

func TestCacheChannel(t *testing.T) {
	h, clk := newHub(t, func(a *config.App) { a.CacheTTL = config.Duration(time.Minute) })
	const ch = "cache-prices"
	miss := `{"event":"pusher:cache_miss","channel":"cache-prices","data":"{}"}`
	ev := func(v string) string { return `{"event":"price","channel":"cache-prices","data":"{\"v\":` + v + `}"}` }
	publish := func(v string) {
		t.Helper()
		if err := h.Publish(appID, channels.Event{Name: "price", Channels: []string{ch}, Data: `{"v":` + v + `}`}); err != nil {
			t.Fatal(err)
		}
	}
	subscribe := func(want ...string) {
		t.Helper()
		c, s := connect(t, h)
		mustSubscribe(t, c, s, ch, "")
		wantFrames(t, "new subscriber", s, want...)
		c.Disconnect()
	}

	subscribe(ack(ch), miss)
	// Published with no subscriber: still cached.
	publish("1")
	subscribe(ack(ch), ev("1"))
	if frame, ttl, ok := h.CachedEvent(appID, ch); !ok || string(frame) != ev("1") || ttl != time.Minute {
		t.Fatalf("CachedEvent = %q, %v, %v", frame, ttl, ok)
	}

	// Published while subscribed: the last one wins, and live subscribers get it too.
	live, ls := connect(t, h)
	mustSubscribe(t, live, ls, ch, "")
	ls.Take()
	publish("2")
	publish("3")
	wantFrames(t, "live subscriber", ls, ev("2"), ev("3"))
	subscribe(ack(ch), ev("3"))

	// The TTL runs from the last publish, on the hub's clock.
	clk.Add(time.Minute - time.Nanosecond)
	if _, ttl, ok := h.CachedEvent(appID, ch); !ok || ttl != time.Nanosecond {
		t.Fatalf("CachedEvent just before expiry: ttl %v, ok %v", ttl, ok)
	}
	subscribe(ack(ch), ev("3"))
	clk.Add(time.Nanosecond)
	subscribe(ack(ch), miss)
	if _, _, ok := h.CachedEvent(appID, ch); ok {
		t.Fatal("CachedEvent still present after TTL")
	}
	wantFrames(t, "live subscriber", ls)

	// A non-cache channel caches nothing.
	if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"prices"}, Data: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := h.CachedEvent(appID, "prices"); ok {
		t.Fatal("non-cache channel was cached")
	}
}

// A cache channel's replayed event is the very frame that was published: encoded once.
func TestCacheReplayIsThePublishedFrame(t *testing.T) {
	h, _ := newHub(t, nil)
	live, ls := connect(t, h)
	mustSubscribe(t, live, ls, "cache-x", "")
	if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"cache-x"}, Data: "d"}); err != nil {
		t.Fatal(err)
	}
	c, s := connect(t, h)
	mustSubscribe(t, c, s, "cache-x", "")
	lf, sf := ls.RawFrames(), s.RawFrames()
	if len(lf) != 3 || len(sf) != 2 {
		t.Fatalf("frames: live %q, new %q", ls.Frames(), s.Frames())
	}
	if &lf[2][0] != &sf[1][0] {
		t.Fatal("replayed cache frame is a new encoding, want the published bytes")
	}
}

func TestUserAuthenticationTimeout(t *testing.T) {
	const timeout = 30 * time.Second
	h, clk := newHub(t, func(a *config.App) { a.UserAuthenticationTimeout = config.Duration(timeout) })
	signed, ss := connect(t, h)
	mustSignIn(t, signed, ss, `{"id":"u"}`)
	private, ps := connect(t, h)
	mustSubscribe(t, private, ps, "private-x", "")
	presence, prs := connect(t, h)
	mustSubscribe(t, presence, prs, "presence-x", member("p", ""))
	gone, gs := connect(t, h)
	gone.Disconnect()
	public, pubs := connect(t, h)
	mustSubscribe(t, public, pubs, "public-x", "")
	idle, is := connect(t, h)

	all := map[string]*channelstest.Sub{"idle": is, "public-only": pubs, "signed in": ss, "private": ps, "presence": prs, "disconnected": gs}
	clk.Add(timeout - time.Nanosecond)
	for name, s := range all {
		if err := s.Closed(); err != nil {
			t.Errorf("%s closed before the timeout: %v", name, err)
		}
	}
	clk.Add(time.Nanosecond)
	for name, s := range all {
		err := s.Closed()
		switch name {
		case "idle", "public-only":
			if err == nil || err.Code != protocol.CodeUnauthorized || err.Message != "Connection not authorized within timeout." {
				t.Errorf("%s closed with %v", name, err)
			}
		default:
			if err != nil {
				t.Errorf("%s connection closed with %v", name, err)
			}
		}
	}
	idle.Disconnect()
	public.Disconnect()
}
