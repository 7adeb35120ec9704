package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

func testClock() *testkit.Clock { return testkit.NewClock(time.Now()) }

// defaultApp is the test app with its defaults applied.
func defaultApp() config.App {
	app := config.DefaultApp()
	app.ApplyDefaults()
	return app
}

// subscribeV2 is subscribe for a V2 connection.
func subscribeV2(t *testing.T, hub *channels.Hub, channel string) *channelstest.Sub {
	t.Helper()
	sub := channelstest.NewV2(protocol.NewSocketID())
	conn, perr := hub.Connect(testKey, sub)
	if perr != nil {
		t.Fatal(perr)
	}
	if err := conn.Subscribe(channels.SubscribeRequest{Channel: channel}); err != nil {
		t.Fatal(err)
	}
	sub.Take()
	return sub
}

// ids returns the message_id of every frame a V2 fake received since its last Take.
func ids(t *testing.T, s *channelstest.Sub) []string {
	t.Helper()
	var out []string
	for _, f := range s.Take() {
		var fr struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal([]byte(f), &fr); err != nil {
			t.Fatal(err)
		}
		out = append(out, fr.MessageID)
	}
	return out
}

// TestMessageID: a publish's message_id is the id of its frames and an idempotent create
// key per channel: a repeat delivers nothing and answers the first receipt; another payload
// under the same id is a 400; a retry adding a channel delivers there only.
func TestMessageID(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	a := subscribeV2(t, e.hub, "alpha")
	b := subscribeV2(t, e.hub, "beta")
	v1 := subscribe(t, e.hub, "alpha", "")
	post := func(body string) (*http.Response, []byte) {
		return e.call(t, http.MethodPost, "/apps/app-id/events", nil, []byte(body))
	}

	resp, body := post(`{"name":"e","channel":"alpha","data":"x","message_id":"order-42:v1"}`)
	wantOK(t, resp, body, `{"channels":{"alpha":{"acknowledgement_id":"order-42:v1"}}}`)
	if got := ids(t, a); len(got) != 1 || got[0] != "order-42:v1" {
		t.Fatalf("V2 frame ids %q", got)
	}
	wantFrames(t, "V1", v1, frame("e", "alpha", "x"))

	resp, body = post(`{"name":"e","channel":"alpha","data":"x","message_id":"order-42:v1"}`)
	wantOK(t, resp, body, `{"channels":{"alpha":{"acknowledgement_id":"order-42:v1"}}}`)
	if resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a replay says so: headers %v", resp.Header)
	}
	wantFrames(t, "repeat", a)
	wantFrames(t, "repeat V1", v1)

	resp, body = post(`{"name":"e","channel":"alpha","data":"other","message_id":"order-42:v1"}`)
	if msg := wantError(t, resp, body, 400, "invalid_input"); !strings.Contains(msg, "different payload") {
		t.Errorf("conflict: %s", msg)
	}
	wantFrames(t, "conflict", a)

	// The same id on another channel is another create; a retry adding a channel delivers
	// there only, and the answer holds both.
	resp, body = post(`{"name":"e","channels":["alpha","beta"],"data":"x","message_id":"order-42:v1","info":"subscription_count"}`)
	wantOK(t, resp, body, `{"channels":{"alpha":{"subscription_count":2,"acknowledgement_id":"order-42:v1"},"beta":{"subscription_count":1,"acknowledgement_id":"order-42:v1"}}}`)
	wantFrames(t, "alpha after the retry", a)
	if got := ids(t, b); len(got) != 1 || got[0] != "order-42:v1" {
		t.Fatalf("beta frame ids %q", got)
	}
	if resp.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("a partly new publish is not a replay")
	}

	// A channel named twice is one create.
	resp, body = post(`{"name":"e","channels":["gamma","gamma"],"data":"x","message_id":"m-twice"}`)
	wantOK(t, resp, body, `{"channels":{"gamma":{"acknowledgement_id":"m-twice"}}}`)

	for _, tc := range []struct{ body, want string }{
		{`{"name":"e","channel":"alpha","data":"x","message_id":""}`, "must not be empty"},
		{`{"name":"e","channel":"alpha","data":"x","message_id":"has space"}`, "a space at byte 3"},
		{`{"name":"e","channel":"alpha","data":"x","message_id":"` + strings.Repeat("m", 129) + `"}`, "129 bytes, the limit is 128"},
		{`{"name":"e","channel":"alpha","data":"x","message_id":"caf\u00e9"}`, "non-ASCII"},
		{`{"name":"e","channel":"alpha","data":"x","message_id":42}`, `field "message_id" must be a string`},
	} {
		resp, body := post(tc.body)
		if msg := wantError(t, resp, body, 400, "invalid_input"); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %s, want %q", tc.body, msg, tc.want)
		}
	}
	wantFrames(t, "refused", a)
}

// TestMessageIDWindow: a message_id is remembered for the app's idempotency_ttl.
func TestMessageIDWindow(t *testing.T) {
	clk := testClock()
	e := newEnv(t, Options{Now: clk.Now, Idempotency: NewMemoryIdempotency(clk.Now, 0)}, nil)
	a := subscribeV2(t, e.hub, "alpha")
	body := []byte(`{"name":"e","channel":"alpha","data":"x","message_id":"m-1"}`)
	for i, want := range []int{1, 0, 1} {
		if i == 2 {
			clk.Add(121 * time.Second) // past the default 120 s
		}
		resp, got := e.call(t, http.MethodPost, "/apps/app-id/events", nil, body)
		wantOK(t, resp, got, `{"channels":{"alpha":{"acknowledgement_id":"m-1"}}}`)
		if n := len(a.Take()); n != want {
			t.Fatalf("publish %d delivered %d frames, want %d", i, n, want)
		}
	}
}

// TestMessageIDInFlight: while another request holds a message_id, a repeat waits, then gets
// 409 with Retry-After; once that publish is done it gets the receipt.
func TestMessageIDInFlight(t *testing.T) {
	store := NewMemoryIdempotency(nil, 0)
	e := newEnv(t, Options{Idempotency: store}, nil)
	a := subscribeV2(t, e.hub, "alpha")
	key := onceKey("alpha", "m-2")
	if _, _, ok, _ := store.Claim(context.Background(), "app-id", key, time.Minute); !ok {
		t.Fatal("claim")
	}
	body := []byte(`{"name":"e","channel":"alpha","data":"x","message_id":"m-2"}`)
	resp, got := e.call(t, http.MethodPost, "/apps/app-id/events", nil, body)
	wantError(t, resp, got, 409, "idempotency_in_progress")
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	wantFrames(t, "in flight", a)
	rc, _ := json.Marshal(onceReceipt{Fingerprint: fingerprint(channels.Event{Name: "e", Data: "x"}), Ack: channels.PublishAck{MessageID: "m-2"}})
	_ = store.Complete(context.Background(), "app-id", key, rc, time.Minute)
	resp, got = e.call(t, http.MethodPost, "/apps/app-id/events", nil, body)
	wantOK(t, resp, got, `{"channels":{"alpha":{"acknowledgement_id":"m-2"}}}`)
	wantFrames(t, "done elsewhere", a)
}

// TestMessageIDBatch: batch items with a message_id answer their receipts; a repeat of an
// earlier item's id (same payload) in the same batch is that item's replay; a conflict in any
// item publishes nothing.
func TestMessageIDBatch(t *testing.T) {
	e := newEnv(t, Options{}, nil)
	a := subscribeV2(t, e.hub, "alpha")
	post := func(body string) (*http.Response, []byte) {
		return e.call(t, http.MethodPost, "/apps/app-id/batch_events", nil, []byte(body))
	}
	resp, body := post(`{"batch":[{"name":"e","channel":"alpha","data":"1","message_id":"b-1"},{"name":"e","channel":"alpha","data":"2"},{"name":"e","channel":"alpha","data":"1","message_id":"b-1"}]}`)
	wantOK(t, resp, body, `{"batch":[{"acknowledgement_id":"b-1"},{},{"acknowledgement_id":"b-1"}]}`)
	if got := ids(t, a); len(got) != 2 || got[0] != "b-1" || got[1] == "b-1" {
		t.Fatalf("frames %q", got)
	}
	resp, body = post(`{"batch":[{"name":"e","channel":"alpha","data":"3","message_id":"b-2"},{"name":"e","channel":"alpha","data":"1","message_id":"b-1"}]}`)
	wantOK(t, resp, body, `{"batch":[{"acknowledgement_id":"b-2"},{"acknowledgement_id":"b-1"}]}`)
	if got := ids(t, a); len(got) != 1 || got[0] != "b-2" {
		t.Fatalf("frames %q", got)
	}
	for _, bad := range []string{
		`{"batch":[{"name":"e","channel":"alpha","data":"4","message_id":"b-3"},{"name":"e","channel":"alpha","data":"changed","message_id":"b-1"}]}`,
		`{"batch":[{"name":"e","channel":"alpha","data":"4","message_id":"b-3"},{"name":"e","channel":"alpha","data":"5","message_id":"b-3"}]}`,
	} {
		resp, body = post(bad)
		if msg := wantError(t, resp, body, 400, "invalid_input"); !strings.HasPrefix(msg, "batch[1]: message_id") {
			t.Errorf("%s: %s", bad, msg)
		}
		wantFrames(t, "refused batch", a)
	}
	// The refused batches freed b-3: it publishes now.
	resp, body = post(`{"batch":[{"name":"e","channel":"alpha","data":"4","message_id":"b-3"}]}`)
	wantOK(t, resp, body, `{"batch":[{"acknowledgement_id":"b-3"}]}`)
}

// FuzzDecodeEvent: no event body panics the decoder; an accepted message_id is valid.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"name":"e","channel":"a","data":"x","message_id":"m-1"}`,
		`{"name":"e","channels":["a","b"],"data":{"k":1},"message_id":"0b0f6a64-2d5c-4b11-9a43-6c0e0a3a4f4e","info":"user_count"}`,
		`{"name":"e","channel":"a","message_id":""}`, `{"name":"e","channel":"a","message_id":"a b"}`,
		`{"name":"e","channel":"a","message_id":null,"extras":{"idempotencyKey":"k"}}`, `{"message_id":7}`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	app := defaultApp()
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeEvent(app, body)
		if err != nil {
			if err.status < 400 || err.status > 499 || err.msg == "" {
				t.Fatalf("refusal %+v", err)
			}
			return
		}
		if p.ev.MessageID != "" && protocol.ValidateMessageID(p.ev.MessageID) != nil {
			t.Fatalf("accepted message_id %q", p.ev.MessageID)
		}
		if len(p.ev.Channels) == 0 {
			t.Fatal("accepted without a channel")
		}
	})
}
