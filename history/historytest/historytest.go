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
	t.Run("byte-exact fields", func(t *testing.T) { testExact(t, newStore(t)) })
	t.Run("copies", func(t *testing.T) { testCopies(t, newStore(t)) })
	t.Run("read bounds", func(t *testing.T) { testBounds(t, newStore(t)) })
	t.Run("paging", func(t *testing.T) { testPaging(t, newStore(t)) })
	t.Run("limit cap", func(t *testing.T) { testLimitCap(t, newStore(t)) })
	t.Run("state", func(t *testing.T) { testState(t, newStore(t)) })
}

// RunShared checks two handles on one store, as two nodes sharing a database see it:
// concurrent appends to one channel through both get distinct, gap-free serials of one
// stream, and each handle reads what the other stored. open returns the two handles of a
// fresh, empty store (a store with a single handle passes itself twice).
func RunShared(t *testing.T, open func(t *testing.T) (a, b channels.History)) {
	a, b := open(t)
	const each = 150
	var wg sync.WaitGroup
	got := make([][]protocol.Message, 4) // per writer: two on each handle
	for i, h := range []channels.History{a, b} {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range each {
					m := protocol.Message{Event: "e", Channel: "shared", Data: []byte(fmt.Sprintf(`"%d-%d-%d"`, i, w, j))}
					if err := h.Append(ctx, "app", &m); err != nil {
						t.Error(err)
						return
					}
					got[2*i+w] = append(got[2*i+w], m)
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	bySerial := map[uint64]string{}
	stream := got[0][0].StreamID
	for _, ms := range got {
		for _, m := range ms {
			if m.StreamID != stream {
				t.Fatalf("two streams for one channel: %q and %q", stream, m.StreamID)
			}
			if _, dup := bySerial[m.Serial]; dup {
				t.Fatalf("serial %d handed out twice", m.Serial)
			}
			bySerial[m.Serial] = string(m.Data)
		}
	}
	const total = 4 * each
	for n := uint64(1); n <= total; n++ {
		if _, ok := bySerial[n]; !ok {
			t.Fatalf("serial %d skipped", n)
		}
	}
	for _, h := range []channels.History{a, b} {
		st, err := h.State(ctx, "app", "shared")
		if err != nil || st.HeadSerial != total || st.StreamID != stream || st.Retained != total {
			t.Fatalf("State = %+v, %v", st, err)
		}
		next := uint64(1)
		for {
			p, err := h.Read(ctx, "app", "shared", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 100, StartSerial: next})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.Items {
				if m.Serial != next || string(m.Data) != bySerial[m.Serial] {
					t.Fatalf("read serial %d data %s, want serial %d data %s", m.Serial, m.Data, next, bySerial[next])
				}
				next++
			}
			if !p.HasMore {
				break
			}
		}
		if next != total+1 {
			t.Fatalf("read up to serial %d, want %d", next-1, total)
		}
	}
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

func readOne(t *testing.T, h channels.History, app, ch string) protocol.Message {
	t.Helper()
	p, err := h.Read(ctx, app, ch, protocol.HistoryQuery{Limit: 10})
	if err != nil || len(p.Items) != 1 || p.HasMore {
		t.Fatalf("Read %s = %+v, %v; want one message", ch, p, err)
	}
	return p.Items[0]
}

// testExact: every field comes back byte for byte, including bytes a database column might
// refuse or normalise (NUL, invalid UTF-8, JSON whitespace and key order), and a message
// without data, tags, extras or publish time is stored too.
func testExact(t *testing.T, h channels.History) {
	in := protocol.Message{Event: "client-\x00ev\xff\u00e9", Channel: "private-exact",
		Data: []byte("{ \"b\" : 1,\n\t\"a\":\"\\u0000\\ud83d\\ude00\", \"a\": 2 }"),
		Name: "n\x00\xfe", UserID: "user\x00\u2603", Tags: map[string]string{"zone": "eu\x00", "k\u00e9y": "\u2603", "": ""},
		MessageID: "not-a-uuid\x00", Extras: []byte(`{"headers" :{"b":2,"a":1} , "echo":false}`), PublishedAtMs: base + 5}
	want := in
	want.Tags = map[string]string{"zone": "eu\x00", "k\u00e9y": "\u2603", "": ""}
	if err := h.Append(ctx, "app", &in); err != nil {
		t.Fatalf("Append: %v", err)
	}
	got := readOne(t, h, "app", "private-exact")
	if got.Event != want.Event || got.Channel != want.Channel || string(got.Data) != string(want.Data) || got.Name != want.Name ||
		got.UserID != want.UserID || fmt.Sprint(got.Tags) != fmt.Sprint(want.Tags) || got.MessageID != want.MessageID ||
		string(got.Extras) != string(want.Extras) || got.PublishedAtMs != want.PublishedAtMs || got.Serial != 1 || got.StreamID != in.StreamID {
		t.Fatalf("stored %+v\nread   %+v", want, got)
	}

	before := time.Now().UnixMilli()
	bare := protocol.Message{Event: "bare", Channel: "bare"}
	if err := h.Append(ctx, "app", &bare); err != nil {
		t.Fatalf("Append without data: %v", err)
	}
	after := time.Now().UnixMilli()
	if bare.PublishedAtMs < before || bare.PublishedAtMs > after || bare.Serial != 1 {
		t.Fatalf("Append set PublishedAtMs %d (want %d..%d), serial %d", bare.PublishedAtMs, before, after, bare.Serial)
	}
	got = readOne(t, h, "app", "bare")
	if got.Event != "bare" || len(got.Data) != 0 || got.Extras != nil || len(got.Tags) != 0 || got.MessageID != "" || got.PublishedAtMs != bare.PublishedAtMs {
		t.Fatalf("bare message read back as %+v", got)
	}
	empty := protocol.Message{Event: "e", Channel: "empty-extras", Data: []byte(`""`), Extras: []byte{}}
	if err := h.Append(ctx, "app", &empty); err != nil {
		t.Fatal(err)
	}
	if got := readOne(t, h, "app", "empty-extras"); got.Extras != nil || string(got.Data) != `""` {
		t.Fatalf("empty extras read back as %q, data %q", got.Extras, got.Data)
	}
}

// testCopies: the store keeps its own copy of the data and extras it is given, and hands
// out copies. (Callers do not change a message's Tags map after publishing it: Memory
// shares it.)
func testCopies(t *testing.T, h channels.History) {
	in := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"original"`), Tags: map[string]string{"k": "v"}, Extras: []byte(`{"echo":true}`)}
	if err := h.Append(ctx, "app", &in); err != nil {
		t.Fatal(err)
	}
	copy(in.Data, `"CHANGED!"`)
	copy(in.Extras, `{"ECHO":true}`)
	got := readOne(t, h, "app", "c")
	copy(got.Data, `"mutated!"`)
	got.Tags["k"] = "mutated"
	if got := readOne(t, h, "app", "c"); string(got.Data) != `"original"` || string(got.Extras) != `{"echo":true}` || got.Tags["k"] != "v" {
		t.Fatalf("the stored message changed with its caller's copies: %+v", got)
	}
}

// testBounds: bounds at and past the ends, empty and inverted ranges, time bounds both ways,
// and apps and channels kept apart.
func testBounds(t *testing.T, h channels.History) {
	appendN(t, h, "app", "ch", 10) // serials 1..10, times base..base+9
	appendN(t, h, "other-app", "ch", 3)
	appendN(t, h, "app", "ch-2", 2)
	const maxU = ^uint64(0)
	for _, tt := range []struct {
		name string
		q    protocol.HistoryQuery
		want []uint64
		more bool
	}{
		{"end serial past the head", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartSerial: 9, EndSerial: 1 << 40, Limit: 10}, []uint64{9, 10}, false},
		{"end serial max", protocol.HistoryQuery{EndSerial: maxU, Limit: 2}, []uint64{10, 9}, true},
		{"start serial max", protocol.HistoryQuery{StartSerial: maxU, Limit: 10}, []uint64{}, false},
		{"start serial past the head", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartSerial: 1 << 62, Limit: 10}, []uint64{}, false},
		{"inverted serial range", protocol.HistoryQuery{StartSerial: 6, EndSerial: 5, Limit: 10}, []uint64{}, false},
		{"single serial", protocol.HistoryQuery{StartSerial: 5, EndSerial: 5, Limit: 10}, []uint64{5}, false},
		{"single serial, limit 1", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartSerial: 5, EndSerial: 5, Limit: 1}, []uint64{5}, false},
		{"end serial only", protocol.HistoryQuery{Direction: protocol.OldestFirst, EndSerial: 2, Limit: 10}, []uint64{1, 2}, false},
		{"time bounds newest first", protocol.HistoryQuery{StartMs: base + 2, EndMs: base + 5, Limit: 3}, []uint64{6, 5, 4}, true},
		{"start time only", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartMs: base + 8, Limit: 10}, []uint64{9, 10}, false},
		{"end time only", protocol.HistoryQuery{EndMs: base + 1, Limit: 10}, []uint64{2, 1}, false},
		{"end time before all", protocol.HistoryQuery{EndMs: base - 1, Limit: 10}, []uint64{}, false},
		{"start time after all", protocol.HistoryQuery{StartMs: base + 10, Limit: 10}, []uint64{}, false},
		{"serial and time bounds", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartSerial: 3, EndSerial: 8, StartMs: base + 4, EndMs: base + 20, Limit: 10}, []uint64{5, 6, 7, 8}, false},
		{"serial and time bounds paged", protocol.HistoryQuery{StartSerial: 3, EndSerial: 8, StartMs: base + 4, Limit: 2}, []uint64{8, 7}, true},
	} {
		p, err := h.Read(ctx, "app", "ch", tt.q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := serials(p); fmt.Sprint(got) != fmt.Sprint(tt.want) || p.HasMore != tt.more {
			t.Errorf("%s: %v more=%v, want %v more=%v", tt.name, got, p.HasMore, tt.want, tt.more)
		}
		for _, m := range p.Items {
			if m.Channel != "ch" {
				t.Errorf("%s: read a message of channel %q", tt.name, m.Channel)
			}
		}
	}
	if p, _ := h.Read(ctx, "other-app", "ch", protocol.HistoryQuery{Limit: 100}); fmt.Sprint(serials(p)) != "[3 2 1]" {
		t.Errorf("other app's channel: %v", serials(p))
	}
	if p, _ := h.Read(ctx, "app", "ch-2", protocol.HistoryQuery{Limit: 100}); fmt.Sprint(serials(p)) != "[2 1]" {
		t.Errorf("other channel: %v", serials(p))
	}
	if p, err := h.Read(ctx, "unknown-app", "ch", protocol.HistoryQuery{Limit: 10}); err != nil || len(p.Items) != 0 || p.HasMore {
		t.Errorf("unknown app: %+v, %v", p, err)
	}
}

// testPaging walks the whole history both ways, page by page, as cursors do: every serial
// once, in order, HasMore false exactly on the last page.
func testPaging(t *testing.T, h channels.History) {
	const n = 23
	stored := appendN(t, h, "app", "paged", n)
	for _, limit := range []int{1, 5, 23, 24} {
		var got []uint64
		next, pages := uint64(1), 0
		for {
			p, err := h.Read(ctx, "app", "paged", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: limit, StartSerial: next})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, m := range p.Items {
				got = append(got, m.Serial)
				if string(m.Data) != string(stored[m.Serial-1].Data) || m.MessageID != stored[m.Serial-1].MessageID {
					t.Fatalf("serial %d read back as %+v", m.Serial, m)
				}
			}
			if !p.HasMore {
				break
			}
			next = p.Items[len(p.Items)-1].Serial + 1
		}
		if want := (n + limit - 1) / limit; pages != want || len(got) != n || got[0] != 1 || got[n-1] != n {
			t.Errorf("oldest first, limit %d: %d pages (want %d), serials %v", limit, pages, want, got)
		}
		got = got[:0]
		end := uint64(0)
		for {
			p, err := h.Read(ctx, "app", "paged", protocol.HistoryQuery{Limit: limit, EndSerial: end})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.Items {
				got = append(got, m.Serial)
			}
			if !p.HasMore {
				break
			}
			end = p.Items[len(p.Items)-1].Serial - 1
		}
		for i, s := range got {
			if s != uint64(n-i) {
				t.Fatalf("newest first, limit %d: %v", limit, got)
			}
		}
		if len(got) != n {
			t.Fatalf("newest first, limit %d: %v", limit, got)
		}
	}
}

// testLimitCap: a limit of 0 or above 1000 reads 1000 messages at most.
func testLimitCap(t *testing.T, h channels.History) {
	const n = 1003
	for i := range n {
		m := protocol.Message{Event: "e", Channel: "big", Data: []byte(`"x"`), PublishedAtMs: base + int64(i)}
		if err := h.Append(ctx, "app", &m); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, -1, 1001, 1 << 30} {
		p, err := h.Read(ctx, "app", "big", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) != 1000 || !p.HasMore || p.Items[0].Serial != 1 || p.Items[999].Serial != 1000 {
			t.Errorf("limit %d: %d items, more=%v", limit, len(p.Items), p.HasMore)
		}
	}
	p, err := h.Read(ctx, "app", "big", protocol.HistoryQuery{Direction: protocol.OldestFirst, StartSerial: 4, Limit: 5000})
	if err != nil || len(p.Items) != 1000 || p.HasMore {
		t.Errorf("the last 1000 with a limit of 5000: %d items, more=%v, %v", len(p.Items), p.HasMore, err)
	}
}

// testState: the retained range's serials, times, count and size follow the appends.
func testState(t *testing.T, h channels.History) {
	var prev protocol.StreamState
	for i := range 4 {
		m := protocol.Message{Event: "e", Channel: "st", Data: []byte(fmt.Sprintf(`"%0*d"`, 10*(i+1), i)), PublishedAtMs: base + 100*int64(i)}
		if err := h.Append(ctx, "app", &m); err != nil {
			t.Fatal(err)
		}
		st, err := h.State(ctx, "app", "st")
		if err != nil {
			t.Fatal(err)
		}
		n := uint64(i + 1)
		if st.StreamID != m.StreamID || st.HeadSerial != n || st.OldestSerial != 1 || st.NewestSerial != n || st.Retained != int64(n) ||
			st.OldestMs != base || st.NewestMs != base+100*int64(i) || st.RetainedBytes <= prev.RetainedBytes+int64(len(m.Data)) {
			t.Fatalf("after %d appends: State = %+v (before: %+v)", n, st, prev)
		}
		prev = st
	}
	if st, err := h.State(ctx, "other", "st"); err != nil || st != (protocol.StreamState{}) {
		t.Fatalf("State of another app's channel = %+v, %v", st, err)
	}
}
