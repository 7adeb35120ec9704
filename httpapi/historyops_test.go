package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/protocol"
)

// historyEnv is newEnv over a memory history store (history on every channel but "nohist-*").
func historyEnv(t *testing.T) *env {
	t.Helper()
	app := defaultApp()
	app.HistoryChannels = []string{"orders", "chat", "feed", "presence-"}
	store := history.NewMemory(history.MemoryOptions{})
	hub := channels.New([]config.App{app}, channels.Options{History: store})
	ann := annotations.Attach(hub, store, annotations.Options{})
	ts := httptest.NewServer(New(hub, Options{Annotations: ann}))
	t.Cleanup(ts.Close)
	return &env{hub: hub, ts: ts, now: time.Now}
}

func publishTo(t *testing.T, e *env, channel string, n int) {
	t.Helper()
	for range n {
		resp, body := e.call(t, http.MethodPost, "/apps/app-id/events", nil, []byte(`{"name":"e","channel":"`+channel+`","data":"x"}`))
		if resp.StatusCode != 200 {
			t.Fatalf("publish: %d %s", resp.StatusCode, body)
		}
	}
}

func decode(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return m
}

// TestHistoryStateResetPurge: the operator endpoints in Sockudo's shapes.
func TestHistoryStateResetPurge(t *testing.T) {
	e := historyEnv(t)
	publishTo(t, e, "orders", 5)
	resp, body := e.call(t, http.MethodGet, "/apps/app-id/channels/orders/history/state", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("state: %d %s", resp.StatusCode, body)
	}
	st := decode(t, body)
	stream := st["stream"].(map[string]any)
	retained := stream["retained"].(map[string]any)
	state := stream["state"].(map[string]any)
	if st["channel"] != "orders" || stream["next_serial"] != 6.0 || retained["retained_messages"] != 5.0 ||
		retained["oldest_available_serial"] != 1.0 || retained["newest_available_serial"] != 5.0 ||
		retained["stream_id"] != stream["stream_id"] || state["durable_state"] != "healthy" || state["recovery_allowed"] != true {
		t.Fatalf("state: %s", body)
	}
	streamID := stream["stream_id"].(string)

	resp, body = e.call(t, http.MethodPost, "/apps/app-id/channels/orders/history/purge", nil,
		[]byte(`{"confirm_channel":"orders","confirm_operation":"purge","mode":"before_serial","before_serial":3,"reason":"old"}`))
	p := decode(t, body)
	if resp.StatusCode != 200 || p["ok"] != true || p["operation"] != "purge" || p["mode"] != "before_serial" || p["before_serial"] != 3.0 ||
		p["before_time_ms"] != nil || p["reason"] != "old" || p["requested_by"] != nil || p["purged_messages"] != 2.0 ||
		p["stream"].(map[string]any)["retained"].(map[string]any)["oldest_available_serial"] != 3.0 {
		t.Fatalf("purge: %d %s", resp.StatusCode, body)
	}

	resp, body = e.call(t, http.MethodDelete, "/apps/app-id/channels/orders/history", url.Values{"before_serial": {"5"}, "requested_by": {"ops"}}, nil)
	p = decode(t, body)
	if resp.StatusCode != 200 || p["mode"] != "before_serial" || p["purged_messages"] != 2.0 || p["requested_by"] != "ops" || p["reason"] != "DELETE .../history" {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}

	resp, body = e.call(t, http.MethodPost, "/apps/app-id/channels/orders/history/reset", nil,
		[]byte(`{"confirm_channel":"orders","confirm_operation":"reset","reason":"fresh start","requested_by":"ops"}`))
	r := decode(t, body)
	if resp.StatusCode != 200 || r["ok"] != true || r["operation"] != "reset" || r["previous_stream_id"] != streamID ||
		r["new_stream_id"] == streamID || !protocol.ValidUUID(r["new_stream_id"].(string)) || r["purged_messages"] != 1.0 ||
		r["requested_by"] != "ops" || r["stream"].(map[string]any)["next_serial"] != 1.0 {
		t.Fatalf("reset: %d %s", resp.StatusCode, body)
	}

	resp, body = e.call(t, http.MethodDelete, "/apps/app-id/channels/orders/history", nil, nil)
	if p = decode(t, body); resp.StatusCode != 200 || p["mode"] != "all" || p["purged_messages"] != 0.0 {
		t.Fatalf("DELETE all: %d %s", resp.StatusCode, body)
	}
}

// TestHistoryOpsErrors: precise 400s for bodies and queries, 422 where the channel keeps no
// history, signature rules of each method.
func TestHistoryOpsErrors(t *testing.T) {
	e := historyEnv(t)
	const base = "/apps/app-id/channels/orders/history"
	for _, tc := range []struct {
		path, body string
		status     int
		code, msg  string
	}{
		{base + "/reset", `{"confirm_operation":"reset","reason":"r"}`, 400, "invalid_input", "confirm_channel is required"},
		{base + "/reset", `{"confirm_channel":"other","confirm_operation":"reset","reason":"r"}`, 400, "invalid_input", "must exactly match"},
		{base + "/reset", `{"confirm_channel":"orders","confirm_operation":"purge","reason":"r"}`, 400, "invalid_input", `confirm_operation must be "reset"`},
		{base + "/reset", `{"confirm_channel":"orders","confirm_operation":"reset","reason":"  "}`, 400, "invalid_input", "reason must not be empty"},
		{base + "/reset", `{"confirm_channel":"orders","confirm_operation":"reset"}`, 400, "invalid_input", "reason must not be empty"},
		{base + "/reset", `{"confirm_channel":"orders","confirm_operation":"reset","reason":"r","mode":"all"}`, 400, "invalid_input", "reset takes no mode"},
		{base + "/reset", `{"confirm_channel":"orders","confirm_operation":"reset","reason":"` + strings.Repeat("r", 1025) + `"}`, 400, "invalid_input", "reason is 1025 bytes"},
		{base + "/reset", `[]`, 400, "invalid_input", "expected an object"},
		{base + "/reset", ``, 400, "invalid_input", "body is empty"},
		{base + "/purge", `{"confirm_channel":"orders","confirm_operation":"purge","reason":"r"}`, 400, "invalid_input", "mode is required"},
		{base + "/purge", `{"confirm_channel":"orders","confirm_operation":"purge","reason":"r","mode":"newest"}`, 400, "invalid_input", "mode must be all, before_serial or before_time_ms"},
		{base + "/purge", `{"confirm_channel":"orders","confirm_operation":"purge","reason":"r","mode":"all","before_serial":2}`, 400, "invalid_input", "'all' does not accept bounds"},
		{base + "/purge", `{"confirm_channel":"orders","confirm_operation":"purge","reason":"r","mode":"before_serial"}`, 400, "invalid_input", "requires before_serial only"},
		{base + "/purge", `{"confirm_channel":"orders","confirm_operation":"purge","reason":"r","mode":"before_time_ms","before_serial":1}`, 400, "invalid_input", "requires before_time_ms only"},
		{base + "/purge", `{"confirm_channel":"orders","confirm_operation":"purge","reason":"r","mode":"before_serial","before_serial":-1}`, 400, "invalid_input", `field "before_serial" must be a number`},
		{"/apps/app-id/channels/nohist-x/history/purge", `{"confirm_channel":"nohist-x","confirm_operation":"purge","reason":"r","mode":"all"}`, 422, "feature_disabled", "History is not enabled"},
		{"/apps/app-id/channels/nohist-x/history/reset", `{"confirm_channel":"nohist-x","confirm_operation":"reset","reason":"r"}`, 422, "feature_disabled", "History is not enabled"},
		{"/apps/app-id/channels/bad%20name/history/reset", `{}`, 400, "invalid_input", "channel"},
	} {
		resp, body := e.call(t, http.MethodPost, tc.path, nil, []byte(tc.body))
		if msg := wantError(t, resp, body, tc.status, tc.code); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %s: %q, want %q", tc.path, tc.body, msg, tc.msg)
		}
	}
	for _, tc := range []struct {
		q         url.Values
		status    int
		code, msg string
	}{
		{url.Values{"mode": {"before_serial"}}, 400, "invalid_input", "requires before_serial only"},
		{url.Values{"before_serial": {"x"}}, 400, "invalid_input", "before_serial must be a non-negative integer"},
		{url.Values{"before_time_ms": {"soon"}}, 400, "invalid_input", "before_time_ms must be a Unix time"},
		{url.Values{"before_time_ms": {"-5"}}, 400, "invalid_input", "before_time_ms must be a Unix time"},
		{url.Values{"before_serial": {"1"}, "before_time_ms": {"1"}}, 400, "invalid_input", "'all' does not accept bounds"},
		{url.Values{"reason": {" "}}, 400, "invalid_input", "reason must not be empty"},
	} {
		resp, body := e.call(t, http.MethodDelete, base, tc.q, nil)
		if msg := wantError(t, resp, body, tc.status, tc.code); !strings.Contains(msg, tc.msg) {
			t.Errorf("DELETE %v: %q, want %q", tc.q, msg, tc.msg)
		}
	}
	resp, body := e.call(t, http.MethodGet, "/apps/app-id/channels/nohist-x/history/state", nil, nil)
	wantError(t, resp, body, 422, "feature_disabled")
	// Every route is signed: a wrong secret is a 401, a body_md5 on DELETE too.
	resp, body = do(t, http.MethodDelete, signedURL(e.ts, http.MethodDelete, base, nil, nil, "wrong", time.Now()), nil)
	wantError(t, resp, body, 401, "auth_failed")
	resp, body = do(t, http.MethodDelete, signedURL(e.ts, http.MethodDelete, base, nil, []byte("{}"), testSecret, time.Now()), nil)
	wantError(t, resp, body, 401, "auth_failed")
	resp, body = do(t, http.MethodPost, signedURL(e.ts, http.MethodPost, base+"/reset", nil, []byte("{}"), "wrong", time.Now()), []byte("{}"))
	wantError(t, resp, body, 401, "auth_failed")
	resp, body = e.call(t, http.MethodPut, base+"/reset", nil, nil)
	wantError(t, resp, body, 405, "method_not_allowed")
}

// TestForceReconnect closes every connection of one user with 4200 and answers {"ok":true}.
func TestForceReconnect(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	u1 := subscribe(t, e.hub, "presence-room", "u1")
	u2 := subscribe(t, e.hub, "presence-room", "u2")
	for _, user := range []string{"u1", "nobody"} {
		resp, body := e.call(t, http.MethodPost, "/apps/app-id/users/"+user+"/force_reconnect", nil, []byte("{}"))
		wantOK(t, resp, body, `{"ok":true}`)
	}
	if err := u1.WaitClosed(t, 2*time.Second); err == nil || err.Code != protocol.CodeReconnect || err.Message != "Force reconnect requested by the app." {
		t.Fatalf("u1 closed with %v, want 4200", err)
	}
	if u2.Closed() != nil {
		t.Fatalf("u2 closed: %v", u2.Closed())
	}
	resp, body := do(t, http.MethodPost, signedURL(e.ts, http.MethodPost, "/apps/app-id/users/u2/force_reconnect", nil, []byte("{}"), "wrong", time.Now()), []byte("{}"))
	wantError(t, resp, body, 401, "auth_failed")
	if u2.Closed() != nil {
		t.Fatal("an unsigned request closed u2")
	}
}

// FuzzParseHistoryOp: no reset or purge body panics the parser; what it accepts confirms the
// channel and operation, has a reason and exactly the bound its mode names.
func FuzzParseHistoryOp(f *testing.F) {
	for _, s := range []string{
		`{"confirm_channel":"orders","confirm_operation":"purge","mode":"all","reason":"r"}`,
		`{"confirm_channel":"orders","confirm_operation":"purge","mode":"before_serial","before_serial":3,"reason":"r","requested_by":"me"}`,
		`{"confirm_channel":"orders","confirm_operation":"purge","mode":"before_time_ms","before_time_ms":1700000000000,"reason":"r"}`,
		`{"confirm_channel":"orders","confirm_operation":"reset","reason":"r"}`, `{"confirm_channel":"orders"}`, `{}`, `null`, `"x"`,
		`{"confirm_channel":"orders","confirm_operation":"purge","mode":"before_serial","before_serial":1e3,"reason":"r"}`,
	} {
		f.Add(s, "purge")
		f.Add(s, "reset")
	}
	f.Fuzz(func(t *testing.T, body, operation string) {
		if operation != "purge" {
			operation = "reset"
		}
		p, op, err := parseHistoryOp(operation, "orders", []byte(body))
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("refusal %+v", err)
			}
			return
		}
		if strings.TrimSpace(op.Reason) == "" || len(op.Reason) > maxReasonBytes || len(op.RequestedBy) > maxRequestedByBytes {
			t.Fatalf("accepted operator %+v", op)
		}
		if operation == "purge" {
			if _, ok := channels.ParsePurgeMode(string(p.Mode)); !ok || p.Mode == "" {
				t.Fatalf("accepted mode %q", p.Mode)
			}
			if p.BeforeMs < 0 || (p.Mode != channels.PurgeBeforeSerial && p.BeforeSerial != 0) || (p.Mode != channels.PurgeBeforeTime && p.BeforeMs != 0) {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}

// FuzzParseDeleteQuery: the query of DELETE .../history.
func FuzzParseDeleteQuery(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("before_serial", "3", "", "")
	f.Add("", "", "1700000000000", "cleanup")
	f.Add("all", "1", "2", " ")
	f.Fuzz(func(t *testing.T, mode, beforeSerial, beforeMs, reason string) {
		params := map[string]string{}
		for k, v := range map[string]string{"mode": mode, "before_serial": beforeSerial, "before_time_ms": beforeMs, "reason": reason} {
			if v != "" {
				params[k] = v
			}
		}
		p, op, err := parseDeleteQuery(params)
		if err != nil {
			if err.status != 400 || err.msg == "" {
				t.Fatalf("refusal %+v", err)
			}
			return
		}
		if strings.TrimSpace(op.Reason) == "" || p.BeforeMs < 0 {
			t.Fatalf("accepted %+v %+v", p, op)
		}
		if _, ok := channels.ParsePurgeMode(string(p.Mode)); !ok || p.Mode == "" {
			t.Fatalf("accepted mode %q", p.Mode)
		}
	})
}
