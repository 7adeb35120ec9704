package channels

import (
	"encoding/json"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

// TestAppendHistoryFrameMatchesMarshal: the channel_history frame written directly is the
// frame of json.Marshal's page, byte for byte (items with and without messages, strings
// encoding/json escapes differently, a cursor, bounds, an empty page).
func TestAppendHistoryFrameMatchesMarshal(t *testing.T) {
	cur, s, one, ms := "abc", "stream-1", uint64(1), int64(1700000000000)
	tr := true
	pages := []*HistoryResult{
		{Items: []HistoryItem{}, Direction: "newest_first", Limit: 100},
		{Items: []HistoryItem{
			{StreamID: s, Serial: 2, PublishedAtMs: ms, MessageID: "m2", EventName: "e<&>\u2028", OperationKind: "append", PayloadSizeBytes: 12,
				Message: json.RawMessage(`{"event":"e","data":"x \"q\" \\ y","serial":2}`)},
			{StreamID: s, Serial: 1, PublishedAtMs: -1, MessageID: "m\"1", EventName: "é\n", OperationKind: "append"},
		}, Direction: "oldest_first", Limit: 2, HasMore: true, NextCursor: &cur,
			Bounds:     HistoryBounds{StartSerial: &one, EndTimeMs: &ms, UntilAttach: &tr, AttachSerial: &one},
			Continuity: HistoryContinuity{StreamID: &s, OldestSerial: &one, Retained: 2, Complete: true}},
	}
	for i, r := range pages {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		want := protocol.ChannelHistory(protocol.V2, "chan-<1>", b)
		got, err := appendHistoryFrame(nil, "chan-<1>", r)
		if err != nil || string(got) != string(want) {
			t.Errorf("page %d (%v):\n got %s\nwant %s", i, err, got, want)
		}
	}
}
