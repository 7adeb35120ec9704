package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	pusher "github.com/pusher/pusher-http-go/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

func setup(t *testing.T) (*channels.Hub, *httptest.Server, *pusher.Client) {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	app.MaxEventChannelsAtOnce = 3
	app.MaxEventPayloadKB = 1
	hub := channels.New([]config.App{app}, channels.Options{})
	ts := httptest.NewServer(New(hub, Options{}))
	t.Cleanup(ts.Close)
	c := &pusher.Client{AppID: "app-id", Key: "app-key", Secret: "app-secret", Host: strings.TrimPrefix(ts.URL, "http://")}
	return hub, ts, c
}

func subscribe(t *testing.T, hub *channels.Hub, channel, userID string) *channelstest.Sub {
	t.Helper()
	sub := channelstest.New(protocol.NewSocketID())
	conn, perr := hub.Connect("app-key", sub)
	if perr != nil {
		t.Fatal(perr)
	}
	req := channels.SubscribeRequest{Channel: channel}
	switch protocol.Classify(channel).Type {
	case protocol.Private:
		req.Auth = protocol.AuthToken("app-key", "app-secret", protocol.ChannelStringToSign(sub.SocketID(), channel, "", false))
	case protocol.Presence:
		req.ChannelData = `{"user_id":"` + userID + `"}`
		req.Auth = protocol.AuthToken("app-key", "app-secret", protocol.ChannelStringToSign(sub.SocketID(), channel, req.ChannelData, true))
	}
	if err := conn.Subscribe(req); err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestGoSDK(t *testing.T) {
	hub, ts, c := setup(t)
	a := subscribe(t, hub, "test-channel", "")
	b := subscribe(t, hub, "test-channel", "")
	p1 := subscribe(t, hub, "presence-room", "u1")
	subscribe(t, hub, "presence-room", "u2")

	if err := c.Trigger("test-channel", "my-event", map[string]string{"hello": "world"}); err != nil {
		t.Fatal(err)
	}
	want := `{"event":"my-event","channel":"test-channel","data":"{\"hello\":\"world\"}"}`
	for _, s := range []*channelstest.Sub{a, b} {
		frames := s.WaitFrames(t, 2, 2*time.Second)
		if frames[1] != want {
			t.Fatalf("got %s want %s", frames[1], want)
		}
	}
	// socket_id exclusion + info.
	excl := a.SocketID()
	res, err := c.TriggerWithParams("test-channel", "x", "d", pusher.TriggerParams{SocketID: &excl, Info: strPtr("subscription_count")})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Channels["test-channel"].SubscriptionCount; got == nil || *got != 2 {
		t.Fatalf("subscription_count %v", got)
	}
	b.WaitFrames(t, 3, 2*time.Second)
	if a.Len() != 2 {
		t.Fatalf("excluded socket got the event: %v", a.Frames())
	}
	if err := c.TriggerMulti([]string{"test-channel", "other"}, "multi", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TriggerBatch([]pusher.Event{{Channel: "test-channel", Name: "b1", Data: "1"}, {Channel: "test-channel", Name: "b2", Data: "2"}}); err != nil {
		t.Fatal(err)
	}
	b.WaitFrames(t, 6, 2*time.Second)

	list, err := c.Channels(pusher.ChannelsParams{FilterByPrefix: strPtr("presence-"), Info: strPtr("user_count")})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.Channels["presence-room"].UserCount; got != 2 {
		t.Fatalf("user_count %d", got)
	}
	ch, err := c.Channel("presence-room", pusher.ChannelParams{Info: strPtr("user_count,subscription_count")})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Occupied || ch.UserCount != 2 || ch.SubscriptionCount != 2 {
		t.Fatalf("channel %+v", ch)
	}
	users, err := c.GetChannelUsers("presence-room")
	if err != nil || len(users.List) != 2 || users.List[0].ID != "u1" {
		t.Fatalf("users %+v %v", users, err)
	}
	// pusher-http-go v5.1.1 has no terminate call: sign it as the Node SDK does, body {}.
	term := []byte("{}")
	resp, err := http.Post(signedURL(ts, "POST", "/apps/app-id/users/u1/terminate_connections", nil, term, "app-secret", time.Now()), "application/json", bytes.NewReader(term))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("terminate: %v %v", resp, err)
	}
	resp.Body.Close()
	if p1.WaitClosed(t, 2*time.Second) == nil {
		t.Fatal("u1 not terminated")
	}
}

func strPtr(s string) *string { return &s }

func signedURL(ts *httptest.Server, method, path string, params url.Values, body []byte, secret string, now time.Time) string {
	return ts.URL + path + "?" + protocol.SignAPIRequest("app-key", secret, method, path, params, body, now)
}

func TestErrors(t *testing.T) {
	_, ts, _ := setup(t)
	now := time.Now()
	ev := []byte(`{"name":"e","channel":"c","data":"x"}`)
	cases := []struct {
		name, method, url string
		body              []byte
		status            int
		code              string
	}{
		{"bad signature", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, ev, "wrong", now), ev, 401, "auth_failed"},
		{"expired", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, ev, "app-secret", now.Add(-11*time.Minute)), ev, 401, "auth_failed"},
		{"md5 mismatch", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, []byte("{}"), "app-secret", now), ev, 401, "auth_failed"},
		{"md5 on GET", "GET", signedURL(ts, "GET", "/apps/app-id/channels", nil, []byte{}, "app-secret", now), nil, 401, "auth_failed"},
		{"no auth", "GET", ts.URL + "/apps/app-id/channels", nil, 400, "invalid_input"},
		{"unknown key", "GET", strings.Replace(signedURL(ts, "GET", "/apps/app-id/channels", nil, nil, "app-secret", now), "auth_key=app-key", "auth_key=nope", 1), nil, 404, "app_not_found"},
		{"wrong app id", "GET", signedURL(ts, "GET", "/apps/other/channels", nil, nil, "app-secret", now), nil, 401, "auth_failed"},
		{"bad json", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, []byte(`{"name":`), "app-secret", now), []byte(`{"name":`), 400, "invalid_input"},
		{"wrong type", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, []byte(`{"name":5,"channel":"c"}`), "app-secret", now), []byte(`{"name":5,"channel":"c"}`), 400, "invalid_input"},
		{"bad channel", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, []byte(`{"name":"e","channel":"a b"}`), "app-secret", now), []byte(`{"name":"e","channel":"a b"}`), 400, "invalid_input"},
		{"too many channels", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, []byte(`{"name":"e","channels":["a","b","c","d"]}`), "app-secret", now), []byte(`{"name":"e","channels":["a","b","c","d"]}`), 400, "limit_exceeded"},
		{"payload too large", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, []byte(`{"name":"e","channel":"c","data":"`+strings.Repeat("x", 2000)+`"}`), "app-secret", now), []byte(`{"name":"e","channel":"c","data":"` + strings.Repeat("x", 2000) + `"}`), 413, "payload_too_large"},
		{"reserved name", "POST", signedURL(ts, "POST", "/apps/app-id/events", nil, []byte(`{"name":"pusher:x","channel":"c"}`), "app-secret", now), []byte(`{"name":"pusher:x","channel":"c"}`), 400, "invalid_input"},
		{"user_count without presence prefix", "GET", signedURL(ts, "GET", "/apps/app-id/channels", url.Values{"info": {"user_count"}}, nil, "app-secret", now), nil, 400, "invalid_input"},
		{"users of public channel", "GET", signedURL(ts, "GET", "/apps/app-id/channels/public/users", nil, nil, "app-secret", now), nil, 400, "invalid_input"},
		{"batch too big", "POST", signedURL(ts, "POST", "/apps/app-id/batch_events", nil, []byte(`{"batch":[`+strings.Repeat(`{"name":"e","channel":"c"},`, 10)+`{"name":"e","channel":"c"}]}`), "app-secret", now), []byte(`{"batch":[` + strings.Repeat(`{"name":"e","channel":"c"},`, 10) + `{"name":"e","channel":"c"}]}`), 400, "limit_exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, bytes.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e struct {
				Error  string
				Code   string
				Status int
			}
			if resp.StatusCode != tc.status || json.Unmarshal(body, &e) != nil || e.Code != tc.code || e.Status != tc.status || e.Error == "" {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
}

func TestBatchValidatesBeforePublishing(t *testing.T) {
	hub, ts, _ := setup(t)
	s := subscribe(t, hub, "c", "")
	body := []byte(`{"batch":[{"name":"ok","channel":"c","data":"1"},{"name":"bad","channel":"a b"}]}`)
	resp, err := http.Post(signedURL(ts, "POST", "/apps/app-id/batch_events", nil, body, "app-secret", time.Now()), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || s.Len() != 1 {
		t.Fatalf("status %d, frames %v", resp.StatusCode, s.Frames())
	}
}
