package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestConsoleFeed: the real binary's console stream (HTTP Basic with the app's console
// token) shows what each producer reports: the gateway (connection, error frame), the hub
// (subscription, API publish), the webhook sender (a failed request and its status) and the
// REST API (a refused signature, a bad publish) — and the secret does not sign in when the
// app has a console token.
func TestConsoleFeed(t *testing.T) {
	t.Parallel()
	cfg := fmt.Sprintf(`
webhook_retry_for: 1ms
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    console_token: the-console-token
    webhooks:
      - {url: %q, event_types: [channel_occupied]}
`, failingWebhook(t, http.StatusServiceUnavailable))
	s := testkit.Start(t, testkit.Options{Port: -1, Config: cfg, Args: []string{"--console"}})
	streamURL := "http://" + s.MetricsAddr + "/console/api/stream"

	req, _ := http.NewRequest(http.MethodGet, streamURL, nil)
	req.SetBasicAuth("app-id", "app-secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stream with the secret of an app that has a console token: %v %v, want 401", resp, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	req.SetBasicAuth("app-id", "the-console-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	activities := make(chan map[string]any, 100)
	go func() {
		defer close(activities)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok && event == "activity" {
				var a map[string]any
				if json.Unmarshal([]byte(d), &a) == nil {
					activities <- a
				}
			}
		}
	}()
	expect := func(what string, match func(a map[string]any) bool) {
		t.Helper()
		for {
			select {
			case a, ok := <-activities:
				if !ok {
					t.Fatalf("stream ended waiting for %s", what)
				}
				if match(a) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s in the console feed", what)
			}
		}
	}
	// The stream registers its viewer before it answers; the first activity follows.
	c := connect(t, s)
	expect("the connection", func(a map[string]any) bool { return a["kind"] == "connected" })
	c.subscribe(t, "feed-check")
	expect("the subscription", func(a map[string]any) bool {
		return a["kind"] == "subscribed" && a["channel"] == "feed-check"
	})
	expect("the failed webhook", func(a map[string]any) bool {
		return a["kind"] == "webhook" && a["channel"] == "feed-check" && a["event"] == "webhook:channel_occupied" && a["code"] == 503.0
	})
	publish(t, s, map[string]any{"name": "feed.event", "channel": "feed-check", "data": "x"})
	expect("the publish", func(a map[string]any) bool { return a["kind"] == "api_publish" && a["event"] == "feed.event" })
	c.next(t)

	c.sendEvent(t, "client-nope", "feed-check", map[string]any{})
	expect("the refused client event", func(a map[string]any) bool {
		return a["kind"] == "error" && a["channel"] == "feed-check" && a["code"] == float64(protocol.CodeClientEventRefused)
	})

	// A request with a wrong signature, and a signed one with a bad channel.
	bad := protocol.SignAPIRequest(testkit.AppKey, "not-the-secret", http.MethodGet, "/apps/app-id/channels", nil, nil, time.Now())
	if r, err := http.Get(s.HTTPURL() + "/apps/app-id/channels?" + bad); err == nil {
		r.Body.Close()
	}
	expect("the refused signature", func(a map[string]any) bool {
		return a["kind"] == "error" && a["code"] == 401.0 && strings.Contains(fmt.Sprint(a["detail"]), "Invalid signature")
	})
	if code, _ := apiPost(t, s, "/apps/app-id/events", []byte(`{"name":"e","channel":"bad channel!","data":"x"}`)); code != 400 {
		t.Fatalf("bad publish answered %d", code)
	}
	expect("the bad publish", func(a map[string]any) bool {
		return a["kind"] == "error" && a["code"] == 400.0 && a["event"] == "POST /apps/app-id/events"
	})
}
