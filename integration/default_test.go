package integration

import (
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestDefaultApp runs every group that needs no special option against one server on
// 127.0.0.1:6001 with the embedded default app. Groups and their cases use distinct channel
// names and user ids, so they run in parallel against the shared server.
func TestDefaultApp(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{})
	groups := []struct {
		name string
		run  func(t *testing.T, s *testkit.Server)
	}{
		{"Handshake", testHandshake},
		{"Subscribe", testSubscribe},
		{"Presence", testPresence},
		{"Cache", testCache},
		{"ClientEvents", testClientEvents},
		{"SignIn", testSignIn},
		{"Publish", testPublish},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, s)
		})
	}
}
