package replication_test

import (
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/channels/hubtest"
)

// The default app's credentials, as the cluster tests use them.

const (
	appID  = "app-id"
	appKey = "app-key"
	secret = "app-secret"
)

// waitTimeout bounds every wait for something asynchronous.
const waitTimeout = 5 * time.Second

// The hub helpers shared by the packages that drive a hub (channels/hubtest).
var (
	nextSocketID  = hubtest.NextSocketID
	connect       = hubtest.Connect
	connectV2     = hubtest.ConnectV2
	subReq        = hubtest.SubscribeRequest
	mustSubscribe = hubtest.MustSubscribe
	member        = hubtest.Member
	waitFor       = hubtest.WaitFor
)

func connectSub(t testing.TB, h *channels.Hub, s *channelstest.Sub) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	c, err := h.Connect(appKey, s)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, s
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
