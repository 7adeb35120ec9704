package channels_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/channels/hubtest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

const (
	appID  = "app-id"
	appKey = "app-key"
	secret = "app-secret"
)

// testEpoch is where test clocks start.
var testEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// waitTimeout bounds every wait for something asynchronous (timers).
const waitTimeout = 5 * time.Second

// newHub builds a hub serving the default app (defaults applied, then edit applied) with a
// clock the test moves by hand (its Now and every timer of the hub).
func newHub(t testing.TB, edit func(*config.App)) (*channels.Hub, *testkit.Clock) {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	if edit != nil {
		edit(&app)
	}
	clk := testkit.NewClock(testEpoch)
	return channels.New([]config.App{app}, channels.Options{Now: clk.Now, AfterFunc: hubTimers(clk)}), clk
}

// hubTimers schedules the hub's timers on clk.
func hubTimers(clk *testkit.Clock) func(time.Duration, func()) channels.Timer {
	return func(d time.Duration, f func()) channels.Timer { return clk.AfterFunc(d, f) }
}

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

// channelAuth signs a private/encrypted (channelData "") or presence subscription.
func channelAuth(socketID, channel, channelData string) string {
	presence := protocol.Classify(channel).Type == protocol.Presence
	return protocol.AuthToken(appKey, secret, protocol.ChannelStringToSign(socketID, channel, channelData, presence))
}

// subReq is a correctly signed subscription request for the connection's socket.
func subReq(s *channelstest.Sub, channel, channelData string) channels.SubscribeRequest {
	req := channels.SubscribeRequest{Channel: channel, ChannelData: channelData}
	if protocol.Classify(channel).NeedsAuth() {
		req.Auth = channelAuth(s.SocketID(), channel, channelData)
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

// signinData is the data of a correctly signed pusher:signin frame.
func signinData(socketID, userData string) json.RawMessage {
	auth := protocol.AuthToken(appKey, secret, protocol.UserStringToSign(socketID, userData))
	b, _ := json.Marshal(map[string]string{"auth": auth, "user_data": userData})
	return b
}

func mustSignIn(t testing.TB, c *channels.Conn, s *channelstest.Sub, userData string) {
	t.Helper()
	if err := c.SignIn(signinData(s.SocketID(), userData)); err != nil {
		t.Fatalf("SignIn(%s): %v", userData, err)
	}
}

// wantFrames compares the frames a fake received (and forgets them) with want, exactly.
func wantFrames(t testing.TB, who string, s *channelstest.Sub, want ...string) {
	t.Helper()
	got := s.Take()
	if len(want) == 0 {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s received\n  %q\nwant\n  %q", who, got, want)
	}
}

var messageIDRE = regexp.MustCompile(`,"message_id":"([^"]*)"`)

// wantFramesV2 is wantFrames for a V2 subscriber: each frame's message_id must be a server
// message id (protocol.MessageIDs, a UUIDv8)
// and is removed before the comparison.
func wantFramesV2(t testing.TB, who string, s *channelstest.Sub, want ...string) {
	t.Helper()
	got := s.Take()
	for i, f := range got {
		m := messageIDRE.FindStringSubmatch(f)
		if m == nil || !protocol.ValidMessageUUID(m[1]) {
			t.Errorf("%s frame %s has no UUIDv8 message_id", who, f)
			continue
		}
		got[i] = messageIDRE.ReplaceAllString(f, "")
	}
	if len(want) == 0 {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s received\n  %q\nwant\n  %q", who, got, want)
	}
}

// wantCode checks that err is a protocol error with this code.
func wantCode(t testing.TB, what string, err *protocol.Error, code int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %d", what, code)
	}
	if err.Code != code {
		t.Fatalf("%s: error %d %q, want code %d", what, err.Code, err.Message, code)
	}
}

// The frame and hub-listing helpers shared by the packages that drive a hub.
var (
	ack      = hubtest.Ack
	occupied = hubtest.Occupied
	users    = hubtest.Users
)

func boolPtr(b bool) *bool { return &b }
