package replication_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/protocol"
)

// The hub helpers below are the few of channels' test helpers the cluster tests use
// (channels/helpers_test.go), for the default app.

const (
	appID  = "app-id"
	appKey = "app-key"
	secret = "app-secret"
)

// waitTimeout bounds every wait for something asynchronous.
const waitTimeout = 5 * time.Second

var socketSeq atomic.Int64

// nextSocketID returns a fresh valid socket id.
func nextSocketID() string {
	n := socketSeq.Add(1)
	return strconv.FormatInt(1000+n, 10) + "." + strconv.FormatInt(5000+n, 10)
}

// connect opens a V1 connection of the default app backed by a fresh fake.
func connect(t testing.TB, h *channels.Hub) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	return connectSub(t, h, channelstest.New(nextSocketID()))
}

func connectSub(t testing.TB, h *channels.Hub, s *channelstest.Sub) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	c, err := h.Connect(appKey, s)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, s
}

func connectV2(t testing.TB, h *channels.Hub, opts channels.ConnOptions) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	s := channelstest.NewV2(nextSocketID())
	c, err := h.ConnectWith(appKey, s, opts)
	if err != nil {
		t.Fatalf("ConnectWith: %v", err)
	}
	return c, s
}

// subReq is a correctly signed subscription request for the connection's socket.
func subReq(s *channelstest.Sub, channel, channelData string) channels.SubscribeRequest {
	req := channels.SubscribeRequest{Channel: channel, ChannelData: channelData}
	if protocol.Classify(channel).NeedsAuth() {
		presence := protocol.Classify(channel).Type == protocol.Presence
		req.Auth = protocol.AuthToken(appKey, secret, protocol.ChannelStringToSign(s.SocketID(), channel, channelData, presence))
	}
	return req
}

func mustSubscribe(t testing.TB, c *channels.Conn, s *channelstest.Sub, channel, channelData string) {
	t.Helper()
	if err := c.Subscribe(subReq(s, channel, channelData)); err != nil {
		t.Fatalf("Subscribe(%s): %v", channel, err)
	}
}

// member is presence channel_data for a user with optional info.
func member(id, info string) string {
	if info == "" {
		return `{"user_id":` + strconv.Quote(id) + `}`
	}
	return `{"user_id":` + strconv.Quote(id) + `,"user_info":` + info + `}`
}

// ack is the exact subscription_succeeded frame of a non-presence channel.
func ack(channel string) string {
	return `{"event":"pusher_internal:subscription_succeeded","channel":"` + channel + `","data":"{}"}`
}

func occupied(t testing.TB, h *channels.Hub) []string {
	t.Helper()
	list, err := h.Channels(appID, "")
	if err != nil {
		t.Fatalf("Channels: %v", err)
	}
	names := []string{}
	for _, ci := range list {
		names = append(names, ci.Name)
	}
	return names
}

func users(t testing.TB, h *channels.Hub, channel string) []string {
	t.Helper()
	ids, err := h.Users(appID, channel)
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
