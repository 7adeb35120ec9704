package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/history/historytest"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestMutable runs the mutable-message groups on the default app with the in-memory store;
// TestMutablePostgres runs the same groups on Postgres.
func TestMutable(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	runMutableGroups(t, s)
}

func TestMutablePostgres(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}})
	runMutableGroups(t, s)
}

func runMutableGroups(t *testing.T, s *testkit.Server) {
	groups := []struct {
		name string
		run  func(t *testing.T, s *testkit.Server)
	}{
		{"LiveFrames", testMutableLive},
		{"Reads", testMutableReads},
		{"HistoryAndRewind", testMutableHistory},
		{"Resume", testMutableResume},
		{"BadInput", testMutableBadInput},
		{"OpIDs", testMutableOpIDs},
		{"SocketBinding", testMutableSocket},
		{"ConcurrentAppends", testMutableConcurrent},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, s)
		})
	}
}

// created is a channel of a publish answer on a versioned channel.
type created struct {
	AcknowledgementID string `json:"acknowledgement_id"`
	MessageSerial     string `json:"message_serial"`
	HistorySerial     uint64 `json:"history_serial"`
	DeliverySerial    uint64 `json:"delivery_serial"`
	VersionSerial     string `json:"version_serial"`
}

// publishCreate publishes data on channel and returns what the answer says it created.
func publishCreate(t testing.TB, s *testkit.Server, channel, event, data string) created {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"name": event, "channel": channel, "data": data})
	status, body := apiPost(t, s, "/apps/"+testkit.AppID+"/events", b)
	if status != http.StatusOK {
		t.Fatalf("publish: HTTP %d %s", status, body)
	}
	var ans struct {
		Channels map[string]created `json:"channels"`
	}
	if err := strictUnmarshal([]byte(body), &ans); err != nil {
		t.Fatalf("publish answer %s: %v", body, err)
	}
	c := ans.Channels[channel]
	if c.MessageSerial == "" || c.AcknowledgementID != c.MessageSerial || c.VersionSerial != c.MessageSerial ||
		c.HistorySerial == 0 || c.DeliverySerial != c.HistorySerial || !protocol.ValidSerial(c.MessageSerial) {
		t.Fatalf("publish answer %s", body)
	}
	return c
}

// mutation is the answer of a mutation.
type mutation struct {
	Channel        string `json:"channel"`
	MessageSerial  string `json:"message_serial"`
	Action         string `json:"action"`
	Accepted       bool   `json:"accepted"`
	VersionSerial  string `json:"version_serial"`
	HistorySerial  uint64 `json:"history_serial"`
	DeliverySerial uint64 `json:"delivery_serial"`
	Status         string `json:"status"`
}

func messagePath(channel, serial string) string {
	return "/apps/" + testkit.AppID + "/channels/" + url.PathEscape(channel) + "/messages/" + url.PathEscape(serial)
}

// mutateRaw posts a mutation and returns the status and body.
func mutateRaw(t testing.TB, s *testkit.Server, channel, serial, action string, body any) (int, string) {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	return apiPost(t, s, messagePath(channel, serial)+"/"+action, b)
}

// mutateOK posts a mutation that must be applied.
func mutateOK(t testing.TB, s *testkit.Server, channel, serial, action string, body any) mutation {
	t.Helper()
	status, resp := mutateRaw(t, s, channel, serial, action, body)
	if status != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", action, status, resp)
	}
	var m mutation
	if err := strictUnmarshal([]byte(resp), &m); err != nil {
		t.Fatalf("%s answer %s: %v", action, resp, err)
	}
	if m.Channel != channel || m.MessageSerial != serial || m.Action != action || !m.Accepted || m.Status != "applied" || !protocol.ValidSerial(m.VersionSerial) {
		t.Fatalf("%s answer %s", action, resp)
	}
	return m
}

// expectMutation reads the next message frame and checks it is the delivery of m.
func expectMutation(t testing.TB, c *v2Client, m mutation, name, wantData string) v2Frame {
	t.Helper()
	f := c.nextMessage(t)
	h, ok := headersOf(f)
	if f.Event != "sockudo:message."+m.Action || f.Name != name || f.Serial != m.DeliverySerial || !ok ||
		h.Action != "message."+m.Action || h.MessageSerial != m.MessageSerial || h.VersionSerial != m.VersionSerial ||
		h.HistorySerial == nil || uint64(*h.HistorySerial) != m.HistorySerial || h.VersionTimeMs == nil || *h.VersionTimeMs != protocol.SerialMs(m.VersionSerial) {
		t.Fatalf("mutation frame %s, want %+v", f.raw, m)
	}
	if got := string(f.Data); got != wantData {
		t.Fatalf("%s frame data %s, want %s", m.Action, got, wantData)
	}
	return f
}

// getItem reads GET .../messages/{serial} and returns the item's fields.
func getItem(t testing.TB, s *testkit.Server, channel, serial string) map[string]json.RawMessage {
	t.Helper()
	status, body := apiGet(t, s, messagePath(channel, serial), nil)
	if status != http.StatusOK {
		t.Fatalf("GET message: HTTP %d %s", status, body)
	}
	var ans struct {
		Channel string                     `json:"channel"`
		Item    map[string]json.RawMessage `json:"item"`
	}
	if err := strictUnmarshal([]byte(body), &ans); err != nil || ans.Channel != channel {
		t.Fatalf("GET message %s: %v", body, err)
	}
	return ans.Item
}

func testMutableLive(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-live"
	v1 := connect(t, s)
	v1.subscribe(t, ch)
	delta := connectV2(t, s, v2Options{})
	delta.subscribeV2(t, ch, nil)
	full := connectV2(t, s, v2Options{extra: "append_mode=full"})
	full.subscribeV2(t, ch, nil)
	rd, rf := newReducer(false), newReducer(true)
	fold := func(r *reducer, f v2Frame) {
		t.Helper()
		if _, err := r.apply(f); err != nil {
			t.Fatal(err)
		}
	}

	c := publishCreate(t, s, ch, "chat.message", "hello")
	// V1: a plain event, nothing V2 in it.
	v1.expect(t, eventFrame("chat.message", ch, "hello"))
	for _, v := range []*v2Client{delta, full} {
		f := v.nextMessage(t)
		h, ok := headersOf(f)
		if f.Event != "chat.message" || f.Name != "" || f.Serial != c.DeliverySerial || !ok || h.Action != "message.create" ||
			h.MessageSerial != c.MessageSerial || h.VersionSerial != c.VersionSerial || *h.HistorySerial != int64(c.HistorySerial) {
			t.Fatalf("create frame %s, want %+v", f.raw, c)
		}
		fold(map[*v2Client]*reducer{delta: rd, full: rf}[v], f)
	}

	up := mutateOK(t, s, ch, c.MessageSerial, "update", map[string]any{"data": "hello, edited", "description": "typo", "metadata": map[string]int{"x": 1}})
	if up.DeliverySerial != c.DeliverySerial+1 || up.HistorySerial != c.HistorySerial || up.VersionSerial <= c.VersionSerial {
		t.Fatalf("update answer %+v after %+v", up, c)
	}
	fold(rd, expectMutation(t, delta, up, "chat.message", `"hello, edited"`))
	fold(rf, expectMutation(t, full, up, "chat.message", `"hello, edited"`))

	ap := mutateOK(t, s, ch, c.MessageSerial, "append", map[string]any{"data": " world"})
	fold(rd, expectMutation(t, delta, ap, "chat.message", `" world"`))
	fold(rf, expectMutation(t, full, ap, "chat.message", `"hello, edited world"`))

	name := "chat.renamed"
	up2 := mutateOK(t, s, ch, c.MessageSerial, "update", map[string]any{"name": name})
	fold(rd, expectMutation(t, delta, up2, name, `"hello, edited world"`))
	fold(rf, expectMutation(t, full, up2, name, `"hello, edited world"`))

	del := mutateOK(t, s, ch, c.MessageSerial, "delete", map[string]any{"clear_fields": []string{"data"}})
	fold(rd, expectMutation(t, delta, del, name, ``))
	fold(rf, expectMutation(t, full, del, name, ``))
	if del.DeliverySerial != c.DeliverySerial+4 {
		t.Fatalf("delivery serials not consecutive: %+v", del)
	}

	// V1 never sees a mutation.
	v1.ping(t)
	// Both reducers reach the state the server reports.
	item := getItem(t, s, ch, c.MessageSerial)
	for _, r := range []*reducer{rd, rf} {
		st := r.msgs[c.MessageSerial]
		if st == nil || st.Data != nil || st.Action != "delete" || st.VersionSerial != del.VersionSerial {
			t.Fatalf("reduced state %+v", st)
		}
	}
	if string(item["action"]) != `"delete"` || item["data"] != nil || string(item["event"]) != `"sockudo:message.delete"` || string(item["name"]) != `"`+name+`"` {
		t.Fatalf("GET message after delete: %v", item)
	}
}

func testMutableReads(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-reads"
	c := publishCreate(t, s, ch, "chat.message", "a")
	var ms []mutation
	for _, frag := range []string{"b", "c", "d"} {
		ms = append(ms, mutateOK(t, s, ch, c.MessageSerial, "append", map[string]any{"data": frag, "client_id": "u1"}))
	}
	up := mutateOK(t, s, ch, c.MessageSerial, "update", map[string]any{"data": "abcd!", "description": "punctuate", "metadata": map[string]any{"k": []int{1}}})
	item := getItem(t, s, ch, c.MessageSerial)
	var version struct {
		Serial      string          `json:"serial"`
		ClientID    string          `json:"client_id"`
		TimestampMs int64           `json:"timestamp_ms"`
		Description string          `json:"description"`
		Metadata    json.RawMessage `json:"metadata"`
	}
	if err := strictUnmarshal(item["version"], &version); err != nil {
		t.Fatal(err)
	}
	if string(item["data"]) != `"abcd!"` || string(item["action"]) != `"update"` || string(item["message_serial"]) != `"`+c.MessageSerial+`"` ||
		string(item["history_serial"]) != fmt.Sprint(c.HistorySerial) || string(item["delivery_serial"]) != fmt.Sprint(up.DeliverySerial) ||
		string(item["serial"]) != fmt.Sprint(up.DeliverySerial) || version.Serial != up.VersionSerial || version.Description != "punctuate" ||
		string(version.Metadata) != `{"k":[1]}` {
		t.Fatalf("GET message: %v / %+v", item, version)
	}
	// Versions, oldest first in pages of 2, then newest first: appends carry their fragment.
	path := messagePath(ch, c.MessageSerial) + "/versions"
	type page struct {
		Channel    string                       `json:"channel"`
		Direction  string                       `json:"direction"`
		Limit      int                          `json:"limit"`
		HasMore    bool                         `json:"has_more"`
		NextCursor *string                      `json:"next_cursor"`
		Items      []map[string]json.RawMessage `json:"items"`
	}
	read := func(q string) page {
		t.Helper()
		v, _ := url.ParseQuery(q)
		status, body := apiGet(t, s, path, v)
		var p page
		if status != http.StatusOK || strictUnmarshal([]byte(body), &p) != nil {
			t.Fatalf("versions %s: HTTP %d %s", q, status, body)
		}
		return p
	}
	var got []string
	q := "direction=oldest_first&limit=2"
	for {
		p := read(q)
		for _, it := range p.Items {
			got = append(got, string(it["action"])+" "+string(it["data"]))
		}
		if !p.HasMore {
			break
		}
		q = "direction=oldest_first&limit=2&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	want := `"create" "a"|"append" "b"|"append" "c"|"append" "d"|"update" "abcd!"`
	if strings.Join(got, "|") != want {
		t.Fatalf("versions oldest first: %s\nwant %s", strings.Join(got, "|"), want)
	}
	newest := read("limit=100")
	if newest.Direction != "newest_first" || len(newest.Items) != 5 || string(newest.Items[0]["action"]) != `"update"` ||
		string(newest.Items[1]["version"]) == "" || !strings.Contains(string(newest.Items[1]["version"]), `"client_id":"u1"`) ||
		string(newest.Items[1]["delivery_serial"]) != fmt.Sprint(ms[2].DeliverySerial) {
		t.Fatalf("versions newest first: %+v", newest.Items)
	}
	for q, wantStatus := range map[string]int{"direction=backwards": 400, "limit=0": 400, "cursor=a%20b": 400} {
		v, _ := url.ParseQuery(q)
		if status, body := apiGet(t, s, path, v); status != wantStatus || !strings.Contains(body, `"error"`) {
			t.Errorf("versions %s: HTTP %d %s", q, status, body)
		}
	}
}

func testMutableHistory(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-history"
	first := publishCreate(t, s, ch, "chat.message", "first")
	second := publishCreate(t, s, ch, "chat.message", "second")
	up := mutateOK(t, s, ch, first.MessageSerial, "update", map[string]any{"data": "first, edited"})
	mutateOK(t, s, ch, second.MessageSerial, "append", map[string]any{"data": "!"})
	// HTTP history: two messages (not four deliveries), each as its latest aggregate.
	v, _ := url.ParseQuery("direction=oldest_first")
	status, body := apiGet(t, s, "/apps/"+testkit.AppID+"/channels/"+url.PathEscape(ch)+"/history", v)
	if status != http.StatusOK {
		t.Fatalf("history: HTTP %d %s", status, body)
	}
	var hist struct {
		Items []struct {
			Serial  uint64                     `json:"serial"`
			Message map[string]json.RawMessage `json:"message"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &hist); err != nil || len(hist.Items) != 2 {
		t.Fatalf("history %s: %v", body, err)
	}
	if m := hist.Items[0]; m.Serial != first.HistorySerial || string(m.Message["event"]) != `"sockudo:message.update"` ||
		string(m.Message["data"]) != `"first, edited"` || string(m.Message["serial"]) != fmt.Sprint(up.DeliverySerial) ||
		string(m.Message["history_serial"]) != fmt.Sprint(first.HistorySerial) || string(m.Message["name"]) != `"chat.message"` {
		t.Fatalf("history item 0: %s", body)
	}
	if m := hist.Items[1]; m.Serial != second.HistorySerial || string(m.Message["event"]) != `"sockudo:message.append"` || string(m.Message["data"]) != `"second!"` {
		t.Fatalf("history item 1: %s", body)
	}
	// Rewind shows the same aggregates, in creation order.
	c := connectV2(t, s, v2Options{})
	c.subscribeV2(t, ch, map[string]any{"rewind": 10})
	r := newReducer(false)
	for _, want := range []string{`"first, edited"`, `"second!"`} {
		f := c.nextMessage(t)
		if string(f.Data) != want {
			t.Fatalf("rewound %s, want data %s", f.raw, want)
		}
		if _, err := r.apply(f); err != nil {
			t.Fatal(err)
		}
	}
	c.expectV2(t, "sockudo:rewind_complete", ch)
	if string(r.msgs[second.MessageSerial].Data) != `"second!"` {
		t.Fatalf("reduced rewind: %+v", r.msgs[second.MessageSerial])
	}
	// A message never mutated rewinds under its own event name.
	third := publishCreate(t, s, ch, "chat.message", "third")
	c2 := connectV2(t, s, v2Options{})
	c2.subscribeV2(t, ch, map[string]any{"rewind": 1})
	if f := c2.nextMessage(t); f.Event != "chat.message" || f.dataString() != "third" || f.Serial != third.DeliverySerial {
		t.Fatalf("rewound unmutated message %s", f.raw)
	}
}

// A client away while a message is edited and streamed resumes from its position and gets
// every delivery in serial order; its reducer reaches the latest state. With
// append_mode=full the replayed appends carry the whole string as it was then.
func testMutableResume(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-resume"
	for _, mode := range []string{"delta", "full"} {
		t.Run(mode, func(t *testing.T) {
			o := v2Options{}
			if mode == "full" {
				o.extra = "append_mode=full"
			}
			r := newReducer(mode == "full")
			c := connectV2(t, s, o)
			c.subscribeV2(t, ch, nil)
			created := publishCreate(t, s, ch, "chat.message", "Hel")
			f := c.nextMessage(t)
			if _, err := r.apply(f); err != nil {
				t.Fatal(err)
			}
			ap1 := mutateOK(t, s, ch, created.MessageSerial, "append", map[string]any{"data": "lo"})
			if _, err := r.apply(c.nextMessage(t)); err != nil {
				t.Fatal(err)
			}
			pos := c.positions[ch]
			if pos.Serial != ap1.DeliverySerial {
				t.Fatalf("position %+v after %+v", pos, ap1)
			}
			c.close()

			var away []mutation
			away = append(away, mutateOK(t, s, ch, created.MessageSerial, "append", map[string]any{"data": ", wor"}))
			away = append(away, mutateOK(t, s, ch, created.MessageSerial, "append", map[string]any{"data": "ld"}))
			away = append(away, mutateOK(t, s, ch, created.MessageSerial, "update", map[string]any{"extras": map[string]any{"headers": map[string]string{"lang": "en"}}}))
			away = append(away, mutateOK(t, s, ch, created.MessageSerial, "append", map[string]any{"data": "!"}))

			again := connectV2(t, s, o)
			again.sendSubscribeV2(t, ch, nil)
			again.sendResume(t, map[string]protocol.Position{ch: pos})
			again.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
			wantFull := []string{`"Hello, wor"`, `"Hello, world"`, `"Hello, world"`, `"Hello, world!"`}
			wantDelta := []string{`", wor"`, `"ld"`, `"Hello, world"`, `"!"`}
			for i, m := range away {
				want := wantDelta[i]
				if mode == "full" {
					want = wantFull[i]
				}
				f := expectMutation(t, again, m, "chat.message", want)
				if _, err := r.apply(f); err != nil {
					t.Fatal(err)
				}
			}
			again.expectV2(t, "sockudo:resume_success", "")
			st := r.msgs[created.MessageSerial]
			if st == nil || string(st.Data) != `"Hello, world!"` {
				t.Fatalf("reduced after resume: %+v", st)
			}
			if got := getItem(t, s, ch, created.MessageSerial); string(got["data"]) != `"Hello, world!"` {
				t.Fatalf("server state %s", got["data"])
			}
		})
	}
}

func testMutableBadInput(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-bad"
	c := publishCreate(t, s, ch, "chat.message", "text")
	obj := publishCreate(t, s, ch, "chat.message", "x")
	// An object as data (an update stores its text: still a string) then a non-string.
	other := publishCreate(t, s, "chat:room-bad-other", "chat.message", "elsewhere")
	tests := []struct {
		name            string
		channel, serial string
		action          string
		body            any
		status          int
		kind, msg       string
	}{
		{"unknown serial", ch, "00000001700000000000:nope:00000000000000000001", "append", map[string]any{"data": "x"}, 404, "not_found", "not found on channel"},
		{"serial of another channel", ch, other.MessageSerial, "update", map[string]any{"data": "x"}, 404, "not_found", "not found on channel chat:room-bad"},
		{"empty fragment", ch, c.MessageSerial, "append", map[string]any{"data": ""}, 400, "invalid_input", "non-empty"},
		{"fragment not a string", ch, c.MessageSerial, "append", map[string]any{"data": 5}, 400, "invalid_input", "string"},
		{"update with nothing", ch, c.MessageSerial, "update", map[string]any{"op_id": "x"}, 400, "invalid_input", "at least one"},
		{"oversized data", ch, c.MessageSerial, "update", map[string]any{"data": strings.Repeat("x", 101*1024)}, 413, "", ""},
		{"bad serial in path", ch, "a b", "update", map[string]any{"data": "x"}, 400, "invalid_input", "message_serial"},
		{"unknown action", ch, c.MessageSerial, "patch", map[string]any{"data": "x"}, 404, "", ""},
		{"encrypted channel", "private-encrypted-room", c.MessageSerial, "update", map[string]any{"data": "x"}, 422, "feature_disabled", "Encrypted channels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := mutateRaw(t, s, tc.channel, tc.serial, tc.action, tc.body)
			if status != tc.status || (tc.kind != "" && !strings.Contains(body, `"`+tc.kind+`"`)) || !strings.Contains(body, tc.msg) {
				t.Fatalf("HTTP %d %s, want %d %s %q", status, body, tc.status, tc.kind, tc.msg)
			}
		})
	}
	// Appending to non-string data: the message holds JSON only when a create was not a
	// string, which the HTTP publish cannot make — except via an update of a client that
	// cleared data and the message then has none: append takes the fragment.
	mutateOK(t, s, ch, obj.MessageSerial, "update", map[string]any{"clear_fields": []string{"data"}})
	ap := mutateOK(t, s, ch, obj.MessageSerial, "append", map[string]any{"data": "fresh"})
	if got := getItem(t, s, ch, obj.MessageSerial); string(got["data"]) != `"fresh"` || ap.Action != "append" {
		t.Fatalf("append to cleared data: %s", got["data"])
	}
	if status, body := apiGet(t, s, messagePath(ch, "00000001700000000000:nope:00000000000000000001"), nil); status != 404 || !strings.Contains(body, "not_found") {
		t.Fatalf("GET unknown message: %d %s", status, body)
	}
}

func testMutableOpIDs(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-ops"
	c := publishCreate(t, s, ch, "chat.message", "a")
	sub := connectV2(t, s, v2Options{})
	sub.subscribeV2(t, ch, nil)
	first := mutateOK(t, s, ch, c.MessageSerial, "append", map[string]any{"data": "b", "op_id": "op-1"})
	expectMutation(t, sub, first, "chat.message", `"b"`)
	// A retry answers the first result with status duplicate and delivers nothing.
	status, body := mutateRaw(t, s, ch, c.MessageSerial, "append", map[string]any{"data": "b", "op_id": "op-1"})
	var dup mutation
	if status != 200 || json.Unmarshal([]byte(body), &dup) != nil || dup.Status != "duplicate" || dup.VersionSerial != first.VersionSerial ||
		dup.DeliverySerial != first.DeliverySerial || dup.Action != "append" {
		t.Fatalf("retry: HTTP %d %s", status, body)
	}
	// The same op_id with another payload is a conflict.
	if status, body := mutateRaw(t, s, ch, c.MessageSerial, "append", map[string]any{"data": "c", "op_id": "op-1"}); status != 400 ||
		!strings.Contains(body, "already used with a different payload") {
		t.Fatalf("conflict: HTTP %d %s", status, body)
	}
	// The same op_id for another action is another operation.
	up := mutateOK(t, s, ch, c.MessageSerial, "update", map[string]any{"data": "ab!", "op_id": "op-1"})
	expectMutation(t, sub, up, "chat.message", `"ab!"`)
	sub.expectQuiet(t)
	if got := getItem(t, s, ch, c.MessageSerial); string(got["data"]) != `"ab!"` {
		t.Fatalf("after retries: %s", got["data"])
	}
}

func testMutableSocket(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-socket"
	c := publishCreate(t, s, ch, "chat.message", "a")
	v2 := connectV2(t, s, v2Options{})
	v2.subscribeV2(t, ch, nil)
	v1 := connect(t, s)
	v1.subscribe(t, ch)
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
	}{
		{"socket not on the channel", map[string]any{"data": "x", "socket_id": "999.999"}, 401},
		{"V1 socket", map[string]any{"data": "x", "socket_id": v1.socketID}, 401},
		{"client_id not the socket's user", map[string]any{"data": "x", "socket_id": v2.socketID, "client_id": "someone"}, 401},
	} {
		if status, body := mutateRaw(t, s, ch, c.MessageSerial, "update", tc.body); status != tc.status || !strings.Contains(body, "unauthorized") {
			t.Errorf("%s: HTTP %d %s", tc.name, status, body)
		}
	}
	// A socket holds no message-* capability without a token (as in Sockudo): 403.
	if status, body := mutateRaw(t, s, ch, c.MessageSerial, "append", map[string]any{"data": "b", "socket_id": v2.socketID}); status != 403 ||
		!strings.Contains(body, "mutable_not_permitted") {
		t.Errorf("socket without a token: HTTP %d %s", status, body)
	}
	// With one: message-append-own on the messages its client created (the create named the
	// socket), message-update-any on any.
	owner := connectV2(t, s, v2Options{token: mintToken(t, "u-owner", map[string][]string{"chat:*": {"subscribe", "publish", "message-append-own"}}, time.Hour)})
	owner.subscribeV2(t, ch, nil)
	mod := connectV2(t, s, v2Options{token: mintToken(t, "u-mod", map[string][]string{"chat:*": {"subscribe", "publish", "message_update_any"}}, time.Hour)})
	mod.subscribeV2(t, ch, nil)
	b, _ := json.Marshal(map[string]any{"name": "chat.message", "channel": ch, "data": "mine", "socket_id": owner.socketID})
	status, body := apiPost(t, s, "/apps/"+testkit.AppID+"/events", b)
	var ans struct {
		Channels map[string]created `json:"channels"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &ans) != nil || ans.Channels[ch].MessageSerial == "" {
		t.Fatalf("create by the owner's socket: HTTP %d %s", status, body)
	}
	mine := ans.Channels[ch].MessageSerial
	if f := v2.nextMessage(t); f.Event != "chat.message" {
		t.Fatalf("create: %s", f.raw)
	}
	m := mutateOK(t, s, ch, mine, "append", map[string]any{"data": "!", "socket_id": owner.socketID})
	expectMutation(t, v2, m, "chat.message", `"!"`)
	for _, tc := range []struct {
		name, serial, action, socket string
		status                       int
	}{
		{"own grant, someone else's message", c.MessageSerial, "append", owner.socketID, 403},
		{"no update grant", mine, "update", owner.socketID, 403},
		{"any grant, append not granted", mine, "append", mod.socketID, 403},
	} {
		if status, body := mutateRaw(t, s, ch, tc.serial, tc.action, map[string]any{"data": "x", "socket_id": tc.socket}); status != tc.status ||
			!strings.Contains(body, "mutable_not_permitted") {
			t.Errorf("%s: HTTP %d %s", tc.name, status, body)
		}
	}
	m = mutateOK(t, s, ch, mine, "update", map[string]any{"data": "moderated", "socket_id": mod.socketID})
	expectMutation(t, v2, m, "chat.message", `"moderated"`)
	if got := getItem(t, s, ch, mine); !strings.Contains(string(got["version"]), `"client_id":"u-mod"`) {
		t.Errorf("the update's version names its actor: %s", got["version"])
	}
	v1.expect(t, eventFrame("chat.message", ch, "mine")) // the create; never a mutation
	v1.ping(t)
}

// 8 writers append 1,000 fragments each through the HTTP API; the final string holds every
// fragment exactly once (each writer's in its order), and a subscriber reducing the live
// frames reaches the same string.
func testMutableConcurrent(t *testing.T, s *testkit.Server) {
	const ch = "chat:room-stream"
	const writers, each = 8, 1000
	c := publishCreate(t, s, ch, "ai.answer", "")
	sub := connectV2(t, s, v2Options{})
	sub.subscribeV2(t, ch, nil)
	r := newReducer(false)
	r.msgs[c.MessageSerial] = &mutableState{Data: json.RawMessage(`""`), Action: "create", VersionSerial: c.VersionSerial}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				status, body := mutateRaw(t, s, ch, c.MessageSerial, "append", map[string]any{"data": historytest.Fragment(w, i)})
				if status != http.StatusOK {
					t.Errorf("append %d.%d: HTTP %d %s", w, i, status, body)
					return
				}
			}
		}()
	}
	// Read the live frames while the writers run (t.Fatal is for the test goroutine only).
	frames := make(chan error, 1)
	go func() {
		for n := 0; n < writers*each; n++ {
			m, ok := sub.recv(30 * time.Second)
			if !ok {
				frames <- fmt.Errorf("live frame %d of %d did not come: %v", n+1, writers*each, sub.err)
				return
			}
			var f v2Frame
			if err := json.Unmarshal(m.data, &f); err != nil || f.Event != "sockudo:message.append" {
				frames <- fmt.Errorf("live frame %d: %s (%v)", n+1, m.data, err)
				return
			}
			if _, err := r.apply(f); err != nil {
				frames <- err
				return
			}
		}
		frames <- nil
	}()
	wg.Wait()
	if err := <-frames; err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}
	item := getItem(t, s, ch, c.MessageSerial)
	var final string
	if err := json.Unmarshal(item["data"], &final); err != nil {
		t.Fatal(err)
	}
	historytest.CheckFragments(t, final, writers, each)
	if got := string(r.msgs[c.MessageSerial].Data); got != string(item["data"]) {
		t.Fatalf("reduced live frames differ from the server's message (%d vs %d bytes)", len(got), len(item["data"]))
	}
	if string(item["delivery_serial"]) != fmt.Sprint(c.DeliverySerial+writers*each) {
		t.Fatalf("delivery serial %s, want %d", item["delivery_serial"], c.DeliverySerial+writers*each)
	}
}

// TestMutableConfig: mutable messages are switched per app and channel prefix, and need
// history; a refused channel answers 422 and its publishes carry no message serial.
func TestMutableConfig(t *testing.T) {
	t.Parallel()
	cfg := `apps:
  - id: app-id
    key: app-key
    secret: app-secret
    history_channels: ["chat:", "news:"]
    enable_versioned_messages: true
    versioned_channels: ["chat:"]
  - id: other-id
    key: other-key
    secret: other-secret
    enable_versioned_messages: true
`
	s := testkit.Start(t, testkit.Options{Port: -1, Config: cfg})
	c := publishCreate(t, s, "chat:1", "m", "x")
	// Another app cannot reach it, even on a channel of the same name.
	path := "/apps/other-id/channels/chat:1/messages/" + c.MessageSerial + "/update"
	body := []byte(`{"data":"hijack"}`)
	q := protocol.SignAPIRequest("other-key", "other-secret", http.MethodPost, path, nil, body, time.Now())
	resp, err := http.Post(s.HTTPURL()+path+"?"+q, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("mutation through another app: HTTP %d, want 404", resp.StatusCode)
	}
	b, _ := json.Marshal(map[string]any{"name": "m", "channel": "news:1", "data": "x"})
	if status, body := apiPost(t, s, "/apps/"+testkit.AppID+"/events", b); status != 200 || body != "{}" {
		t.Fatalf("publish to a channel without mutable messages: HTTP %d %s", status, body)
	}
	for _, tc := range []struct{ channel, msg string }{
		{"news:1", "Mutable messages are not enabled for channel news:1"},
		{"other", "History is not enabled for channel other"},
	} {
		status, body := mutateRaw(t, s, tc.channel, c.MessageSerial, "update", map[string]any{"data": "y"})
		if status != 422 || !strings.Contains(body, "feature_disabled") || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: HTTP %d %s", tc.channel, status, body)
		}
	}
	// A V2 subscriber of news: gets plain messages (no mutable headers).
	v := connectV2(t, s, v2Options{})
	v.subscribeV2(t, "news:1", nil)
	publish(t, s, map[string]any{"name": "m", "channel": "news:1", "data": "y"})
	if f := v.nextMessage(t); len(f.Extras) != 0 {
		t.Fatalf("news message with extras: %s", f.raw)
	}
}

// TestReducer checks the test client's reducer against the client rule of ws-protocol
// §5.3 on hand-written frames.
func TestReducer(t *testing.T) {
	frame := func(action, version, data string) v2Frame {
		f := v2Frame{Event: "sockudo:message." + action, Extras: json.RawMessage(fmt.Sprintf(
			`{"headers":{"sockudo_action":"message.%s","sockudo_message_serial":"m1","sockudo_version_serial":"%s","sockudo_version_timestamp_ms":1,"sockudo_history_serial":1}}`, action, version))}
		if data != "" {
			f.Data = json.RawMessage(data)
		}
		return f
	}
	tests := []struct {
		name    string
		full    bool
		frames  []v2Frame
		want    string // "" = null
		wantErr bool
	}{
		{"create then appends", false, []v2Frame{frame("create", "v1", `"a"`), frame("append", "v2", `"b"`), frame("append", "v3", `"c"`)}, `"abc"`, false},
		{"update replaces", false, []v2Frame{frame("create", "v1", `"a"`), frame("update", "v2", `"z"`)}, `"z"`, false},
		{"delete without data is null", false, []v2Frame{frame("create", "v1", `"a"`), frame("delete", "v2", ``)}, ``, false},
		{"append after delete takes the fragment", false, []v2Frame{frame("create", "v1", `"a"`), frame("delete", "v2", ``), frame("append", "v3", `"b"`)}, `"b"`, false},
		{"replayed append ignored", false, []v2Frame{frame("create", "v1", `"a"`), frame("append", "v2", `"b"`), frame("append", "v2", `"b"`)}, `"ab"`, false},
		{"full mode replaces", true, []v2Frame{frame("create", "v1", `"a"`), frame("append", "v2", `"ab"`)}, `"ab"`, false},
		{"append to an object", false, []v2Frame{frame("create", "v1", `{"a":1}`), frame("append", "v2", `"b"`)}, ``, true},
		{"non-string fragment", false, []v2Frame{frame("create", "v1", `"a"`), frame("append", "v2", `1`)}, ``, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReducer(tc.full)
			var err error
			for _, f := range tc.frames {
				if _, err = r.apply(f); err != nil {
					break
				}
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got := string(r.msgs["m1"].Data); got != tc.want {
				t.Fatalf("state %s, want %s", got, tc.want)
			}
		})
	}
	if changed, err := newReducer(false).apply(v2Frame{Event: "x", Data: json.RawMessage(`"y"`)}); changed || err != nil {
		t.Fatalf("a plain message changed state: %v %v", changed, err)
	}
}

// Two servers on one Postgres: writers append to one message through both; the versions
// apply in one order and nothing is lost (live delivery across nodes needs --cluster).
func TestMutableTwoNodes(t *testing.T) {
	t.Parallel()
	args := []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}
	s1 := testkit.Start(t, testkit.Options{Port: -1, Args: args})
	s2 := testkit.Start(t, testkit.Options{Port: -1, Args: args})
	const ch = "chat:two-nodes"
	const writers, each = 8, 150
	c := publishCreate(t, s1, ch, "ai.answer", "")
	var wg sync.WaitGroup
	for w := range writers {
		s := []*testkit.Server{s1, s2}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if status, body := mutateRaw(t, s, ch, c.MessageSerial, "append", map[string]any{"data": historytest.Fragment(w, i)}); status != http.StatusOK {
					t.Errorf("append %d.%d: HTTP %d %s", w, i, status, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	one, two := getItem(t, s1, ch, c.MessageSerial), getItem(t, s2, ch, c.MessageSerial)
	if string(one["data"]) != string(two["data"]) || string(one["delivery_serial"]) != fmt.Sprint(c.DeliverySerial+writers*each) {
		t.Fatalf("nodes disagree or serials lost: %s vs %s", one["delivery_serial"], two["delivery_serial"])
	}
	var final string
	if err := json.Unmarshal(one["data"], &final); err != nil {
		t.Fatal(err)
	}
	historytest.CheckFragments(t, final, writers, each)
	// Version serials sort in the order the versions were applied (their delivery order).
	v, _ := url.ParseQuery("direction=oldest_first&limit=100")
	status, body := apiGet(t, s2, messagePath(ch, c.MessageSerial)+"/versions", v)
	var page struct {
		Items []struct {
			DeliverySerial uint64 `json:"delivery_serial"`
		} `json:"items"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Items) != 100 {
		t.Fatalf("versions: HTTP %d", status)
	}
	for i, it := range page.Items {
		if it.DeliverySerial != c.DeliverySerial+uint64(i) {
			t.Fatalf("version %d has delivery serial %d, want %d", i, it.DeliverySerial, c.DeliverySerial+uint64(i))
		}
	}
}

// TestMutableWebhook: every version of a mutable message (create, update, append, delete)
// fires message_version_created with its serials.
func TestMutableWebhook(t *testing.T) {
	t.Parallel()
	rec := &receiver{}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	s := testkit.Start(t, testkit.Options{Port: -1, Config: fmt.Sprintf(`
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    enable_versioned_messages: true
    webhooks:
      - url: %s/versions
        event_types: [message_version_created]
        headers:
          X-Tenant: acme
`, hook.URL)})
	const ch = "chat:hooks"
	c := publishCreate(t, s, ch, "chat.message", "a")
	up := mutateOK(t, s, ch, c.MessageSerial, "update", map[string]any{"data": "b"})
	ap := mutateOK(t, s, ch, c.MessageSerial, "append", map[string]any{"data": "c"})
	del := mutateOK(t, s, ch, c.MessageSerial, "delete", map[string]any{})
	for _, v := range []struct{ action, serial string }{{"create", c.VersionSerial}, {"update", up.VersionSerial}, {"append", ap.VersionSerial}, {"delete", del.VersionSerial}} {
		w := fmt.Sprintf(`{"name":"message_version_created","channel":%q,"message_serial":%q,"version_serial":%q,"action":"message.%s"}`, ch, c.MessageSerial, v.serial, v.action)
		testkit.WaitFor(t, 5*time.Second, w, func() bool { return rec.has(w) })
	}
	if rec.bad != 0 {
		t.Errorf("%d webhook requests failed signature or shape checks", rec.bad)
	}
}
