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

// The frame and hub-listing helpers shared by the packages that drive a hub.
var (
	ack      = hubtest.Ack
	occupied = hubtest.Occupied
	users    = hubtest.Users
)
