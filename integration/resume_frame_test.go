package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestResumeFrameAtTheSubscriptionCap: a client at the default subscription cap (1,000
// channels) resumes them all in one sockudo:resume frame, built as sockudo-js builds it
// (send_event("sockudo:resume", JSON.stringify({channel_positions})): the positions as a
// JSON string, each {stream_id, serial, last_message_id}) with channel names of the longest
// length allowed (200 bytes). The frame is several times the 64 KiB message limit; the
// server reads it (max_resume_message_kb's default covers it) and recovers every channel.
func TestResumeFrameAtTheSubscriptionCap(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	const n = 1000
	names := make([]string, n)
	for i := range names {
		prefix := fmt.Sprintf("resume-cap-%04d-", i)
		names[i] = prefix + strings.Repeat("x", protocol.DefaultMaxChannelNameLength-len(prefix))
	}
	for i := 0; i < n; i += 100 { // one message of history each
		publish(t, s, map[string]any{"name": "tick", "channels": names[i : i+100], "data": "1"})
	}
	c := connectV2(t, s, v2Options{})
	type position struct { // sockudo-js's RecoveryPosition, in its key order
		StreamID      string `json:"stream_id"`
		Serial        uint64 `json:"serial"`
		LastMessageID string `json:"last_message_id"`
	}
	positions := make(map[string]position, n)
	for _, ch := range names {
		ack := c.subscribeV2(t, ch, nil)
		if ack.StreamID == "" {
			t.Fatalf("ack without a stream id: %s", ack.raw)
		}
		positions[ch] = position{StreamID: ack.StreamID, Serial: 1, LastMessageID: protocol.NewUUID()}
	}
	data, _ := json.Marshal(map[string]any{"channel_positions": positions})
	frame, _ := json.Marshal(map[string]any{"event": "sockudo:resume", "data": string(data)})
	if len(frame) <= 64<<10 {
		t.Fatalf("the resume frame is %d bytes: not over the message limit", len(frame))
	}
	t.Logf("sockudo:resume of %d channels: %d bytes", n, len(frame))
	c.send(t, string(frame))
	done := c.expectV2(t, "sockudo:resume_success", "")
	var d struct {
		Recovered []json.RawMessage `json:"recovered"`
		Failed    []json.RawMessage `json:"failed"`
	}
	if err := json.Unmarshal([]byte(done.dataString()), &d); err != nil {
		t.Fatalf("resume_success %.300s: %v", done.raw, err)
	}
	if len(d.Recovered) != n || len(d.Failed) != 0 {
		t.Fatalf("resume_success: %d recovered, %d failed, want %d and 0: %.300s", len(d.Recovered), len(d.Failed), n, done.raw)
	}
	c.pingV2(t)
}
