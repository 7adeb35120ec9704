// Package historytest is the behaviour every channels.History implementation must show. Run
// it from the implementation's tests with a constructor for fresh, empty stores.
package historytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Run runs the suite. newStore must return an empty store each time.
func Run(t *testing.T, newStore func(t *testing.T) channels.History) {
	t.Run("serials and stream", func(t *testing.T) { testSerials(t, newStore(t)) })
	t.Run("stored fields", func(t *testing.T) { testFields(t, newStore(t)) })
	t.Run("read", func(t *testing.T) { testRead(t, newStore(t)) })
	t.Run("concurrent appends", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

var ctx = context.Background()

// base is the publish time (Unix ms) of the first message appendN stores: recent, so no
// store's age retention drops it during the test.
var base = time.Now().Add(-time.Minute).UnixMilli()

func appendN(t *testing.T, h channels.History, app, ch string, n int) []protocol.Message {
	t.Helper()
	out := make([]protocol.Message, n)
	for i := range n {
		m := protocol.Message{Event: "e", Channel: ch, Data: []byte(fmt.Sprintf(`"%d"`, i)), MessageID: protocol.NewUUID(), PublishedAtMs: base + int64(i)}
		if err := h.Append(ctx, app, &m); err != nil {
			t.Fatalf("Append: %v", err)
		}
		out[i] = m
	}
	return out
}

func testSerials(t *testing.T, h channels.History) {
	a := appendN(t, h, "app1", "orders", 3)
	for i, m := range a {
		if m.Serial != uint64(i+1) || !protocol.ValidUUID(m.StreamID) || m.StreamID != a[0].StreamID {
			t.Fatalf("message %d: serial %d stream %q", i, m.Serial, m.StreamID)
		}
	}
	b := appendN(t, h, "app2", "orders", 1)
	c := appendN(t, h, "app1", "other", 1)
	if b[0].Serial != 1 || c[0].Serial != 1 || b[0].StreamID == a[0].StreamID || c[0].StreamID == a[0].StreamID {
		t.Fatalf("streams are not independent per app and channel: %+v %+v", b[0], c[0])
	}
	st, err := h.State(ctx, "app1", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if st.StreamID != a[0].StreamID || st.HeadSerial != 3 || st.OldestSerial != 1 || st.NewestSerial != 3 || st.Retained != 3 || st.RetainedBytes <= 0 {
		t.Fatalf("State = %+v", st)
	}
	if st, err := h.State(ctx, "app1", "never"); err != nil || st.StreamID != "" || st.HeadSerial != 0 {
		t.Fatalf("State of an unknown channel = %+v, %v", st, err)
	}
}

func testFields(t *testing.T, h channels.History) {
	in := protocol.Message{Event: "order.paid", Channel: "presence-x", Data: []byte(`"{\"a\":1}"`), Name: "n", UserID: "u1",
		Tags: map[string]string{"k": "v"}, MessageID: protocol.NewUUID(), Extras: []byte(`{"headers":{"h":1}}`), PublishedAtMs: base + 1234}
	if err := h.Append(ctx, "app", &in); err != nil {
		t.Fatal(err)
	}
	p, err := h.Read(ctx, "app", "presence-x", protocol.HistoryQuery{Limit: 10})
	if err != nil || len(p.Items) != 1 {
		t.Fatalf("Read = %+v, %v", p, err)
	}
	got := p.Items[0]
	if got.Event != in.Event || string(got.Data) != string(in.Data) || got.Name != in.Name || got.UserID != in.UserID ||
		got.Tags["k"] != "v" || len(got.Tags) != 1 || got.MessageID != in.MessageID || string(got.Extras) != string(in.Extras) ||
		got.PublishedAtMs != base+1234 || got.Serial != 1 || got.StreamID != in.StreamID {
		t.Fatalf("stored %+v\nread   %+v", in, got)
	}
}

func serials(p protocol.HistoryPage) []uint64 {
	out := []uint64{}
	for _, m := range p.Items {
		out = append(out, m.Serial)
	}
	return out
}

func testRead(t *testing.T, h channels.History) {
	appendN(t, h, "app", "ch", 10) // serials 1..10, times base..base+9
	for _, tt := range []struct {
		name string
		q    protocol.HistoryQuery
		want []uint64
		more bool
	}{
		{"newest first", protocol.HistoryQuery{Limit: 3}, []uint64{10, 9, 8}, true},
		{"oldest first", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 3}, []uint64{1, 2, 3}, true},
		{"exact fit", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 10}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, false},
		{"serial bounds", protocol.HistoryQuery{StartSerial: 4, EndSerial: 6, Limit: 10}, []uint64{6, 5, 4}, false},
		{"serial bounds paged", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartSerial: 4, EndSerial: 7, Limit: 2}, []uint64{4, 5}, true},
		{"time bounds", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartMs: base + 2, EndMs: base + 3, Limit: 10}, []uint64{3, 4}, false},
		{"empty range", protocol.HistoryQuery{StartSerial: 11, Limit: 10}, []uint64{}, false},
	} {
		p, err := h.Read(ctx, "app", "ch", tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := serials(p); fmt.Sprint(got) != fmt.Sprint(tt.want) || p.HasMore != tt.more {
			t.Errorf("%s: %v more=%v, want %v more=%v", tt.name, got, p.HasMore, tt.want, tt.more)
		}
	}
	if p, err := h.Read(ctx, "app", "unknown", protocol.HistoryQuery{Limit: 10}); err != nil || len(p.Items) != 0 {
		t.Errorf("unknown channel: %+v, %v", p, err)
	}
}

func testConcurrent(t *testing.T, h channels.History) {
	const writers, each = 8, 200
	var wg sync.WaitGroup
	seen := make([][]uint64, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				m := protocol.Message{Event: "e", Channel: "hot", Data: []byte(`"x"`)}
				if err := h.Append(ctx, "app", &m); err != nil {
					t.Error(err)
					return
				}
				seen[w] = append(seen[w], m.Serial)
			}
		}()
	}
	wg.Wait()
	all := map[uint64]bool{}
	for _, s := range seen {
		for _, n := range s {
			if all[n] {
				t.Fatalf("serial %d handed out twice", n)
			}
			all[n] = true
		}
	}
	for n := uint64(1); n <= writers*each; n++ {
		if !all[n] {
			t.Fatalf("serial %d skipped", n)
		}
	}
}
