package integration

import (
	"fmt"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestSubscriptionCountEvents: with subscription_count_events on, every subscriber of a
// non-presence channel gets pusher_internal:subscription_count (the frame pusher-js turns
// into channel.subscriptionCount and 'pusher:subscription_count') when the count changes.
func TestSubscriptionCountEvents(t *testing.T) {
	srv := testkit.Start(t, testkit.Options{Port: -1, Config: `
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    subscription_count_events: true
`})
	count := func(n int) string {
		return fmt.Sprintf(`{"event":"pusher_internal:subscription_count","channel":"room","data":"{\"subscription_count\":%d}"}`, n)
	}
	a := connect(t, srv)
	a.subscribe(t, "room")
	a.expect(t, count(1))
	b := connect(t, srv)
	b.subscribe(t, "room")
	b.expect(t, count(2))
	a.expect(t, count(2))
	b.close()
	a.expect(t, count(1))
	a.ping(t) // nothing else was sent
}
