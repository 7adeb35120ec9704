package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/webhook"
)

// receiver records the events of every correctly signed webhook request.
type receiver struct {
	mu     sync.Mutex
	events []string
	bad    int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Header.Get("X-Pusher-Key") != "app-key" || !webhook.Verify("app-secret", body, req.Header.Get("X-Pusher-Signature")) || req.Header.Get("X-Tenant") != "acme" {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var b struct {
		TimeMS int64             `json:"time_ms"`
		Events []json.RawMessage `json:"events"`
	}
	if json.Unmarshal(body, &b) != nil || b.TimeMS == 0 {
		r.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, e := range b.Events {
		r.events = append(r.events, string(e))
	}
}

func (r *receiver) has(event string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.events, event)
}

// TestWebhooksEndToEnd: the binary signs and delivers Pusher-format webhooks for channel and
// presence lifecycle and client events, delays vacated/member_removed, and flushes on SIGTERM.
func TestWebhooksEndToEnd(t *testing.T) {
	rec := &receiver{}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	srv := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--webhook-vacate-delay=300ms"}, Config: fmt.Sprintf(`
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    webhooks:
      - url: %s/all
        event_types: [channel_occupied, channel_vacated, member_added, member_removed, client_event]
        headers:
          X-Tenant: acme
`, hook.URL)})

	a := connect(t, srv)
	b := connect(t, srv)
	a.subscribePresence(t, "presence-room", `{"user_id":"u1"}`)
	a.expectEvent(t, "pusher_internal:subscription_succeeded")
	b.subscribePresence(t, "presence-room", `{"user_id":"u2"}`)
	b.expectEvent(t, "pusher_internal:subscription_succeeded")
	a.expectEvent(t, "pusher_internal:member_added")
	a.sendEvent(t, "client-typing", "presence-room", map[string]bool{"typing": true})
	b.expectEvent(t, "client-typing")

	want := []string{
		`{"name":"channel_occupied","channel":"presence-room"}`,
		`{"name":"member_added","channel":"presence-room","user_id":"u1"}`,
		`{"name":"member_added","channel":"presence-room","user_id":"u2"}`,
	}
	for _, w := range want {
		testkit.WaitFor(t, 5*time.Second, w, func() bool { return rec.has(w) })
	}
	testkit.WaitFor(t, 5*time.Second, "client_event webhook", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, e := range rec.events {
			var ev map[string]any
			_ = json.Unmarshal([]byte(e), &ev)
			if ev["name"] == "client_event" && ev["event"] == "client-typing" && ev["user_id"] == "u1" && ev["data"] == `{"typing":true}` {
				return true
			}
		}
		return false
	})
	b.close()
	testkit.WaitFor(t, 5*time.Second, "member_removed after the delay", func() bool {
		return rec.has(`{"name":"member_removed","channel":"presence-room","user_id":"u2"}`)
	})
	// The last socket goes at shutdown: its vacated webhook is delivered before exit.
	srv.Stop()
	for _, w := range []string{`{"name":"member_removed","channel":"presence-room","user_id":"u1"}`, `{"name":"channel_vacated","channel":"presence-room"}`} {
		if !rec.has(w) {
			t.Errorf("missing %s after shutdown; got %q", w, rec.events)
		}
	}
	if rec.bad != 0 {
		t.Errorf("%d webhook requests failed signature or shape checks", rec.bad)
	}
}
