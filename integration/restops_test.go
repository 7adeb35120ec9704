package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestRESTOps runs the issue-15 REST and V2 groups (message_id, history state/reset/purge,
// force_reconnect, append rollup) against the real binary with the in-memory store;
// TestRESTOpsPostgres runs them on Postgres.
func TestRESTOps(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	runRESTOpsGroups(t, s)
}

func TestRESTOpsPostgres(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}})
	runRESTOpsGroups(t, s)
}

func runRESTOpsGroups(t *testing.T, s *testkit.Server) {
	groups := []struct {
		name string
		run  func(t *testing.T, s *testkit.Server)
	}{
		{"MessageID", testMessageID},
		{"HistoryPurge", testHistoryPurge},
		{"HistoryReset", testHistoryReset},
		{"ForceReconnect", testForceReconnect},
		{"AppendRollup", testAppendRollup},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, s)
		})
	}
}

// apiDelete sends a signed DELETE and returns the status and body.
func apiDelete(t testing.TB, s *testkit.Server, path string, params url.Values) (int, string) {
	t.Helper()
	return apiBodyless(t, s, http.MethodDelete, path, params)
}

func historyPath(channel, op string) string {
	p := "/apps/" + testkit.AppID + "/channels/" + url.PathEscape(channel) + "/history"
	if op != "" {
		p += "/" + op
	}
	return p
}

// rawFrame reads the next frame of c as a generic object (frames with a client-chosen
// message_id, which v2Client.nextV2 would refuse as not a UUID).
func (c *v2Client) rawFrame(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	raw := c.next(t)
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("frame %s: %v", raw, err)
	}
	return m
}

// testMessageID: the publisher's message_id is the message's id in the live frame, the
// history and a resume; a repeat answers the same receipt and delivers nothing; another
// payload under it is a 400.
func testMessageID(t *testing.T, s *testkit.Server) {
	const ch = "chat:mid"
	c := connectV2(t, s, v2Options{})
	c.subscribeV2(t, ch, nil)
	body := publishBody(t, map[string]any{"name": "chat.message", "channel": ch, "data": "hello", "message_id": "client-msg-0001"})
	status, first := apiPost(t, s, "/apps/"+testkit.AppID+"/events", body)
	var ans struct {
		Channels map[string]created `json:"channels"`
	}
	if status != 200 || json.Unmarshal([]byte(first), &ans) != nil || ans.Channels[ch].MessageSerial == "" ||
		ans.Channels[ch].AcknowledgementID != ans.Channels[ch].MessageSerial {
		t.Fatalf("publish: HTTP %d %s", status, first)
	}
	f := c.rawFrame(t)
	if string(f["message_id"]) != `"client-msg-0001"` || string(f["event"]) != `"chat.message"` {
		t.Fatalf("live frame %v", f)
	}
	if status, again := apiPost(t, s, "/apps/"+testkit.AppID+"/events", body); status != 200 || again != first {
		t.Fatalf("repeat: HTTP %d %s, want %s", status, again, first)
	}
	c.expectQuiet(t)
	conflict := publishBody(t, map[string]any{"name": "chat.message", "channel": ch, "data": "changed", "message_id": "client-msg-0001"})
	if status, resp := apiPost(t, s, "/apps/"+testkit.AppID+"/events", conflict); status != 400 || !strings.Contains(resp, "different payload") {
		t.Fatalf("conflict: HTTP %d %s", status, resp)
	}
	for _, bad := range []string{"", "two words", strings.Repeat("x", 129)} {
		b := publishBody(t, map[string]any{"name": "e", "channel": ch, "data": "x", "message_id": bad})
		if status, resp := apiPost(t, s, "/apps/"+testkit.AppID+"/events", b); status != 400 || !strings.Contains(resp, "message_id") {
			t.Errorf("message_id %q: HTTP %d %s", bad, status, resp)
		}
	}
	c.expectQuiet(t)
	status, page := apiGet(t, s, historyPath(ch, ""), nil)
	if status != 200 || !strings.Contains(page, `"message_id":"client-msg-0001"`) {
		t.Fatalf("history: HTTP %d %s", status, page)
	}
	// A client that missed it resumes and gets it with the same id.
	d := connectV2(t, s, v2Options{})
	d.sendSubscribeV2(t, ch, nil)
	d.sendResume(t, map[string]protocol.Position{ch: {StreamID: ans.Channels[ch].streamOf(t, s, ch), Serial: ans.Channels[ch].DeliverySerial - 1}})
	d.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
	if f := d.rawFrame(t); string(f["message_id"]) != `"client-msg-0001"` {
		t.Fatalf("replayed frame %v", f)
	}
	d.expectV2(t, "sockudo:resume_success", "")
}

// streamOf reads a channel's stream id from GET .../history/state.
func (created) streamOf(t testing.TB, s *testkit.Server, ch string) string {
	t.Helper()
	st := historyState(t, s, ch)
	return st.Stream.StreamID
}

type stateAnswer struct {
	Channel string `json:"channel"`
	Stream  struct {
		StreamID   string `json:"stream_id"`
		NextSerial uint64 `json:"next_serial"`
		Retained   struct {
			StreamID string  `json:"stream_id"`
			Messages int64   `json:"retained_messages"`
			Bytes    int64   `json:"retained_bytes"`
			Oldest   *uint64 `json:"oldest_available_serial"`
			Newest   *uint64 `json:"newest_available_serial"`
			OldestMs *int64  `json:"oldest_available_published_at_ms"`
			NewestMs *int64  `json:"newest_available_published_at_ms"`
		} `json:"retained"`
		State struct {
			StreamID            *string `json:"stream_id"`
			DurableState        string  `json:"durable_state"`
			RecoveryAllowed     bool    `json:"recovery_allowed"`
			ResetRequired       bool    `json:"reset_required"`
			Reason              *string `json:"reason"`
			NodeID              *string `json:"node_id"`
			LastTransitionAtMs  *int64  `json:"last_transition_at_ms"`
			AuthoritativeSource *string `json:"authoritative_source"`
			ObservedSource      *string `json:"observed_source"`
		} `json:"state"`
	} `json:"stream"`
}

func historyState(t testing.TB, s *testkit.Server, ch string) stateAnswer {
	t.Helper()
	status, body := apiGet(t, s, historyPath(ch, "state"), nil)
	var st stateAnswer
	if status != 200 || strictUnmarshal([]byte(body), &st) != nil || st.Channel != ch {
		t.Fatalf("history state: HTTP %d %s", status, body)
	}
	return st
}

// resumeCode resumes a fresh V2 client of ch from pos and returns the resume_failed code
// ("" when it recovered) and the serials replayed.
func resumeCode(t testing.TB, s *testkit.Server, ch string, pos protocol.Position) (string, []uint64) {
	t.Helper()
	c := connectV2(t, s, v2Options{})
	defer c.close()
	c.sendSubscribeV2(t, ch, nil)
	c.sendResume(t, map[string]protocol.Position{ch: pos})
	c.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
	code := ""
	var replayed []uint64
	for {
		f := c.nextV2(t)
		switch f.Event {
		case "sockudo:resume_failed":
			var d struct{ Code string }
			_ = json.Unmarshal([]byte(f.dataString()), &d)
			code = d.Code
		case "sockudo:resume_success":
			return code, replayed
		default:
			replayed = append(replayed, f.Serial)
		}
	}
}

// testHistoryPurge: POST .../history/purge and DELETE .../history drop the oldest messages
// from the store and the hot buffer; a resume from before the cut gets position_expired, one
// after it the rest; the stream goes on.
func testHistoryPurge(t *testing.T, s *testkit.Server) {
	const ch = "hist-purge"
	publishN(t, s, ch, 6)
	st := historyState(t, s, ch)
	if st.Stream.NextSerial != 7 || st.Stream.Retained.Messages != 6 || *st.Stream.Retained.Oldest != 1 || st.Stream.State.DurableState != "healthy" {
		t.Fatalf("state %+v", st)
	}
	stream := st.Stream.StreamID
	status, body := apiPost(t, s, historyPath(ch, "purge"), []byte(`{"confirm_channel":"`+ch+`","confirm_operation":"purge","mode":"before_serial","before_serial":4,"reason":"retention","requested_by":"ops"}`))
	var p struct {
		OK             bool    `json:"ok"`
		Operation      string  `json:"operation"`
		Channel        string  `json:"channel"`
		Mode           string  `json:"mode"`
		BeforeSerial   *uint64 `json:"before_serial"`
		BeforeTimeMs   *int64  `json:"before_time_ms"`
		Reason         string  `json:"reason"`
		RequestedBy    *string `json:"requested_by"`
		PurgedMessages int64   `json:"purged_messages"`
		PurgedBytes    int64   `json:"purged_bytes"`
		Stream         json.RawMessage
	}
	if status != 200 || strictUnmarshal([]byte(body), &p) != nil || !p.OK || p.PurgedMessages != 3 || p.PurgedBytes <= 0 || *p.BeforeSerial != 4 || *p.RequestedBy != "ops" {
		t.Fatalf("purge: HTTP %d %s", status, body)
	}
	if code, _ := resumeCode(t, s, ch, protocol.Position{StreamID: stream, Serial: 1}); code != "position_expired" {
		t.Errorf("resume from before the cut: %q", code)
	}
	if code, replayed := resumeCode(t, s, ch, protocol.Position{StreamID: stream, Serial: 3}); code != "" || len(replayed) != 3 || replayed[0] != 4 {
		t.Errorf("resume from the cut: %q %v", code, replayed)
	}
	status, body = apiGet(t, s, historyPath(ch, ""), url.Values{"direction": {"oldest_first"}})
	if status != 200 || !strings.Contains(body, `"oldest_available_serial":4`) || strings.Contains(body, `"serial":3,`) {
		t.Fatalf("history after the purge: %s", body)
	}
	if status, body = apiDelete(t, s, historyPath(ch, ""), url.Values{"reason": {"cleanup"}}); status != 200 || !strings.Contains(body, `"mode":"all"`) || !strings.Contains(body, `"purged_messages":3`) {
		t.Fatalf("DELETE: HTTP %d %s", status, body)
	}
	if st := historyState(t, s, ch); st.Stream.Retained.Messages != 0 || st.Stream.NextSerial != 7 || st.Stream.StreamID != stream {
		t.Fatalf("after DELETE: %+v", st)
	}
	publishN(t, s, ch, 1)
	if st := historyState(t, s, ch); st.Stream.NextSerial != 8 || *st.Stream.Retained.Oldest != 7 {
		t.Fatalf("after a publish: %+v", st)
	}
	if status, body = apiDelete(t, s, historyPath(ch, ""), url.Values{"mode": {"sometimes"}}); status != 400 {
		t.Fatalf("bad mode: HTTP %d %s", status, body)
	}
}

// testHistoryReset: a reset starts a new stream: live subscribers stay and get serial 1 of
// it next; a resume from the old stream gets stream_reset; the channel's mutable messages
// are gone (404).
func testHistoryReset(t *testing.T, s *testkit.Server) {
	const ch = "chat:reset"
	live := connectV2(t, s, v2Options{})
	live.subscribeV2(t, ch, nil)
	c := publishCreate(t, s, ch, "chat.message", "before")
	publishN(t, s, ch, 2)
	for range 3 {
		live.nextMessage(t)
	}
	old := live.positions[ch]
	status, body := apiPost(t, s, historyPath(ch, "reset"), []byte(`{"confirm_channel":"`+ch+`","confirm_operation":"reset","reason":"incident 42"}`))
	var r struct {
		OK               bool   `json:"ok"`
		PreviousStreamID string `json:"previous_stream_id"`
		NewStreamID      string `json:"new_stream_id"`
		PurgedMessages   int64  `json:"purged_messages"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &r) != nil || !r.OK || r.PreviousStreamID != old.StreamID || r.NewStreamID == old.StreamID || r.PurgedMessages != 3 {
		t.Fatalf("reset: HTTP %d %s", status, body)
	}
	if status, body := mutateRaw(t, s, ch, c.MessageSerial, "append", map[string]any{"data": "!"}); status != 404 {
		t.Fatalf("mutating a message of the old stream: HTTP %d %s", status, body)
	}
	if code, _ := resumeCode(t, s, ch, old); code != "stream_reset" {
		t.Errorf("resume from the old stream: %q", code)
	}
	publishN(t, s, ch, 1)
	f := live.nextMessage(t)
	if f.StreamID != r.NewStreamID || f.Serial != 1 {
		t.Fatalf("live after the reset: %s", f.raw)
	}
	if code, replayed := resumeCode(t, s, ch, live.positions[ch]); code != "" || len(replayed) != 0 {
		t.Errorf("resume from the new position: %q %v", code, replayed)
	}
	if status, body := apiPost(t, s, historyPath(ch, "reset"), []byte(`{"confirm_channel":"other","confirm_operation":"reset","reason":"x"}`)); status != 400 {
		t.Fatalf("confirm mismatch: HTTP %d %s", status, body)
	}
	live.close()
}

// testForceReconnect: the user's connections, V1 and V2, get an error frame 4200 and close
// 4200 ("reconnect immediately"); other users stay.
func testForceReconnect(t *testing.T, s *testkit.Server) {
	v1 := connect(t, s)
	v1.signIn(t, `{"id":"frc-user"}`)
	v2 := connectV2(t, s, v2Options{token: mintToken(t, "frc-user", map[string][]string{"*": {"subscribe"}}, time.Hour)})
	bystander := connect(t, s)
	bystander.signIn(t, `{"id":"frc-other"}`)
	status, body := apiPost(t, s, "/apps/"+testkit.AppID+"/users/frc-user/force_reconnect", []byte("{}"))
	if status != 200 || body != `{"ok":true}` {
		t.Fatalf("force_reconnect: HTTP %d %s", status, body)
	}
	v1.expectError(t, protocol.CodeReconnect)
	v1.expectClose(t, websocket.StatusCode(protocol.CodeReconnect))
	if msg := v2.expectV2Error(t, protocol.CodeReconnect); msg != "Force reconnect requested by the app." {
		t.Errorf("V2 error message %q", msg)
	}
	v2.expectClose(t, websocket.StatusCode(protocol.CodeReconnect))
	bystander.ping(t)
	bystander.close()
}

// testAppendRollup: a connection with append_rollup_window=100 reduces its frames, in serial
// order, to the server's string at every step, never receiving more frames than appends were
// made (how many it gets depends on the machine's speed; channels/rollup_test.go proves the
// windows with a clock of its own). A bad window is refused in v2_test.go.
func testAppendRollup(t *testing.T, s *testkit.Server) {
	const ch = "ai:rollup"
	rolled := connectV2(t, s, v2Options{extra: "append_rollup_window=100"})
	rolled.subscribeV2(t, ch, map[string]any{"rewind": 1}) // no resume hold
	rolled.expectV2(t, "sockudo:rewind_complete", ch)
	plain := connectV2(t, s, v2Options{})
	plain.subscribeV2(t, ch, map[string]any{"rewind": 1})
	plain.expectV2(t, "sockudo:rewind_complete", ch)
	c := publishCreate(t, s, ch, "ai.answer", "")
	const appends = 30
	for i := range appends {
		mutateOK(t, s, ch, c.MessageSerial, "append", map[string]any{"data": string(rune('a' + i%26))})
	}
	final := mutateOK(t, s, ch, c.MessageSerial, "update", map[string]any{"data": "done"})
	for name, cl := range map[string]*v2Client{"rolled": rolled, "plain": plain} {
		r := newReducer(false)
		frames := 0
		var lastSerial uint64
		for {
			f := cl.nextMessage(t)
			if f.Serial <= lastSerial {
				t.Fatalf("%s: serial %d after %d", name, f.Serial, lastSerial)
			}
			lastSerial = f.Serial
			if _, err := r.apply(f); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if f.Event == "sockudo:message.append" {
				frames++
				want := ""
				for i := range appends {
					if uint64(i)+c.DeliverySerial+1 <= f.Serial {
						want += string(rune('a' + i%26))
					}
				}
				if got := string(r.msgs[c.MessageSerial].Data); got != jsonString(want) {
					t.Fatalf("%s after serial %d: %s, want %s", name, f.Serial, got, jsonString(want))
				}
			}
			if f.Serial == final.DeliverySerial {
				break
			}
		}
		if name == "plain" && frames != appends || frames > appends || frames == 0 {
			t.Fatalf("%s got %d append frames for %d appends", name, frames, appends)
		}
		t.Logf("%s: %d append frames for %d appends", name, frames, appends)
	}
}

// testClusterForceReconnect: force_reconnect through one node closes the user's connections
// on the others with 4200.
func testClusterForceReconnect(t *testing.T, nodes []*testkit.Server) {
	testClusterCloseUser(t, nodes, "force_reconnect", protocol.CodeReconnect)
}

// testClusterHistoryOps: with one Postgres shared by the nodes, a purge through node 0 makes
// node 1 forget the purged messages from its hot buffer (a resume there from before the cut
// gets position_expired, not a replay of purged messages), and a reset through node 0 starts
// the new stream for every node: node 2's next publish is its serial 1, node 1's live
// subscriber receives it, a resume on node 1 from the old stream gets stream_reset.
func testClusterHistoryOps(t *testing.T, nodes []*testkit.Server) {
	ch := "cl-hist-" + clusterPrefix()
	live := connectV2(t, nodes[1], v2Options{})
	live.subscribeV2(t, ch, nil)
	publishN(t, nodes[1], ch, 4) // node 1's hot buffer holds 1..4
	for range 4 {
		live.nextMessage(t)
	}
	old := live.positions[ch]
	if code, replayed := resumeCode(t, nodes[1], ch, protocol.Position{StreamID: old.StreamID, Serial: 1}); code != "" || len(replayed) != 3 {
		t.Fatalf("before the purge: %q %v", code, replayed)
	}
	body := `{"confirm_channel":"` + ch + `","confirm_operation":"purge","mode":"before_serial","before_serial":3,"reason":"cluster test"}`
	if status, resp := apiPost(t, nodes[0], historyPath(ch, "purge"), []byte(body)); status != 200 || !strings.Contains(resp, `"purged_messages":2`) {
		t.Fatalf("purge: HTTP %d %s", status, resp)
	}
	testkit.WaitFor(t, clusterWait, "node 1 refuses to replay purged messages", func() bool {
		code, _ := resumeCode(t, nodes[1], ch, protocol.Position{StreamID: old.StreamID, Serial: 1})
		return code == "position_expired"
	})
	if code, replayed := resumeCode(t, nodes[1], ch, protocol.Position{StreamID: old.StreamID, Serial: 2}); code != "" || len(replayed) != 2 || replayed[0] != 3 {
		t.Fatalf("resume from the cut on node 1: %q %v", code, replayed)
	}
	status, resp := apiPost(t, nodes[0], historyPath(ch, "reset"), []byte(`{"confirm_channel":"`+ch+`","confirm_operation":"reset","reason":"cluster test"}`))
	var r struct {
		NewStreamID string `json:"new_stream_id"`
	}
	if status != 200 || json.Unmarshal([]byte(resp), &r) != nil || r.NewStreamID == "" {
		t.Fatalf("reset: HTTP %d %s", status, resp)
	}
	if st := historyState(t, nodes[2], ch); st.Stream.StreamID != r.NewStreamID || st.Stream.NextSerial != 1 {
		t.Fatalf("node 2 after node 0's reset: %+v", st)
	}
	publishN(t, nodes[2], ch, 1)
	if f := live.nextMessage(t); f.StreamID != r.NewStreamID || f.Serial != 1 {
		t.Fatalf("node 1's subscriber after the reset: %s", f.raw)
	}
	if code, _ := resumeCode(t, nodes[1], ch, old); code != "stream_reset" {
		t.Fatalf("resume on node 1 from the old stream: %q", code)
	}
	live.close()
}
