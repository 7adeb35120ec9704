package channels_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/replication"
)

// TestForceReconnectUser: every connection of the user (signed in, present, holding a token
// for that client) is closed with 4200 "reconnect immediately"; nobody else is.
func TestForceReconnectUser(t *testing.T) {
	h, clk := mutableHub(t)
	var target []*channelstest.Sub
	c, s := connect(t, h)
	mustSignIn(t, c, s, `{"id":"u"}`)
	target = append(target, s)
	c, s = connect(t, h)
	mustSubscribe(t, c, s, "presence-room", member("u", ""))
	target = append(target, s)
	target = append(target, tokenConn(t, h, clk, "chat:x", "u", map[string][]string{"*": {"subscribe"}}))
	c, bystander := connect(t, h)
	mustSignIn(t, c, bystander, `{"id":"v"}`)

	if n := h.ForceReconnectUser(appID, "u"); n != len(target) {
		t.Fatalf("ForceReconnectUser = %d, want %d", n, len(target))
	}
	for _, s := range target {
		closes := s.Closes()
		if len(closes) != 1 || closes[0].Code != protocol.CodeReconnect || closes[0].Message != "Force reconnect requested by the app." {
			t.Errorf("%s closed with %v, want one 4200", s, closes)
		}
	}
	if bystander.Closed() != nil {
		t.Errorf("bystander closed with %v", bystander.Closed())
	}
	if n := h.ForceReconnectUser(appID, "nobody"); n != 0 {
		t.Errorf("unknown user: %d", n)
	}
	if n := h.ForceReconnectUser("no-app", "u"); n != 0 {
		t.Errorf("unknown app: %d", n)
	}
}

// TestClusterForceReconnect: the user's connections on every node are closed with 4200.
func TestClusterForceReconnect(t *testing.T) {
	_, hubs, _ := newCluster(t, 3, replication.Options{}, nil)
	var subs []*channelstest.Sub
	for _, h := range hubs {
		c, s := connect(t, h)
		mustSignIn(t, c, s, `{"id":"bob"}`)
		subs = append(subs, s)
	}
	hubs[1].ForceReconnectUser(appID, "bob")
	for i, s := range subs {
		if err := s.WaitClosed(t, waitTimeout); err.Code != protocol.CodeReconnect {
			t.Errorf("node %d: closed with %d", i, err.Code)
		}
	}
}

// resumeFrom resumes a fresh V2 connection of h subscribed to ch from position (stream,
// serial), and returns what it got: the resume_failed code ("" when recovered) and the
// serials it replayed.
func resumeFrom(t *testing.T, h *channels.Hub, ch, stream string, serial uint64) (string, []uint64) {
	t.Helper()
	c, s := v2Sub(t, h, ch, channels.ConnOptions{}, false)
	data, _ := json.Marshal(map[string]any{"channel_positions": map[string]any{ch: map[string]any{"stream_id": stream, "serial": serial}}})
	if err := c.Resume(data); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	defer c.Disconnect()
	var replayed []uint64
	code := ""
	for _, f := range s.Take() {
		var fr struct {
			Event  string          `json:"event"`
			Serial uint64          `json:"serial"`
			Data   json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal([]byte(f), &fr)
		switch fr.Event {
		case "sockudo:resume_failed":
			var d struct{ Code string }
			var str string
			if json.Unmarshal(fr.Data, &str) == nil {
				fr.Data = json.RawMessage(str)
			}
			_ = json.Unmarshal(fr.Data, &d)
			code = d.Code
		case "sockudo:resume_success":
		default:
			if fr.Serial != 0 {
				replayed = append(replayed, fr.Serial)
			}
		}
	}
	return code, replayed
}

func publishN(t *testing.T, h *channels.Hub, ch string, n int) []channels.PublishAck {
	t.Helper()
	var out []channels.PublishAck
	for i := range n {
		acks, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, acks...)
	}
	return out
}

// TestHistoryReset: after a reset the store and this node's hot buffer hold nothing of the
// old stream: a resume from it gets stream_reset, live subscribers stay and their next
// message starts the new stream at serial 1, mutable messages of the old stream are gone.
func TestHistoryReset(t *testing.T) {
	h, _ := mutableHub(t)
	const ch = "orders"
	_, live := v2Sub(t, h, ch, channels.ConnOptions{}, true)
	old := publishN(t, h, ch, 3)
	live.Take()
	res, herr := h.ResetHistory(context.Background(), appID, ch, channels.Operator{Reason: "test", RequestedBy: "ops"})
	if herr != nil {
		t.Fatal(herr)
	}
	if *res.PreviousStreamID != old[0].StreamID || res.NewStreamID == old[0].StreamID || res.PurgedMessages != 3 || !res.OK ||
		res.Operation != "reset" || *res.RequestedBy != "ops" || res.Stream.NextSerial != 1 || *res.Stream.StreamID != res.NewStreamID {
		t.Fatalf("reset: %+v", res)
	}
	if code, _ := resumeFrom(t, h, ch, old[0].StreamID, 1); code != "stream_reset" {
		t.Errorf("resume from the old stream: %q, want stream_reset", code)
	}
	next := publishN(t, h, ch, 1)[0]
	if next.StreamID != res.NewStreamID || next.Serial != 1 {
		t.Fatalf("first message after the reset: %+v", next)
	}
	frames := live.Take()
	if len(frames) != 1 || !strings.Contains(frames[0], `"stream_id":"`+res.NewStreamID+`","serial":1`) {
		t.Fatalf("live subscriber got %q", frames)
	}
	if code, replayed := resumeFrom(t, h, ch, res.NewStreamID, 0); code != "" || len(replayed) != 1 || replayed[0] != 1 {
		t.Errorf("resume in the new stream: %q %v", code, replayed)
	}
	st, herr := h.HistoryState(context.Background(), appID, ch)
	if herr != nil || st.Stream.NextSerial != 2 || st.Stream.Retained.Retained != 1 || st.Stream.State.DurableState != "healthy" {
		t.Fatalf("state: %+v %v", st, herr)
	}
}

// TestHistoryResetMutable: a reset deletes the channel's mutable messages.
func TestHistoryResetMutable(t *testing.T) {
	h, _ := mutableHub(t)
	serial := create(t, h, "chat:r", "hello")
	if _, herr := h.ResetHistory(context.Background(), appID, "chat:r", channels.Operator{Reason: "x"}); herr != nil {
		t.Fatal(herr)
	}
	_, herr := h.Mutate(context.Background(), appID, channels.MutationRequest{Channel: "chat:r", MessageSerial: serial, Op: appendOp("!")})
	if herr == nil || herr.Status != 404 {
		t.Fatalf("mutation after the reset: %+v", herr)
	}
}

// TestHistoryPurge: purged messages are gone from the hot buffer too: a resume from before
// the cut gets position_expired, one after it is replayed; the stream goes on.
func TestHistoryPurge(t *testing.T) {
	h, _ := mutableHub(t)
	const ch = "orders"
	acks := publishN(t, h, ch, 5)
	stream := acks[0].StreamID
	if code, replayed := resumeFrom(t, h, ch, stream, 1); code != "" || len(replayed) != 4 {
		t.Fatalf("before the purge: %q %v", code, replayed)
	}
	res, herr := h.PurgeHistory(context.Background(), appID, ch, channels.PurgeRequest{Mode: channels.PurgeBeforeSerial, BeforeSerial: 4}, channels.Operator{Reason: "gdpr"})
	if herr != nil {
		t.Fatal(herr)
	}
	if res.PurgedMessages != 3 || *res.BeforeSerial != 4 || res.BeforeTimeMs != nil || res.Mode != channels.PurgeBeforeSerial || *res.Stream.Retained.OldestSerial != 4 {
		t.Fatalf("purge: %+v", res)
	}
	if code, _ := resumeFrom(t, h, ch, stream, 1); code != "position_expired" {
		t.Errorf("resume from before the cut: %q, want position_expired", code)
	}
	if code, replayed := resumeFrom(t, h, ch, stream, 3); code != "" || fmt.Sprint(replayed) != "[4 5]" {
		t.Errorf("resume from the cut: %q %v", code, replayed)
	}
	if _, herr := h.PurgeHistory(context.Background(), appID, ch, channels.PurgeRequest{Mode: channels.PurgeAll}, channels.Operator{Reason: "all"}); herr != nil {
		t.Fatal(herr)
	}
	if code, _ := resumeFrom(t, h, ch, stream, 4); code != "position_expired" {
		t.Errorf("resume after purging all: %q, want position_expired", code)
	}
	if code, replayed := resumeFrom(t, h, ch, stream, 5); code != "" || len(replayed) != 0 {
		t.Errorf("resume from the head: %q %v", code, replayed)
	}
	if next := publishN(t, h, ch, 1)[0]; next.Serial != 6 || next.StreamID != stream {
		t.Errorf("after the purge: %+v", next)
	}
}

// TestHistoryOpsRefused: unknown app, bad channel, history off, and a store without reset.
func TestHistoryOpsRefused(t *testing.T) {
	h, _ := mutableHub(t)
	ctx := context.Background()
	op := channels.Operator{Reason: "x"}
	for _, tc := range []struct {
		name   string
		call   func() *channels.HistoryError
		status int
	}{
		{"unknown app", func() *channels.HistoryError { _, e := h.HistoryState(ctx, "nope", "a"); return e }, 404},
		{"bad channel", func() *channels.HistoryError { _, e := h.ResetHistory(ctx, appID, "bad channel", op); return e }, 400},
		{"bad mode", func() *channels.HistoryError {
			_, e := h.PurgeHistory(ctx, appID, "a", channels.PurgeRequest{Mode: "some"}, op)
			return e
		}, 400},
	} {
		if e := tc.call(); e == nil || e.Status != tc.status {
			t.Errorf("%s: %+v, want %d", tc.name, e, tc.status)
		}
	}
	off, _ := newHub(t, nil) // no history store
	if _, e := off.ResetHistory(ctx, appID, "a", op); e == nil || e.Status != 422 || e.Kind != "feature_disabled" {
		t.Errorf("no history: %+v", e)
	}
	app := config.DefaultApp()
	app.ApplyDefaults()
	plain := channels.New([]config.App{app}, channels.Options{History: historyOnly{history.NewMemory(history.MemoryOptions{})}})
	if _, e := plain.PurgeHistory(ctx, appID, "a", channels.PurgeRequest{Mode: channels.PurgeAll}, op); e == nil || e.Status != 501 {
		t.Errorf("store without admin: %+v", e)
	}
	if _, e := plain.HistoryState(ctx, appID, "a"); e != nil {
		t.Errorf("state needs no admin: %+v", e)
	}
}

// historyOnly hides every optional interface of a store.
type historyOnly struct{ channels.History }

// TestClusterHistoryPurge: two nodes sharing one store; a purge through one makes the other
// forget the purged messages from its hot buffer (resume there: position_expired, not a
// replay of purged messages), and a reset through one starts the new stream for both.
func TestClusterHistoryPurge(t *testing.T) {
	hubs := sharedStoreCluster(t, history.NewMemory(history.MemoryOptions{}), 2)
	const ch = "feed"
	acks := publishN(t, hubs[1], ch, 4) // node 1's hot buffer holds 1..4
	stream := acks[0].StreamID
	if code, replayed := resumeFrom(t, hubs[1], ch, stream, 0); code != "" || len(replayed) != 4 {
		t.Fatalf("before the purge: %q %v", code, replayed)
	}
	if _, herr := hubs[0].PurgeHistory(context.Background(), appID, ch, channels.PurgeRequest{Mode: channels.PurgeBeforeSerial, BeforeSerial: 3}, channels.Operator{Reason: "x"}); herr != nil {
		t.Fatal(herr)
	}
	waitFor(t, "node 1 forgets the purged messages", func() bool {
		code, _ := resumeFrom(t, hubs[1], ch, stream, 0)
		return code == "position_expired"
	})
	if code, replayed := resumeFrom(t, hubs[1], ch, stream, 2); code != "" || fmt.Sprint(replayed) != "[3 4]" {
		t.Fatalf("resume from the cut on node 1: %q %v", code, replayed)
	}
	res, herr := hubs[0].ResetHistory(context.Background(), appID, ch, channels.Operator{Reason: "x"})
	if herr != nil {
		t.Fatal(herr)
	}
	next := publishN(t, hubs[1], ch, 1)[0]
	if next.StreamID != res.NewStreamID || next.Serial != 1 {
		t.Fatalf("node 1 after node 0's reset: %+v", next)
	}
	waitFor(t, "node 1 replays the new stream only", func() bool {
		code, replayed := resumeFrom(t, hubs[1], ch, res.NewStreamID, 0)
		return code == "" && fmt.Sprint(replayed) == "[1]"
	})
}
