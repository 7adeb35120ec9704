package channels_test

import (
	"sync/atomic"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
)

// pendingSub is a V2 fake whose transport reports unread input while busy is set, and
// counts how often the hold asks.
type pendingSub struct {
	*channelstest.Sub
	busy atomic.Bool
	asks atomic.Int32
}

func (s *pendingSub) InputPending() bool {
	s.asks.Add(1)
	return s.busy.Load()
}

// heldSub subscribes a pendingSub (busy) to a history channel of a hub on a hand-moved clock,
// then publishes one message, which the resume hold keeps back.
func heldSub(t *testing.T) (*pendingSub, *testkit.Clock, func()) {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	clk := testkit.NewClock(testEpoch)
	h := channels.New([]config.App{app}, channels.Options{Now: clk.Now, AfterFunc: hubTimers(clk),
		History: history.NewMemory(history.MemoryOptions{})})
	s := &pendingSub{Sub: channelstest.NewV2(nextSocketID())}
	s.busy.Store(true)
	c, err := h.ConnectWith(appKey, s, channels.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(channels.SubscribeRequest{Channel: "held"}); err != nil {
		t.Fatal(err)
	}
	s.Take() // the ack
	if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"held"}, Data: "1"}); err != nil {
		t.Fatal(err)
	}
	return s, clk, c.Disconnect
}

// TestResumeHoldWaitsForUnreadInput: a new subscription's resume hold, timed on the hub's
// clock, does not end while the client has input the server has not read (a starved server
// may not have read the resume that follows the subscribe); it ends at the next turn once
// there is none.
func TestResumeHoldWaitsForUnreadInput(t *testing.T) {
	s, clk, done := heldSub(t)
	defer done()
	if f := s.Take(); len(f) != 0 {
		t.Fatalf("a live frame went out at once: %q", f)
	}
	for i := 1; i <= 3; i++ {
		clk.Add(channels.ResumeHold)
		if got := s.asks.Load(); got != int32(i) {
			t.Fatalf("turn %d: the hold asked %d times", i, got)
		}
		if f := s.Take(); len(f) != 0 {
			t.Fatalf("turn %d: released while input was pending: %q", i, f)
		}
	}
	s.busy.Store(false)
	clk.Add(channels.ResumeHold)
	if f := s.Take(); len(f) != 1 {
		t.Fatalf("after the input was handled: %q", f)
	}
}

// TestResumeHoldWaitIsBounded: input that stays pending (a client that never stops sending)
// keeps the hold at most ten more turns.
func TestResumeHoldWaitIsBounded(t *testing.T) {
	s, clk, done := heldSub(t)
	defer done()
	for i := 1; i <= 10; i++ {
		clk.Add(channels.ResumeHold)
		if f := s.Take(); len(f) != 0 {
			t.Fatalf("turn %d: released early: %q", i, f)
		}
	}
	clk.Add(channels.ResumeHold)
	if f := s.Take(); len(f) != 1 {
		t.Fatalf("after ten more turns the hold should end: %q", f)
	}
	if s.asks.Load() != 10 {
		t.Fatalf("asked %d times, want 10", s.asks.Load())
	}
}
