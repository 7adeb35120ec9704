package webhook

import (
	"encoding/json"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

var _ channels.PresenceUpdateObserver = (*Sender)(nil)

// TestMemberUpdated: a presence_update is one member_updated event with the new user_info,
// Sockudo's shape.
func TestMemberUpdated(t *testing.T) {
	rc := newReceiver(t, nil)
	clk := newFakeClock()
	s := newSender(t, []config.App{testApp(hook(rc.url()))}, Options{VacateDelay: -1, BatchInterval: -1, Now: clk.Now}, nil)
	s.MemberUpdated(appID, "presence-room", "u1", json.RawMessage(`{"status":"away"}`))
	reqs := rc.waitRequests(t, 1)
	closeNow(t, s)
	want := `{"time_ms":1767323045000,"events":[{"name":"member_updated","channel":"presence-room","user_id":"u1","user_info":{"status":"away"}}]}`
	if got := string(reqs[0].body); got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
}
