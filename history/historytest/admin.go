package historytest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// AdminStore is a history store with mutable messages and the operator operations (reset,
// purge).
type AdminStore interface {
	VersionStore
	channels.HistoryAdmin
}

// RunAdmin runs the reset and purge suite. newStore must return an empty store each time.
func RunAdmin(t *testing.T, newStore func(t *testing.T) AdminStore) {
	t.Run("reset", func(t *testing.T) { testReset(t, newStore(t)) })
	t.Run("reset of a new channel", func(t *testing.T) { testResetNew(t, newStore(t)) })
	t.Run("purge modes", func(t *testing.T) { testPurgeModes(t, newStore) })
	t.Run("purge and mutable messages", func(t *testing.T) { testPurgeMutable(t, newStore(t)) })
	t.Run("reset during appends", func(t *testing.T) {
		s := newStore(t)
		testResetConcurrent(t, s, s)
	})
}

// RunAdminShared checks reset and purge through two handles of one store (two nodes sharing
// a database): what one resets or purges, the other sees at once, and appends and mutations
// racing a reset through the other handle are either before it or in the new stream.
func RunAdminShared(t *testing.T, open func(t *testing.T) (a, b AdminStore)) {
	t.Run("reset seen by the other node", func(t *testing.T) {
		a, b := open(t)
		appendN(t, a, "app", "sh", 3)
		res, err := b.Reset(ctx, "app", "sh")
		if err != nil {
			t.Fatal(err)
		}
		m := protocol.Message{Event: "e", Channel: "sh", Data: []byte(`"x"`)}
		if err := a.Append(ctx, "app", &m); err != nil || m.Serial != 1 || m.StreamID != res.NewStreamID {
			t.Fatalf("append after the other node's reset: serial %d stream %s (new %s), %v", m.Serial, m.StreamID, res.NewStreamID, err)
		}
		if _, err := b.Purge(ctx, "app", "sh", channels.PurgeRequest{Mode: channels.PurgeAll}); err != nil {
			t.Fatal(err)
		}
		if st, err := a.State(ctx, "app", "sh"); err != nil || st.Retained != 0 || st.HeadSerial != 1 || st.StreamID != res.NewStreamID {
			t.Fatalf("State after the other node's purge = %+v, %v", st, err)
		}
	})
	t.Run("reset racing appends and mutations on the other node", func(t *testing.T) {
		a, b := open(t)
		testResetConcurrent(t, a, b)
	})
}

// state reads a channel's state or fails the test.
func state(t *testing.T, s channels.History, app, ch string) protocol.StreamState {
	t.Helper()
	st, err := s.State(ctx, app, ch)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

// readAll returns every retained message of a channel, oldest first.
func readAll(t *testing.T, s channels.History, app, ch string) []protocol.Message {
	t.Helper()
	p, err := s.Read(ctx, app, ch, protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 1000})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return p.Items
}

// testReset: every message and mutable message of the channel goes, the stream gets a new id
// and serials start at 1 again; other channels keep theirs.
func testReset(t *testing.T, s AdminStore) {
	old := appendN(t, s, "app", "r", 4)
	keep := appendN(t, s, "app", "other", 2)
	mm := create(t, s, "app", "r", `"a"`)
	mutate(t, s, "app", "r", mm.Mutable.MessageSerial, protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str("b")})
	before := state(t, s, "app", "r")
	res, err := s.Reset(ctx, "app", "r")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case res.PreviousStreamID != old[0].StreamID:
		t.Errorf("previous stream %q, want %q", res.PreviousStreamID, old[0].StreamID)
	case res.NewStreamID == "" || res.NewStreamID == res.PreviousStreamID || !protocol.ValidUUID(res.NewStreamID):
		t.Errorf("new stream %q (previous %q)", res.NewStreamID, res.PreviousStreamID)
	case res.PurgedMessages != before.Retained || res.PurgedMessages != 6:
		t.Errorf("purged %d messages, %d were retained (want 6)", res.PurgedMessages, before.Retained)
	case res.PurgedBytes != before.RetainedBytes:
		t.Errorf("purged %d bytes, %d were retained", res.PurgedBytes, before.RetainedBytes)
	case res.State != (protocol.StreamState{StreamID: res.NewStreamID}):
		t.Errorf("state after reset %+v", res.State)
	}
	if st := state(t, s, "app", "r"); st != res.State {
		t.Errorf("State = %+v, the reset said %+v", st, res.State)
	}
	if items := readAll(t, s, "app", "r"); len(items) != 0 {
		t.Errorf("%d messages read after the reset", len(items))
	}
	if _, err := s.Message(ctx, "app", "r", mm.Mutable.MessageSerial); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Errorf("mutable message after the reset: %v", err)
	}
	if _, _, err := s.Mutate(ctx, "app", "r", mm.Mutable.MessageSerial, "", "", planFor(protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str("c")})); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Errorf("mutation after the reset: %v", err)
	}
	again := appendN(t, s, "app", "r", 2)
	if again[0].Serial != 1 || again[1].Serial != 2 || again[0].StreamID != res.NewStreamID {
		t.Errorf("after the reset: serials %d, %d in stream %s, want 1, 2 in %s", again[0].Serial, again[1].Serial, again[0].StreamID, res.NewStreamID)
	}
	if st := state(t, s, "app", "r"); st.HeadSerial != 2 || st.OldestSerial != 1 || st.Retained != 2 || st.RetainedBytes <= 0 {
		t.Errorf("State after two appends = %+v", st)
	}
	if items := readAll(t, s, "app", "other"); len(items) != 2 || items[1].Serial != keep[1].Serial || items[0].StreamID != keep[0].StreamID {
		t.Errorf("the other channel after the reset: %d messages", len(items))
	}
	// A second reset of an already empty stream purges nothing and rotates again.
	res2, err := s.Reset(ctx, "app", "r")
	if err != nil || res2.PreviousStreamID != res.NewStreamID || res2.PurgedMessages != 2 {
		t.Errorf("second reset: %+v, %v", res2, err)
	}
}

// testResetNew: resetting a channel that never had a message gives it a stream, which its
// first message then uses.
func testResetNew(t *testing.T, s AdminStore) {
	res, err := s.Reset(ctx, "app", "fresh")
	if err != nil || res.PreviousStreamID != "" || res.NewStreamID == "" || res.PurgedMessages != 0 {
		t.Fatalf("reset of a new channel: %+v, %v", res, err)
	}
	m := appendN(t, s, "app", "fresh", 1)[0]
	if m.Serial != 1 || m.StreamID != res.NewStreamID {
		t.Fatalf("first message: serial %d stream %s, want 1 in %s", m.Serial, m.StreamID, res.NewStreamID)
	}
	if p, err := s.Purge(ctx, "app", "never", channels.PurgeRequest{Mode: channels.PurgeAll}); err != nil || p.PurgedMessages != 0 {
		t.Fatalf("purge of a channel without messages: %+v, %v", p, err)
	}
}

// testPurgeModes: each mode deletes exactly the oldest messages it names, the kept ones stay
// contiguous up to the head, and the stream and its serials go on.
func testPurgeModes(t *testing.T, newStore func(t *testing.T) AdminStore) {
	for _, tc := range []struct {
		name    string
		req     func(ms []protocol.Message) channels.PurgeRequest
		cut     uint64 // first serial kept
		keptLen int
	}{
		{"all", func([]protocol.Message) channels.PurgeRequest { return channels.PurgeRequest{Mode: channels.PurgeAll} }, 7, 0},
		{"before serial", func([]protocol.Message) channels.PurgeRequest {
			return channels.PurgeRequest{Mode: channels.PurgeBeforeSerial, BeforeSerial: 4}
		}, 4, 3},
		{"before serial 1", func([]protocol.Message) channels.PurgeRequest {
			return channels.PurgeRequest{Mode: channels.PurgeBeforeSerial, BeforeSerial: 1}
		}, 1, 6},
		{"before a serial past the head", func([]protocol.Message) channels.PurgeRequest {
			return channels.PurgeRequest{Mode: channels.PurgeBeforeSerial, BeforeSerial: 1000}
		}, 7, 0},
		{"before a time", func(ms []protocol.Message) channels.PurgeRequest {
			return channels.PurgeRequest{Mode: channels.PurgeBeforeTime, BeforeMs: ms[2].PublishedAtMs}
		}, 3, 4},
		{"before a time after the last", func(ms []protocol.Message) channels.PurgeRequest {
			return channels.PurgeRequest{Mode: channels.PurgeBeforeTime, BeforeMs: ms[5].PublishedAtMs + 1}
		}, 7, 0},
		{"before a time before the first", func(ms []protocol.Message) channels.PurgeRequest {
			return channels.PurgeRequest{Mode: channels.PurgeBeforeTime, BeforeMs: ms[0].PublishedAtMs}
		}, 1, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ms := appendN(t, s, "app", "p", 6)
			appendN(t, s, "app", "q", 3)
			before := state(t, s, "app", "p")
			res, err := s.Purge(ctx, "app", "p", tc.req(ms))
			if err != nil {
				t.Fatal(err)
			}
			after := state(t, s, "app", "p")
			if res.Cut != tc.cut || res.State != after {
				t.Errorf("cut %d, want %d; state %+v, State %+v", res.Cut, tc.cut, res.State, after)
			}
			if want := int64(6 - tc.keptLen); res.PurgedMessages != want || res.PurgedBytes != before.RetainedBytes-after.RetainedBytes {
				t.Errorf("purged %d messages (%d bytes), want %d (%d bytes)", res.PurgedMessages, res.PurgedBytes, want, before.RetainedBytes-after.RetainedBytes)
			}
			items := readAll(t, s, "app", "p")
			if len(items) != tc.keptLen {
				t.Fatalf("%d messages kept, want %d", len(items), tc.keptLen)
			}
			for i, m := range items {
				if m.Serial != tc.cut+uint64(i) || string(m.Data) != string(ms[m.Serial-1].Data) {
					t.Fatalf("kept message %d: serial %d data %s", i, m.Serial, m.Data)
				}
			}
			if after.StreamID != before.StreamID || after.HeadSerial != 6 || after.Retained != int64(tc.keptLen) ||
				(tc.keptLen > 0 && (after.OldestSerial != tc.cut || after.NewestSerial != 6)) || (tc.keptLen == 0 && after.RetainedBytes != 0) {
				t.Errorf("State after the purge = %+v", after)
			}
			next := appendN(t, s, "app", "p", 1)[0]
			if next.Serial != 7 || next.StreamID != before.StreamID {
				t.Errorf("append after the purge: serial %d stream %s", next.Serial, next.StreamID)
			}
			if len(readAll(t, s, "app", "q")) != 3 {
				t.Errorf("the other channel lost messages")
			}
		})
	}
}

// testPurgeMutable: a purge deletes the mutable messages created below its cut and keeps
// the others (still mutable).
func testPurgeMutable(t *testing.T, s AdminStore) {
	first := create(t, s, "app", "pm", `"a"`)
	appendN(t, s, "app", "pm", 2)
	second := create(t, s, "app", "pm", `"x"`)
	mutate(t, s, "app", "pm", first.Mutable.MessageSerial, protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str("b")})
	res, err := s.Purge(ctx, "app", "pm", channels.PurgeRequest{Mode: channels.PurgeBeforeSerial, BeforeSerial: second.Serial})
	if err != nil || res.Cut != second.Serial || res.PurgedMessages != 3 {
		t.Fatalf("purge: %+v, %v", res, err)
	}
	if _, err := s.Message(ctx, "app", "pm", first.Mutable.MessageSerial); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Errorf("message created before the cut: %v", err)
	}
	if _, _, err := s.ReadVersions(ctx, "app", "pm", first.Mutable.MessageSerial, channels.VersionQuery{Limit: 10}); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Errorf("versions of a purged message: %v", err)
	}
	mutate(t, s, "app", "pm", second.Mutable.MessageSerial, protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str("y")})
	agg, err := s.Message(ctx, "app", "pm", second.Mutable.MessageSerial)
	if err != nil || string(agg.Data) != `"xy"` {
		t.Errorf("message created at the cut: %s, %v", agg.Data, err)
	}
	if vs, _, err := s.ReadVersions(ctx, "app", "pm", second.Mutable.MessageSerial, channels.VersionQuery{Direction: protocol.OldestFirst, Limit: 10}); err != nil || len(vs) != 2 {
		t.Errorf("versions of the kept message: %d, %v", len(vs), err)
	}
}

// testResetConcurrent: writers append and mutate through b while a resets. Every append
// succeeds and lands either in the old stream (before the reset) or in the new one, whose
// serials run 1..n without a gap and hold exactly the appends that landed there; every
// mutation is applied before the reset or answers not found.
func testResetConcurrent(t *testing.T, a, b AdminStore) {
	const writers, each = 4, 40
	mm := create(t, b, "app", "race", `""`)
	var wg sync.WaitGroup
	got := make([][]protocol.Message, writers)
	errs := make(chan error, writers+1)
	started := make(chan struct{}, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := protocol.Message{Event: "e", Channel: "race", Data: []byte(fmt.Sprintf(`"%d-%d"`, w, i))}
				if err := b.Append(ctx, "app", &m); err != nil {
					errs <- err
					return
				}
				got[w] = append(got[w], m)
				if i == 0 {
					started <- struct{}{}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range each {
			_, _, err := b.Mutate(ctx, "app", "race", mm.Mutable.MessageSerial, "", "", planFor(protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str("z")}))
			if errors.Is(err, channels.ErrMessageNotFound) {
				return
			}
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	for range writers {
		<-started // the reset lands while the writers are under way
	}
	res, err := a.Reset(ctx, "app", "race")
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("writer: %v", e)
	}
	if err != nil {
		t.Fatal(err)
	}
	var fresh []protocol.Message
	for _, ms := range got {
		for _, m := range ms {
			switch m.StreamID {
			case res.NewStreamID:
				fresh = append(fresh, m)
			case res.PreviousStreamID:
			default:
				t.Fatalf("append in stream %s: neither the old %s nor the new %s", m.StreamID, res.PreviousStreamID, res.NewStreamID)
			}
		}
	}
	items := readAll(t, a, "app", "race")
	if len(items) != len(fresh) {
		t.Fatalf("the new stream holds %d messages, %d appends landed in it", len(items), len(fresh))
	}
	for i, m := range items {
		if m.Serial != uint64(i+1) || m.StreamID != res.NewStreamID {
			t.Fatalf("new stream message %d: serial %d stream %s", i, m.Serial, m.StreamID)
		}
	}
	if _, err := a.Message(ctx, "app", "race", mm.Mutable.MessageSerial); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("mutable message after the reset: %v", err)
	}
}
