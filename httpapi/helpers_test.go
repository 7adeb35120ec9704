package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pusher "github.com/pusher/pusher-http-go/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
)

const (
	testAppID  = "app-id"
	testKey    = "app-key"
	testSecret = "app-secret"
)

// env is one API in front of a real hub with one app (config.DefaultApp: app-id, app-key,
// app-secret), served by an httptest.Server.
type env struct {
	hub      *channels.Hub
	presence *presencehistory.Service // presenceEnv only
	ts       *httptest.Server
	// now is the clock the requests are signed with.
	now func() time.Time
}

// newEnv starts the API with opts for the default app changed by edit (nil: defaults).
func newEnv(t *testing.T, opts Options, edit func(*config.App)) *env {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	if edit != nil {
		edit(&app)
	}
	hub := channels.New([]config.App{app}, channels.Options{Now: opts.Now})
	ts := httptest.NewServer(New(hub, opts))
	t.Cleanup(ts.Close)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &env{hub: hub, ts: ts, now: now}
}

// setupOpts is newEnv for tests that only need the hub and the server.
func setupOpts(t *testing.T, opts Options, edit func(*config.App)) (*channels.Hub, *httptest.Server) {
	t.Helper()
	e := newEnv(t, opts, edit)
	return e.hub, e.ts
}

// sdk returns the official Pusher Go SDK pointed at the test server.
func (e *env) sdk(secret string) *pusher.Client {
	return &pusher.Client{AppID: testAppID, Key: testKey, Secret: secret, Host: strings.TrimPrefix(e.ts.URL, "http://")}
}

// signedURL returns the URL of path signed with secret by protocol.SignAPIRequest.
func signedURL(ts *httptest.Server, method, path string, params url.Values, body []byte, secret string, now time.Time) string {
	return ts.URL + path + "?" + protocol.SignAPIRequest(testKey, secret, method, path, params, body, now)
}

// call sends a correctly signed request: body_md5 is added for POST only (body nil on GET).
func (e *env) call(t *testing.T, method, path string, params url.Values, body []byte) (*http.Response, []byte) {
	t.Helper()
	if method == http.MethodPost && body == nil {
		body = []byte{}
	}
	return do(t, method, signedURL(e.ts, method, path, params, body, testSecret, e.now()), body)
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, method, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader = http.NoBody
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// wantOK fails unless the answer is a 200 JSON body equal to want.
func wantOK(t *testing.T, resp *http.Response, body []byte, want string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK || string(body) != want || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s (%s), want 200 %s (application/json)", resp.StatusCode, body, resp.Header.Get("Content-Type"), want)
	}
}

// wantError fails unless the answer is the JSON error envelope with this status and code;
// it returns the message.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) string {
	t.Helper()
	var e struct {
		Error  *string `json:"error"`
		Code   *string `json:"code"`
		Status *int    `json:"status"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil || e.Code == nil || e.Status == nil {
		t.Fatalf("got %d %s: not the error envelope (%v)", resp.StatusCode, body, err)
	}
	if resp.StatusCode != status || *e.Status != status || *e.Code != code || *e.Error == "" {
		t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, status, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	return *e.Error
}

// subscribe connects a fake subscriber (channelstest.Sub, which implements
// channels.Subscriber and records every frame) and subscribes it to channel, signing private
// and presence subscriptions as a client's auth endpoint would (userID for presence). The
// frames of the subscription itself are discarded.
func subscribe(t *testing.T, hub *channels.Hub, channel, userID string) *channelstest.Sub {
	t.Helper()
	sub := channelstest.New(protocol.NewSocketID())
	conn, perr := hub.Connect(testKey, sub)
	if perr != nil {
		t.Fatal(perr)
	}
	req := channels.SubscribeRequest{Channel: channel}
	switch protocol.Classify(channel).Type {
	case protocol.Private, protocol.Encrypted:
		req.Auth = protocol.AuthToken(testKey, testSecret, protocol.ChannelStringToSign(sub.SocketID(), channel, "", false))
	case protocol.Presence:
		req.ChannelData = `{"user_id":"` + userID + `"}`
		req.Auth = protocol.AuthToken(testKey, testSecret, protocol.ChannelStringToSign(sub.SocketID(), channel, req.ChannelData, true))
	}
	if err := conn.Subscribe(req); err != nil {
		t.Fatal(err)
	}
	sub.Take()
	return sub
}

// takeAll discards the frames every sub received so far (such as member_added).
func takeAll(subs ...*channelstest.Sub) {
	for _, s := range subs {
		s.Take()
	}
}

// wantFrames fails unless sub received exactly these frames since its last Take, and
// forgets them. Hub.Publish delivers synchronously, so no waiting is needed after a 200.
func wantFrames(t *testing.T, name string, sub *channelstest.Sub, want ...string) {
	t.Helper()
	got := sub.Take()
	if !slices.Equal(got, want) {
		t.Fatalf("%s received\n  %s\nwant\n  %s", name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// frame is the exact V1 wire frame of a published event.
func frame(event, channel, data string) string {
	return string(protocol.OutFrame{Event: event, Channel: channel, Data: protocol.Str(data)}.Bytes())
}

func strPtr(s string) *string { return &s }

// fakeMetrics records ObserveHTTP calls as "METHOD route status" and RateLimited calls.
type fakeMetrics struct {
	mu          sync.Mutex
	requests    []string
	rateLimited map[string]int
}

func (f *fakeMetrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d < 0 {
		panic("negative duration")
	}
	f.requests = append(f.requests, fmt.Sprintf("%s %s %d", method, route, status))
}

func (f *fakeMetrics) RateLimited(appID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rateLimited == nil {
		f.rateLimited = map[string]int{}
	}
	f.rateLimited[appID]++
}

func (f *fakeMetrics) snapshot() ([]string, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rl := map[string]int{}
	for k, v := range f.rateLimited {
		rl[k] = v
	}
	return append([]string(nil), f.requests...), rl
}
