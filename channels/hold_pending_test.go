package channels_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
)

// pendingSub is a V2 fake whose transport reports unread input while busy is set, and
// signals each time the hold asks.
type pendingSub struct {
	*channelstest.Sub
	busy  atomic.Bool
	asked chan struct{}
	asks  atomic.Int32
}

func (s *pendingSub) InputPending() bool {
	s.asks.Add(1)
	select {
	case s.asked <- struct{}{}:
	default:
	}
	return s.busy.Load()
}

// TestResumeHoldWaitsForUnreadInput: a new subscription's resume hold does not end while the
// client has input the server has not read (a starved server may not have read the resume
// that follows the subscribe); it ends once there is none.
func TestResumeHoldWaitsForUnreadInput(t *testing.T) {
	app := config.DefaultApp()
	app.ApplyDefaults()
	h := channels.New([]config.App{app}, channels.Options{History: history.NewMemory(history.MemoryOptions{})})
	s := &pendingSub{Sub: channelstest.NewV2(nextSocketID()), asked: make(chan struct{}, 1)}
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
	// The hold asks twice (its time ran out, and once more after waiting again) while input
	// is pending: the frame is still held.
	for range 2 {
		select {
		case <-s.asked:
		case <-time.After(waitTimeout):
			t.Fatal("the hold never asked about pending input")
		}
	}
	// (A hold waits at most ten more times: a test goroutine starved past that may see it go.)
	if f := s.Take(); len(f) != 0 && s.asks.Load() <= 10 {
		t.Fatalf("released while input was pending (asked %d times): %q", s.asks.Load(), f)
	}
	s.busy.Store(false)
	if f := s.WaitFrames(t, 1, waitTimeout); len(f) != 1 {
		t.Fatalf("after the input was handled: %q", f)
	}
	c.Disconnect()
}
