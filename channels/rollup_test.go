package channels_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// mutableHub is a hub of the default app (mutable messages on every channel) over a memory
// history store, whose clock and timers the test moves.
func mutableHub(t testing.TB) (*channels.Hub, *testkit.Clock) {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	clk := testkit.NewClock(time.Now())
	h := channels.New([]config.App{app}, channels.Options{Now: clk.Now, History: history.NewMemory(history.MemoryOptions{}),
		AfterFunc: hubTimers(clk)})
	return h, clk
}

// v2Sub connects a V2 subscriber of ch with these options. rewind subscribes with a
// rewind of one message, which skips the resume hold; its ack and rewind frames are dropped.
func v2Sub(t testing.TB, h *channels.Hub, ch string, opts channels.ConnOptions, rewind bool) (*channels.Conn, *channelstest.Sub) {
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

// create publishes the create of a mutable message with string data and returns its serial.
func create(t testing.TB, h *channels.Hub, ch, data string) string {
	t.Helper()
	acks, err := h.PublishAcks(appID, channels.Event{Name: "ai.answer", Channels: []string{ch}, Data: data})
	if err != nil || acks[0].MessageSerial == "" {
		t.Fatalf("create: %+v, %v", acks, err)
	}
	return acks[0].MessageSerial
}

// mutate applies one operation (privileged) or fails the test.
func mutate(t testing.TB, h *channels.Hub, ch, serial string, op protocol.Mutation) channels.MutationResult {
	t.Helper()
	res, herr := h.Mutate(context.Background(), appID, channels.MutationRequest{Channel: ch, MessageSerial: serial, Op: op})
	if herr != nil {
		t.Fatalf("%s: %d %s", op.Action, herr.Status, herr.Message)
	}
	return res
}

func appendOp(frag string) protocol.Mutation {
	return protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str(frag)}
}

// seen is what a client learns from one frame: its event, its data as a Go string, its
// serial and, for mutable messages, the action and message serial of its headers.
type seen struct {
	Event, Data, Action, MessageSerial string
	Serial                             uint64
}

func (s seen) String() string { return fmt.Sprintf("%s %q #%d", s.Event, s.Data, s.Serial) }

func decodeSeen(t testing.TB, frame string) seen {
	t.Helper()
	var f struct {
		Event  string          `json:"event"`
		Data   json.RawMessage `json:"data"`
		Serial uint64          `json:"serial"`
		Extras struct {
			Headers map[string]any `json:"headers"`
		} `json:"extras"`
	}
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	out := seen{Event: f.Event, Serial: f.Serial}
	_ = json.Unmarshal(f.Data, &out.Data)
	out.Action, _ = f.Extras.Headers["sockudo_action"].(string)
	out.MessageSerial, _ = f.Extras.Headers["sockudo_message_serial"].(string)
	return out
}

func takeSeen(t testing.TB, s *channelstest.Sub) []seen {
	t.Helper()
	var out []seen
	for _, f := range s.Take() {
		out = append(out, decodeSeen(t, f))
	}
	return out
}

// reduce is sockudo-js's versioned-message reducer (reduceMutableMessageEvent): create,
// update and delete replace the data, append concatenates the frame's data onto it.
func reduce(t testing.TB, state map[string]string, frames []seen) {
	t.Helper()
	for _, f := range frames {
		if f.MessageSerial == "" {
			continue
		}
		if f.Action == "message.append" {
			cur, ok := state[f.MessageSerial]
			if !ok {
				t.Fatalf("append %s without a base", f)
			}
			state[f.MessageSerial] = cur + f.Data
		} else {
			state[f.MessageSerial] = f.Data
		}
	}
}

func wantSeen(t testing.TB, who string, got []seen, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s got %v, want %d frames %q", who, got, len(want), want)
	}
	for i := range want {
		if g := fmt.Sprintf("%s %q", got[i].Event, got[i].Data); g != want[i] {
			t.Fatalf("%s frame %d: %s, want %s (all: %v)", who, i, g, want[i], got)
		}
	}
}

// TestAppendRollup: connections with a window get the appends that follow within it as one
// frame (the last append's, with the fragments joined, or the whole string in full mode);
// the first append of a window, updates and deletes go out at once; connections without a
// window get every append; each client's reducer reaches the server's string.
func TestAppendRollup(t *testing.T) {
	h, clk := mutableHub(t)
	const ch = "ai:session"
	ms := 40 * time.Millisecond
	_, s0 := v2Sub(t, h, ch, channels.ConnOptions{}, true)
	_, s40 := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: ms}, true)
	_, s40f := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: ms, AppendFull: true}, true)
	_, s100 := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: 100 * time.Millisecond}, true)
	v1c, v1 := connect(t, h)
	mustSubscribe(t, v1c, v1, ch, "")
	v1.Take()

	serial := create(t, h, ch, "")
	states := map[*channelstest.Sub]map[string]string{}
	all := []*channelstest.Sub{s0, s40, s40f, s100}
	step := func() map[*channelstest.Sub][]seen {
		out := map[*channelstest.Sub][]seen{}
		for _, s := range all {
			if states[s] == nil {
				states[s] = map[string]string{}
			}
			out[s] = takeSeen(t, s)
			if s != s40f {
				reduce(t, states[s], out[s])
			}
		}
		return out
	}
	got := step()
	for _, s := range all {
		wantSeen(t, "create", got[s], `ai.answer ""`)
	}

	mutate(t, h, ch, serial, appendOp("a")) // opens the windows: out at once
	got = step()
	for _, s := range all {
		wantSeen(t, s.ID, got[s], `sockudo:message.append "a"`)
	}
	clk.Add(10 * time.Millisecond)
	mutate(t, h, ch, serial, appendOp("b"))
	mutate(t, h, ch, serial, appendOp("c"))
	got = step()
	wantSeen(t, "no window", got[s0], `sockudo:message.append "b"`, `sockudo:message.append "c"`)
	wantSeen(t, "40 ms", got[s40])
	wantSeen(t, "100 ms", got[s100])

	clk.Add(30 * time.Millisecond) // the 40 ms windows end
	got = step()
	wantSeen(t, "40 ms after its window", got[s40], `sockudo:message.append "bc"`)
	wantSeen(t, "40 ms full", got[s40f], `sockudo:message.append "abc"`)
	wantSeen(t, "100 ms", got[s100])
	if got[s40][0].Serial != got[s40f][0].Serial || got[s40][0].Serial == 0 {
		t.Fatalf("the rolled-up frame carries the last append's serial: %v %v", got[s40], got[s40f])
	}

	mutate(t, h, ch, serial, appendOp("d")) // a new 40 ms window; still the first 100 ms one
	got = step()
	wantSeen(t, "40 ms", got[s40], `sockudo:message.append "d"`)
	wantSeen(t, "100 ms", got[s100])
	wantSeen(t, "no window", got[s0], `sockudo:message.append "d"`)
	clk.Add(10 * time.Millisecond)
	mutate(t, h, ch, serial, protocol.Mutation{Action: protocol.ActionUpdate, Data: protocol.Str("abcd!")})
	got = step()
	wantSeen(t, "100 ms: the update flushes the window first", got[s100], `sockudo:message.append "bcd"`, `sockudo:message.update "abcd!"`)
	wantSeen(t, "40 ms", got[s40], `sockudo:message.update "abcd!"`)
	wantSeen(t, "no window", got[s0], `sockudo:message.update "abcd!"`)

	// After an update the next append opens a new window at once.
	mutate(t, h, ch, serial, appendOp("e"))
	mutate(t, h, ch, serial, appendOp("f"))
	got = step()
	wantSeen(t, "100 ms", got[s100], `sockudo:message.append "e"`)
	clk.Add(100 * time.Millisecond)
	got = step()
	wantSeen(t, "100 ms", got[s100], `sockudo:message.append "f"`)
	wantSeen(t, "40 ms", got[s40], `sockudo:message.append "f"`)

	// A terminal append (AI stream complete) flushes and goes out at once.
	mutate(t, h, ch, serial, appendOp("g"))
	mutate(t, h, ch, serial, appendOp("h"))
	mutate(t, h, ch, serial, protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str(""),
		Extras: []byte(`{"ai":{"transport":{"status":"complete"}}}`)})
	got = step()
	wantSeen(t, "40 ms", got[s40], `sockudo:message.append "g"`, `sockudo:message.append "h"`, `sockudo:message.append ""`)

	agg, herr := h.ReadMessage(context.Background(), appID, ch, serial)
	if herr != nil {
		t.Fatal(herr)
	}
	var item struct{ Data string }
	_ = json.Unmarshal(agg, &item)
	for _, s := range []*channelstest.Sub{s0, s40, s100} {
		if states[s][serial] != item.Data || item.Data != "abcd!efgh" {
			t.Errorf("%s reduced %q, the server has %q", s.ID, states[s][serial], item.Data)
		}
	}
	if clk.Pending() != 0 {
		t.Errorf("%d window timers left after the stream ended", clk.Pending())
	}
	if f := v1.Take(); len(f) != 1 {
		t.Errorf("the V1 subscriber got %q, want the create only", f)
	}
}

// TestAppendRollupBarrier: any other message of the channel sends the waiting appends first,
// so a batch covers consecutive serials and the serial a client tracks never passes a
// fragment it has not received.
func TestAppendRollupBarrier(t *testing.T) {
	h, clk := mutableHub(t)
	const ch = "ai:barrier"
	_, s := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: 500 * time.Millisecond}, true)
	a := create(t, h, ch, "")
	b := create(t, h, ch, "")
	s.Take()
	mutate(t, h, ch, a, appendOp("1"))
	mutate(t, h, ch, a, appendOp("2"))
	mutate(t, h, ch, a, appendOp("3"))
	mutate(t, h, ch, b, appendOp("x")) // another message: flushes a's batch, opens b's window
	mutate(t, h, ch, b, appendOp("y"))
	if err := h.Publish(appID, channels.Event{Name: "plain", Channels: []string{ch}, Data: "p"}); err != nil {
		t.Fatal(err)
	}
	mutate(t, h, ch, a, appendOp("4")) // a's window is over (b's opened meanwhile)
	got := takeSeen(t, s)
	wantSeen(t, "barrier", got, `sockudo:message.append "1"`, `sockudo:message.append "23"`, `sockudo:message.append "x"`,
		`sockudo:message.append "y"`, `plain "p"`, `sockudo:message.append "4"`)
	for i := 1; i < len(got); i++ {
		if got[i].Serial <= got[i-1].Serial {
			t.Fatalf("serials out of order: %v", got)
		}
	}
	clk.Add(time.Second)
	if f := s.Take(); len(f) != 0 {
		t.Fatalf("nothing was waiting, got %q", f)
	}
}

// TestAppendRollupJoiners: a connection joining a window's group while a batch waits gets the
// appends after it joined one by one and not the batch (which holds fragments from before
// its subscription); it takes part from the next batch. A subscription held for a resume
// takes part only in batches that start after its hold.
func TestAppendRollupJoiners(t *testing.T) {
	h, clk := mutableHub(t)
	const ch = "ai:join"
	w := 40 * time.Millisecond
	_, early := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: w}, true)
	serial := create(t, h, ch, "")
	mutate(t, h, ch, serial, appendOp("a"))
	mutate(t, h, ch, serial, appendOp("b")) // waits for early's window
	_, late := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: w}, true)
	_, held := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: w}, false)
	mutate(t, h, ch, serial, appendOp("c"))
	wantSeen(t, "late joiner", takeSeen(t, late), `sockudo:message.append "c"`)
	clk.Add(w)
	early.Take()
	wantSeen(t, "late joiner at the flush", takeSeen(t, late))
	// The hold ends on the hub's clock: its frames then come, one by one.
	if f := held.Take(); len(f) != 0 {
		t.Fatalf("held frames went out before the hold ended: %q", f)
	}
	clk.Add(channels.ResumeHold)
	wantSeen(t, "held", takeSeen(t, held), `sockudo:message.append "c"`)
	mutate(t, h, ch, serial, appendOp("d")) // a new window: everyone takes part now
	mutate(t, h, ch, serial, appendOp("e"))
	mutate(t, h, ch, serial, appendOp("f"))
	clk.Add(w)
	for name, s := range map[string]*channelstest.Sub{"early": early, "late": late, "held": held} {
		wantSeen(t, name, takeSeen(t, s), `sockudo:message.append "d"`, `sockudo:message.append "ef"`)
	}
}

// TestAppendRollupBinary: the rolled-up frame reaches MessagePack and protobuf connections in
// their form, carrying the joined fragments.
func TestAppendRollupBinary(t *testing.T) {
	h, clk := mutableHub(t)
	const ch = "ai:binary"
	w := 40 * time.Millisecond
	wires := []protocol.Wire{{Format: protocol.FormatMsgpack}, {Format: protocol.FormatProtobuf}, {Format: protocol.FormatProtobuf, Client: protocol.ParseClient("flutter")}}
	var subs []*channelstest.Sub
	for _, wire := range wires {
		_, s := v2Sub(t, h, ch, channels.ConnOptions{RollupWindow: w, Wire: wire}, true)
		subs = append(subs, s)
	}
	serial := create(t, h, ch, "")
	for _, frag := range []string{"a", "b", "c"} {
		mutate(t, h, ch, serial, appendOp(frag))
	}
	clk.Add(w)
	for i, s := range subs {
		frames := s.Take()
		var got []string
		for _, f := range frames {
			fr, err := protocol.DecodeBinary(wires[i].Form(), []byte(f))
			if err != nil {
				t.Fatalf("%v: %v", wires[i], err)
			}
			got = append(got, fr.Event+" "+string(fr.Data))
		}
		want := []string{`ai.answer ""`, `sockudo:message.append "a"`, `sockudo:message.append "bc"`}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%v got %q, want %q", wires[i], got, want)
		}
	}
}
