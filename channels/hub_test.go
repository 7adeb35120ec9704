package channels_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

func TestConnectRefusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.App)
		key  string
		code int
	}{
		{name: "unknown key", key: "nope", code: protocol.CodeAppNotFound},
		{name: "disabled app", edit: func(a *config.App) { a.Enabled = boolPtr(false) }, key: appKey, code: protocol.CodeAppDisabled},
		{name: "enabled explicitly", edit: func(a *config.App) { a.Enabled = boolPtr(true) }, key: appKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHub(t, tt.edit)
			s := channelstest.New(nextSocketID())
			c, err := h.Connect(tt.key, s)
			if tt.code == 0 {
				if err != nil || c == nil {
					t.Fatalf("Connect = %v, %v", c, err)
				}
				if c.App() != appID || h.Connections(appID) != 1 {
					t.Fatalf("App = %q, Connections = %d", c.App(), h.Connections(appID))
				}
				return
			}
			wantCode(t, "Connect", err, tt.code)
			if c != nil {
				t.Fatal("refused Connect returned a connection")
			}
			if h.Connections(appID) != 0 {
				t.Fatalf("Connections = %d after a refusal", h.Connections(appID))
			}
			wantFrames(t, "refused", s)
		})
	}
}

func TestConnectionQuota(t *testing.T) {
	h, _ := newHub(t, func(a *config.App) { a.MaxConnections = 1 })
	first, _ := connect(t, h)
	_, err := h.Connect(appKey, channelstest.New(nextSocketID()))
	wantCode(t, "second Connect", err, protocol.CodeOverQuota)
	if n := h.Connections(appID); n != 1 {
		t.Fatalf("Connections = %d, want 1", n)
	}
	// Disconnect frees the slot, once even when called twice.
	first.Disconnect()
	first.Disconnect()
	if n := h.Connections(appID); n != 0 {
		t.Fatalf("Connections = %d, want 0", n)
	}
	second, _ := connect(t, h)
	_, err = h.Connect(appKey, channelstest.New(nextSocketID()))
	wantCode(t, "third Connect", err, protocol.CodeOverQuota)
	second.Disconnect()
}

func TestAppLookups(t *testing.T) {
	other := config.App{ID: "other-id", Key: "other-key", Secret: "s"}
	other.ApplyDefaults()
	h := channels.New([]config.App{other}, channels.Options{})
	if a, ok := h.AppByKey("other-key"); !ok || a.ID != "other-id" {
		t.Fatalf("AppByKey = %+v, %v", a, ok)
	}
	if a, ok := h.AppByID("other-id"); !ok || a.Key != "other-key" {
		t.Fatalf("AppByID = %+v, %v", a, ok)
	}
	if _, ok := h.AppByKey(appKey); ok {
		t.Fatal("AppByKey found an app not served")
	}
	if _, ok := h.AppByID(appID); ok {
		t.Fatal("AppByID found an app not served")
	}
}

func TestPublish(t *testing.T) {
	h, _ := newHub(t, nil)
	a, as := connect(t, h)
	b, bs := connect(t, h)
	c, cs := connectSub(t, h, channelstest.NewV2(nextSocketID()))
	for _, x := range []struct {
		c *channels.Conn
		s *channelstest.Sub
	}{{a, as}, {b, bs}, {c, cs}} {
		mustSubscribe(t, x.c, x.s, "orders", "")
		mustSubscribe(t, x.c, x.s, "private-orders", "")
		x.s.Take()
	}
	mustSubscribe(t, a, as, "presence-orders", member("a", ""))
	as.Take()

	tests := []struct {
		name   string
		ev     channels.Event
		a, b   []string
		c      []string
		errMsg string
	}{
		{name: "one channel, escaped data",
			ev: channels.Event{Name: "order.created", Channels: []string{"orders"}, Data: `{"id":1,"html":"<b>&</b>","q":"\"\\"}`},
			a:  []string{`{"event":"order.created","channel":"orders","data":"{\"id\":1,\"html\":\"<b>&</b>\",\"q\":\"\\\"\\\\\"}"}`},
			b:  []string{`{"event":"order.created","channel":"orders","data":"{\"id\":1,\"html\":\"<b>&</b>\",\"q\":\"\\\"\\\\\"}"}`},
			c:  []string{`{"event":"order.created","channel":"orders","data":"{\"id\":1,\"html\":\"<b>&</b>\",\"q\":\"\\\"\\\\\"}"}`}},
		{name: "several channels",
			ev: channels.Event{Name: "e", Channels: []string{"orders", "private-orders", "presence-orders", "empty"}, Data: "x"},
			a: []string{`{"event":"e","channel":"orders","data":"x"}`, `{"event":"e","channel":"private-orders","data":"x"}`,
				`{"event":"e","channel":"presence-orders","data":"x"}`},
			b: []string{`{"event":"e","channel":"orders","data":"x"}`, `{"event":"e","channel":"private-orders","data":"x"}`},
			c: []string{`{"event":"e","channel":"orders","data":"x"}`, `{"event":"e","channel":"private-orders","data":"x"}`}},
		{name: "socket_id excluded",
			ev: channels.Event{Name: "e", Channels: []string{"orders"}, Data: "x", ExceptSocketID: bs.ID},
			a:  []string{`{"event":"e","channel":"orders","data":"x"}`},
			c:  []string{`{"event":"e","channel":"orders","data":"x"}`}},
		{name: "invalid socket_id excludes nobody",
			ev: channels.Event{Name: "e", Channels: []string{"orders"}, Data: "x", ExceptSocketID: "x" + bs.ID},
			a:  []string{`{"event":"e","channel":"orders","data":"x"}`},
			b:  []string{`{"event":"e","channel":"orders","data":"x"}`},
			c:  []string{`{"event":"e","channel":"orders","data":"x"}`}},
		{name: "unknown socket_id excludes nobody",
			ev: channels.Event{Name: "e", Channels: []string{"orders"}, Data: "", ExceptSocketID: "1.1"},
			a:  []string{`{"event":"e","channel":"orders","data":""}`},
			b:  []string{`{"event":"e","channel":"orders","data":""}`},
			c:  []string{`{"event":"e","channel":"orders","data":""}`}},
		{name: "empty event name", ev: channels.Event{Channels: []string{"orders"}, Data: "x"}, errMsg: "required"},
		{name: "reserved event name", ev: channels.Event{Name: "pusher:x", Channels: []string{"orders"}, Data: "x"}, errMsg: "reserved"},
		{name: "reserved sockudo event name", ev: channels.Event{Name: "sockudo_internal:x", Channels: []string{"orders"}, Data: "x"}, errMsg: "reserved"},
		{name: "event name too long", ev: channels.Event{Name: strings.Repeat("e", 201), Channels: []string{"orders"}, Data: "x"}, errMsg: "longer"},
		{name: "no channel", ev: channels.Event{Name: "e", Data: "x"}, errMsg: "No channel"},
		{name: "one invalid channel among valid ones",
			ev: channels.Event{Name: "e", Channels: []string{"orders", "private-orders", "bad channel"}, Data: "x"}, errMsg: "Invalid channel name"},
		{name: "channel name too long",
			ev: channels.Event{Name: "e", Channels: []string{"orders", strings.Repeat("c", 201)}, Data: "x"}, errMsg: "longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.Publish(appID, tt.ev)
			if tt.errMsg != "" {
				var perr *protocol.Error
				if !errors.As(err, &perr) || !strings.Contains(perr.Message, tt.errMsg) {
					t.Fatalf("Publish error = %v, want a protocol error mentioning %q", err, tt.errMsg)
				}
			} else if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			wantFrames(t, "a", as, tt.a...)
			wantFrames(t, "b", bs, tt.b...)
			wantFramesV2(t, "c (V2)", cs, tt.c...)
		})
	}

	if err := h.Publish("no-app", channels.Event{Name: "e", Channels: []string{"orders"}}); !errors.Is(err, channels.ErrUnknownApp) {
		t.Fatalf("unknown app: %v", err)
	}
}

// Every subscriber of a channel gets the very same bytes: the frame is encoded once (per
// version: TestV2FanoutSharesOneEncodingPerVersion covers V2).
func TestPublishEncodesOnce(t *testing.T) {
	h, _ := newHub(t, nil)
	var subs []*channelstest.Sub
	for range 5 {
		s := channelstest.New(nextSocketID())
		c, _ := connectSub(t, h, s)
		mustSubscribe(t, c, s, "ticker", "")
		s.Take()
		subs = append(subs, s)
	}
	if err := h.Publish(appID, channels.Event{Name: "tick", Channels: []string{"ticker"}, Data: "1"}); err != nil {
		t.Fatal(err)
	}
	var first *byte
	for _, s := range subs {
		f := s.RawFrames()
		if len(f) != 1 {
			t.Fatalf("%s got %q", s, s.Frames())
		}
		if first == nil {
			first = &f[0][0]
		} else if &f[0][0] != first {
			t.Fatalf("%s got its own encoding of the frame", s)
		}
	}
}

func TestQueries(t *testing.T) {
	h, _ := newHub(t, nil)
	type sub struct {
		channel, data string
	}
	for _, conn := range [][]sub{
		{{"a", ""}, {"presence-x", member("1", "")}, {"private-b", ""}},
		{{"a", ""}, {"presence-x", member("1", "")}},
		{{"presence-x", member("2", `{"n":2}`)}, {"cache-z", ""}},
	} {
		c, s := connect(t, h)
		for _, x := range conn {
			mustSubscribe(t, c, s, x.channel, x.data)
		}
	}
	list, err := h.Channels(appID, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []channels.ChannelInfo{
		{Name: "a", Occupied: true, SubscriptionCount: 2},
		{Name: "cache-z", Occupied: true, SubscriptionCount: 1},
		{Name: "presence-x", Occupied: true, SubscriptionCount: 3, UserCount: 2},
		{Name: "private-b", Occupied: true, SubscriptionCount: 1},
	}
	if !slices.Equal(list, want) {
		t.Fatalf("Channels =\n  %+v\nwant\n  %+v", list, want)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"presence-", []string{"presence-x"}},
		{"p", []string{"presence-x", "private-b"}},
		{"private-encrypted-", nil},
		{"zzz", nil},
	}
	for _, tt := range tests {
		list, _ := h.Channels(appID, tt.prefix)
		var names []string
		for _, ci := range list {
			names = append(names, ci.Name)
		}
		if !slices.Equal(names, tt.want) {
			t.Errorf("Channels(%q) = %q, want %q", tt.prefix, names, tt.want)
		}
	}
	if ci, err := h.Channel(appID, "presence-x"); err != nil || ci != (channels.ChannelInfo{Name: "presence-x", Occupied: true, SubscriptionCount: 3, UserCount: 2}) {
		t.Fatalf("Channel(presence-x) = %+v, %v", ci, err)
	}
	if ci, err := h.Channel(appID, "nobody-here"); err != nil || ci != (channels.ChannelInfo{Name: "nobody-here"}) {
		t.Fatalf("Channel(nobody-here) = %+v, %v", ci, err)
	}
	if got := users(t, h, "presence-x"); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("Users = %q", got)
	}
	if got := users(t, h, "presence-none"); len(got) != 0 {
		t.Fatalf("Users of an empty channel = %q", got)
	}
	if got := users(t, h, "a"); len(got) != 0 {
		t.Fatalf("Users of a public channel = %q", got)
	}
	if h.Connections(appID) != 3 {
		t.Fatalf("Connections = %d", h.Connections(appID))
	}

	// Unknown app.
	if _, err := h.Channels("no-app", ""); !errors.Is(err, channels.ErrUnknownApp) {
		t.Errorf("Channels: %v", err)
	}
	if _, err := h.Channel("no-app", "a"); !errors.Is(err, channels.ErrUnknownApp) {
		t.Errorf("Channel: %v", err)
	}
	if _, err := h.Users("no-app", "presence-x"); !errors.Is(err, channels.ErrUnknownApp) {
		t.Errorf("Users: %v", err)
	}
	if _, _, ok := h.CachedEvent("no-app", "cache-z"); ok {
		t.Error("CachedEvent found something for an unknown app")
	}
	if h.Connections("no-app") != 0 {
		t.Error("Connections of an unknown app")
	}
}

// Apps are isolated: same channel names, separate state.
func TestAppsAreIsolated(t *testing.T) {
	one, two := config.DefaultApp(), config.App{ID: "two", Key: "two-key", Secret: "two-secret"}
	one.ApplyDefaults()
	two.ApplyDefaults()
	h := channels.New([]config.App{one, two}, channels.Options{})
	c1, s1 := connect(t, h)
	mustSubscribe(t, c1, s1, "shared", "")
	s2 := channelstest.New(nextSocketID())
	c2, err := h.Connect("two-key", s2)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Subscribe(channels.SubscribeRequest{Channel: "shared"}); err != nil {
		t.Fatal(err)
	}
	// A private channel of app two needs app two's secret.
	wantCode(t, "app one's signature on app two", c2.Subscribe(subReq(s2, "private-p", "")), protocol.CodeUnauthorized)
	s1.Take()
	s2.Take()
	if err := h.Publish("two", channels.Event{Name: "e", Channels: []string{"shared"}, Data: "2"}); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, "app one", s1)
	wantFrames(t, "app two", s2, `{"event":"e","channel":"shared","data":"2"}`)
	if h.Connections(appID) != 1 || h.Connections("two") != 1 {
		t.Fatalf("Connections = %d, %d", h.Connections(appID), h.Connections("two"))
	}
}

// TestOccupiedChannels: the maintained count of occupied channels follows subscribes,
// re-subscribes, unsubscribes and disconnects, and agrees with a full count.
func TestOccupiedChannels(t *testing.T) {
	h, _ := newHub(t, nil)
	check := func(want int) {
		t.Helper()
		st, err := h.Stats(appID)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.OccupiedChannels(appID); got != want || st.Channels != want {
			t.Fatalf("OccupiedChannels = %d, Stats.Channels = %d, want %d", got, st.Channels, want)
		}
	}
	c1, s1 := connect(t, h)
	c2, s2 := connect(t, h)
	mustSubscribe(t, c1, s1, "a", "")
	mustSubscribe(t, c1, s1, "a", "") // a re-subscribe counts once
	mustSubscribe(t, c2, s2, "a", "")
	mustSubscribe(t, c1, s1, "presence-x", member("1", ""))
	mustSubscribe(t, c2, s2, "private-b", "")
	check(3)
	c1.Unsubscribe("a")
	check(3)
	c1.Unsubscribe("never-subscribed")
	check(3)
	c1.Disconnect()
	check(2)
	c2.Disconnect()
	check(0)
	if h.OccupiedChannels("no-app") != 0 {
		t.Fatal("unknown app")
	}
}
