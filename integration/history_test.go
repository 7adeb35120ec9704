package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestHistory runs the history, rewind and resume groups against one server with the
// in-memory store (the default).
func TestHistory(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	runHistoryGroups(t, s)
}

func runHistoryGroups(t *testing.T, s *testkit.Server) {
	groups := []struct {
		name string
		run  func(t *testing.T, s *testkit.Server)
	}{
		{"AttachAndRewind", testAttachAndRewind},
		{"ChannelHistoryFrame", testChannelHistoryFrame},
		{"HTTPHistory", testHTTPHistory},
		{"ResumeFailures", testResumeFailures},
		{"ResumeMidStream", testResumeMidStream},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, s)
		})
	}
}

// publishN publishes n events "0".."n-1" (as data) on channel.
func publishN(t testing.TB, s *testkit.Server, channel string, n int) {
	t.Helper()
	for i := range n {
		publish(t, s, map[string]any{"name": "tick", "channel": channel, "data": fmt.Sprint(i)})
	}
}

func ackData(t testing.TB, f v2Frame) map[string]json.RawMessage {
	t.Helper()
	var d map[string]json.RawMessage
	if err := json.Unmarshal([]byte(f.dataString()), &d); err != nil {
		t.Fatalf("ack data %s: %v", f.raw, err)
	}
	return d
}

func testAttachAndRewind(t *testing.T, s *testkit.Server) {
	const ch = "hist-rewind"
	fresh := connectV2(t, s, v2Options{})
	ack := fresh.subscribeV2(t, ch, nil)
	if ack.raw != `{"event":"sockudo_internal:subscription_succeeded","channel":"hist-rewind","data":"{\"attach_serial\":0}"}` {
		t.Fatalf("ack of an empty channel: %s", ack.raw)
	}
	publishN(t, s, ch, 5)
	var stream string
	for i := range 5 {
		f := fresh.nextMessage(t)
		if f.Serial != uint64(i+1) || f.dataString() != fmt.Sprint(i) {
			t.Fatalf("live message %d: %s", i, f.raw)
		}
		stream = f.StreamID
	}
	// The ack carries the head position and attach_serial.
	c := connectV2(t, s, v2Options{})
	ack = c.subscribeV2(t, ch, map[string]any{"rewind": 3})
	if ack.Serial != 5 || ack.StreamID != stream || string(ackData(t, ack)["attach_serial"]) != "5" {
		t.Fatalf("ack %s, want serial 5 on stream %s and attach_serial 5", ack.raw, stream)
	}
	for _, want := range []uint64{3, 4, 5} {
		if f := c.nextMessage(t); f.Serial != want {
			t.Fatalf("rewind frame %s, want serial %d", f.raw, want)
		}
	}
	done := c.expectV2(t, "sockudo:rewind_complete", ch)
	if string(done.Data) != `{"historical_count":3,"live_count":0,"complete":true,"truncated_by_retention":false,"truncated_by_limit":false}` {
		t.Fatalf("rewind_complete %s", done.Data)
	}
	// Live messages follow the rewind with no gap and no duplicate.
	publishN(t, s, ch, 1)
	if f := c.nextMessage(t); f.Serial != 6 {
		t.Fatalf("live after rewind: %s", f.raw)
	}
	// Other rewind shapes.
	for _, rw := range []any{"2", map[string]any{"count": 2}, map[string]any{"seconds": 3600}} {
		c := connectV2(t, s, v2Options{})
		c.subscribeV2(t, ch, map[string]any{"rewind": rw})
		n := 0
		for {
			f := c.nextV2(t)
			if f.Event == "sockudo:rewind_complete" {
				break
			}
			n++
		}
		if want := map[bool]int{true: 6, false: 2}[fmt.Sprint(rw) == "map[seconds:3600]"]; n != want {
			t.Errorf("rewind %v: %d messages, want %d", rw, n, want)
		}
	}
	// A bad rewind, or one on a channel without history, is refused.
	bad := connectV2(t, s, v2Options{})
	bad.sendSubscribeV2(t, ch, map[string]any{"rewind": 0})
	bad.expectV2Error(t, 4300)
	bad.expectV2(t, "sockudo:subscription_error", ch)
}

func testChannelHistoryFrame(t *testing.T, s *testkit.Server) {
	const ch = "hist-frame"
	publishN(t, s, ch, 7)
	c := connectV2(t, s, v2Options{})
	c.subscribeV2(t, ch, nil)
	publishN(t, s, ch, 1) // serial 8: after the attach point
	c.nextMessage(t)
	type page struct {
		Items []struct {
			Serial  uint64          `json:"serial"`
			Message json.RawMessage `json:"message"`
		} `json:"items"`
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
		Direction  string  `json:"direction"`
		Continuity struct {
			Newest   uint64 `json:"newest_available_serial"`
			Complete bool   `json:"complete"`
		} `json:"continuity"`
	}
	get := func(data map[string]any) page {
		t.Helper()
		data["channel"] = ch
		c.sendEvent(t, "sockudo:channel_history", "", data)
		f := c.expectV2(t, "sockudo:channel_history", ch)
		var p page
		if err := json.Unmarshal(f.Data, &p); err != nil {
			t.Fatalf("channel_history data %s: %v", f.Data, err)
		}
		return p
	}
	serials := func(p page) string {
		var out []string
		for _, it := range p.Items {
			out = append(out, fmt.Sprint(it.Serial))
		}
		return strings.Join(out, ",")
	}
	p := get(map[string]any{"limit": 3})
	if serials(p) != "8,7,6" || !p.HasMore || p.NextCursor == nil || p.Direction != "newest_first" || p.Continuity.Newest != 8 {
		t.Fatalf("first page %+v", p)
	}
	if !strings.Contains(string(p.Items[0].Message), `"serial":8`) {
		t.Fatalf("item message %s", p.Items[0].Message)
	}
	p2 := get(map[string]any{"limit": 3, "cursor": *p.NextCursor})
	if serials(p2) != "5,4,3" {
		t.Fatalf("second page %s", serials(p2))
	}
	// until_attach stops at the subscription's attach serial (7); params may nest.
	p3 := c
	_ = p3
	c.sendEvent(t, "sockudo:channel_history", "", map[string]any{"params": map[string]any{"channel": ch, "limit": 2, "until_attach": true, "direction": "forwards"}})
	f := c.expectV2(t, "sockudo:channel_history", ch)
	var pa page
	_ = json.Unmarshal(f.Data, &pa)
	if serials(pa) != "1,2" || pa.Direction != "oldest_first" {
		t.Fatalf("until_attach page %s", f.Data)
	}
	for {
		if pa.NextCursor == nil {
			break
		}
		c.sendEvent(t, "sockudo:channel_history", "", map[string]any{"channel": ch, "limit": 2, "until_attach": true, "direction": "forwards", "cursor": *pa.NextCursor})
		f := c.expectV2(t, "sockudo:channel_history", ch)
		var next page
		_ = json.Unmarshal(f.Data, &next)
		if len(next.Items) == 0 || next.Items[len(next.Items)-1].Serial > 7 {
			t.Fatalf("until_attach went past 7: %s", f.Data)
		}
		pa = next
	}
	// A cursor is bound to its direction, bounds, channel and app; a tampered one fails.
	c.sendEvent(t, "sockudo:channel_history", "", map[string]any{"channel": ch, "limit": 3, "direction": "oldest_first", "cursor": *p.NextCursor})
	c.expectV2Error(t, 4300)
	c.sendEvent(t, "sockudo:channel_history", "", map[string]any{"channel": ch, "limit": 3, "cursor": (*p.NextCursor)[:10] + "x" + (*p.NextCursor)[11:]})
	c.expectV2Error(t, 4300)
	c.sendEvent(t, "sockudo:channel_history", "", map[string]any{"channel": "hist-not-subscribed"})
	c.expectV2Error(t, 4300)
	c.sendEvent(t, "sockudo:channel_history", "", map[string]any{"channel": ch, "limit": 0})
	c.expectV2Error(t, 4000)
}

func testHTTPHistory(t *testing.T, s *testkit.Server) {
	const ch = "hist-http"
	publishN(t, s, ch, 5)
	path := "/apps/" + testkit.AppID + "/channels/" + ch + "/history"
	var p struct {
		Items []struct {
			Serial  uint64          `json:"serial"`
			Message json.RawMessage `json:"message"`
		} `json:"items"`
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
	}
	status, body := apiGet(t, s, path, url.Values{"limit": {"2"}, "direction": {"oldest_first"}})
	if status != 200 || json.Unmarshal([]byte(body), &p) != nil || len(p.Items) != 2 || p.Items[0].Serial != 1 || !p.HasMore || p.NextCursor == nil {
		t.Fatalf("HTTP %d %s", status, body)
	}
	var got []uint64
	for _, it := range p.Items {
		got = append(got, it.Serial)
	}
	for p.NextCursor != nil {
		status, body = apiGet(t, s, path, url.Values{"limit": {"2"}, "direction": {"oldest_first"}, "cursor": {*p.NextCursor}})
		p.NextCursor = nil
		if status != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("HTTP %d %s", status, body)
		}
		for _, it := range p.Items {
			got = append(got, it.Serial)
		}
	}
	if fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("paged serials %v", got)
	}
	status, body = apiGet(t, s, path, url.Values{"start_serial": {"2"}, "end_serial": {"3"}})
	if status != 200 || !strings.Contains(body, `"serial":3`) || strings.Contains(body, `"serial":4`) {
		t.Fatalf("bounded read: HTTP %d %s", status, body)
	}
	for q, want := range map[string]int{"limit=0": 400, "direction=sideways": 400, "start_serial=5&end_serial=2": 400, "cursor=garbage": 400} {
		v, _ := url.ParseQuery(q)
		if status, body := apiGet(t, s, path, v); status != want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: HTTP %d %s, want %d", q, status, body, want)
		}
	}
	if status, _ := apiGet(t, s, "/apps/"+testkit.AppID+"/channels/bad%20name/history", nil); status != http.StatusBadRequest {
		t.Errorf("bad channel name: HTTP %d", status)
	}
}

func resumeFrame(positions map[string]protocol.Position) map[string]any {
	b, _ := json.Marshal(map[string]any{"channel_positions": positions})
	return map[string]any{"event": "sockudo:resume", "data": string(b)} // double-encoded, as the SDKs send it
}

func (c *v2Client) sendResume(t testing.TB, positions map[string]protocol.Position) {
	t.Helper()
	b, _ := json.Marshal(resumeFrame(positions))
	c.send(t, string(b))
}

func testResumeFailures(t *testing.T, s *testkit.Server) {
	const ch = "hist-resume-fail"
	publishN(t, s, ch, 3)
	c := connectV2(t, s, v2Options{})
	ack := c.subscribeV2(t, ch, nil)
	c.subscribeV2(t, "hist-resume-fail-2", nil)
	c.sendResume(t, map[string]protocol.Position{
		ch:                   {StreamID: protocol.NewUUID(), Serial: 1},
		"hist-resume-fail-2": {StreamID: ack.StreamID, Serial: 1},
	})
	got := map[string]string{}
	for range 2 {
		f := c.expectV2(t, "sockudo:resume_failed", "")
		var d struct {
			Code   string `json:"code"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(f.dataString()), &d); err != nil {
			t.Fatalf("resume_failed %s", f.raw)
		}
		got[f.Channel] = d.Code + "/" + d.Reason
	}
	// (A channel not subscribed yet waits for its subscribe: resume_pending_test.go.)
	want := map[string]string{ch: "stream_reset/stream_id_mismatch", "hist-resume-fail-2": "stream_reset/stream_id_mismatch"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("failures %v\nwant %v", got, want)
	}
	done := c.expectV2(t, "sockudo:resume_success", "")
	if !strings.Contains(done.dataString(), `"recovered":[]`) || strings.Count(done.dataString(), `"code"`) != 2 {
		t.Fatalf("resume_success %s", done.raw)
	}
	// Ahead of the stream, and an empty request.
	c.sendResume(t, map[string]protocol.Position{ch: {StreamID: ack.StreamID, Serial: 99}})
	if f := c.expectV2(t, "sockudo:resume_failed", ch); !strings.Contains(f.dataString(), "continuity_unverifiable") {
		t.Fatalf("ahead: %s", f.raw)
	}
	c.expectV2(t, "sockudo:resume_success", "")
	c.sendResume(t, map[string]protocol.Position{})
	c.expectV2Error(t, 4302)
}

// testResumeMidStream cuts a client while messages keep flowing, reconnects it with its
// last position and checks the exact serials it received: every one from 1 to the end, in
// order, exactly once.
func testResumeMidStream(t *testing.T, s *testkit.Server) {
	const ch = "hist-resume-stream"
	const total = 300
	first := connectV2(t, s, v2Options{})
	first.subscribeV2(t, ch, nil)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			publish(t, s, map[string]any{"name": "tick", "channel": ch, "data": fmt.Sprint(i)})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var serials []uint64
	for len(serials) < 60 {
		serials = append(serials, first.nextMessage(t).Serial)
	}
	pos := first.positions[ch]
	_ = first.ws.CloseNow() // the network drops

	time.Sleep(100 * time.Millisecond) // messages keep flowing while the client is away
	second := connectV2(t, s, v2Options{})
	second.seenIDs = first.seenIDs
	// As the SDKs do: re-subscribe, then resume with the stored position.
	second.sendSubscribeV2(t, ch, nil)
	second.sendResume(t, map[string]protocol.Position{ch: pos})
	second.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
	sawSuccess := false
	for len(serials) < total {
		f := second.nextV2(t)
		switch f.Event {
		case "sockudo:resume_success":
			if !strings.Contains(f.dataString(), `"channel":"`+ch+`"`) || !strings.Contains(f.dataString(), `"failed":[]`) {
				t.Fatalf("resume_success %s", f.raw)
			}
			sawSuccess = true
		case "sockudo:resume_failed":
			t.Fatalf("resume failed: %s", f.raw)
		case "tick":
			serials = append(serials, f.Serial)
		default:
			t.Fatalf("unexpected frame %s", f.raw)
		}
	}
	wg.Wait()
	if !sawSuccess {
		t.Fatal("no resume_success before the end of the stream")
	}
	for i, s := range serials {
		if s != uint64(i+1) {
			t.Fatalf("serial #%d is %d: received %v", i, s, serials)
		}
	}
	second.expectQuiet(t)
}
