package channels_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/delta/deltatest"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// tickOn is tick published to another channel.
func tickOn(channel string, i int) channels.Event {
	ev := tick(i, "BTC")
	ev.Channels = []string{channel}
	return ev
}

// TestDeltaAlgorithmLeftOutOnlyWhenImplied: a delta frame leaves "algorithm" out only
// while it is the algorithm the connection announced last — the one sockudo-js and
// sockudo_flutter fall back to. When a later subscription announces another one, the
// earlier subscription's deltas name theirs again, and every frame of the connection, read
// in order by the clients' rules, rebuilds to exactly what a plain subscriber received.
func TestDeltaAlgorithmLeftOutOnlyWhenImplied(t *testing.T) {
	h := deltaHub(t, nil)
	plain, ps := connectV2(t, h, channels.ConnOptions{})
	mustSubscribe(t, plain, ps, "market-a", "")
	mustSubscribe(t, plain, ps, "market-b", "")
	c, s := connectV2(t, h, channels.ConnOptions{})
	readers := map[string]*deltaReader{"market-a": newDeltaReader(t), "market-b": newDeltaReader(t)}
	// feed reads every frame of the delta connection in order; announcements go to every
	// channel's reader (the client's default algorithm is per connection).
	var rebuilt []string
	var isDelta []bool
	feed := func() {
		for _, f := range s.Take() {
			var head struct {
				Event, Channel string
			}
			_ = json.Unmarshal([]byte(f), &head)
			switch {
			case head.Event == "sockudo:delta_compression_enabled":
				for _, r := range readers {
					r.Read(f)
				}
			case head.Event == "price.update" || head.Event == "sockudo:delta":
				r := readers[head.Channel]
				rebuilt = append(rebuilt, r.Read(f))
				isDelta = append(isDelta, r.Last)
			}
		}
	}
	sub := func(channel, alg string) {
		req := subReq(s, channel, "")
		req.Delta, req.DeltaSet = alg, true
		if err := c.Subscribe(req); err != nil {
			t.Fatal(err)
		}
	}
	sub("market-a", "fossil")
	for i := range 3 {
		if err := h.Publish(appID, tickOn("market-a", i)); err != nil {
			t.Fatal(err)
		}
	}
	var deltas []string
	for _, f := range s.Frames() {
		if strings.Contains(f, `"event":"sockudo:delta"`) {
			deltas = append(deltas, f)
		}
	}
	if a := strings.Join(deltas, "\n"); len(deltas) != 2 || strings.Contains(a, `"algorithm"`) || strings.Contains(a, `"base_index"`) {
		t.Fatalf("fossil deltas after a fossil announcement should name neither algorithm nor base_index:\n%s", strings.Join(s.Frames(), "\n"))
	}
	feed()
	sub("market-b", "xdelta3") // announces xdelta3: the client's default changes
	for i := 3; i < 6; i++ {
		for _, ch := range []string{"market-a", "market-b"} {
			if err := h.Publish(appID, tickOn(ch, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range s.Frames() {
		switch {
		case strings.Contains(f, `"channel":"market-a","data":{"event":"price.update","delta"`) && !strings.Contains(f, `"algorithm":"fossil"`):
			t.Fatalf("market-a delta after the xdelta3 announcement without its algorithm: %s", f)
		case strings.Contains(f, `"channel":"market-b","data":{"event":"price.update","delta"`) && strings.Contains(f, `"algorithm"`):
			t.Fatalf("market-b delta names the implied algorithm: %s", f)
		}
	}
	feed()
	var want []string
	for _, f := range ps.Take() {
		if strings.Contains(f, `"event":"price.update"`) {
			want = append(want, f)
		}
	}
	if len(rebuilt) != len(want) {
		t.Fatalf("rebuilt %d messages, want %d", len(rebuilt), len(want))
	}
	for i := range want {
		if !deltatest.RebuiltAs(t, rebuilt[i], isDelta[i], want[i]) {
			t.Fatalf("message %d rebuilt\n%s\nwant\n%s", i, rebuilt[i], deltatest.ExpectRebuilt(want[i], isDelta[i]))
		}
	}
	if readers["market-a"].Deltas != 5 || readers["market-b"].Deltas != 2 {
		t.Fatalf("deltas: market-a %d, market-b %d", readers["market-a"].Deltas, readers["market-b"].Deltas)
	}
}

// TestDeltaFullInterval: one full frame, then at most delta_full_interval deltas in a row.
func TestDeltaFullInterval(t *testing.T) {
	h := deltaHub(t, func(a *config.App) { a.DeltaFullInterval = 3 })
	c, s := connectV2(t, h, channels.ConnOptions{})
	req := subReq(s, "market-spot", "")
	req.Delta, req.DeltaSet = "fossil", true
	if err := c.Subscribe(req); err != nil {
		t.Fatal(err)
	}
	s.Take()
	for i := range 9 {
		if err := h.Publish(appID, tick(i, "BTC")); err != nil {
			t.Fatal(err)
		}
	}
	var kinds strings.Builder
	for _, f := range s.Take() {
		if strings.Contains(f, `"event":"sockudo:delta"`) {
			kinds.WriteByte('D')
		} else {
			kinds.WriteByte('F')
		}
	}
	if kinds.String() != "FDDDFDDDF" {
		t.Fatalf("frames %s, want FDDDFDDDF", kinds.String())
	}
}

// TestDeltaMessageIDsShareThePrefix: consecutive server message_ids of a channel differ in
// their last digits only, so a delta between two frames carries a byte or two of the id.
func TestDeltaMessageIDsShareThePrefix(t *testing.T) {
	h := deltaHub(t, nil)
	c, s := connectV2(t, h, channels.ConnOptions{})
	mustSubscribe(t, c, s, "market-spot", "")
	s.Take()
	for i := range 20 {
		if err := h.Publish(appID, tick(i, "BTC")); err != nil {
			t.Fatal(err)
		}
	}
	var prev string
	for i, f := range s.Take() {
		m := messageIDRE.FindStringSubmatch(f)
		if m == nil || !protocol.ValidMessageUUID(m[1]) {
			t.Fatalf("frame %d: message_id not a UUIDv8: %s", i, f)
		}
		if prev != "" && (m[1] == prev || m[1][:28] != prev[:28]) {
			t.Fatalf("ids %s then %s: want the same 28-character prefix and a new id", prev, m[1])
		}
		prev = m[1]
	}
}

// TestDeltaFanoutAllocationsDoNotGrowWithSubscribers: one delta per distinct base and one
// frame per (base, sequence): the allocations of a publish are the same for 10 and for 500
// delta subscribers sharing a base, in JSON and in MessagePack.
func TestDeltaFanoutAllocationsDoNotGrowWithSubscribers(t *testing.T) {
	if testkit.RaceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector (it drops sync.Pool items at random)")
	}
	for _, w := range []protocol.Wire{{}, wireMsgpack} {
		allocs := map[int]float64{}
		for _, n := range []int{10, 500} {
			h := deltaHub(t, nil)
			for i := range n {
				s := newBenchSub(i) // counts frames without keeping them
				s.v = protocol.V2
				c, err := h.ConnectWith(appKey, s, channels.ConnOptions{Wire: w})
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Subscribe(channels.SubscribeRequest{Channel: "market-spot", Delta: "fossil", DeltaSet: true}); err != nil {
					t.Fatal(err)
				}
			}
			i := 0
			publish := func() {
				if err := h.Publish(appID, tick(i, "BTC")); err != nil {
					t.Fatal(err)
				}
				i++
			}
			publish() // the full frame that leaves every subscriber the same base
			allocs[n] = testing.AllocsPerRun(20, publish)
		}
		if allocs[500] > allocs[10] {
			t.Errorf("%v: %.0f allocations per publish with 10 delta subscribers, %.0f with 500", w.Format, allocs[10], allocs[500])
		}
		t.Logf("%v: %v allocations per publish", w.Format, fmt.Sprint(allocs))
	}
}

// quoted is a payload of many short string members: its JSON-string form (in the full
// frame) shares no long run with its JSON form (in the lean target), so the first delta
// after a full frame carries nearly all of it.
func quoted(r *rand.Rand, changing int) string {
	var b strings.Builder
	b.WriteString("{")
	for k := range 24 {
		if k > 0 {
			b.WriteString(",")
		}
		v := fmt.Sprintf("%04d", k)
		if k < changing {
			v = fmt.Sprintf("%04x", r.Uint32()&0xffff)
		}
		fmt.Fprintf(&b, `"k%d":"%s"`, k, v)
	}
	b.WriteString("}")
	return b.String()
}

// TestDeltaAfterFullMayBeLarger: the first delta after a full frame turns the frame's text
// into the lean target and may be larger than the full frame (up to twice) when later deltas
// pay it back; once a delta between lean targets did not, the first delta after a full
// frame must be smaller than the frame too — so a stream whose deltas never pay gets full
// frames, with at most one oversized delta.
func TestDeltaAfterFullMayBeLarger(t *testing.T) {
	w := protocol.Wire{Format: protocol.FormatMsgpack, Client: protocol.ClientJS}
	for _, tc := range []struct {
		name     string
		changing int // members that change in each message
		pays     bool
	}{{"one member changes", 1, true}, {"every member changes", 24, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := deltaHub(t, nil)
			c, s := connectWire(t, h, w)
			req := subReq(s, "market-spot", "")
			req.Delta, req.DeltaSet = "fossil", true
			if err := c.Subscribe(req); err != nil {
				t.Fatal(err)
			}
			s.Take()
			r := rand.New(rand.NewPCG(19, uint64(tc.changing)))
			oversized, deltas := 0, 0
			for i := range 12 {
				if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"market-spot"}, Data: quoted(r, tc.changing)}); err != nil {
					t.Fatal(err)
				}
				raw := s.RawFrames()
				got := raw[len(raw)-1]
				f, err := protocol.DecodeBinary(w.Form(), got)
				if err != nil {
					t.Fatal(err)
				}
				if f.Event != "sockudo:delta" {
					continue
				}
				deltas++
				// Every payload has the same length, so the first (full) frame's size is the
				// size of the full frame of any message.
				if i == 1 && tc.pays && len(got) <= fullSize(t, w, raw[0]) {
					t.Fatalf("the transition delta (%d bytes) is not larger than the full frame (%d): the test proves nothing", len(got), fullSize(t, w, raw[0]))
				}
				if len(got) > fullSize(t, w, raw[0]) {
					oversized++
				}
			}
			switch {
			case tc.pays && deltas != 11:
				t.Fatalf("%d deltas in 11 messages after the first", deltas)
			case tc.pays && oversized != 1:
				t.Fatalf("%d deltas larger than the full frame, want 1 (the transition)", oversized)
			case !tc.pays && oversized > 1:
				t.Fatalf("%d oversized deltas where deltas do not pay, want at most 1", oversized)
			}
		})
	}
}

// fullSize is the size of a full frame (raw, markers included) in w.
func fullSize(t *testing.T, w protocol.Wire, raw []byte) int {
	t.Helper()
	f, err := protocol.DecodeBinary(w.Form(), raw)
	if err != nil || f.Event == "sockudo:delta" {
		t.Fatalf("not a full frame: %v", err)
	}
	return len(raw)
}

// TestDeltaPositions: with delta_positions a delta frame carries the message's message_id,
// stream_id and serial beside data — where sockudo-js and sockudo_flutter read their
// recovery position and dedup id — equal to the plain frame's; without it none of them, and
// either way the deltas rebuild as before.
func TestDeltaPositions(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(strconv.FormatBool(on), func(t *testing.T) {
			app := config.DefaultApp()
			app.DeltaPositions = on
			app.ApplyDefaults()
			h := channels.New([]config.App{app}, channels.Options{History: history.NewMemory(history.MemoryOptions{}), DeltaEncoder: delta.Encode})
			ch := "market-pos"
			_, ps := v2Sub(t, h, ch, channels.ConnOptions{}, true) // a rewind skips the resume hold
			dc, ds := connectV2(t, h, channels.ConnOptions{})
			req := subReq(ds, ch, "")
			req.Delta, req.DeltaSet, req.Rewind = "fossil", true, &channels.RewindSpec{Count: 1}
			if err := dc.Subscribe(req); err != nil {
				t.Fatal(err)
			}
			ds.Take()
			for i := range 5 {
				if err := h.Publish(appID, tickOn(ch, i)); err != nil {
					t.Fatal(err)
				}
			}
			want, got := ps.Take(), ds.Take()
			if len(want) != 5 || len(got) != 5 {
				t.Fatalf("%d plain and %d delta frames, want 5 each", len(want), len(got))
			}
			r := newDeltaReader(t)
			r.Announce("fossil")
			type position struct {
				MessageID string `json:"message_id"`
				StreamID  string `json:"stream_id"`
				Serial    uint64 `json:"serial"`
			}
			for i := range got {
				if rebuilt := r.Read(got[i]); !r.Same(rebuilt, want[i]) {
					t.Fatalf("message %d rebuilt as\n%s\nwant\n%s", i, rebuilt, r.Expect(want[i]))
				}
				if !r.Last {
					continue
				}
				var p, d position
				_ = json.Unmarshal([]byte(want[i]), &p)
				_ = json.Unmarshal([]byte(got[i]), &d)
				if p.Serial == 0 || p.StreamID == "" || p.MessageID == "" {
					t.Fatalf("plain frame without a position: %s", want[i])
				}
				if on && d != p || !on && d != (position{}) {
					t.Fatalf("delta %d carries %+v, plain frame %+v (delta_positions %v): %s", i, d, p, on, got[i])
				}
			}
			if r.Deltas != 4 {
				t.Fatalf("%d deltas, want 4", r.Deltas)
			}
		})
	}
}
