package channels_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

const room = "presence-room"

func memberAdded(id, info string) string {
	return `{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"` + id + `\",\"user_info\":` + strings.ReplaceAll(info, `"`, `\"`) + `}"}`
}

func memberRemoved(id string) string {
	return `{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"` + id + `\"}"}`
}

// presenceAck is the ack of presence-room; members are "id" → info JSON, in id order.
func presenceAck(members ...[2]string) string {
	var ids, hash []string
	for _, m := range members {
		ids = append(ids, `\"`+m[0]+`\"`)
		hash = append(hash, `\"`+m[0]+`\":`+strings.ReplaceAll(m[1], `"`, `\"`))
	}
	return `{"event":"pusher_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[` +
		strings.Join(ids, ",") + `],\"hash\":{` + strings.Join(hash, ",") + `},\"count\":` + strconv.Itoa(len(members)) + `}}"}`
}

func TestPresenceDedupByUserID(t *testing.T) {
	leave := map[string]func(c *channels.Conn){
		"unsubscribe": func(c *channels.Conn) { c.Unsubscribe(room) },
		"disconnect":  func(c *channels.Conn) { c.Disconnect() },
	}
	for _, first := range []string{"unsubscribe", "disconnect"} {
		for _, last := range []string{"unsubscribe", "disconnect"} {
			t.Run(first+" then "+last, func(t *testing.T) {
				h, _ := newHub(t, nil)
				j := &channelstest.Journal{}
				newSub := func() (*channels.Conn, *channelstest.Sub) {
					return connectSub(t, h, &channelstest.Sub{ID: nextSocketID(), Journal: j})
				}
				a1, as1 := newSub()
				b1, bs1 := newSub()
				b2, bs2 := newSub()
				infoA, infoB := `{"name":"A"}`, `{"name":"B"}`
				step := func(what string, want ...string) {
					t.Helper()
					got := j.Take()
					if !slices.Equal(got, want) {
						t.Fatalf("after %s, frames sent were\n  %q\nwant\n  %q", what, got, want)
					}
				}

				mustSubscribe(t, a1, as1, room, member("a", infoA))
				step("a joins", as1.ID+" "+presenceAck([2]string{"a", infoA}))

				// member_added to the others, before the joiner's own ack.
				mustSubscribe(t, b1, bs1, room, member("b", infoB))
				step("b joins", as1.ID+" "+memberAdded("b", infoB), bs1.ID+" "+presenceAck([2]string{"a", infoA}, [2]string{"b", infoB}))

				// The same user on a second socket is not announced again.
				mustSubscribe(t, b2, bs2, room, member("b", infoB))
				step("b joins again", bs2.ID+" "+presenceAck([2]string{"a", infoA}, [2]string{"b", infoB}))
				if ci, _ := h.Channel(appID, room); ci.SubscriptionCount != 3 || ci.UserCount != 2 || !ci.Occupied {
					t.Fatalf("Channel = %+v, want 3 subscriptions, 2 users", ci)
				}

				// Leaving on one of b's sockets keeps b present.
				leave[first](b1)
				step("b's first socket leaves")
				if got := users(t, h, room); !slices.Equal(got, []string{"a", "b"}) {
					t.Fatalf("Users = %q", got)
				}

				leave[last](b2)
				step("b's last socket leaves", as1.ID+" "+memberRemoved("b"))
				if got := users(t, h, room); !slices.Equal(got, []string{"a"}) {
					t.Fatalf("Users = %q", got)
				}

				a1.Unsubscribe(room)
				step("a leaves")
				if got := occupied(t, h); len(got) != 0 {
					t.Fatalf("Channels = %q, want none", got)
				}
				// Disconnecting after unsubscribing sends nothing more.
				a1.Disconnect()
				b1.Disconnect()
				b2.Disconnect()
				step("everyone disconnects")
			})
		}
	}
}

func TestPresenceAckListsMembersSorted(t *testing.T) {
	h, _ := newHub(t, nil)
	for _, id := range []string{"9", "10", "b", "a"} {
		c, s := connect(t, h)
		mustSubscribe(t, c, s, room, member(id, ""))
	}
	c, s := connect(t, h)
	mustSubscribe(t, c, s, room, `{"user_id":100}`)
	wantFrames(t, "joiner", s, presenceAck([2]string{"10", "{}"}, [2]string{"100", "{}"}, [2]string{"9", "{}"}, [2]string{"a", "{}"}, [2]string{"b", "{}"}))
	if got := users(t, h, room); !slices.Equal(got, []string{"10", "100", "9", "a", "b"}) {
		t.Fatalf("Users = %q", got)
	}
}

func TestPresenceNumericUserIDIsAString(t *testing.T) {
	h, _ := newHub(t, nil)
	a, as := connect(t, h)
	mustSubscribe(t, a, as, room, `{"user_id":"x"}`)
	as.Take()
	b, bs := connect(t, h)
	mustSubscribe(t, b, bs, room, `{"user_id":123,"user_info":{"k":"v"}}`)
	wantFrames(t, "member", as, memberAdded("123", `{"k":"v"}`))
	wantFrames(t, "joiner", bs, presenceAck([2]string{"123", `{"k":"v"}`}, [2]string{"x", "{}"}))
	// The same user given as a string is the same member.
	c, cs := connect(t, h)
	mustSubscribe(t, c, cs, room, `{"user_id":"123"}`)
	wantFrames(t, "member", as)
	if ci, _ := h.Channel(appID, room); ci.UserCount != 2 {
		t.Fatalf("UserCount = %d, want 2", ci.UserCount)
	}
	// Client events from it carry the string id.
	if err := b.ClientEvent(protocol.Frame{Event: "client-x", Channel: room, Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, "member", as, `{"event":"client-x","channel":"presence-room","data":1,"user_id":"123"}`)
}

func TestPresenceMemberCap(t *testing.T) {
	h, _ := newHub(t, func(a *config.App) { a.MaxPresenceMembersPerChannel = 2 })
	u1, s1 := connect(t, h)
	u2, s2 := connect(t, h)
	mustSubscribe(t, u1, s1, room, member("1", ""))
	mustSubscribe(t, u2, s2, room, member("2", ""))
	s1.Take()
	s2.Take()

	u3, s3 := connect(t, h)
	err := u3.Subscribe(subReq(s3, room, member("3", "")))
	wantCode(t, "third user", err, protocol.CodeOverCapacity)
	wantFrames(t, "third user", s3)
	wantFrames(t, "member 1", s1)
	wantFrames(t, "member 2", s2)
	if got := users(t, h, room); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("Users = %q", got)
	}
	if ci, _ := h.Channel(appID, room); ci.SubscriptionCount != 2 || ci.UserCount != 2 {
		t.Fatalf("Channel = %+v", ci)
	}

	// A further socket of a user already present is not a new member.
	u1b, s1b := connect(t, h)
	mustSubscribe(t, u1b, s1b, room, member("1", ""))
	wantFrames(t, "member 2", s2)

	// Once a member leaves, the third user fits.
	u2.Disconnect()
	s1.Take()
	mustSubscribe(t, u3, s3, room, member("3", ""))
	wantFrames(t, "member 1", s1, memberAdded("3", "{}"))

	// A refused join on an empty channel leaves no channel behind.
	h2, _ := newHub(t, func(a *config.App) { a.MaxPresenceMembersPerChannel = 1 })
	x, xs := connect(t, h2)
	mustSubscribe(t, x, xs, "presence-other", member("x", ""))
	y, ys := connect(t, h2)
	wantCode(t, "second user", y.Subscribe(subReq(ys, "presence-other", member("y", ""))), protocol.CodeOverCapacity)
	x.Disconnect()
	if got := occupied(t, h2); len(got) != 0 {
		t.Fatalf("Channels = %q", got)
	}
}

func TestPresenceMemberSizeCaps(t *testing.T) {
	// user_info of exactly n bytes: {"b":"xxx…"}.
	info := func(n int) string { return `{"b":"` + strings.Repeat("x", n-8) + `"}` }
	tests := []struct {
		name string
		data string
		code int
	}{
		{"user_info at 2 KB", `{"user_id":"u","user_info":` + info(2048) + `}`, 0},
		{"user_info over 2 KB", `{"user_id":"u","user_info":` + info(2049) + `}`, protocol.CodeChannelError},
		{"user_id of 256 bytes", member(strings.Repeat("u", 256), ""), 0},
		{"user_id over 256 bytes", member(strings.Repeat("u", 257), ""), protocol.CodeChannelError},
		{"empty user_id", member("", ""), protocol.CodeGeneric},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, nil)
			c, s := connect(t, h)
			err := c.Subscribe(subReq(s, room, tt.data))
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("Subscribe: %v", err)
				}
				return
			}
			wantCode(t, "Subscribe", err, tt.code)
			wantFrames(t, "subscriber", s)
			if got := occupied(t, h); len(got) != 0 {
				t.Fatalf("Channels = %q", got)
			}
		})
	}
	// The cap follows the app setting.
	h, _ := newHub(t, func(a *config.App) { a.MaxPresenceMemberSizeKB = 1 })
	c, s := connect(t, h)
	wantCode(t, "1 KB cap", c.Subscribe(subReq(s, room, `{"user_id":"u","user_info":`+info(1025)+`}`)), protocol.CodeChannelError)
}

func TestV2SubscribersGetSockudoPrefixes(t *testing.T) {
	h, _ := newHub(t, nil)
	v1, s1 := connect(t, h)
	v2a, s2a := connectSub(t, h, channelstest.NewV2(nextSocketID()))
	v2b, s2b := connectSub(t, h, channelstest.NewV2(nextSocketID()))
	mustSubscribe(t, v1, s1, room, member("1", ""))
	mustSubscribe(t, v2a, s2a, room, member("2", ""))
	wantFrames(t, "V2 joiner", s2a, `{"event":"sockudo_internal:subscription_succeeded","channel":"presence-room","data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{},\"2\":{}},\"count\":2}}"}`)
	s1.Take()

	mustSubscribe(t, v2b, s2b, room, member("3", `{"n":"c"}`))
	wantFrames(t, "V1 member", s1, memberAdded("3", `{"n":"c"}`))
	wantFrames(t, "V2 member", s2a, `{"event":"sockudo_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"3\",\"user_info\":{\"n\":\"c\"}}"}`)
	s2b.Take()

	v1.Disconnect()
	wantFrames(t, "V2 member", s2a, `{"event":"sockudo_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"1\"}"}`)
	wantFrames(t, "V2 member", s2b, `{"event":"sockudo_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"1\"}"}`)
	// V2 cache miss and sign-in use the sockudo: family too.
	c, s := connectSub(t, h, channelstest.NewV2(nextSocketID()))
	mustSubscribe(t, c, s, "cache-x", "")
	wantFrames(t, "V2 cache subscriber", s,
		`{"event":"sockudo_internal:subscription_succeeded","channel":"cache-x","data":"{}"}`,
		`{"event":"sockudo:cache_miss","channel":"cache-x","data":"{}"}`)
	mustSignIn(t, c, s, `{"id":"v2"}`)
	wantFrames(t, "V2 signed in", s, `{"event":"sockudo:signin_success","data":{"user_data":"{\"id\":\"v2\"}"}}`)
}

func TestPresenceSystemFrameEncodedOncePerDialect(t *testing.T) {
	h, _ := newHub(t, nil)
	var subs []*channelstest.Sub
	for i := range 4 {
		s := channelstest.New(nextSocketID())
		if i%2 == 1 {
			s.V = protocol.V2
		}
		c, _ := connectSub(t, h, s)
		mustSubscribe(t, c, s, room, member(string(rune('a'+i)), ""))
		subs = append(subs, s)
	}
	for _, s := range subs {
		s.Take()
	}
	j, js := connect(t, h)
	mustSubscribe(t, j, js, room, member("z", ""))
	first := map[protocol.Version]*byte{}
	for _, s := range subs {
		f := s.RawFrames()
		if len(f) != 1 {
			t.Fatalf("%s got %q", s, s.Frames())
		}
		if p, ok := first[s.V]; ok && p != &f[0][0] {
			t.Errorf("%s: member_added encoded again for the same dialect", s)
		}
		first[s.V] = &f[0][0]
	}
	if first[protocol.V1] == first[protocol.V2] {
		t.Error("V1 and V2 share one encoding")
	}
}
