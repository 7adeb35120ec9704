package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	pusher "github.com/pusher/pusher-http-go/v5"

	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/protocol"
)

// TestSDKTrigger drives every publish call of the official Go SDK, unchanged, and checks the
// exact frames each subscriber receives.
func TestSDKTrigger(t *testing.T) {
	type subs map[string]*channelstest.Sub
	cases := []struct {
		name string
		// call publishes with the SDK; s holds the subscribers "a" and "b" on "test", "o" on
		// "other" and "p" (user u1) on "presence-room".
		call func(c *pusher.Client, s subs) error
		want map[string][]string // frames per subscriber; absent means none
	}{
		{
			name: "Trigger with JSON data",
			call: func(c *pusher.Client, _ subs) error {
				return c.Trigger("test", "my-event", map[string]int{"a": 1})
			},
			want: map[string][]string{
				"a": {`{"event":"my-event","channel":"test","data":"{\"a\":1}"}`},
				"b": {`{"event":"my-event","channel":"test","data":"{\"a\":1}"}`},
			},
		},
		{
			name: "Trigger with string data",
			call: func(c *pusher.Client, _ subs) error { return c.Trigger("test", "e", "hello \"world\"") },
			want: map[string][]string{
				"a": {`{"event":"e","channel":"test","data":"hello \"world\""}`},
				"b": {`{"event":"e","channel":"test","data":"hello \"world\""}`},
			},
		},
		{
			name: "TriggerMulti",
			call: func(c *pusher.Client, _ subs) error {
				return c.TriggerMulti([]string{"test", "other", "presence-room"}, "multi", []int{1, 2})
			},
			want: map[string][]string{
				"a": {`{"event":"multi","channel":"test","data":"[1,2]"}`},
				"b": {`{"event":"multi","channel":"test","data":"[1,2]"}`},
				"o": {`{"event":"multi","channel":"other","data":"[1,2]"}`},
				"p": {`{"event":"multi","channel":"presence-room","data":"[1,2]"}`},
			},
		},
		{
			name: "TriggerExclusive",
			call: func(c *pusher.Client, s subs) error {
				return c.TriggerExclusive("test", "e", "x", s["a"].SocketID())
			},
			want: map[string][]string{"b": {`{"event":"e","channel":"test","data":"x"}`}},
		},
		{
			name: "TriggerWithParams socket_id and info",
			call: func(c *pusher.Client, s subs) error {
				id := s["b"].SocketID()
				res, err := c.TriggerMultiWithParams([]string{"test", "presence-room"}, "e", "x",
					pusher.TriggerParams{SocketID: &id, Info: strPtr("subscription_count,user_count")})
				if err != nil {
					return err
				}
				return checkTriggerInfo(res, map[string][2]int{"test": {2, -1}, "presence-room": {1, 1}})
			},
			want: map[string][]string{
				"a": {`{"event":"e","channel":"test","data":"x"}`},
				"p": {`{"event":"e","channel":"presence-room","data":"x"}`},
			},
		},
		{
			name: "TriggerBatch",
			call: func(c *pusher.Client, s subs) error {
				id := s["a"].SocketID()
				res, err := c.TriggerBatch([]pusher.Event{
					{Channel: "test", Name: "b1", Data: "1", SocketID: &id},
					{Channel: "other", Name: "b2", Data: map[string]bool{"ok": true}, Info: strPtr("subscription_count")},
					{Channel: "presence-room", Name: "b3", Data: "3", Info: strPtr("user_count")},
					{Channel: "test", Name: "b4", Data: "4"},
				})
				if err != nil {
					return err
				}
				if len(res.Batch) != 4 || res.Batch[0].SubscriptionCount != nil || res.Batch[1].SubscriptionCount == nil ||
					*res.Batch[1].SubscriptionCount != 1 || res.Batch[2].UserCount == nil || *res.Batch[2].UserCount != 1 {
					return fmt.Errorf("batch info %+v", res.Batch)
				}
				return nil
			},
			want: map[string][]string{
				"a": {`{"event":"b4","channel":"test","data":"4"}`},
				"b": {`{"event":"b1","channel":"test","data":"1"}`, `{"event":"b4","channel":"test","data":"4"}`},
				"o": {`{"event":"b2","channel":"other","data":"{\"ok\":true}"}`},
				"p": {`{"event":"b3","channel":"presence-room","data":"3"}`},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{}, nil)
			s := subs{
				"a": subscribe(t, e.hub, "test", ""),
				"b": subscribe(t, e.hub, "test", ""),
				"o": subscribe(t, e.hub, "other", ""),
				"p": subscribe(t, e.hub, "presence-room", "u1"),
			}
			if err := tc.call(e.sdk(testSecret), s); err != nil {
				t.Fatal(err)
			}
			for name, sub := range s {
				wantFrames(t, name, sub, tc.want[name]...)
			}
		})
	}
}

// checkTriggerInfo compares the info of a publish answer: {subscription_count, user_count}
// per channel, -1 for absent.
func checkTriggerInfo(res *pusher.TriggerChannelsList, want map[string][2]int) error {
	if res == nil || len(res.Channels) != len(want) {
		return fmt.Errorf("channels info %+v, want %v", res, want)
	}
	for ch, w := range want {
		got, ok := res.Channels[ch]
		if !ok || value(got.SubscriptionCount) != w[0] || value(got.UserCount) != w[1] {
			return fmt.Errorf("%s: subscription_count %d user_count %d, want %v", ch, value(got.SubscriptionCount), value(got.UserCount), w)
		}
	}
	return nil
}

func value(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// TestSDKQueries reads channel state with the SDK's Channels, Channel and GetChannelUsers.
func TestSDKQueries(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	subscribe(t, e.hub, "presence-room", "u2")
	subscribe(t, e.hub, "presence-room", "u1")
	subscribe(t, e.hub, "presence-room", "u1") // a second connection of u1
	subscribe(t, e.hub, "presence-lobby", "u3")
	subscribe(t, e.hub, "public-news", "")
	c := e.sdk(testSecret)

	all, err := c.Channels(pusher.ChannelsParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Channels) != 3 {
		t.Fatalf("Channels: %+v", all)
	}
	presence, err := c.Channels(pusher.ChannelsParams{FilterByPrefix: strPtr("presence-"), Info: strPtr("user_count")})
	if err != nil {
		t.Fatal(err)
	}
	if len(presence.Channels) != 2 || presence.Channels["presence-room"].UserCount != 2 || presence.Channels["presence-lobby"].UserCount != 1 {
		t.Fatalf("Channels(presence-, user_count): %+v", presence)
	}
	if _, err := c.Channels(pusher.ChannelsParams{Info: strPtr("user_count")}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("user_count without the presence- prefix: %v", err)
	}

	room, err := c.Channel("presence-room", pusher.ChannelParams{Info: strPtr("user_count,subscription_count")})
	if err != nil {
		t.Fatal(err)
	}
	if *room != (pusher.Channel{Name: "presence-room", Occupied: true, UserCount: 2, SubscriptionCount: 3}) {
		t.Fatalf("Channel: %+v", room)
	}
	empty, err := c.Channel("nobody-here", pusher.ChannelParams{})
	if err != nil || empty.Occupied {
		t.Fatalf("Channel(nobody-here): %+v %v", empty, err)
	}

	users, err := c.GetChannelUsers("presence-room")
	if err != nil {
		t.Fatal(err)
	}
	if len(users.List) != 2 || users.List[0].ID != "u1" || users.List[1].ID != "u2" {
		t.Fatalf("GetChannelUsers: %+v", users)
	}
	if _, err := c.GetChannelUsers("public-news"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("GetChannelUsers on a public channel: %v", err)
	}
}

// TestSDKWrongSecret checks that the SDK surfaces a 401 for a bad signature.
func TestSDKWrongSecret(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	s := subscribe(t, e.hub, "test", "")
	err := e.sdk("not-the-secret").Trigger("test", "e", "x")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "auth_failed") {
		t.Fatalf("got %v, want a 401 auth_failed", err)
	}
	wantFrames(t, "subscriber", s)
}

// TestTerminateUserConnections closes every connection of one user with 4009, the way the
// SDKs call it (pusher-http-go v5.1.1 has no TerminateUserConnections, so the request is
// signed as the Node SDK signs it: POST with body {}).
func TestTerminateUserConnections(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	u1a := subscribe(t, e.hub, "presence-room", "u1")
	u1b := subscribe(t, e.hub, "presence-other", "u1")
	u2 := subscribe(t, e.hub, "presence-room", "u2")
	for _, user := range []string{"u1", "nobody"} {
		resp, body := e.call(t, http.MethodPost, "/apps/app-id/users/"+user+"/terminate_connections", nil, []byte("{}"))
		wantOK(t, resp, body, `{}`)
	}
	for name, s := range map[string]*channelstest.Sub{"u1 (room)": u1a, "u1 (other)": u1b} {
		if err := s.WaitClosed(t, 2*time.Second); err == nil || err.Code != protocol.CodeUnauthorized {
			t.Fatalf("%s closed with %v, want 4009", name, err)
		}
	}
	if u2.Closed() != nil {
		t.Fatalf("u2 closed: %v", u2.Closed())
	}
}
