package channels_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// resumeHub is a hub of the default app over a memory history store whose clock and timers
// the test moves; the resume window is 30s.
func resumeHub(t testing.TB) (*channels.Hub, *testkit.Clock) {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	clk := testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	h := channels.New([]config.App{app}, channels.Options{Now: clk.Now, History: history.NewMemory(history.MemoryOptions{Now: clk.Now}),
		ResumeWindow: 30 * time.Second,
		AfterFunc:    func(d time.Duration, f func()) channels.Timer { return clk.AfterFunc(d, f) }})
	return h, clk
}

// rframe is what the resume tests read of a frame.
type rframe struct {
	Event, Channel, Data string
	Serial               uint64
}

func (f rframe) String() string {
	if f.Serial != 0 {
		return fmt.Sprintf("%s %s #%d", f.Event, f.Channel, f.Serial)
	}
	return fmt.Sprintf("%s %s", f.Event, f.Channel)
}

func takeFrames(t testing.TB, s *channelstest.Sub) []rframe {
	t.Helper()
	var out []rframe
	for _, raw := range s.Take() {
		var w struct {
			Event   string          `json:"event"`
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
			Serial  uint64          `json:"serial"`
		}
		if err := json.Unmarshal([]byte(raw), &w); err != nil {
			t.Fatalf("frame %s: %v", raw, err)
		}
		d, _ := protocol.StringOrRaw(w.Data)
		out = append(out, rframe{Event: w.Event, Channel: w.Channel, Data: d, Serial: w.Serial})
	}
	return out
}

// wantSeq compares the frames' short forms ("event channel #serial") with want.
func wantSeq(t testing.TB, who string, got []rframe, want ...string) {
	t.Helper()
	g := make([]string, len(got))
	for i, f := range got {
		g[i] = f.String()
	}
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s received\n  %s\nwant\n  %s", who, strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}

func resumeJSON(pos map[string]protocol.Position) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"channel_positions": pos})
	s, _ := json.Marshal(string(b)) // double-encoded, as both SDKs send it
	return s
}

func mustResume(t testing.TB, c *channels.Conn, pos map[string]protocol.Position) {
	t.Helper()
	if err := c.Resume(resumeJSON(pos)); err != nil {
		t.Fatalf("Resume: %v", err)
	}
}

// outcome decodes a resume_success.
type outcome struct {
	Recovered []struct {
		Channel  string
		Source   string
		Replayed int
		Position protocol.Position
	}
	Failed []struct{ Channel, Code, Reason string }
}

func decodeOutcome(t testing.TB, f rframe) outcome {
	t.Helper()
	var o outcome
	if f.Event != "sockudo:resume_success" || json.Unmarshal([]byte(f.Data), &o) != nil {
		t.Fatalf("not a resume_success: %+v", f)
	}
	return o
}

// streamOf publishes n messages on ch and returns the stream id.
func streamOf(t testing.TB, h *channels.Hub, ch string, n int) string {
	t.Helper()
	acks := publishN(t.(*testing.T), h, ch, n)
	return acks[0].StreamID
}

func TestResumeBeforeSubscribe(t *testing.T) {
	h, clk := resumeHub(t)
	const ch = "orders"
	stream := streamOf(t, h, ch, 6)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustResume(t, c, map[string]protocol.Position{ch: {StreamID: stream, Serial: 3}})
	wantSeq(t, "after the resume", takeFrames(t, s)) // kept pending: nothing yet
	if c.PendingResumes() != 1 || clk.Pending() != 1 {
		t.Fatalf("pending %d, timers %d", c.PendingResumes(), clk.Pending())
	}
	mustSubscribe(t, c, s, ch, "")
	got := takeFrames(t, s)
	wantSeq(t, "after the subscribe", got,
		"e orders #4", "e orders #5", "e orders #6",
		"sockudo_internal:subscription_succeeded orders #6",
		"sockudo:resume_success ")
	o := decodeOutcome(t, got[4])
	if len(o.Recovered) != 1 || o.Recovered[0].Channel != ch || o.Recovered[0].Replayed != 3 || o.Recovered[0].Position.Serial != 6 ||
		o.Recovered[0].Position.StreamID != stream || o.Recovered[0].Position.LastMessageID == "" || len(o.Failed) != 0 {
		t.Fatalf("resume_success %s", got[4].Data)
	}
	if c.PendingResumes() != 0 || clk.Pending() != 0 {
		t.Fatalf("after the subscribe: pending %d, timers %d", c.PendingResumes(), clk.Pending())
	}
	// Live messages follow at once (no resume hold), and the window ending changes nothing.
	publishN(t, h, ch, 1)
	wantSeq(t, "live", takeFrames(t, s), "e orders #7")
	clk.Add(time.Minute)
	wantSeq(t, "after the window", takeFrames(t, s))
}

// TestResumeBothOrders: subscribe-then-resume and resume-then-subscribe deliver the same
// serials, once each, in order.
func TestResumeBothOrders(t *testing.T) {
	for _, resumeFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("resumeFirst=", resumeFirst), func(t *testing.T) {
			h, _ := resumeHub(t)
			const ch = "private-orders"
			stream := streamOf(t, h, ch, 5)
			c, s := connectV2(t, h, channels.ConnOptions{})
			defer c.Disconnect()
			if resumeFirst {
				mustResume(t, c, map[string]protocol.Position{ch: {StreamID: stream, Serial: 2}})
				mustSubscribe(t, c, s, ch, "")
			} else {
				mustSubscribe(t, c, s, ch, "")
				mustResume(t, c, map[string]protocol.Position{ch: {StreamID: stream, Serial: 2}})
			}
			publishN(t, h, ch, 2)
			var serials []uint64
			for _, f := range takeFrames(t, s) {
				if f.Event == "e" {
					serials = append(serials, f.Serial)
				}
			}
			if fmt.Sprint(serials) != "[3 4 5 6 7]" {
				t.Fatalf("serials %v", serials)
			}
		})
	}
}

// TestResumePartial: one resume names a subscribed channel (answered at once), one
// subscribed later (answered by its subscribe) and one never subscribed (failed when the
// window ends); each is reported in exactly one resume_success.
func TestResumePartial(t *testing.T) {
	h, clk := resumeHub(t)
	sa, sb := streamOf(t, h, "a", 3), streamOf(t, h, "b", 3)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustSubscribe(t, c, s, "a", "")
	s.Take()
	mustResume(t, c, map[string]protocol.Position{"a": {StreamID: sa, Serial: 1}, "b": {StreamID: sb, Serial: 2}, "never": {StreamID: sa, Serial: 1}})
	got := takeFrames(t, s)
	wantSeq(t, "after the resume", got, "e a #2", "e a #3", "sockudo:resume_success ")
	if o := decodeOutcome(t, got[2]); len(o.Recovered) != 1 || o.Recovered[0].Channel != "a" || len(o.Failed) != 0 {
		t.Fatalf("first resume_success %s", got[2].Data)
	}
	clk.Add(10 * time.Second)
	mustSubscribe(t, c, s, "b", "")
	got = takeFrames(t, s)
	wantSeq(t, "after subscribing b", got, "e b #3", "sockudo_internal:subscription_succeeded b #3", "sockudo:resume_success ")
	if o := decodeOutcome(t, got[2]); len(o.Recovered) != 1 || o.Recovered[0].Channel != "b" || o.Recovered[0].Source != "hot" {
		t.Fatalf("b's resume_success %s", got[2].Data)
	}
	clk.Add(19 * time.Second)
	wantSeq(t, "29s after the resume", takeFrames(t, s))
	clk.Add(time.Second)
	got = takeFrames(t, s)
	wantSeq(t, "when the window ends", got, "sockudo:resume_failed never", "sockudo:resume_success ")
	var d struct{ Channel, Code, Reason string }
	if json.Unmarshal([]byte(got[0].Data), &d) != nil || d != (struct{ Channel, Code, Reason string }{"never", "continuity_unverifiable", "channel_not_subscribed"}) {
		t.Fatalf("resume_failed data %s", got[0].Data)
	}
	if o := decodeOutcome(t, got[1]); len(o.Recovered) != 0 || len(o.Failed) != 1 || o.Failed[0].Channel != "never" || o.Failed[0].Code != "continuity_unverifiable" {
		t.Fatalf("expiry resume_success %s", got[1].Data)
	}
	if c.PendingResumes() != 0 || clk.Pending() != 0 {
		t.Fatalf("pending %d, timers %d", c.PendingResumes(), clk.Pending())
	}
	// Subscribing after the window: a plain subscription, no replay.
	mustSubscribe(t, c, s, "never", "")
	wantSeq(t, "late subscribe", takeFrames(t, s), "sockudo_internal:subscription_succeeded never")
}

// TestResumeSecondReplaces: a later resume replaces a pending channel's position and
// restarts its window; channels it does not name keep theirs.
func TestResumeSecondReplaces(t *testing.T) {
	h, clk := resumeHub(t)
	stream := streamOf(t, h, "x", 5)
	sy := streamOf(t, h, "y", 1)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustResume(t, c, map[string]protocol.Position{"x": {StreamID: stream, Serial: 1}, "y": {StreamID: sy, Serial: 1}})
	clk.Add(20 * time.Second)
	mustResume(t, c, map[string]protocol.Position{"x": {StreamID: stream, Serial: 3}})
	wantSeq(t, "after two resumes", takeFrames(t, s))
	clk.Add(10 * time.Second) // y's window ends, x's does not
	got := takeFrames(t, s)
	wantSeq(t, "30s after the first", got, "sockudo:resume_failed y", "sockudo:resume_success ")
	clk.Add(19 * time.Second)
	mustSubscribe(t, c, s, "x", "")
	wantSeq(t, "x from the second position", takeFrames(t, s),
		"e x #4", "e x #5", "sockudo_internal:subscription_succeeded x #5", "sockudo:resume_success ")
}

// TestResumePendingFailsAtSubscribe: a pending position that cannot be replayed fails after
// the ack (so the clients' re-subscribe on resume_failed finds the channel subscribed).
func TestResumePendingFailsAtSubscribe(t *testing.T) {
	h, _ := resumeHub(t)
	streamOf(t, h, "z", 2)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustResume(t, c, map[string]protocol.Position{"z": {StreamID: protocol.NewUUID(), Serial: 1}})
	mustSubscribe(t, c, s, "z", "")
	got := takeFrames(t, s)
	wantSeq(t, "stream reset", got, "sockudo_internal:subscription_succeeded z #2", "sockudo:resume_failed z", "sockudo:resume_success ")
	if !strings.Contains(got[1].Data, `"channel":"z","code":"stream_reset","reason":"stream_id_mismatch"`) {
		t.Fatalf("resume_failed %s", got[1].Data)
	}
	if o := decodeOutcome(t, got[2]); len(o.Failed) != 1 || len(o.Recovered) != 0 {
		t.Fatalf("resume_success %s", got[2].Data)
	}
}

// TestResumePendingSurvivesRefusedSubscribe: a subscribe refused (bad signature) leaves the
// position pending for the next attempt.
func TestResumePendingSurvivesRefusedSubscribe(t *testing.T) {
	h, _ := resumeHub(t)
	const ch = "private-p"
	stream := streamOf(t, h, ch, 3)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustResume(t, c, map[string]protocol.Position{ch: {StreamID: stream, Serial: 1}})
	if err := c.Subscribe(channels.SubscribeRequest{Channel: ch, Auth: appKey + ":bad"}); err == nil {
		t.Fatal("a bad signature subscribed")
	}
	if c.PendingResumes() != 1 {
		t.Fatalf("pending %d after a refused subscribe", c.PendingResumes())
	}
	mustSubscribe(t, c, s, ch, "")
	wantSeq(t, "second attempt", takeFrames(t, s), "e private-p #2", "e private-p #3", "sockudo_internal:subscription_succeeded private-p #3", "sockudo:resume_success ")
}

// TestResumePendingFreedOnDisconnect: the positions and the timer go with the connection.
func TestResumePendingFreedOnDisconnect(t *testing.T) {
	h, clk := resumeHub(t)
	stream := streamOf(t, h, "d", 1)
	c, s := connectV2(t, h, channels.ConnOptions{})
	mustResume(t, c, map[string]protocol.Position{"d": {StreamID: stream, Serial: 1}, "e": {StreamID: stream, Serial: 1}})
	if c.PendingResumes() != 2 || clk.Pending() != 1 {
		t.Fatalf("pending %d, timers %d", c.PendingResumes(), clk.Pending())
	}
	c.Disconnect()
	if c.PendingResumes() != 0 || clk.Pending() != 0 {
		t.Fatalf("after disconnect: pending %d, timers %d", c.PendingResumes(), clk.Pending())
	}
	clk.Add(time.Minute)
	wantSeq(t, "after disconnect", takeFrames(t, s))
}

// TestResumePendingLimits: one resume may name MaxResumeChannels channels, all kept
// pending; past that a connection's new channels fail at once; malformed positions fail at
// once; a frame over the limit is refused.
func TestResumePendingLimits(t *testing.T) {
	h, clk := resumeHub(t)
	stream := protocol.NewUUID()
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	all := map[string]protocol.Position{}
	for i := range channels.MaxResumeChannels {
		all[fmt.Sprintf("ch-%04d", i)] = protocol.Position{StreamID: stream, Serial: 1}
	}
	mustResume(t, c, all)
	if c.PendingResumes() != channels.MaxResumeChannels || clk.Pending() != 1 || s.Len() != 0 {
		t.Fatalf("pending %d, timers %d, frames %d", c.PendingResumes(), clk.Pending(), s.Len())
	}
	// Replacing a pending channel is fine at the limit; a new one is not.
	mustResume(t, c, map[string]protocol.Position{"ch-0000": {StreamID: stream, Serial: 2}, "one-more": {StreamID: stream, Serial: 1}})
	got := takeFrames(t, s)
	wantSeq(t, "over the limit", got, "sockudo:resume_failed one-more", "sockudo:resume_success ")
	if !strings.Contains(got[0].Data, `"reason":"pending_resume_limit"`) {
		t.Fatalf("resume_failed %s", got[0].Data)
	}
	// Malformed positions and channel names.
	c2, s2 := connectV2(t, h, channels.ConnOptions{})
	defer c2.Disconnect()
	mustResume(t, c2, map[string]protocol.Position{"long-id": {StreamID: strings.Repeat("x", 200), Serial: 1}, "bad name!": {StreamID: stream, Serial: 1}})
	got = takeFrames(t, s2)
	wantSeq(t, "malformed", got, "sockudo:resume_failed bad name!", "sockudo:resume_failed long-id", "sockudo:resume_success ")
	if !strings.Contains(got[1].Data, `"reason":"invalid_position"`) || c2.PendingResumes() != 0 {
		t.Fatalf("long stream id: %s, pending %d", got[1].Data, c2.PendingResumes())
	}
	all["one-more"] = protocol.Position{StreamID: stream, Serial: 1}
	if err := c2.Resume(resumeJSON(all)); err == nil || err.Code != protocol.CodeGeneric {
		t.Fatalf("a resume of %d channels: %v", len(all), err)
	}
	// Every pending channel expires together, in one resume_success.
	clk.Add(30 * time.Second)
	got = takeFrames(t, s)
	if len(got) != channels.MaxResumeChannels+1 || got[0].Event != "sockudo:resume_failed" {
		t.Fatalf("expiry: %d frames", len(got))
	}
	if o := decodeOutcome(t, got[len(got)-1]); len(o.Failed) != channels.MaxResumeChannels {
		t.Fatalf("expiry resume_success lists %d", len(o.Failed))
	}
}

// TestResumeBeforeSubscribeUnderLoad: while a publisher keeps publishing, connections
// resume before subscribing; each sees every serial after its position once, in order.
func TestResumeBeforeSubscribeUnderLoad(t *testing.T) {
	h, _ := resumeHub(t)
	const ch = "feed"
	stream := streamOf(t, h, ch, 10)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // 300 more messages (a gap within the recovery window) while conns come
		defer wg.Done()
		for range 300 {
			if _, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: "x"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	type cs struct {
		c *channels.Conn
		s *channelstest.Sub
	}
	var conns []cs
	for i := range 20 {
		c, s := connectV2(t, h, channels.ConnOptions{})
		mustResume(t, c, map[string]protocol.Position{ch: {StreamID: stream, Serial: uint64(i % 10)}})
		mustSubscribe(t, c, s, ch, "")
		conns = append(conns, cs{c, s})
	}
	wg.Wait()
	head := publishN(t, h, ch, 1)[0].Serial
	for i, x := range conns {
		next := uint64(i%10) + 1
		for _, f := range takeFrames(t, x.s) {
			if f.Event == "sockudo:resume_failed" {
				t.Fatalf("conn %d: %s %s", i, f.Event, f.Data)
			}
			if f.Event != "e" {
				continue
			}
			if f.Serial != next {
				t.Fatalf("conn %d: serial %d, want %d", i, f.Serial, next)
			}
			next++
		}
		if next != head+1 {
			t.Fatalf("conn %d ended at %d, want %d", i, next-1, head)
		}
		x.c.Disconnect()
	}
}

// TestResumeWildcardCoveredFailsAtOnce: a channel delivered through the connection's
// wildcard subscription is not kept pending.
func TestResumeWildcardCoveredFailsAtOnce(t *testing.T) {
	h, clk := resumeHub(t)
	stream := streamOf(t, h, "ticker:btc", 2)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustSubscribe(t, c, s, "ticker:*", "")
	s.Take()
	mustResume(t, c, map[string]protocol.Position{"ticker:btc": {StreamID: stream, Serial: 1}, "other": {StreamID: stream, Serial: 1}})
	got := takeFrames(t, s)
	wantSeq(t, "wildcard-covered", got, "sockudo:resume_failed ticker:btc", "sockudo:resume_success ")
	if c.PendingResumes() != 1 || clk.Pending() != 1 {
		t.Fatalf("pending %d (want only \"other\"), timers %d", c.PendingResumes(), clk.Pending())
	}
}

// TestResumePendingThenRewind: a subscribe with a rewind gets its rewind; the pending
// position is then answered as failed (no message twice).
func TestResumePendingThenRewind(t *testing.T) {
	h, clk := resumeHub(t)
	stream := streamOf(t, h, "rw", 5)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustResume(t, c, map[string]protocol.Position{"rw": {StreamID: stream, Serial: 1}})
	req := subReq(s, "rw", "")
	req.Rewind = &channels.RewindSpec{Count: 2}
	if err := c.Subscribe(req); err != nil {
		t.Fatal(err)
	}
	got := takeFrames(t, s)
	wantSeq(t, "rewind", got, "sockudo_internal:subscription_succeeded rw #5", "e rw #4", "e rw #5",
		"sockudo:rewind_complete rw", "sockudo:resume_failed rw", "sockudo:resume_success ")
	if !strings.Contains(got[4].Data, `"reason":"subscribed_with_rewind"`) || c.PendingResumes() != 0 || clk.Pending() != 0 {
		t.Fatalf("resume_failed %s, pending %d, timers %d", got[4].Data, c.PendingResumes(), clk.Pending())
	}
}

// FuzzResumeBeforeSubscribe feeds arbitrary sockudo:resume data to a fresh V2 connection,
// then subscribes to every channel it named, lets the window end and disconnects: nothing
// panics, every frame is JSON, no channel is reported twice, and nothing stays pending.
func FuzzResumeBeforeSubscribe(f *testing.F) {
	f.Add([]byte(`"{\"channel_positions\":{\"orders\":{\"stream_id\":\"x\",\"serial\":1}}}"`))
	f.Add([]byte(`{"channel_positions":{"orders":{"serial":0},"private-a":{"serial":3},"bad name":{"serial":1}}}`))
	f.Add([]byte(`{"channel_serials":{"orders":2,"ticker:btc":1}}`))
	f.Add([]byte(`{"channel_positions":{}}`))
	f.Add([]byte(`"not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, clk := resumeHub(t)
		streamOf(t, h, "orders", 3)
		c, s := connectV2(t, h, channels.ConnOptions{})
		_ = c.Resume(data)
		var w struct {
			Positions map[string]json.RawMessage `json:"channel_positions"`
			Serials   map[string]json.RawMessage `json:"channel_serials"`
		}
		_ = protocol.DecodeData(data, &w)
		for ch := range w.Positions {
			_ = c.Subscribe(subReq(s, ch, ""))
		}
		for ch := range w.Serials {
			_ = c.Subscribe(subReq(s, ch, ""))
		}
		clk.Add(time.Minute)
		c.Disconnect()
		if c.PendingResumes() != 0 || clk.Pending() != 0 {
			t.Fatalf("pending %d, timers %d", c.PendingResumes(), clk.Pending())
		}
		reported := map[string]bool{}
		for _, f := range takeFrames(t, s) {
			if f.Event != "sockudo:resume_success" {
				continue
			}
			o := decodeOutcome(t, f)
			for _, r := range o.Recovered {
				if reported[r.Channel] {
					t.Fatalf("%q reported twice", r.Channel)
				}
				reported[r.Channel] = true
			}
			for _, r := range o.Failed {
				if reported[r.Channel] {
					t.Fatalf("%q reported twice", r.Channel)
				}
				reported[r.Channel] = true
			}
		}
	})
}

// TestResumeDropsHeldFramesResetsDelta: a delta subscriber's held frames, superseded by a
// resume's replay, were never the client's bases, so its next live message is full.
func TestResumeDropsHeldFramesResetsDelta(t *testing.T) {
	app := config.DefaultApp()
	app.ApplyDefaults()
	h := channels.New([]config.App{app}, channels.Options{History: history.NewMemory(history.MemoryOptions{}), DeltaEncoder: delta.Encode})
	stream := streamOf(t, h, "dq", 1)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	req := subReq(s, "dq", "")
	req.Delta, req.DeltaSet = "fossil", true
	if err := c.Subscribe(req); err != nil {
		t.Fatal(err)
	}
	s.Take()
	for i := range 2 { // held (the subscription is new), similar payloads
		if _, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{"dq"}, Data: strings.Repeat("price 100.", 20) + fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	mustResume(t, c, map[string]protocol.Position{"dq": {StreamID: stream, Serial: 1}})
	wantSeq(t, "replay", takeFrames(t, s), "e dq #2", "e dq #3", "sockudo:resume_success ")
	if _, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{"dq"}, Data: strings.Repeat("price 100.", 20) + "2"}); err != nil {
		t.Fatal(err)
	}
	wantSeq(t, "first live after the resume", takeFrames(t, s), "e dq #4")
}
