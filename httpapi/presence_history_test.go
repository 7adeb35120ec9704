package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/presencehistory"
)

// presenceEnv is newEnv over a memory store keeping presence history (the default app has
// it on; edit may change that).
func presenceEnv(t *testing.T, edit func(*config.App)) *env {
	t.Helper()
	app := defaultApp()
	if edit != nil {
		edit(&app)
	}
	store := history.NewMemory(history.MemoryOptions{})
	ph := presencehistory.New(store, []config.App{app}, presencehistory.Options{})
	hub := channels.New([]config.App{app}, channels.Options{History: store, PresenceRecorder: ph})
	ts := httptest.NewServer(New(hub, Options{PresenceHistory: ph}))
	t.Cleanup(ts.Close)
	return &env{hub: hub, presence: ph, ts: ts, now: time.Now}
}

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

// TestPresenceHistoryShapes: the page, snapshot, state and reset answers carry exactly
// Sockudo's fields (what sockudo_flutter's PresenceChannel.history() and snapshot() parse).
func TestPresenceHistoryShapes(t *testing.T) {
	e := presenceEnv(t, nil)
	for _, u := range []string{"u1", "u2", "u3"} {
		subscribe(t, e.hub, "presence-room", u)
	}
	if err := e.presence.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, body := e.call(t, http.MethodGet, "/apps/app-id/channels/presence-room/presence/history", url.Values{"limit": {"2"}, "direction": {"oldest_first"}}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	page := decode(t, body)
	if got, want := keysOf(page), []string{"bounds", "continuity", "direction", "has_more", "items", "limit", "next_cursor", "stream_state"}; !reflect.DeepEqual(got, want) {
		t.Errorf("page keys %v, want %v", got, want)
	}
	items := page["items"].([]any)
	if len(items) != 2 || page["has_more"] != true || page["direction"] != "oldest_first" || page["limit"] != 2.0 {
		t.Fatalf("page %s", body)
	}
	it := items[0].(map[string]any)
	if got, want := keysOf(it), []string{"cause", "connection_id", "dead_node_id", "event", "payload_size_bytes", "presence_event", "published_at_ms", "serial", "stream_id", "user_id"}; !reflect.DeepEqual(got, want) {
		t.Errorf("item keys %v, want %v", got, want)
	}
	if it["serial"] != 1.0 || it["event"] != "member_added" || it["cause"] != "join" || it["user_id"] != "u1" || it["dead_node_id"] != nil {
		t.Errorf("item %v", it)
	}
	pe := it["presence_event"].(map[string]any)
	if got, want := keysOf(pe), []string{"cause", "connection_id", "dead_node_id", "event", "published_at_ms", "serial", "stream_id", "user_id", "user_info"}; !reflect.DeepEqual(got, want) {
		t.Errorf("presence_event keys %v, want %v", got, want)
	}
	cont := page["continuity"].(map[string]any)
	if got, want := keysOf(cont), []string{"complete", "degraded", "newest_available_published_at_ms", "newest_available_serial", "oldest_available_published_at_ms",
		"oldest_available_serial", "retained_bytes", "retained_events", "stream_id", "truncated_by_retention"}; !reflect.DeepEqual(got, want) {
		t.Errorf("continuity keys %v, want %v", got, want)
	}
	if cont["retained_events"] != 3.0 || cont["complete"] != false || cont["truncated_by_retention"] != false || cont["degraded"] != false {
		t.Errorf("continuity %v", cont)
	}
	ss := page["stream_state"].(map[string]any)
	if got, want := keysOf(ss), []string{"authoritative_source", "continuity_proven", "durable_state", "last_transition_at_ms", "node_id", "observed_source", "reason", "reset_required", "stream_id"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stream_state keys %v, want %v", got, want)
	}
	bounds := page["bounds"].(map[string]any)
	if got, want := keysOf(bounds), []string{"end_serial", "end_time_ms", "start_serial", "start_time_ms"}; !reflect.DeepEqual(got, want) {
		t.Errorf("bounds keys %v", got)
	}
	// The next page through the cursor.
	resp, body = e.call(t, http.MethodGet, "/apps/app-id/channels/presence-room/presence/history",
		url.Values{"limit": {"2"}, "direction": {"oldest_first"}, "cursor": {page["next_cursor"].(string)}}, nil)
	if p2 := decode(t, body); resp.StatusCode != 200 || len(p2["items"].([]any)) != 1 || p2["has_more"] != false || p2["next_cursor"] != nil ||
		p2["continuity"].(map[string]any)["complete"] != true {
		t.Fatalf("second page: %d %s", resp.StatusCode, body)
	}

	resp, body = e.call(t, http.MethodGet, "/apps/app-id/channels/presence-room/presence/history/snapshot", url.Values{"at_serial": {"2"}}, nil)
	snap := decode(t, body)
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot: %d %s", resp.StatusCode, body)
	}
	if got, want := keysOf(snap), []string{"channel", "continuity", "events_replayed", "member_count", "members", "snapshot_serial", "snapshot_time_ms"}; !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot keys %v", got)
	}
	members := snap["members"].([]any)
	if snap["member_count"] != 2.0 || len(members) != 2 || snap["snapshot_serial"] != 2.0 || snap["events_replayed"] != 2.0 {
		t.Errorf("snapshot %s", body)
	}
	if got, want := keysOf(members[0].(map[string]any)), []string{"last_event", "last_event_at_ms", "last_event_serial", "user_id"}; !reflect.DeepEqual(got, want) {
		t.Errorf("member keys %v", got)
	}

	resp, body = e.call(t, http.MethodGet, "/apps/app-id/channels/presence-room/presence/history/state", nil, nil)
	st := decode(t, body)
	if resp.StatusCode != 200 || st["channel"] != "presence-room" {
		t.Fatalf("state: %d %s", resp.StatusCode, body)
	}
	stream := st["stream"].(map[string]any)
	if got, want := keysOf(stream), []string{"next_serial", "retained", "state", "stream_id"}; !reflect.DeepEqual(got, want) || stream["next_serial"] != 4.0 {
		t.Errorf("stream %v", stream)
	}

	resp, body = e.call(t, http.MethodPost, "/apps/app-id/channels/presence-room/presence/history/reset", nil,
		[]byte(`{"confirm_channel":"presence-room","confirm_operation":"reset","reason":"test","requested_by":"ops"}`))
	rs := decode(t, body)
	if resp.StatusCode != 200 || rs["ok"] != true || rs["purged_events"] != 3.0 || rs["previous_stream_id"] == rs["new_stream_id"] || rs["requested_by"] != "ops" {
		t.Fatalf("reset: %d %s", resp.StatusCode, body)
	}
	if got, want := keysOf(rs), []string{"channel", "new_stream_id", "ok", "operation", "previous_stream_id", "purged_bytes", "purged_events", "reason", "requested_by", "stream"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reset keys %v", got)
	}
}

// TestPresenceHistoryErrors: refusals in the JSON error envelope.
func TestPresenceHistoryErrors(t *testing.T) {
	e := presenceEnv(t, nil)
	for i := range 3 {
		subscribe(t, e.hub, "presence-a", fmt.Sprint("u", i))
		subscribe(t, e.hub, "presence-b", fmt.Sprint("u", i))
	}
	_ = e.presence.Flush(context.Background())
	_, body := e.call(t, http.MethodGet, "/apps/app-id/channels/presence-a/presence/history", url.Values{"limit": {"1"}}, nil)
	cursor := decode(t, body)["next_cursor"].(string)
	const base = "/apps/app-id/channels/"
	cases := []struct {
		name   string
		method string
		path   string
		params url.Values
		body   string
		status int
		code   string
		msg    string
	}{
		{"not presence", "GET", base + "private-a/presence/history", nil, "", 400, "invalid_input", "Only presence channels"},
		{"not presence snapshot", "GET", base + "chat/presence/history/snapshot", nil, "", 400, "invalid_input", "Only presence channels"},
		{"cursor of another channel", "GET", base + "presence-b/presence/history", url.Values{"limit": {"1"}, "cursor": {cursor}}, "", 400, "invalid_input", "does not belong"},
		{"bad limit", "GET", base + "presence-a/presence/history", url.Values{"limit": {"0"}}, "", 400, "invalid_input", "limit"},
		{"bad direction", "GET", base + "presence-a/presence/history", url.Values{"direction": {"sideways"}}, "", 400, "invalid_input", "direction"},
		{"bad at_serial", "GET", base + "presence-a/presence/history/snapshot", url.Values{"at_serial": {"x"}}, "", 400, "invalid_input", "at_serial"},
		{"bad at_time_ms", "GET", base + "presence-a/presence/history/snapshot", url.Values{"at_time_ms": {"-5"}}, "", 400, "invalid_input", "at_time_ms"},
		{"reset unconfirmed", "POST", base + "presence-a/presence/history/reset", nil, `{"confirm_channel":"presence-b","confirm_operation":"reset","reason":"x"}`, 400, "invalid_input", "confirm_channel"},
		{"reset without reason", "POST", base + "presence-a/presence/history/reset", nil, `{"confirm_channel":"presence-a","confirm_operation":"reset","reason":" "}`, 400, "invalid_input", "reason"},
	}
	for _, c := range cases {
		var b []byte
		if c.body != "" {
			b = []byte(c.body)
		}
		resp, body := e.call(t, c.method, c.path, c.params, b)
		m := decode(t, body)
		if resp.StatusCode != c.status || m["code"] != c.code || !strings.Contains(fmt.Sprint(m["error"]), c.msg) {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, body)
		}
	}
	off := presenceEnv(t, func(a *config.App) { f := false; a.PresenceHistory.Enabled = &f })
	resp, body := off.call(t, http.MethodGet, base+"presence-a/presence/history", nil, nil)
	if m := decode(t, body); resp.StatusCode != 422 || m["code"] != "feature_disabled" {
		t.Errorf("disabled: %d %s", resp.StatusCode, body)
	}
}

// FuzzParseHistoryQuery: no query makes the page parser panic; what it accepts is in range.
func FuzzParseHistoryQuery(f *testing.F) {
	f.Add("newest_first", "10", "", "1", "5", "0", "")
	f.Add("forwards", "1000", "abc", "", "", "1700000000000", "1700000001000")
	f.Add("x", "-1", "", "18446744073709551616", "", "", "")
	f.Fuzz(func(t *testing.T, dir, limit, cursor, start, end, startMs, endMs string) {
		params := map[string]string{}
		for k, v := range map[string]string{"direction": dir, "limit": limit, "cursor": cursor, "start_serial": start, "end_serial": end,
			"start_time_ms": startMs, "end_time_ms": endMs} {
			if v != "" {
				params[k] = v
			}
		}
		req, err := parseHistoryQuery(params)
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("refusal %+v", err)
			}
			return
		}
		if req.Limit < 0 || req.Limit > channels.MaxHistoryPage || req.StartMs < 0 || req.EndMs < 0 || req.Cursor != cursor {
			t.Fatalf("accepted %+v", req)
		}
	})
}

// FuzzParseSnapshotQuery: the snapshot's at_serial / at_time_ms / at.
func FuzzParseSnapshotQuery(f *testing.F) {
	f.Add("1", "", "")
	f.Add("", "1700000000000", "")
	f.Add("0", "x", "-1")
	f.Fuzz(func(t *testing.T, serial, timeMs, at string) {
		params := map[string]string{}
		for k, v := range map[string]string{"at_serial": serial, "at_time_ms": timeMs, "at": at} {
			if v != "" {
				params[k] = v
			}
		}
		got, err := parseSnapshotQuery(params)
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("refusal %+v", err)
			}
			return
		}
		if got.TimeMs < 0 || (serial != "" && got.Serial == 0) {
			t.Fatalf("accepted %+v", got)
		}
	})
}
