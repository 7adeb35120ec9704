// Package hubtest holds the helpers the tests of the packages built on channels share to
// drive a hub of the default app (config.DefaultApp: app-id, app-key, app-secret):
// connections backed by channelstest fakes, correctly signed subscriptions, presence
// channel_data, and an Observer that records what it is told.
//
// It imports channels, so tests inside package channels cannot use it (they have
// channelstest, which does not).
package hubtest

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/protocol"
)

// The default app's credentials (config.DefaultApp).
const (
	AppID     = "app-id"
	AppKey    = "app-key"
	AppSecret = "app-secret"
)

var socketSeq atomic.Int64

// NextSocketID returns a fresh valid socket id.
func NextSocketID() string {
	n := socketSeq.Add(1)
	return strconv.FormatInt(1000+n, 10) + "." + strconv.FormatInt(5000+n, 10)
}

// Connect opens a V1 connection of the default app to h, backed by a fresh fake.
func Connect(t testing.TB, h *channels.Hub) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	s := channelstest.New(NextSocketID())
	c, err := h.Connect(AppKey, s)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, s
}

// ConnectV2 opens a V2 connection of the default app to h with these options.
func ConnectV2(t testing.TB, h *channels.Hub, opts channels.ConnOptions) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	s := channelstest.NewV2(NextSocketID())
	c, err := h.ConnectWith(AppKey, s, opts)
	if err != nil {
		t.Fatalf("ConnectWith: %v", err)
	}
	return c, s
}

// SubscribeRequest is a subscription of s's socket to channel, signed with the default
// app's secret when the channel needs it (channelData: a presence member, or "").
func SubscribeRequest(s *channelstest.Sub, channel, channelData string) channels.SubscribeRequest {
	req := channels.SubscribeRequest{Channel: channel, ChannelData: channelData}
	if protocol.Classify(channel).NeedsAuth() {
		presence := protocol.Classify(channel).Type == protocol.Presence
		req.Auth = protocol.AuthToken(AppKey, AppSecret, protocol.ChannelStringToSign(s.SocketID(), channel, channelData, presence))
	}
	return req
}

// MustSubscribe subscribes c (backed by s) to channel or fails the test.
func MustSubscribe(t testing.TB, c *channels.Conn, s *channelstest.Sub, channel, channelData string) {
	t.Helper()
	if err := c.Subscribe(SubscribeRequest(s, channel, channelData)); err != nil {
		t.Fatalf("Subscribe(%s): %v", channel, err)
	}
}

// Member is presence channel_data for a user with optional info (JSON, "" none).
func Member(id, info string) string {
	if info == "" {
		return `{"user_id":` + strconv.Quote(id) + `}`
	}
	return `{"user_id":` + strconv.Quote(id) + `,"user_info":` + info + `}`
}

// Observer is a channels.Observer that records the webhook-worthy calls, as
// "occupied <channel>", "vacated <channel>", "member_added <channel> <user>" and
// "member_removed <channel> <user>".
type Observer struct {
	mu  sync.Mutex
	got []string
}

var _ channels.Observer = (*Observer)(nil)

// Got returns what was recorded so far.
func (o *Observer) Got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

func (o *Observer) add(s string) { o.mu.Lock(); o.got = append(o.got, s); o.mu.Unlock() }

// ChannelOccupied implements channels.Observer.
func (o *Observer) ChannelOccupied(_, ch string) { o.add("occupied " + ch) }

// ChannelVacated implements channels.Observer.
func (o *Observer) ChannelVacated(_, ch string) { o.add("vacated " + ch) }

// MemberAdded implements channels.Observer.
func (o *Observer) MemberAdded(_, ch, u string) { o.add("member_added " + ch + " " + u) }

// MemberRemoved implements channels.Observer.
func (o *Observer) MemberRemoved(_, ch, u string) { o.add("member_removed " + ch + " " + u) }

// CacheMiss implements channels.Observer.
func (o *Observer) CacheMiss(string, string) {}

// SubscriptionCount implements channels.Observer.
func (o *Observer) SubscriptionCount(string, string, int) {}

// ClientEvent implements channels.Observer.
func (o *Observer) ClientEvent(string, string, string, json.RawMessage, string, string) {}

// WaitTimeout bounds WaitFor.
const WaitTimeout = 5 * time.Second

// WaitFor polls cond until it holds, failing the test after WaitTimeout (what names it).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ack is the exact subscription_succeeded frame of a non-presence channel.
func Ack(channel string) string {
	return `{"event":"pusher_internal:subscription_succeeded","channel":"` + channel + `","data":"{}"}`
}

// Occupied lists the default app's occupied channels on h.
func Occupied(t testing.TB, h *channels.Hub) []string {
	t.Helper()
	list, err := h.Channels(AppID, "")
	if err != nil {
		t.Fatalf("Channels: %v", err)
	}
	names := []string{}
	for _, ci := range list {
		names = append(names, ci.Name)
	}
	return names
}

// Users lists the users present on a presence channel of the default app on h (never nil).
func Users(t testing.TB, h *channels.Hub, channel string) []string {
	t.Helper()
	ids, err := h.Users(AppID, channel)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids
}
