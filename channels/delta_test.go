package channels_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/delta/deltatest"
	"github.com/pushwire/pushwire/protocol"
)

func deltaHub(t testing.TB, edit func(*config.App)) *channels.Hub {
	t.Helper()
	app := config.DefaultApp()
	if edit != nil {
		edit(&app)
	}
	app.ApplyDefaults()
	return channels.New([]config.App{app}, channels.Options{DeltaEncoder: delta.Encode})
}

// deltaReader rebuilds a delta subscription's frames, failing the test on a frame it cannot
// rebuild.
type deltaReader = deltatest.Reader

func newDeltaReader(t testing.TB) *deltaReader { return deltatest.NewReader(t, delta.Apply) }

func tick(i int, asset string) channels.Event {
	return channels.Event{Name: "price.update", Channels: []string{"market-spot"},
		Data: fmt.Sprintf(`{"asset":%q,"bid":%d.25,"ask":%d.75,"volume":123456,"exchange":"pushwire-test-exchange","ts":17000000%05d,`+
			`"depth":{"bids":[[60000.1,1.5],[59999.9,2.25],[59999.5,0.75],[59998.0,4.1]],"asks":[[60001.1,1.1],[60001.9,3.3],[60002.5,0.2],[60003.0,7.7]]},"venue":"spot-eu-1","status":"open"}`, asset, 60000+i, 60000+i, i)}
}

// deltaStream subscribes a plain V2 (JSON) subscriber and two delta subscribers (algorithm
// alg, wire w) to market-spot, publishes n ticks, and returns what the plain one received
// and the delta subscribers.
func deltaStream(t *testing.T, w protocol.Wire, alg string, n int) ([]string, []*channelstest.Sub) {
	t.Helper()
	h := deltaHub(t, nil)
	plain, ps := connectV2(t, h, channels.ConnOptions{})
	mustSubscribe(t, plain, ps, "market-spot", "")
	var subs []*channelstest.Sub
	for range 2 {
		c, s := connectWire(t, h, w)
		req := subReq(s, "market-spot", "")
		req.Delta, req.DeltaSet = alg, true
		if err := c.Subscribe(req); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	for _, s := range append(subs, ps) {
		s.Take()
	}
	for i := range n {
		if err := h.Publish(appID, tick(i, "BTC")); err != nil {
			t.Fatal(err)
		}
	}
	return ps.Take(), subs
}

func TestDeltaFramesRebuildTheFullStream(t *testing.T) {
	for _, alg := range []string{"fossil", "xdelta3"} {
		t.Run(alg, func(t *testing.T) {
			const n = 25
			want, subs := deltaStream(t, protocol.Wire{}, alg, n)
			r := newDeltaReader(t)
			r.Announce(alg) // sent on subscribe: its delta frames leave the algorithm out
			got := subs[0].Frames()
			for i := range n {
				if rebuilt := r.Read(got[i]); !r.Same(rebuilt, want[i]) {
					t.Fatalf("message %d rebuilt as\n%s\nwant\n%s\n(plain frame %s)", i, rebuilt, r.Expect(want[i]), want[i])
				}
				if strings.Contains(got[i], `"algorithm"`) || strings.Contains(got[i], `"base_index"`) {
					t.Fatalf("message %d: a delta naming what the client does not need: %s", i, got[i])
				}
			}
			// One full frame, then deltas (a full one after delta_full_interval, 100).
			if r.Deltas != n-1 || r.Fulls != 1 {
				t.Errorf("%d deltas and %d full frames for %d messages", r.Deltas, r.Fulls, n)
			}
			// Both delta subscribers share the very same frame bytes.
			a, b := subs[0].RawFrames(), subs[1].RawFrames()
			for i := range a {
				if &a[i][0] != &b[i][0] {
					t.Fatalf("frame %d encoded twice for subscribers sharing a base", i)
				}
			}
		})
	}
}

func TestDeltaConnectionWideSyncErrorAndLimits(t *testing.T) {
	h := deltaHub(t, func(a *config.App) { a.DeltaConflationKeys = map[string]string{"market-*": "asset"} })
	c, s := connectV2(t, h, channels.ConnOptions{})
	mustSubscribe(t, c, s, "market-spot", "")
	mustSubscribe(t, c, s, "private-encrypted-x", "")
	s.Take()
	if err := c.EnableDelta(nil); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, "enable", s, `{"event":"sockudo:delta_compression_enabled","data":{"enabled":true,"algorithm":"fossil"}}`)
	r := newDeltaReader(t)
	for i := range 6 {
		for _, asset := range []string{"BTC", "ETH"} {
			if err := h.Publish(appID, tick(i, asset)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range s.Take() {
		r.Read(f)
	}
	if r.Bases("BTC") != 6 || r.Bases("ETH") != 6 || r.Deltas != 10 {
		t.Fatalf("conflation groups: BTC %d ETH %d bases, %d deltas", r.Bases("BTC"), r.Bases("ETH"), r.Deltas)
	}
	// delta_sync_error: the next message is full from sequence 0.
	if err := c.DeltaSyncError(json.RawMessage(`{"channel":"market-spot"}`), ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(appID, tick(7, "BTC")); err != nil {
		t.Fatal(err)
	}
	if f := s.Take(); len(f) != 1 || !regexp.MustCompile(`,"__delta_seq":0,"__conflation_key":"BTC"}$`).MatchString(f[0]) {
		t.Fatalf("after delta_sync_error: %q", f)
	}
	// A publisher can force a full frame.
	ev := tick(8, "BTC")
	ev.NoDelta = true
	if err := h.Publish(appID, ev); err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(appID, tick(9, "BTC")); err != nil {
		t.Fatal(err)
	}
	f := s.Take()
	if len(f) != 2 || !regexp.MustCompile(`"__delta_seq":1,`).MatchString(f[0]) {
		t.Fatalf("forced full: %q", f)
	}
	// Encrypted channels never get deltas.
	for range 4 {
		if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"private-encrypted-x"}, Data: `{"ciphertext":"abc","nonce":"def"}`}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range s.Take() {
		if regexp.MustCompile(`sockudo:delta|__delta_seq`).MatchString(f) {
			t.Fatalf("encrypted channel got delta framing: %s", f)
		}
	}
	wantCode(t, "sync error on an unknown channel", c.DeltaSyncError(json.RawMessage(`{"channel":"nope"}`), ""), protocol.CodeGeneric)
}

// BenchmarkDeltaFanout1k publishes price ticks to 1,000 V2 subscribers with fossil deltas:
// one delta is computed per publish, not one per subscriber.
func BenchmarkDeltaFanout1k(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("delta=%v", on), func(b *testing.B) {
			h := deltaHub(b, nil)
			for i := range 1000 {
				s := newBenchSub(i)
				s.v = protocol.V2
				c := benchConnect(b, h, s)
				req := channels.SubscribeRequest{Channel: "market-spot"}
				if on {
					req.Delta, req.DeltaSet = "fossil", true
				}
				if err := c.Subscribe(req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := h.Publish(appID, tick(i, "BTC")); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestEnableDeltaHonoursAlgorithms: the first algorithm of the client's list that the
// server supports is used and named in the answer; an unknown-only list changes nothing.
func TestEnableDeltaHonoursAlgorithms(t *testing.T) {
	tests := []struct {
		data, want, err string
	}{
		{``, "fossil", ""},
		{`{}`, "fossil", ""},
		{`{"algorithms":["fossil","xdelta3"]}`, "fossil", ""},
		{`{"algorithms":["xdelta3","fossil"]}`, "xdelta3", ""},
		{`{"algorithms":["vcdiff"]}`, "xdelta3", ""},
		{`{"algorithms":["brotli","xdelta3"]}`, "xdelta3", ""},
		{`"{\"algorithms\":[\"xdelta3\"]}"`, "xdelta3", ""},
		{`{"algorithms":["brotli"]}`, "", "none of the requested algorithms is supported"},
		{`{"algorithms":[]}`, "", "none of the requested algorithms is supported"},
		{`{"algorithms":"fossil"}`, "", "algorithms must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			h := deltaHub(t, nil)
			c, s := connectV2(t, h, channels.ConnOptions{})
			mustSubscribe(t, c, s, "market-spot", "")
			s.Take()
			err := c.EnableDelta(json.RawMessage(tt.data))
			if tt.err != "" {
				if err == nil || err.Code != protocol.CodeGeneric || !strings.Contains(err.Message, tt.err) {
					t.Fatalf("error %v, want 4000 %q", err, tt.err)
				}
				if err := h.Publish(appID, tick(1, "BTC")); err != nil {
					t.Fatal(err)
				}
				if f := s.Take(); len(f) != 1 || strings.Contains(f[0], "__delta_seq") {
					t.Fatalf("a refused opt-in still changed delivery: %q", f)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantFrames(t, "enable", s, `{"event":"sockudo:delta_compression_enabled","data":{"enabled":true,"algorithm":"`+tt.want+`"}}`)
			r := newDeltaReader(t)
			r.Announce(tt.want)
			for i := range 3 {
				if err := h.Publish(appID, tick(i, "BTC")); err != nil {
					t.Fatal(err)
				}
			}
			frames := s.Take()
			for _, f := range frames {
				r.Read(f)
			}
			// The announced algorithm is implied: the deltas leave it out.
			if r.Deltas != 2 || strings.Contains(strings.Join(frames, "\n"), `"algorithm"`) {
				t.Fatalf("want 2 %s deltas without algorithm in %q", tt.want, frames)
			}
		})
	}
}
