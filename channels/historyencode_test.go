package channels_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/protocol"
)

// TestChannelHistoryPageAllocates (issue 16: the history flood's cost): answering a
// 100-message channel_history page of mutable-capable messages allocates under 6× the
// frame it sends (the store's copy, each message encoded once into a buffer of its size,
// the frame, and this test's own copy of it). It allocated 9.1×: the reserved headers of
// every message went through two maps and a sort, its buffer grew from nothing, and the
// page was re-validated and compacted by encoding/json, then copied into the frame — work
// and garbage collections that, under a flood of such requests, delayed every other
// channel's deliveries. Measured in allocated bytes, with the page cache off (each round
// reads and encodes the page; historycache_test.go covers the cache).
func TestChannelHistoryPageAllocates(t *testing.T) {
	app := config.DefaultApp()
	app.ApplyDefaults()
	h := channels.New([]config.App{app}, channels.Options{History: history.NewMemory(history.MemoryOptions{}), HistoryPageCacheBytes: -1})
	const ch = "hist"
	for i := range 100 {
		if _, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: fmt.Sprintf(`{"seq":%d,"pad":"%s"}`, i, strings.Repeat("x", 200))}); err != nil {
			t.Fatal(err)
		}
	}
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	mustSubscribe(t, c, s, ch, "")
	s.Take()
	req := json.RawMessage(`{"channel":"hist","limit":100,"direction":"newest_first"}`)
	ask := func() int {
		if err := c.ChannelHistory(req, ch); err != nil {
			t.Fatal(err)
		}
		frames := s.Take()
		if len(frames) != 1 {
			t.Fatalf("%d frames", len(frames))
		}
		return len(frames[0])
	}
	size := ask()
	const rounds = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range rounds {
		ask()
	}
	runtime.ReadMemStats(&after)
	perPage := float64(after.TotalAlloc-before.TotalAlloc) / rounds
	t.Logf("a %d-byte page allocates %.0f bytes (%.1f× its size)", size, perPage, perPage/float64(size))
	if perPage > 6*float64(size) {
		t.Fatalf("a %d-byte page allocates %.0f bytes (%.1f× its size), want under 6×", size, perPage, perPage/float64(size))
	}
	// The page is the same JSON as before.
	var page struct {
		Items []struct {
			Serial  uint64          `json:"serial"`
			Message json.RawMessage `json:"message"`
		} `json:"items"`
		HasMore bool `json:"has_more"`
	}
	if err := c.ChannelHistory(req, ch); err != nil {
		t.Fatal(err)
	}
	var f struct {
		Data json.RawMessage `json:"data"`
	}
	raw := s.Take()[0]
	if err := json.Unmarshal([]byte(raw), &f); err != nil || json.Unmarshal(f.Data, &page) != nil {
		t.Fatalf("page does not decode: %v %.200s", err, raw)
	}
	if len(page.Items) != 100 || page.Items[0].Serial != 100 || page.Items[99].Serial != 1 {
		t.Fatalf("page has %d items", len(page.Items))
	}
	var m struct {
		Serial uint64 `json:"serial"`
		Extras struct {
			Headers map[string]any `json:"headers"`
		} `json:"extras"`
	}
	if err := json.Unmarshal(page.Items[0].Message, &m); err != nil || m.Serial != 100 || m.Extras.Headers[protocol.HeaderAction] != "message.create" {
		t.Fatalf("item message %s: %v", page.Items[0].Message, err)
	}
}
