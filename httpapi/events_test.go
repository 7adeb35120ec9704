package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
)

// limited sets small limits on the test app: 3 channels per publish, 1 KB of data, 3 events
// per batch and 20-byte event names.
func limited(a *config.App) {
	a.MaxEventChannelsAtOnce = 3
	a.MaxEventPayloadKB = 1
	a.MaxEventBatchSize = 3
	a.MaxEventNameLength = 20
}

// TestPublish posts raw /events bodies (no Content-Type header: the API does not require
// one) and checks the answer and the exact frames of subscribers "a" and "b" on "test", "o"
// on "other" and "p" (user u1) on "presence-room".
func TestPublish(t *testing.T) {
	cases := []struct {
		name string
		// body may hold {A}, replaced by subscriber a's socket id.
		body   string
		answer string
		want   map[string][]string
	}{
		{
			name:   "string data",
			body:   `{"name":"my-event","channel":"test","data":"{\"a\":1}"}`,
			answer: `{}`,
			want: map[string][]string{
				"a": {`{"event":"my-event","channel":"test","data":"{\"a\":1}"}`},
				"b": {`{"event":"my-event","channel":"test","data":"{\"a\":1}"}`},
			},
		},
		{
			name:   "object data is re-serialised compactly",
			body:   `{"name":"e","channel":"other","data":{ "a" : 1, "b": [true, null, "<&>"] }}`,
			answer: `{}`,
			want:   map[string][]string{"o": {`{"event":"e","channel":"other","data":"{\"a\":1,\"b\":[true,null,\"<&>\"]}"}`}},
		},
		{
			name:   "number data",
			body:   `{"name":"e","channel":"other","data":42.50}`,
			answer: `{}`,
			want:   map[string][]string{"o": {`{"event":"e","channel":"other","data":"42.50"}`}},
		},
		{
			name:   "missing data is null",
			body:   `{"name":"e","channel":"other"}`,
			answer: `{}`,
			want:   map[string][]string{"o": {`{"event":"e","channel":"other","data":"null"}`}},
		},
		{
			name:   "escaped string data",
			body:   `{"name":"e","channel":"other","data":"line\nbreak \u00e9 \"q\" <tag>"}`,
			answer: `{}`,
			want:   map[string][]string{"o": {`{"event":"e","channel":"other","data":"line\nbreak é \"q\" <tag>"}`}},
		},
		{
			name:   "channels wins over channel",
			body:   `{"name":"e","channel":"test","channels":["other","presence-room"],"data":"x"}`,
			answer: `{}`,
			want: map[string][]string{
				"o": {`{"event":"e","channel":"other","data":"x"}`},
				"p": {`{"event":"e","channel":"presence-room","data":"x"}`},
			},
		},
		{
			name:   "null channels falls back to channel",
			body:   `{"name":"e","channel":"other","channels":null,"data":"x"}`,
			answer: `{}`,
			want:   map[string][]string{"o": {`{"event":"e","channel":"other","data":"x"}`}},
		},
		{
			name:   "socket_id is excluded",
			body:   `{"name":"e","channels":["test","other"],"data":"x","socket_id":"{A}"}`,
			answer: `{}`,
			want: map[string][]string{
				"b": {`{"event":"e","channel":"test","data":"x"}`},
				"o": {`{"event":"e","channel":"other","data":"x"}`},
			},
		},
		{
			name:   "an invalid socket_id excludes nobody",
			body:   `{"name":"e","channel":"test","data":"x","socket_id":"not-a-socket"}`,
			answer: `{}`,
			want: map[string][]string{
				"a": {`{"event":"e","channel":"test","data":"x"}`},
				"b": {`{"event":"e","channel":"test","data":"x"}`},
			},
		},
		{
			name:   "info counts after publishing",
			body:   `{"name":"e","channels":["test","presence-room","nobody"],"data":"x","info":"subscription_count, user_count"}`,
			answer: `{"channels":{"nobody":{"subscription_count":0},"presence-room":{"subscription_count":1,"user_count":1},"test":{"subscription_count":2}}}`,
			want: map[string][]string{
				"a": {`{"event":"e","channel":"test","data":"x"}`},
				"b": {`{"event":"e","channel":"test","data":"x"}`},
				"p": {`{"event":"e","channel":"presence-room","data":"x"}`},
			},
		},
		{
			name:   "user_count only on presence channels",
			body:   `{"name":"e","channel":"other","data":"x","info":"user_count"}`,
			answer: `{"channels":{"other":{}}}`,
			want:   map[string][]string{"o": {`{"event":"e","channel":"other","data":"x"}`}},
		},
		{
			name:   "data at the payload limit",
			body:   `{"name":"e","channel":"other","data":"` + strings.Repeat("x", 1024) + `"}`,
			answer: `{}`,
			want:   map[string][]string{"o": {frame("e", "other", strings.Repeat("x", 1024))}},
		},
		{
			name:   "name at the length limit",
			body:   `{"name":"` + strings.Repeat("n", 20) + `","channel":"other","data":"x"}`,
			answer: `{}`,
			want:   map[string][]string{"o": {frame(strings.Repeat("n", 20), "other", "x")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{}, limited)
			s := map[string]*channelstest.Sub{
				"a": subscribe(t, e.hub, "test", ""),
				"b": subscribe(t, e.hub, "test", ""),
				"o": subscribe(t, e.hub, "other", ""),
				"p": subscribe(t, e.hub, "presence-room", "u1"),
			}
			body := strings.ReplaceAll(tc.body, "{A}", s["a"].SocketID())
			resp, got := e.call(t, http.MethodPost, "/apps/app-id/events", nil, []byte(body))
			wantOK(t, resp, got, tc.answer)
			for name, sub := range s {
				wantFrames(t, name, sub, tc.want[name]...)
			}
		})
	}
}

// TestPublishErrors checks that every invalid publish is refused with its status and code,
// a message naming what is wrong, and that nothing is delivered.
func TestPublishErrors(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		status  int
		code    string
		mention string // the message must contain it
	}{
		{"truncated JSON", `{"name":"e","channel":`, 400, "invalid_input", "end of input"},
		{"malformed JSON", `{"name":"e",}`, 400, "invalid_input", "syntax error at offset 13"},
		{"trailing data", `{"name":"e","channel":"test"} {}`, 400, "invalid_input", "trailing data"},
		{"empty body", ``, 400, "invalid_input", "empty"},
		{"not an object", `["test"]`, 400, "invalid_input", "object"},
		{"name not a string", `{"name":5,"channel":"test"}`, 400, "invalid_input", `"name"`},
		{"channel not a string", `{"name":"e","channel":["test"]}`, 400, "invalid_input", `"channel"`},
		{"channels not an array", `{"name":"e","channels":"test"}`, 400, "invalid_input", `"channels"`},
		{"channels of numbers", `{"name":"e","channels":[1]}`, 400, "invalid_input", `"channels`},
		{"socket_id not a string", `{"name":"e","channel":"test","socket_id":1.2}`, 400, "invalid_input", `"socket_id"`},
		{"info not a string", `{"name":"e","channel":"test","info":["user_count"]}`, 400, "invalid_input", `"info"`},
		{"no channel", `{"name":"e","data":"x"}`, 400, "missing_channel_info", "channel"},
		{"empty channels", `{"name":"e","channel":"test","channels":[]}`, 400, "missing_channel_info", "channels"},
		{"too many channels", `{"name":"e","channels":["test","a","b","c"]}`, 400, "limit_exceeded", "limit is 3"},
		{"invalid channel name", `{"name":"e","channels":["test","bad channel"]}`, 400, "invalid_input", `"bad channel"`},
		{"channel name too long", `{"name":"e","channel":"` + strings.Repeat("c", 201) + `"}`, 400, "invalid_input", strings.Repeat("c", 64)},
		{"empty channel name", `{"name":"e","channels":["test",""]}`, 400, "invalid_input", `""`},
		{"no name", `{"channel":"test","data":"x"}`, 400, "invalid_input", "name"},
		{"name too long", `{"name":"` + strings.Repeat("n", 21) + `","channel":"test"}`, 400, "limit_exceeded", "limit is 20"},
		{"pusher: prefix", `{"name":"pusher:x","channel":"test"}`, 400, "invalid_input", "reserved"},
		{"pusher_internal: prefix", `{"name":"pusher_internal:x","channel":"test"}`, 400, "invalid_input", "reserved"},
		{"sockudo: prefix", `{"name":"sockudo:x","channel":"test"}`, 400, "invalid_input", "reserved"},
		{"string data too large", `{"name":"e","channel":"test","data":"` + strings.Repeat("x", 1025) + `"}`, 413, "payload_too_large", "1025 bytes"},
		{"JSON data too large", `{"name":"e","channel":"test","data":["` + strings.Repeat("x", 1022) + `"]}`, 413, "payload_too_large", "1026 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{}, limited)
			sub := subscribe(t, e.hub, "test", "")
			resp, body := e.call(t, http.MethodPost, "/apps/app-id/events", nil, []byte(tc.body))
			if msg := wantError(t, resp, body, tc.status, tc.code); !strings.Contains(msg, tc.mention) {
				t.Fatalf("message %q does not mention %q", msg, tc.mention)
			}
			wantFrames(t, "subscriber", sub)
		})
	}
}

// TestBatch checks POST /batch_events: order of delivery, per-item socket_id, the {} and
// {"batch":[...]} answers.
func TestBatch(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		answer string
		want   map[string][]string
	}{
		{
			name:   "no info",
			body:   `{"batch":[{"name":"b1","channel":"test","data":"1"},{"name":"b2","channel":"other","data":{"n":2}},{"name":"b3","channel":"test","data":"3","socket_id":"{A}"}]}`,
			answer: `{}`,
			want: map[string][]string{
				"a": {frame("b1", "test", "1")},
				"b": {frame("b1", "test", "1"), frame("b3", "test", "3")},
				"o": {frame("b2", "other", `{"n":2}`)},
			},
		},
		{
			name:   "info per item",
			body:   `{"batch":[{"name":"b1","channel":"test","data":"1"},{"name":"b2","channel":"test","data":"2","info":"subscription_count"},{"name":"b3","channel":"presence-room","data":"3","info":"user_count,subscription_count"}]}`,
			answer: `{"batch":[{},{"subscription_count":2},{"subscription_count":1,"user_count":1}]}`,
			want: map[string][]string{
				"a": {frame("b1", "test", "1"), frame("b2", "test", "2")},
				"b": {frame("b1", "test", "1"), frame("b2", "test", "2")},
				"p": {frame("b3", "presence-room", "3")},
			},
		},
		{
			name:   "item with channels",
			body:   `{"batch":[{"name":"b1","channels":["other","test"],"data":"1","info":"subscription_count"}]}`,
			answer: `{"batch":[{"subscription_count":1}]}`,
			want: map[string][]string{
				"a": {frame("b1", "test", "1")},
				"b": {frame("b1", "test", "1")},
				"o": {frame("b1", "other", "1")},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{}, limited)
			s := map[string]*channelstest.Sub{
				"a": subscribe(t, e.hub, "test", ""),
				"b": subscribe(t, e.hub, "test", ""),
				"o": subscribe(t, e.hub, "other", ""),
				"p": subscribe(t, e.hub, "presence-room", "u1"),
			}
			body := strings.ReplaceAll(tc.body, "{A}", s["a"].SocketID())
			resp, got := e.call(t, http.MethodPost, "/apps/app-id/batch_events", nil, []byte(body))
			wantOK(t, resp, got, tc.answer)
			for name, sub := range s {
				wantFrames(t, name, sub, tc.want[name]...)
			}
		})
	}
}

// TestBatchErrors checks that a batch with one bad item, or too many items, publishes
// nothing at all.
func TestBatchErrors(t *testing.T) {
	ok := `{"name":"ok","channel":"test","data":"1"}`
	cases := []struct {
		name    string
		body    string
		status  int
		code    string
		mention string
	}{
		{"too many items", `{"batch":[` + strings.Repeat(ok+",", 3) + ok + `]}`, 400, "limit_exceeded", "limit is 3"},
		{"empty batch", `{"batch":[]}`, 400, "invalid_input", "batch"},
		{"no batch", `{}`, 400, "invalid_input", "batch"},
		{"batch not an array", `{"batch":{"name":"e"}}`, 400, "invalid_input", `"batch"`},
		{"malformed JSON", `{"batch":[` + ok, 400, "invalid_input", "Invalid JSON body"},
		{"bad channel in the last item", `{"batch":[` + ok + `,` + ok + `,{"name":"e","channel":"a b"}]}`, 400, "invalid_input", `batch[2]: `},
		{"reserved name in an item", `{"batch":[` + ok + `,{"name":"pusher:e","channel":"test"}]}`, 400, "invalid_input", "batch[1]: "},
		{"item without a channel", `{"batch":[` + ok + `,{"name":"e"}]}`, 400, "missing_channel_info", "batch[1]: "},
		{"item of the wrong type", `{"batch":[` + ok + `,"e"]}`, 400, "invalid_input", "batch[1]: "},
		{"item field of the wrong type", `{"batch":[` + ok + `,{"name":"e","channel":"test","info":1}]}`, 400, "invalid_input", `"info"`},
		{"item data too large", `{"batch":[` + ok + `,{"name":"e","channel":"test","data":"` + strings.Repeat("x", 1025) + `"}]}`, 413, "payload_too_large", "batch[1]: "},
		{"item with too many channels", `{"batch":[` + ok + `,{"name":"e","channels":["a","b","c","d"]}]}`, 400, "limit_exceeded", "batch[1]: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{}, limited)
			sub := subscribe(t, e.hub, "test", "")
			resp, body := e.call(t, http.MethodPost, "/apps/app-id/batch_events", nil, []byte(tc.body))
			if msg := wantError(t, resp, body, tc.status, tc.code); !strings.Contains(msg, tc.mention) {
				t.Fatalf("message %q does not mention %q", msg, tc.mention)
			}
			wantFrames(t, "subscriber", sub)
		})
	}
}

// TestBatchSizeDefault checks the default limit of 10 events per batch.
func TestBatchSizeDefault(t *testing.T) {
	item := `{"name":"e","channel":"test","data":"x"}`
	for _, tc := range []struct {
		items  int
		status int
	}{{10, 200}, {11, 400}} {
		e := newEnv(t, Options{}, nil)
		sub := subscribe(t, e.hub, "test", "")
		body := `{"batch":[` + strings.TrimSuffix(strings.Repeat(item+",", tc.items), ",") + `]}`
		resp, got := e.call(t, http.MethodPost, "/apps/app-id/batch_events", nil, []byte(body))
		if resp.StatusCode != tc.status {
			t.Fatalf("%d items: %d %s", tc.items, resp.StatusCode, got)
		}
		if n := len(sub.Take()); (tc.status == 200) != (n == tc.items) || (tc.status != 200 && n != 0) {
			t.Fatalf("%d items: %d delivered", tc.items, n)
		}
	}
}
