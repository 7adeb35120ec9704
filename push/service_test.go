package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/push"
	"github.com/pushwire/pushwire/push/pushtest"
)

// env is a push service wired to the three fake providers through a real app config.
type env struct {
	t     testing.TB
	clock *testkit.Clock
	store push.Store
	svc   *push.Service
	apns  *pushtest.FakeAPNs
	fcm   *pushtest.FakeFCM
	web   *pushtest.FakeWebPush
	fails *failures
	app   config.App
}

type failures struct {
	mu   sync.Mutex
	list []string
}

func (f *failures) PushDeliveryFailed(appID, publishID, deviceID, userID, platform, reason string, removed bool) {
	f.mu.Lock()
	f.list = append(f.list, fmt.Sprintf("%s %s %s %s removed=%v", publishID, deviceID, platform, reason, removed))
	f.mu.Unlock()
}

func (f *failures) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.list...)
}

func newEnv(t testing.TB, store push.Store) *env {
	t.Helper()
	e := &env{t: t, clock: testkit.NewClock(time.Now().Truncate(time.Millisecond)), store: store, fails: &failures{},
		apns: pushtest.NewFakeAPNs(t), fcm: pushtest.NewFakeFCM(t), web: pushtest.NewFakeWebPush(t)}
	if e.store == nil {
		e.store = push.NewMemory()
	}
	dir := t.TempDir()
	pub, priv := pushtest.VAPIDKeys()
	e.web.VAPIDKey = pub
	on := true
	e.app = config.App{ID: "app", Key: "key", Secret: "secret", Push: config.AppPush{Enabled: &on, AllowPrivateEndpoints: true,
		APNs: &config.PushAPNs{TeamID: e.apns.TeamID, KeyID: e.apns.KeyID, PrivateKey: string(e.apns.KeyPEM), Topic: e.apns.Topic,
			Endpoint: e.apns.URL(), CAFile: e.apns.CAFile(dir)},
		FCM: &config.PushFCM{ServiceAccountJSON: string(e.fcm.ServiceAccountJSON()), Endpoint: e.fcm.URL(), CAFile: e.fcm.CAFile(dir)},
		Web: &config.PushWeb{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subject: "mailto:ops@example.com", CAFile: e.web.CAFile(dir)}}}
	e.app.ApplyDefaults()
	e.svc = e.newService()
	return e
}

// newService builds a service on the env's store, as a (re)started pushwire would.
func (e *env) newService() *push.Service {
	svc, err := push.New([]config.App{e.app}, push.Options{Store: e.store, Now: e.clock.Now, Failures: e.fails, Jitter: func() float64 { return 1 }})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

var admin = push.Caller{Admin: true}

func (e *env) register(body string) *push.Registration {
	e.t.Helper()
	r, err := e.svc.RegisterDevice(context.Background(), "app", []byte(body), admin, false)
	if err != nil {
		e.t.Fatalf("register %s: %v", body, err)
	}
	return r
}

func (e *env) subscribe(body string) {
	e.t.Helper()
	if _, _, err := e.svc.Subscribe(context.Background(), "app", []byte(body), admin); err != nil {
		e.t.Fatalf("subscribe %s: %v", body, err)
	}
}

func (e *env) publish(body string) *push.Publish {
	e.t.Helper()
	req, perr := push.ParsePublish([]byte(body), e.clock.Now())
	if perr != nil {
		e.t.Fatalf("parse publish: %v", perr)
	}
	p, perr := e.svc.Publish(context.Background(), "app", req)
	if perr != nil {
		e.t.Fatalf("publish: %v", perr)
	}
	return p
}

func (e *env) step() {
	e.t.Helper()
	if err := e.svc.Step(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) status(id string) (*push.Publish, []*push.Delivery) {
	e.t.Helper()
	p, ds, _, _, err := e.svc.Status(context.Background(), "app", id, "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return p, ds
}

const apnsToken = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0"

func (e *env) webBody(id, client string, s *pushtest.WebSub) string {
	return fmt.Sprintf(`{"id":%q,"clientId":%q,"platform":"web","subscription":{"endpoint":%q,"keys":{"p256dh":%q,"auth":%q}}}`, id, client, s.Endpoint, s.P256dh, s.Auth)
}

// TestDeliveryToEveryProvider registers one device per platform in both body shapes,
// publishes to their channel and checks exactly what each provider received.
func TestDeliveryToEveryProvider(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.web.Subscribe()
	// Sockudo's DeviceDetails shape for APNs, the short form for FCM and Web Push.
	e.register(`{"id":"ios-1","clientId":"alice","formFactor":"phone","platform":"ios","timezone":"UTC","locale":"en",
		"push":{"recipient":{"transportType":"apns","deviceToken":"` + strings.ToUpper(apnsToken) + `"}}}`)
	e.register(`{"id":"android-1","clientId":"bob","platform":"fcm","token":"fcm-token:APA91b_1"}`)
	e.register(e.webBody("web-1", "carol", ws))
	for _, d := range []string{"ios-1", "android-1", "web-1"} {
		e.subscribe(`{"channel":"order:42","deviceId":"` + d + `"}`)
	}
	p := e.publish(`{"recipients":[{"type":"channel","channel":"order:42"}],"payload":{"title":"Order","body":"Shipped",
		"sound":"default","collapseKey":"order42","templateData":{"order":"42","n":3}},"sync":false}`)
	if p.State != push.PublishAccepted {
		t.Fatalf("state = %s", p.State)
	}
	e.step()

	notes := e.apns.Notes()
	if len(notes) != 1 {
		t.Fatalf("APNs got %d notifications (errors %v)", len(notes), e.apns.Errors())
	}
	n := notes[0]
	if n.Token != apnsToken || string(n.Body) != `{"aps":{"alert":{"title":"Order","body":"Shipped"},"sound":"default"},"data":{"order":"42","n":3}}` {
		t.Errorf("APNs token %s body %s", n.Token, n.Body)
	}
	for h, want := range map[string]string{"apns-topic": e.apns.Topic, "apns-push-type": "alert", "apns-priority": "10", "apns-collapse-id": "order42"} {
		if got := n.Header.Get(h); got != want {
			t.Errorf("APNs %s = %q, want %q", h, got, want)
		}
	}
	if exp := n.Header.Get("apns-expiration"); exp != fmt.Sprint(e.clock.Now().Add(time.Hour).Unix()) {
		t.Errorf("apns-expiration = %s", exp)
	}

	msgs := e.fcm.Messages()
	if len(msgs) != 1 {
		t.Fatalf("FCM got %d messages (errors %v)", len(msgs), e.fcm.Errors())
	}
	if got := string(msgs[0].Raw); got != `{"message":{"android":{"collapse_key":"order42","notification":{"sound":"default"}},"data":{"n":"3","order":"42"},"notification":{"title":"Order","body":"Shipped"},"token":"fcm-token:APA91b_1"}}` {
		t.Errorf("FCM body %s", got)
	}
	if e.fcm.Grants() != 1 {
		t.Errorf("OAuth2 grants = %d, want 1", e.fcm.Grants())
	}

	wm := e.web.Messages()
	if len(wm) != 1 {
		t.Fatalf("Web Push got %d messages (errors %v)", len(wm), e.web.Errors())
	}
	if got := string(wm[0].Plaintext); got != `{"notification":{"title":"Order","body":"Shipped"},"data":{"order":"42","n":3}}` {
		t.Errorf("Web Push plaintext %s", got)
	}
	if wm[0].VAPID["sub"] != "mailto:ops@example.com" || wm[0].Header.Get("Topic") != "order42" || wm[0].Header.Get("Urgency") != "normal" {
		t.Errorf("Web Push VAPID %v headers %v", wm[0].VAPID, wm[0].Header)
	}

	st, ds := e.status(p.ID)
	if st.State != push.PublishSucceeded || st.Counters.Planned != 3 || st.Counters.Succeeded != 3 {
		t.Errorf("status %s %+v", st.State, st.Counters)
	}
	for _, d := range ds {
		if d.State != push.DeliveryDelivered || d.Attempts != 1 || d.ProviderID == "" {
			t.Errorf("delivery %+v", d)
		}
	}
	// Nothing more is sent on later steps.
	e.clock.Add(time.Hour)
	e.step()
	if len(e.apns.Notes())+len(e.fcm.Messages())+len(e.web.Messages()) != 3 {
		t.Error("a delivery was sent twice")
	}
}

// TestRetryThenDelivered: a provider 5xx is retried after the backoff and delivered once.
func TestRetryThenDelivered(t *testing.T) {
	e := newEnv(t, nil)
	e.register(`{"id":"d","platform":"apns","token":"` + apnsToken + `"}`)
	e.apns.SetScript(func(n int, _ string) (int, string) {
		if n == 1 {
			return http.StatusServiceUnavailable, "ServiceUnavailable"
		}
		return 0, ""
	})
	p := e.publish(`{"recipients":[{"type":"device","deviceId":"d"}],"payload":{"title":"hi"}}`)
	e.step()
	_, ds := e.status(p.ID)
	if ds[0].State != push.DeliveryPending || ds[0].Attempts != 1 || ds[0].Status != 503 || !ds[0].Due.Equal(e.clock.Now().Add(time.Second)) {
		t.Fatalf("after the 503: %+v", ds[0])
	}
	e.step() // not due yet
	if e.apns.Requests() != 1 {
		t.Fatalf("retried before the backoff: %d requests", e.apns.Requests())
	}
	e.clock.Add(time.Second)
	e.step()
	st, ds := e.status(p.ID)
	if len(e.apns.Notes()) != 1 || ds[0].State != push.DeliveryDelivered || ds[0].Attempts != 2 || st.Counters.Retries != 1 || st.State != push.PublishSucceeded {
		t.Errorf("after the retry: notes %d, %+v, %+v %s", len(e.apns.Notes()), ds[0], st.Counters, st.State)
	}
}

// TestUnregisteredRemovesDevice: APNs 410, FCM UNREGISTERED and Web Push 410 remove the
// device and its interests, and tell the failure observer.
func TestUnregisteredRemovesDevice(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.web.Subscribe()
	e.register(`{"id":"i","clientId":"u","platform":"apns","token":"` + apnsToken + `"}`)
	e.register(`{"id":"a","clientId":"u","platform":"fcm","token":"gone-token"}`)
	e.register(e.webBody("w", "u", ws))
	e.subscribe(`{"channel":"news","clientId":"u"}`)
	gone := func(int, string) (int, string) { return http.StatusGone, "" }
	e.apns.SetScript(gone)
	e.web.SetScript(gone)
	e.fcm.SetScript(func(int, string) (int, string) { return http.StatusNotFound, "UNREGISTERED" })
	p := e.publish(`{"recipients":[{"type":"channel","channel":"news"}],"payload":{"title":"hi"}}`)
	e.step()
	st, ds := e.status(p.ID)
	if st.State != push.PublishFailed || st.Counters.Failed != 3 || st.Counters.Removed != 3 {
		t.Errorf("status %s %+v", st.State, st.Counters)
	}
	for _, d := range ds {
		if !d.TokenRemoved {
			t.Errorf("%+v", d)
		}
		if _, err := e.svc.GetDevice(context.Background(), "app", d.DeviceID, admin); err == nil || err.Kind != push.NotFound {
			t.Errorf("device %s still registered", d.DeviceID)
		}
	}
	if f := e.fails.all(); len(f) != 3 || !strings.Contains(strings.Join(f, "\n"), "removed=true") {
		t.Errorf("failures = %v", f)
	}
}

// TestProviderDownThirtySeconds: every provider refuses connections for 30 s; the
// deliveries stay queued (nothing lost) and go out once they are back. With Postgres the
// service is also restarted in the middle, as pushwire would be.
func TestProviderDownThirtySeconds(t *testing.T) {
	for _, store := range []string{"memory", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var s push.Store
			if store == "postgres" {
				if testing.Short() {
					t.Skip("needs Postgres")
				}
				pg, err := push.NewPostgres(context.Background(), testkit.PostgresURL(t), push.PostgresOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pg.Close)
				s = pg
			}
			e := newEnv(t, s)
			upAt := e.clock.Now().Add(30 * time.Second)
			down := func(int, string) (int, string) {
				if e.clock.Now().Before(upAt) {
					return pushtest.Down, ""
				}
				return 0, ""
			}
			e.apns.SetScript(down)
			e.fcm.SetScript(down)
			e.web.SetScript(down)
			ws := e.web.Subscribe()
			e.register(`{"id":"i","platform":"apns","token":"` + apnsToken + `"}`)
			e.register(`{"id":"a","platform":"fcm","token":"tok-12345678"}`)
			e.register(e.webBody("w", "", ws))
			p := e.publish(`{"recipients":[{"type":"device","deviceId":"i"},{"type":"device","deviceId":"a"},{"type":"device","deviceId":"w"}],"payload":{"title":"hi"}}`)
			for step := 0; ; step++ {
				if step == 3 && store == "postgres" {
					e.svc = e.newService() // a restart: only the store survives
				}
				e.step()
				if st, _ := e.status(p.ID); st.State == push.PublishSucceeded {
					break
				}
				due, ok, err := e.store.NextDue(context.Background())
				if err != nil || !ok || step > 20 {
					t.Fatalf("step %d: nothing due (%v, %v) before delivery", step, ok, err)
				}
				e.clock.Add(max(0, due.Sub(e.clock.Now())))
			}
			if e.clock.Now().Before(upAt) {
				t.Errorf("delivered while the providers were down")
			}
			if len(e.apns.Notes()) != 1 || len(e.fcm.Messages()) != 1 || len(e.web.Messages()) != 1 {
				t.Errorf("delivered %d/%d/%d, want one each", len(e.apns.Notes()), len(e.fcm.Messages()), len(e.web.Messages()))
			}
			st, ds := e.status(p.ID)
			for _, d := range ds {
				if d.Attempts < 5 {
					t.Errorf("%s delivered after %d attempts; backoff 1,2,4,8,16 s needs 6", d.DeviceID, d.Attempts)
				}
			}
			if st.Counters.Retries == 0 || len(e.fails.all()) != 0 {
				t.Errorf("counters %+v failures %v", st.Counters, e.fails.all())
			}
		})
	}
}

// TestScheduledAndCancelled: a scheduled publish waits for notBeforeMs; a cancelled one
// never goes out; one already dispatching cannot be cancelled.
func TestScheduledAndCancelled(t *testing.T) {
	e := newEnv(t, nil)
	e.register(`{"id":"d","platform":"fcm","token":"tok-12345678"}`)
	at := e.clock.Now().Add(time.Hour).UnixMilli()
	keep := e.publish(fmt.Sprintf(`{"publishId":"keep","recipients":[{"type":"device","deviceId":"d"}],"payload":{"title":"later"},"notBeforeMs":%d}`, at))
	drop := e.publish(fmt.Sprintf(`{"publishId":"drop","recipients":[{"type":"device","deviceId":"d"}],"payload":{"title":"never"},"notBeforeMs":%d}`, at))
	if keep.State != push.PublishScheduled {
		t.Fatalf("state %s", keep.State)
	}
	e.step()
	if len(e.fcm.Messages()) != 0 {
		t.Fatal("sent before notBefore")
	}
	if _, err := e.svc.Cancel(context.Background(), "app", drop.ID); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	e.step()
	msgs := e.fcm.Messages()
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Raw), "later") {
		t.Fatalf("messages %d", len(msgs))
	}
	if st, _ := e.status("drop"); st.State != push.PublishCancelled {
		t.Errorf("drop: %s", st.State)
	}
	if _, err := e.svc.Cancel(context.Background(), "app", "keep"); err == nil || err.Kind != push.Conflict {
		t.Errorf("cancel after delivery: %v", err)
	}
	// The same publish id again is the same publish (idempotent retries).
	again := e.publish(fmt.Sprintf(`{"publishId":"keep","recipients":[{"type":"device","deviceId":"d"}],"payload":{"title":"later"},"notBeforeMs":%d}`, at))
	e.step()
	if again.State != push.PublishSucceeded || len(e.fcm.Messages()) != 1 {
		t.Errorf("repeat: %s, %d messages", again.State, len(e.fcm.Messages()))
	}
}

// TestOversizedPayloads: each provider's limit is enforced before anything is queued.
func TestOversizedPayloads(t *testing.T) {
	e := newEnv(t, nil)
	nested := map[string]any{}
	for i := range 200 {
		nested[fmt.Sprintf("k%03d", i)] = map[string]string{"v": "x"}
	}
	data, _ := json.Marshal(nested)
	for _, c := range []struct{ name, body, want string }{
		{"apns", `{"recipients":[{"type":"device","deviceId":"d"}],"payload":{"body":"` + strings.Repeat("é", 2040) + `"}}`, "APNs accepts at most 4096"},
		{"fcm", `{"recipients":[{"type":"device","deviceId":"d"}],"payload":{"title":"t","templateData":` + string(data) + `}}`, "FCM accepts at most 4096"},
		{"web", `{"recipients":[{"type":"device","deviceId":"d"}],"payload":{"title":"t"},"providerOverrides":[{"provider":"webPush","payload":{"x":"` + strings.Repeat("a", 4000) + `"}}]}`, "3993 fit the 4096-byte encrypted record"},
	} {
		req, perr := push.ParsePublish([]byte(c.body), e.clock.Now())
		if perr == nil {
			_, perr = e.svc.Publish(context.Background(), "app", req)
		}
		if perr == nil || perr.Kind != push.TooLarge || !strings.Contains(perr.Msg, c.want) {
			t.Errorf("%s: %v", c.name, perr)
		}
	}
}

// TestNoProviderConfigured: an app with push on and no credentials accepts devices and
// publishes and fails each delivery with a clear reason.
func TestNoProviderConfigured(t *testing.T) {
	cfg := config.DefaultApp()
	cfg.ApplyDefaults()
	svc, err := push.New([]config.App{cfg}, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.RegisterDevice(ctx, "app-id", []byte(`{"id":"d","platform":"apns","token":"`+apnsToken+`"}`), admin, false); err != nil {
		t.Fatal(err)
	}
	req, _ := push.ParsePublish([]byte(`{"recipients":[{"type":"device","deviceId":"d"}],"payload":{"title":"t"}}`), time.Now())
	p, _ := svc.Publish(ctx, "app-id", req)
	if err := svc.Step(ctx); err != nil {
		t.Fatal(err)
	}
	_, ds, _, _, _ := svc.Status(ctx, "app-id", p.ID, "", 10)
	if len(ds) != 1 || ds[0].State != push.DeliveryFailed || !strings.Contains(ds[0].Reason, "no APNs credentials configured for app app-id (apps[].push.apns)") {
		t.Errorf("%+v", ds)
	}
}

// TestDeviceIdentityToken: a device manages itself with its token only.
func TestDeviceIdentityToken(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	reg := e.register(`{"id":"d","clientId":"alice","platform":"fcm","token":"tok-12345678"}`)
	if len(reg.Token) != push.IdentityTokenLen || reg.Change != "inserted" {
		t.Fatalf("registration %+v", reg)
	}
	dev := push.Caller{Token: reg.Token}
	other := push.Caller{Token: strings.Repeat("A", push.IdentityTokenLen)}
	if _, err := e.svc.GetDevice(ctx, "app", "d", dev); err != nil {
		t.Errorf("own device: %v", err)
	}
	if _, err := e.svc.GetDevice(ctx, "app", "d", other); err == nil || err.Kind != push.Unauthorized {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := e.svc.GetDevice(ctx, "app", "d", push.Caller{Token: "short"}); err == nil || !strings.Contains(err.Msg, "malformed") {
		t.Errorf("malformed token: %v", err)
	}
	r, err := e.svc.RegisterDevice(ctx, "app", []byte(`{"id":"d","clientId":"alice","platform":"fcm","token":"rotated-1234"}`), dev, false)
	if err != nil || r.Change != "updated" || r.Token != "" {
		t.Errorf("self update: %+v %v", r, err)
	}
	if _, err := e.svc.RegisterDevice(ctx, "app", []byte(`{"id":"d","clientId":"mallory","platform":"fcm","token":"rotated-1234"}`), dev, false); err == nil || err.Kind != push.Forbidden {
		t.Errorf("self change of clientId: %v", err)
	}
	if _, err := e.svc.RegisterDevice(ctx, "app", []byte(`{"id":"new","platform":"fcm","token":"rotated-1234"}`), dev, false); err == nil || err.Kind != push.Forbidden {
		t.Errorf("self create: %v", err)
	}
	if _, _, err := e.svc.Subscribe(ctx, "app", []byte(`{"channel":"c","deviceId":"d"}`), dev); err != nil {
		t.Errorf("self subscribe: %v", err)
	}
	if _, _, err := e.svc.Subscribe(ctx, "app", []byte(`{"channel":"c","clientId":"alice"}`), dev); err == nil || err.Kind != push.Forbidden {
		t.Errorf("device subscribing a user: %v", err)
	}
	if _, _, _, err := e.svc.ListSubscriptions(ctx, "app", push.Filter{}, "", 10, dev); err == nil || err.Kind != push.Forbidden {
		t.Errorf("device listing all: %v", err)
	}
	// Rotation by the backend invalidates the old token.
	r, _ = e.svc.RegisterDevice(ctx, "app", []byte(`{"id":"d","clientId":"alice","platform":"fcm","token":"rotated-1234"}`), admin, true)
	if r.Token == "" || r.Token == reg.Token {
		t.Fatal("no new token")
	}
	if _, err := e.svc.GetDevice(ctx, "app", "d", dev); err == nil {
		t.Error("old token still works")
	}
	if err := e.svc.DeleteDevice(ctx, "app", "d", push.Caller{Token: r.Token}); err != nil {
		t.Errorf("self delete: %v", err)
	}
}

// TestRateLimitHoldsDeliveries: over the app's rate_limit_per_second, deliveries wait in the
// queue (not dropped, no attempt spent) and go out as tokens come back.
func TestRateLimitHoldsDeliveries(t *testing.T) {
	e := newEnv(t, nil)
	e.app.Push.RateLimitPerSecond = 2
	e.svc = e.newService()
	for i := range 5 {
		e.register(fmt.Sprintf(`{"id":"d%d","clientId":"u","platform":"fcm","token":"tok-1234567%d"}`, i, i))
	}
	p := e.publish(`{"recipients":[{"type":"client","clientId":"u"}],"payload":{"title":"hi"}}`)
	sent := []int{}
	for range 3 {
		e.step()
		sent = append(sent, len(e.fcm.Messages()))
		e.clock.Add(time.Second)
	}
	if fmt.Sprint(sent) != "[2 4 5]" {
		t.Errorf("sent after each second: %v, want [2 4 5]", sent)
	}
	st, ds := e.status(p.ID)
	for _, d := range ds {
		if d.Attempts != 1 {
			t.Errorf("%s: %d attempts", d.DeviceID, d.Attempts)
		}
	}
	if st.State != push.PublishSucceeded || st.Counters.Retries != 0 {
		t.Errorf("%s %+v", st.State, st.Counters)
	}
}
