package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/push"
)

// stubProvider records sends (the provider protocols are tested in package push).
type stubProvider struct {
	mu   sync.Mutex
	sent []string // publishID/deviceID
}

func (s *stubProvider) Send(_ context.Context, d *push.Device, n *push.Notification) push.Result {
	s.mu.Lock()
	s.sent = append(s.sent, n.PublishID+"/"+d.ID)
	s.mu.Unlock()
	return push.Result{Outcome: push.Delivered, ID: "id-" + d.ID}
}

func (s *stubProvider) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

type pushEnv struct {
	*env
	svc  *push.Service
	prov *stubProvider
}

func newPushEnv(t *testing.T, edit func(*config.App)) *pushEnv {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	if edit != nil {
		edit(&app)
	}
	hub := channels.New([]config.App{app}, channels.Options{})
	prov := &stubProvider{}
	svc, err := push.New([]config.App{app}, push.Options{Presence: hub,
		Providers: map[string]map[push.Platform]push.Provider{testAppID: {push.FCM: prov, push.APNs: prov, push.Web: prov}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &pushEnv{svc: svc, prov: prov}
	opts := Options{Push: svc, PublishHook: svc}
	e.env = &env{hub: hub, now: time.Now}
	e.env.ts = httptest.NewServer(New(hub, opts))
	t.Cleanup(e.env.ts.Close)
	return e
}

// raw sends an unsigned request with headers.
func raw(t *testing.T, method, u string, body string, h map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func jsonOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return m
}

const pp = "/apps/app-id/push"

func TestPushRoutesSigned(t *testing.T) {
	e := newPushEnv(t, nil)
	resp, body := e.call(t, "POST", pp+"/deviceRegistrations", nil, []byte(`{"id":"d1","clientId":"alice","formFactor":"phone","platform":"android","timezone":"UTC","locale":"en","push":{"recipient":{"transportType":"gcm","registrationToken":"tok-aaaaaaaa"}}}`))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	reg := jsonOf(t, body)
	token, _ := reg["deviceIdentityToken"].(string)
	dev := reg["device"].(map[string]any)
	if reg["change"] != "inserted" || len(token) != push.IdentityTokenLen || dev["platform"] != "android" ||
		dev["recipient"].(map[string]any)["transportType"] != "gcm" || dev["pushState"] != "ACTIVE" || strings.Contains(string(body), "tok-aaaaaaaa") {
		t.Fatalf("registration answer %s", body)
	}
	for _, id := range []string{"d2", "d3"} {
		if resp, body := e.call(t, "POST", pp+"/deviceRegistrations", nil, []byte(`{"id":"`+id+`","clientId":"bob","platform":"fcm","token":"tok-bbbbbbbb"}`)); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	resp, body = e.call(t, "GET", pp+"/deviceRegistrations", url.Values{"limit": {"2"}}, nil)
	page := jsonOf(t, body)
	if resp.StatusCode != 200 || len(page["items"].([]any)) != 2 || page["has_more"] != true {
		t.Fatalf("list page 1: %s", body)
	}
	resp, body = e.call(t, "GET", pp+"/deviceRegistrations", url.Values{"limit": {"2"}, "cursor": {page["next_cursor"].(string)}}, nil)
	page = jsonOf(t, body)
	if resp.StatusCode != 200 || len(page["items"].([]any)) != 1 || page["has_more"] != false || page["next_cursor"] != nil {
		t.Fatalf("list page 2: %s", body)
	}
	if resp, body := e.call(t, "POST", pp+"/channelSubscriptions", nil, []byte(`{"channel":"orders","deviceId":"d1","provider":"fcm","tokenHash":"x","credentialVersion":1}`)); resp.StatusCode != 201 || !strings.Contains(string(body), `"provider":"fcm"`) {
		t.Fatalf("subscribe device: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.call(t, "POST", pp+"/channelSubscriptions", nil, []byte(`{"channel":"orders","clientId":"bob"}`)); resp.StatusCode != 201 {
		t.Fatalf("subscribe user: %d %s", resp.StatusCode, body)
	}
	resp, body = e.call(t, "GET", pp+"/channelSubscriptions", url.Values{"channel": {"orders"}}, nil)
	if resp.StatusCode != 200 || len(jsonOf(t, body)["items"].([]any)) != 2 {
		t.Fatalf("subscriptions: %s", body)
	}
	resp, body = e.call(t, "GET", pp+"/channelSubscriptions/channels", nil, nil)
	wantOK(t, resp, body, `{"items":["orders"],"next_cursor":null,"has_more":false}`)
	resp, body = e.call(t, "POST", pp+"/publish", nil, []byte(`{"recipients":[{"type":"channel","channel":"orders"}],"payload":{"title":"Order","body":"Shipped"},"sync":true}`))
	acc := jsonOf(t, body)
	if resp.StatusCode != http.StatusAccepted || acc["publish_id"] == nil || acc["publish_id"] != acc["publishId"] || acc["status"] != "accepted" || resp.Header.Get("X-Sockudo-Forced-Async") == "" {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	if err := e.svc.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := acc["publish_id"].(string)
	resp, body = e.call(t, "GET", pp+"/publish/"+id+"/status", nil, nil)
	st := jsonOf(t, body)
	if resp.StatusCode != 200 || st["state"] != "succeeded" || len(st["recipients"].([]any)) != 3 {
		t.Fatalf("status: %s", body)
	}
	resp, body = e.call(t, "POST", pp+"/batch/publish", nil, []byte(`[{"recipients":[{"type":"device","deviceId":"d1"}],"payload":{"title":"a"}},{"recipients":[{"type":"client","clientId":"bob"}],"payload":{"title":"b"}}]`))
	if resp.StatusCode != http.StatusAccepted || len(jsonOf(t, body)["items"].([]any)) != 2 {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	later := time.Now().Add(time.Hour).UnixMilli()
	resp, body = e.call(t, "POST", pp+"/publish", nil, []byte(`{"publishId":"sched-1","recipients":[{"type":"device","deviceId":"d1"}],"payload":{"title":"a"},"notBeforeMs":`+strconv.FormatInt(later, 10)+`}`))
	if resp.StatusCode != 202 || jsonOf(t, body)["status"] != "scheduled" {
		t.Fatalf("schedule: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.call(t, "DELETE", pp+"/scheduled/sched-1", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.call(t, "DELETE", pp+"/scheduled/sched-1", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("cancel again: %d", resp.StatusCode)
	}
	resp, body = e.call(t, "DELETE", pp+"/scheduled/"+id, nil, nil)
	wantError(t, resp, body, http.StatusConflict, "conflict")
	resp, body = e.call(t, "POST", pp+"/deliveryStatus", nil, []byte(`{"publishId":"`+id+`","eventId":"e1","occurredAtMs":1,"result":{"deviceId":"d1","outcome":"accepted"}}`))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delivery status: %d %s", resp.StatusCode, body)
	}
	_, body = e.call(t, "GET", pp+"/publish/"+id+"/status", nil, nil)
	if len(jsonOf(t, body)["deliveryEvents"].([]any)) != 1 {
		t.Fatalf("status events: %s", body)
	}
	_, body = e.call(t, "GET", pp+"/credentials", nil, nil)
	if !strings.Contains(string(body), `{"provider":"apns","configured":true}`) {
		t.Fatalf("credentials: %s", body)
	}
	resp, body = e.call(t, "DELETE", pp+"/channelSubscriptions", url.Values{"channel": {"orders"}}, nil)
	if resp.StatusCode != 200 || string(body) != `{"deleted":2}` {
		t.Fatalf("delete subs: %s", body)
	}
	resp, body = e.call(t, "DELETE", pp+"/deviceRegistrations", url.Values{"clientId": {"bob"}}, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"deleted":2`) {
		t.Fatalf("remove where: %s", body)
	}
	if resp, _ := e.call(t, "DELETE", pp+"/deviceRegistrations/d1", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	resp, body = e.call(t, "GET", pp+"/deviceRegistrations/d1", nil, nil)
	wantError(t, resp, body, http.StatusNotFound, "not_found")
}

func TestPushDeviceIdentityAuth(t *testing.T) {
	e := newPushEnv(t, nil)
	_, body := e.call(t, "POST", pp+"/deviceRegistrations", nil, []byte(`{"id":"d1","clientId":"alice","platform":"apns","token":"00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0"}`))
	token := jsonOf(t, body)["deviceIdentityToken"].(string)
	h := map[string]string{"X-Sockudo-Device-Identity-Token": token, "Content-Type": "application/json"}
	base := e.ts.URL + pp

	if resp, body := raw(t, "GET", base+"/deviceRegistrations/d1", "", h); resp.StatusCode != 200 || jsonOf(t, body)["id"] != "d1" {
		t.Fatalf("self get: %d %s", resp.StatusCode, body)
	}
	if resp, body := raw(t, "GET", base+"/deviceRegistrations/d1", "", map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != 200 {
		t.Fatalf("bearer: %d %s", resp.StatusCode, body)
	}
	resp, body := raw(t, "POST", base+"/deviceRegistrations", `{"id":"d1","clientId":"alice","platform":"apns","token":"11fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0"}`, h)
	if resp.StatusCode != 201 || jsonOf(t, body)["change"] != "updated" || jsonOf(t, body)["deviceIdentityToken"] != nil {
		t.Fatalf("self update: %d %s", resp.StatusCode, body)
	}
	if resp, body := raw(t, "POST", base+"/channelSubscriptions", `{"channel":"news","deviceId":"d1"}`, h); resp.StatusCode != 201 {
		t.Fatalf("self subscribe: %d %s", resp.StatusCode, body)
	}
	if resp, body := raw(t, "GET", base+"/channelSubscriptions?deviceId=d1", "", h); resp.StatusCode != 200 || len(jsonOf(t, body)["items"].([]any)) != 1 {
		t.Fatalf("self list: %d %s", resp.StatusCode, body)
	}
	resp, body = raw(t, "POST", base+"/publish", `{"recipients":[{"type":"device","deviceId":"d1"}],"payload":{"title":"x"}}`, h)
	wantError(t, resp, body, http.StatusForbidden, "forbidden")
	resp, body = raw(t, "GET", base+"/deviceRegistrations", "", h)
	wantError(t, resp, body, http.StatusForbidden, "forbidden")
	resp, body = raw(t, "GET", base+"/deviceRegistrations/d1", "", map[string]string{"X-Sockudo-Device-Identity-Token": strings.Repeat("A", push.IdentityTokenLen)})
	wantError(t, resp, body, http.StatusUnauthorized, "auth_failed")
	resp, body = raw(t, "GET", base+"/deviceRegistrations/d1", "", map[string]string{"X-Sockudo-Device-Identity-Token": "not-a-token"})
	if msg := wantError(t, resp, body, http.StatusUnauthorized, "auth_failed"); !strings.Contains(msg, "malformed device identity token") {
		t.Errorf("message %q", msg)
	}
	resp, body = raw(t, "GET", base+"/deviceRegistrations/d1", "", nil)
	if msg := wantError(t, resp, body, http.StatusUnauthorized, "auth_failed"); !strings.Contains(msg, "device identity token") {
		t.Errorf("message %q", msg)
	}
	// Signed, but as push-subscribe (Sockudo SDKs' UpdateDeviceRegistration): the token is
	// still needed, and admin routes are refused.
	sub := signedURL(e.ts, "GET", pp+"/deviceRegistrations/d1", nil, nil, testSecret, time.Now())
	if resp, body := raw(t, "GET", sub, "", map[string]string{"X-Sockudo-Push-Capability": "push-subscribe", "X-Sockudo-Device-Identity-Token": token}); resp.StatusCode != 200 {
		t.Fatalf("push-subscribe get: %d %s", resp.StatusCode, body)
	}
	resp, body = raw(t, "GET", sub, "", map[string]string{"X-Sockudo-Push-Capability": "push-subscribe"})
	wantError(t, resp, body, http.StatusUnauthorized, "auth_failed")
	resp, body = raw(t, "GET", sub, "", map[string]string{"X-Sockudo-Push-Capability": "root"})
	wantError(t, resp, body, http.StatusForbidden, "forbidden")
	if resp, _ := raw(t, "DELETE", base+"/deviceRegistrations/d1", "", h); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("self delete: %d", resp.StatusCode)
	}
}

func TestPushBadInput(t *testing.T) {
	e := newPushEnv(t, nil)
	for _, c := range []struct {
		name, path, body string
		status           int
		code, msg        string
	}{
		{"unknown platform", "/deviceRegistrations", `{"id":"d","platform":"blackberry","token":"x"}`, 400, "invalid_input", "unknown platform"},
		{"hms", "/deviceRegistrations", `{"id":"d","platform":"android","push":{"recipient":{"transportType":"hms","registrationToken":"x"}}}`, 400, "invalid_input", "unknown platform"},
		{"bad apns token", "/deviceRegistrations", `{"id":"d","platform":"apns","token":"zz"}`, 400, "invalid_input", "malformed APNs device token"},
		{"bad fcm token", "/deviceRegistrations", `{"id":"d","platform":"fcm","token":"has space in it"}`, 400, "invalid_input", "malformed FCM registration token"},
		{"bad web key", "/deviceRegistrations", `{"id":"d","platform":"web","subscription":{"endpoint":"https://push.example.com/x","keys":{"p256dh":"AAAA","auth":"AAAA"}}}`, 400, "invalid_input", "malformed p256dh"},
		{"private endpoint", "/deviceRegistrations", `{"id":"d","platform":"web","subscription":{"endpoint":"https://127.0.0.1/x","keys":{"p256dh":"BPBo3b2wAW0Ly0fNT5x3tEaQ8KZ6Tw5Umz2NsakYBBfTKYm3uQnYqkkEEAqdD7O2YGb6mCtgb5M-cbDtGyZSsEM","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}}`, 400, "invalid_input", "private address"},
		{"not json", "/deviceRegistrations", `{`, 400, "invalid_input", "invalid JSON"},
		{"unknown target", "/publish", `{"recipients":[{"type":"topic","topic":"x"}],"payload":{"title":"t"}}`, 400, "invalid_input", "unknown target type"},
		{"no payload", "/publish", `{"recipients":[{"type":"device","deviceId":"d"}]}`, 400, "invalid_input", "payload is required"},
		{"template", "/publish", `{"recipients":[{"type":"device","deviceId":"d"}],"payload":{"templateId":"t1"}}`, 400, "invalid_input", "templates are not supported"},
		{"oversized", "/publish", `{"recipients":[{"type":"device","deviceId":"d"}],"payload":{"body":"` + strings.Repeat("x", 4090) + `"}}`, 413, "payload_too_large", "APNs accepts at most 4096"},
	} {
		resp, body := e.call(t, "POST", pp+c.path, nil, []byte(c.body))
		if msg := wantError(t, resp, body, c.status, c.code); !strings.Contains(msg, c.msg) {
			t.Errorf("%s: message %q lacks %q", c.name, msg, c.msg)
		}
	}
	resp, body := e.call(t, "GET", pp+"/deviceRegistrations", url.Values{"cursor": {"garbage"}}, nil)
	wantError(t, resp, body, 400, "invalid_input")
	resp, body = e.call(t, "GET", pp+"/deviceRegistrations", url.Values{"limit": {"5000"}}, nil)
	wantError(t, resp, body, 400, "invalid_input")
}

func TestPushDisabledApp(t *testing.T) {
	off := false
	e := newPushEnv(t, func(a *config.App) { a.Push.Enabled = &off })
	resp, body := e.call(t, "GET", pp+"/deviceRegistrations", nil, nil)
	if msg := wantError(t, resp, body, http.StatusNotFound, "push_not_enabled"); !strings.Contains(msg, "apps[].push.enabled") {
		t.Errorf("message %q", msg)
	}
}

// TestPushBridge: a realtime publish is pushed to the subscribed user who has no live socket
// on the channel, not to the one who is present; an event with extras.push goes to every
// subscriber.
func TestPushBridge(t *testing.T) {
	e := newPushEnv(t, func(a *config.App) { a.Push.Bridge = config.PushBridge{Enabled: true, Channels: []string{"presence-"}} })
	e.svc.Start()
	t.Cleanup(func() { _ = e.svc.Close(context.Background()) })
	for _, d := range []struct{ id, user string }{{"alice-phone", "alice"}, {"bob-phone", "bob"}, {"anon", ""}} {
		if resp, body := e.call(t, "POST", pp+"/deviceRegistrations", nil, []byte(`{"id":"`+d.id+`","clientId":"`+d.user+`","platform":"fcm","token":"tok-`+d.id+`"}`)); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if resp, body := e.call(t, "POST", pp+"/channelSubscriptions", nil, []byte(`{"channel":"presence-room","deviceId":"`+d.id+`"}`)); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	subscribe(t, e.hub, "presence-room", "alice") // alice is live on the channel
	resp, body := e.call(t, "POST", "/apps/app-id/events", nil, []byte(`{"name":"message","channel":"presence-room","data":"hello"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	testkit.WaitFor(t, 10*time.Second, "the bridge push to bob", func() bool { return len(e.prov.all()) == 1 })
	sent := e.prov.all()[0]
	pub, dev, _ := strings.Cut(sent, "/")
	if dev != "bob-phone" || !strings.HasPrefix(pub, "bridge-") {
		t.Fatalf("bridge sent %s", sent)
	}
	_, body = e.call(t, "GET", pp+"/publish/"+pub+"/status", nil, nil)
	if st := jsonOf(t, body); st["state"] != "succeeded" || len(st["recipients"].([]any)) != 1 {
		t.Fatalf("bridge publish: %s", body)
	}
	// extras.push: every subscriber, live or not (Sockudo).
	resp, body = e.call(t, "POST", "/apps/app-id/events", nil, []byte(`{"name":"message","channel":"presence-room","data":"x","extras":{"push":{"title":"All"}}}`))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	testkit.WaitFor(t, 10*time.Second, "the extras.push publish", func() bool { return len(e.prov.all()) == 4 })
}
