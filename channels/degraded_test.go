package channels_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// appendFails is a memory store whose appends and creates fail on channels named hole-*.
type appendFails struct{ *history.Memory }

func hole(ch string) bool { return strings.HasPrefix(ch, "hole-") }

func (s appendFails) Append(ctx context.Context, appID string, m *protocol.Message) error {
	if hole(m.Channel) {
		return errors.New("store down")
	}
	return s.Memory.Append(ctx, appID, m)
}

func (s appendFails) Create(ctx context.Context, appID string, m *protocol.Message, agg protocol.VersionedMessage) error {
	if hole(m.Channel) {
		return errors.New("store down")
	}
	return s.Memory.Create(ctx, appID, m, agg)
}

// TestDegradedMarksExpire: a failed append marks its channel degraded (resume across it is
// refused, state says so); once the history retention has passed since the failure every
// position the mark covers is gone anyway, so the mark is dropped and the map shrinks.
func TestDegradedMarksExpire(t *testing.T) {
	const maxAge = time.Hour
	app := config.DefaultApp()
	app.ApplyDefaults()
	clk := testkit.NewClock(time.Now())
	h := channels.New([]config.App{app}, channels.Options{Now: clk.Now, AfterFunc: hubTimers(clk), HistoryMaxAge: maxAge,
		History: appendFails{history.NewMemory(history.MemoryOptions{Now: clk.Now})}})
	publish := func(ch string) {
		t.Helper()
		if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	state := func(ch string) string {
		t.Helper()
		st, herr := h.HistoryState(context.Background(), appID, ch)
		if herr != nil {
			t.Fatal(herr)
		}
		return st.Stream.State.DurableState
	}
	publish("hole-1")
	if got := state("hole-1"); got != "degraded" {
		t.Fatalf("after a failed append: %s", got)
	}
	if n := h.HistoryStats().DegradedChannels; n != 1 {
		t.Fatalf("degraded channels %d", n)
	}
	clk.Add(maxAge - time.Second)
	if got := state("hole-1"); got != "degraded" {
		t.Fatalf("within the retention: %s", got)
	}
	clk.Add(2 * time.Second)
	if got := state("hole-1"); got != "healthy" {
		t.Fatalf("past the retention: %s", got)
	}
	// Marks nobody reads again are swept when another channel is marked.
	publish("hole-2")
	clk.Add(maxAge + time.Second)
	publish("hole-3")
	if n := h.HistoryStats().DegradedChannels; n != 1 {
		t.Fatalf("degraded channels after the sweep: %d, want 1 (hole-3)", n)
	}
}
