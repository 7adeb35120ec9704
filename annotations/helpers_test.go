package annotations_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/channels/hubtest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/delta/deltatest"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
)

const (
	appID  = hubtest.AppID
	appKey = hubtest.AppKey
	secret = hubtest.AppSecret
)

// hub is a hub with the annotations feature attached.
type hub struct {
	*channels.Hub
	ann *annotations.Service
}

// newHub builds a hub of app over store (its history and annotation store) with opts, on
// clk, and attaches the annotations feature.
func newHub(app config.App, store interface {
	channels.History
	annotations.Store
}, clk *testkit.Clock, opts channels.Options) hub {
	opts.Now, opts.History = clk.Now, store
	opts.AfterFunc = func(d time.Duration, f func()) channels.Timer { return clk.AfterFunc(d, f) }
	h := channels.New([]config.App{app}, opts)
	return hub{h, annotations.Attach(h, store, annotations.Options{})}
}

// defaultApp is the default app with defaults applied.
func defaultApp() config.App {
	app := config.DefaultApp()
	app.ApplyDefaults()
	return app
}

// mutableHub is a hub of the default app over a memory store, on a clock the test moves.
func mutableHub(t testing.TB) (hub, *testkit.Clock) {
	t.Helper()
	clk := testkit.NewClock(time.Now())
	return newHub(defaultApp(), history.NewMemory(history.MemoryOptions{}), clk, channels.Options{}), clk
}

var nextSocketID = hubtest.NextSocketID

func connect(t testing.TB, h hub) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	return hubtest.Connect(t, h.Hub)
}

func connectV2(t testing.TB, h hub, opts channels.ConnOptions) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	return hubtest.ConnectV2(t, h.Hub, opts)
}

var (
	subReq        = hubtest.SubscribeRequest
	mustSubscribe = hubtest.MustSubscribe
)

// v2Sub connects a V2 subscriber of ch with these options. rewind subscribes with a
// rewind of one message, which skips the resume hold; its ack and rewind frames are dropped.
func v2Sub(t testing.TB, h hub, ch string, opts channels.ConnOptions, rewind bool) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	c, s := connectV2(t, h, opts)
	req := subReq(s, ch, "")
	if rewind {
		req.Rewind = &channels.RewindSpec{Count: 1}
	}
	if err := c.Subscribe(req); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	s.Take()
	return c, s
}

// create publishes a mutable message over HTTP and returns its serial.
func create(t testing.TB, h hub, ch, data string) string {
	t.Helper()
	acks, err := h.PublishAcks(appID, channels.Event{Name: "ai.answer", Channels: []string{ch}, Data: data})
	if err != nil || acks[0].MessageSerial == "" {
		t.Fatalf("create: %+v, %v", acks, err)
	}
	return acks[0].MessageSerial
}

func decodeV2(t testing.TB, frame string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(frame), &m); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	return m
}

// tick is a market tick of asset (the delta tests' payload: mostly the same from one to
// the next).
func tick(i int, asset string) channels.Event {
	return channels.Event{Name: "price.update", Channels: []string{"market-spot"},
		Data: fmt.Sprintf(`{"asset":%q,"bid":%d.25,"ask":%d.75,"volume":123456,"exchange":"pushwire-test-exchange","ts":17000000%05d,`+
			`"depth":{"bids":[[60000.1,1.5],[59999.9,2.25],[59999.5,0.75],[59998.0,4.1]],"asks":[[60001.1,1.1],[60001.9,3.3],[60002.5,0.2],[60003.0,7.7]]},"venue":"spot-eu-1","status":"open"}`, asset, 60000+i, 60000+i, i)}
}

// deltaReader rebuilds a delta subscription's frames, failing the test on a frame it cannot
// rebuild.
type deltaReader = deltatest.Reader

func newDeltaReader(t testing.TB) *deltaReader { return deltatest.NewReader(t, delta.Apply) }
