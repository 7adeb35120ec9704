package httpapi

import (
	"github.com/pushwire/pushwire/internal/testkit"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
)

// queryEnv is an API whose hub has: "test" (2 connections), "presence-room" (users u1 twice
// and u2: 3 connections, 2 users), "presence-lobby" (u3), "cache-news" (1 connection, last
// event cached 10 s ago) and "my-channel" (1 connection); the clock is fixed.
func queryEnv(t *testing.T) *env {
	t.Helper()
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	e := newEnv(t, Options{Now: clock.Now}, nil)
	subscribe(t, e.hub, "test", "")
	subscribe(t, e.hub, "test", "")
	subscribe(t, e.hub, "presence-room", "u1")
	subscribe(t, e.hub, "presence-room", "u2")
	subscribe(t, e.hub, "presence-room", "u1")
	subscribe(t, e.hub, "presence-lobby", "u3")
	subscribe(t, e.hub, "cache-news", "")
	subscribe(t, e.hub, "my-channel", "")
	if err := e.hub.Publish(testAppID, channels.Event{Name: "e", Channels: []string{"cache-news"}, Data: `{"n":1}`}); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Second)
	return e
}

// TestQueries checks the exact answers of the channel query endpoints.
func TestQueries(t *testing.T) {
	e := queryEnv(t)
	cases := []struct {
		name   string
		path   string // raw, as sent and signed
		params url.Values
		want   string
	}{
		{"channels", "/apps/app-id/channels", nil,
			`{"channels":{"cache-news":{},"my-channel":{},"presence-lobby":{},"presence-room":{},"test":{}}}`},
		{"channels by prefix", "/apps/app-id/channels", url.Values{"filter_by_prefix": {"presence-"}},
			`{"channels":{"presence-lobby":{},"presence-room":{}}}`},
		{"channels with subscription_count", "/apps/app-id/channels", url.Values{"filter_by_prefix": {"t"}, "info": {"subscription_count"}},
			`{"channels":{"test":{"subscription_count":2}}}`},
		{"presence channels with user_count", "/apps/app-id/channels", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count,subscription_count"}},
			`{"channels":{"presence-lobby":{"subscription_count":1,"user_count":1},"presence-room":{"subscription_count":3,"user_count":2}}}`},
		{"channels, none match", "/apps/app-id/channels", url.Values{"filter_by_prefix": {"private-"}},
			`{"channels":{}}`},
		{"channel", "/apps/app-id/channels/test", nil, `{"occupied":true}`},
		{"channel with subscription_count", "/apps/app-id/channels/test", url.Values{"info": {"subscription_count"}},
			`{"occupied":true,"subscription_count":2}`},
		{"unoccupied channel", "/apps/app-id/channels/nobody", url.Values{"info": {"subscription_count"}},
			`{"occupied":false,"subscription_count":0}`},
		{"presence channel", "/apps/app-id/channels/presence-room", url.Values{"info": {"user_count,subscription_count"}},
			`{"occupied":true,"subscription_count":3,"user_count":2}`},
		{"cache channel", "/apps/app-id/channels/cache-news", url.Values{"info": {"cache,subscription_count"}},
			`{"occupied":true,"subscription_count":1,"cache":{"data":"{\"event\":\"e\",\"channel\":\"cache-news\",\"data\":\"{\\\"n\\\":1}\"}","ttl":1790}}`},
		{"cache channel without info=cache", "/apps/app-id/channels/cache-news", nil, `{"occupied":true}`},
		{"cache on a non-cache channel", "/apps/app-id/channels/test", url.Values{"info": {"cache"}}, `{"occupied":true}`},
		{"escaped channel name", "/apps/app-id/channels/my%2Dchannel", nil, `{"occupied":true}`},
		{"users", "/apps/app-id/channels/presence-room/users", nil, `{"users":[{"id":"u1"},{"id":"u2"}]}`},
		{"users of an empty presence channel", "/apps/app-id/channels/presence-empty/users", nil, `{"users":[]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.call(t, http.MethodGet, tc.path, tc.params, nil)
			wantOK(t, resp, body, tc.want)
		})
	}
}

// TestQueryErrors checks the 400s of the query endpoints and the 404/405 of unknown routes.
func TestQueryErrors(t *testing.T) {
	e := queryEnv(t)
	cases := []struct {
		name    string
		method  string
		path    string
		params  url.Values
		status  int
		code    string
		mention string
	}{
		{"user_count without a prefix", "GET", "/apps/app-id/channels", url.Values{"info": {"user_count"}}, 400, "invalid_input", "filter_by_prefix=presence-"},
		{"user_count with another prefix", "GET", "/apps/app-id/channels", url.Values{"info": {"user_count"}, "filter_by_prefix": {"private-"}}, 400, "invalid_input", "presence"},
		{"user_count on a public channel", "GET", "/apps/app-id/channels/test", url.Values{"info": {"user_count"}}, 400, "invalid_input", `"test"`},
		{"invalid channel name", "GET", "/apps/app-id/channels/bad%20name", nil, 400, "invalid_input", `"bad name"`},
		{"channel name decoded once", "GET", "/apps/app-id/channels/my%252Dchannel", nil, 400, "invalid_input", `"my%2Dchannel"`},
		{"channel name too long", "GET", "/apps/app-id/channels/" + strings.Repeat("c", 201), nil, 400, "invalid_input", "longer than 200"},
		{"users of a public channel", "GET", "/apps/app-id/channels/test/users", nil, 400, "invalid_input", "presence"},
		{"users of an invalid channel", "GET", "/apps/app-id/channels/presence-a%20b/users", nil, 400, "invalid_input", `"presence-a b"`},
		{"unknown /apps route", "GET", "/apps/app-id/nothing", nil, 404, "not_found", "/apps/app-id/nothing"},
		{"unknown route", "GET", "/nothing", nil, 404, "not_found", "/nothing"},
		{"wrong method", "GET", "/apps/app-id/events", nil, 405, "method_not_allowed", "GET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.call(t, tc.method, tc.path, tc.params, nil)
			if msg := wantError(t, resp, body, tc.status, tc.code); !strings.Contains(msg, tc.mention) {
				t.Fatalf("message %q does not mention %q", msg, tc.mention)
			}
		})
	}
}
