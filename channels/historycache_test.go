package channels_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// countingStore is the memory store (with its Versions) counting page reads.
type countingStore struct {
	*history.Memory
	reads int
}

func (s *countingStore) Read(ctx context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error) {
	s.reads++
	return s.Memory.Read(ctx, appID, channel, q)
}

// TestHistoryPageCache: a channel_history request asked again before its channel moved is
// answered with the same frame without reading the store; a publish, an append to a mutable
// message, a reset, another limit or direction or a cursor are each read again, and the
// answer shows the change (a cached page is never stale).
func TestHistoryPageCache(t *testing.T) {
	app := config.DefaultApp()
	app.ApplyDefaults()
	clk := testkit.NewClock(time.Now())
	store := &countingStore{Memory: history.NewMemory(history.MemoryOptions{})}
	h := channels.New([]config.App{app}, channels.Options{Now: clk.Now, History: store, AfterFunc: hubTimers(clk)})
	const ch = "chat:cache"
	serials := make([]string, 0, 30)
	for i := range 30 {
		serials = append(serials, create(t, h, ch, fmt.Sprint(i)))
	}
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustSubscribe(t, c, s, ch, "")
	s.Take()
	ask := func(req string) (string, int) {
		t.Helper()
		before := store.reads
		if err := c.ChannelHistory(json.RawMessage(req), ch); err != nil {
			t.Fatal(err)
		}
		frames := s.Take()
		if len(frames) != 1 {
			t.Fatalf("%d frames", len(frames))
		}
		return frames[0], store.reads - before
	}
	page := `{"channel":"chat:cache","limit":10,"direction":"newest_first"}`
	first, reads := ask(page)
	if reads != 1 {
		t.Fatalf("first request: %d reads", reads)
	}
	for range 3 {
		if again, reads := ask(page); reads != 0 || again != first {
			t.Fatalf("same request, unchanged channel: %d reads, same frame %v", reads, again == first)
		}
	}
	type item struct {
		Serial  uint64          `json:"serial"`
		Message json.RawMessage `json:"message"`
	}
	decode := func(frame string) (items []item, cursor string) {
		t.Helper()
		var f struct {
			Data struct {
				Items      []item  `json:"items"`
				NextCursor *string `json:"next_cursor"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(frame), &f); err != nil {
			t.Fatalf("frame %.200s: %v", frame, err)
		}
		if f.Data.NextCursor != nil {
			cursor = *f.Data.NextCursor
		}
		return f.Data.Items, cursor
	}
	steps := []struct {
		name   string
		change func()
		req    string
		check  func(items []item) bool
	}{
		{"another limit", func() {}, `{"channel":"chat:cache","limit":5,"direction":"newest_first"}`, func(items []item) bool { return len(items) == 5 }},
		{"another direction", func() {}, `{"channel":"chat:cache","limit":10,"direction":"oldest_first"}`, func(items []item) bool { return items[0].Serial == 1 }},
		{"a publish", func() { create(t, h, ch, "new") }, page, func(items []item) bool { return items[0].Serial == 31 }},
		{"an append to a message on the page", func() { mutate(t, h, ch, serials[29], appendOp("!")) }, page, func(items []item) bool {
			for _, it := range items {
				if it.Serial == 30 {
					return strings.Contains(string(it.Message), `29!`)
				}
			}
			return false
		}},
		{"a reset", func() {
			if _, herr := h.ResetHistory(context.Background(), appID, ch, channels.Operator{Reason: "test"}); herr != nil {
				t.Fatal(herr)
			}
		}, page, func(items []item) bool { return len(items) == 0 }},
	}
	for _, st := range steps {
		st.change()
		frame, reads := ask(st.req)
		items, _ := decode(frame)
		if reads != 1 || !st.check(items) {
			t.Fatalf("after %s: %d reads, page %.300s", st.name, reads, frame)
		}
		if again, reads := ask(st.req); reads != 0 || again != frame {
			t.Fatalf("after %s, asked again: %d reads", st.name, reads)
		}
	}
	// Cursors: the next page is read once, then cached.
	for range 12 {
		create(t, h, ch, "more")
	}
	_, cursor := decode(mustAsk(t, ask, page))
	if cursor == "" {
		t.Fatal("no next cursor")
	}
	next := fmt.Sprintf(`{"channel":"chat:cache","limit":10,"direction":"newest_first","cursor":%q}`, cursor)
	frame, reads := ask(next)
	if items, _ := decode(frame); reads != 1 || len(items) != 2 || items[0].Serial != 2 {
		t.Fatalf("next page: %d reads, %.300s", reads, frame)
	}
	if _, reads := ask(next); reads != 0 {
		t.Fatalf("next page again: %d reads", reads)
	}
}

func mustAsk(t *testing.T, ask func(string) (string, int), req string) string {
	t.Helper()
	f, _ := ask(req)
	return f
}
