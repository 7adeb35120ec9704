package webhook

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// connect opens a connection of the test app on h.
func connect(t *testing.T, h *channels.Hub, socketID string) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	sub := channelstest.New(socketID)
	c, err := h.Connect(appKey, sub)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, sub
}

// subscribe makes a correctly signed subscription (channelData for presence).
func subscribe(t *testing.T, c *channels.Conn, sub *channelstest.Sub, channel, channelData string) {
	t.Helper()
	req := channels.SubscribeRequest{Channel: channel, ChannelData: channelData}
	if cl := protocol.Classify(channel); cl.NeedsAuth() {
		req.Auth = protocol.AuthToken(appKey, appSecret,
			protocol.ChannelStringToSign(sub.SocketID(), channel, channelData, cl.Type == protocol.Presence))
	}
	if err := c.Subscribe(req); err != nil {
		t.Fatalf("Subscribe(%s): %v", channel, err)
	}
}

func member(id string) string { return `{"user_id":` + strconv.Quote(id) + `}` }

// TestHubChecker checks the adapter against a real hub.
func TestHubChecker(t *testing.T) {
	h := channels.New([]config.App{testApp()}, channels.Options{})
	chk := HubChecker(h)
	c, sub := connect(t, h, "1.1")
	subscribe(t, c, sub, "presence-room", member("u1"))
	subscribe(t, c, sub, "public", "")
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"occupied public", chk.Occupied(appID, "public"), true},
		{"occupied presence", chk.Occupied(appID, "presence-room"), true},
		{"unoccupied", chk.Occupied(appID, "nobody-here"), false},
		{"unknown app", chk.Occupied("nope", "public"), false},
		{"member present", chk.HasMember(appID, "presence-room", "u1"), true},
		{"member absent", chk.HasMember(appID, "presence-room", "u2"), false},
		{"member of an empty channel", chk.HasMember(appID, "presence-other", "u1"), false},
		{"member, unknown app", chk.HasMember("nope", "presence-room", "u1"), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	c.Disconnect()
	if chk.Occupied(appID, "public") || chk.HasMember(appID, "presence-room", "u1") {
		t.Error("still occupied / present after Disconnect")
	}
}

// TestWithHub wires a Sender as a real hub's Observer with HubChecker: a page reload within
// the delay produces no webhook, leaving for good produces member_removed and
// channel_vacated, and a client event carries the presence user id.
func TestWithHub(t *testing.T) {
	rc := newReceiver(t, nil)
	s := New([]config.App{testApp(hook(rc.url()))}, Options{VacateDelay: time.Hour, BatchInterval: time.Hour})
	h := channels.New([]config.App{testApp(hook(rc.url()))}, channels.Options{Observer: s})
	s.SetChecker(HubChecker(h))
	s.Start()

	c1, sub1 := connect(t, h, "1.1")
	subscribe(t, c1, sub1, "presence-room", member("u1"))
	if err := c1.ClientEvent(protocol.Frame{Event: "client-hi", Channel: "presence-room", Data: json.RawMessage(`{"t":1}`)}); err != nil {
		t.Fatalf("ClientEvent: %v", err)
	}
	// Reload: the old socket goes, a new one for the same user subscribes within the delay.
	c1.Disconnect()
	c2, sub2 := connect(t, h, "2.2")
	subscribe(t, c2, sub2, "presence-room", member("u1"))
	// Another user joins and leaves for good; then everyone leaves.
	c3, sub3 := connect(t, h, "3.3")
	subscribe(t, c3, sub3, "presence-room", member("u3"))
	c3.Disconnect()
	c2.Disconnect()
	closeNow(t, s) // re-checks the pending events now

	want := []string{
		"channel_occupied presence-room",
		"member_added presence-room u1",
		"client_event presence-room u1",
		"member_added presence-room u3",
		"member_removed presence-room u3",
		"member_removed presence-room u1",
		"channel_vacated presence-room",
	}
	if got := rc.events(t); !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
	for _, r := range rc.requests() {
		for _, ev := range decode(t, r.body).Events {
			if ev["name"] == "client_event" && (ev["data"] != `{"t":1}` || ev["socket_id"] != "1.1" || ev["event"] != "client-hi") {
				t.Fatalf("client_event %v", ev)
			}
		}
	}
}
