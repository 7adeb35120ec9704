package historytest

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/presencehistory"
)

// Clock is a settable clock for the presence suite: stores under test must read the time
// from it (their Now option).
type Clock struct{ ms atomic.Int64 }

// NewClock returns a clock at a fixed time.
func NewClock() *Clock {
	c := &Clock{}
	c.ms.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	return c
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// RunPresence runs the presence-history suite. newStore must return an empty store whose
// clock is clk.
func RunPresence(t *testing.T, newStore func(t *testing.T, clk *Clock) presencehistory.Store) {
	t.Run("serials and payload", func(t *testing.T) { testPresenceAppend(t, newStore) })
	t.Run("repeated edges dropped", func(t *testing.T) { testPresenceDedupe(t, newStore) })
	t.Run("pages and bounds", func(t *testing.T) { testPresencePages(t, newStore) })
	t.Run("retention", func(t *testing.T) { testPresenceRetention(t, newStore) })
	t.Run("reset", func(t *testing.T) { testPresenceReset(t, newStore) })
	t.Run("channels apart", func(t *testing.T) { testPresenceApart(t, newStore) })
}

// RunPresenceShared checks two handles of one store (two nodes): concurrent appends to one
// channel get distinct, gap-free serials in one stream, and one change reported by both is
// recorded once.
func RunPresenceShared(t *testing.T, open func(t *testing.T, clk *Clock) (a, b presencehistory.Store)) {
	t.Run("concurrent appends", func(t *testing.T) {
		clk := NewClock()
		a, b := open(t, clk)
		const per = 100
		var wg sync.WaitGroup
		for i, s := range []presencehistory.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range per {
					u := fmt.Sprintf("n%d-u%d", i, j)
					if _, err := s.AppendPresence(ctx, "app", "presence-sh", []presencehistory.Event{join(u, clk), leave(u, clk)}, presencehistory.Retention{}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		items := readPresence(t, a, "presence-sh", presencehistory.Read{})
		if len(items) != 4*per {
			t.Fatalf("%d events, want %d", len(items), 4*per)
		}
		joined := map[string]bool{}
		for i, e := range items {
			if e.Serial != uint64(i+1) || e.StreamID != items[0].StreamID {
				t.Fatalf("event %d: serial %d stream %s", i, e.Serial, e.StreamID)
			}
			switch e.Event {
			case channels.PresenceMemberAdded:
				joined[e.UserID] = true
			case channels.PresenceMemberRemoved:
				if !joined[e.UserID] {
					t.Fatalf("serial %d: %s removed before it was added", e.Serial, e.UserID)
				}
			}
		}
	})
	t.Run("one change reported by two nodes", func(t *testing.T) {
		clk := NewClock()
		a, b := open(t, clk)
		mustAppend(t, a, "presence-dup", join("u", clk))
		if got := mustAppend(t, b, "presence-dup", join("u", clk)); len(got) != 0 {
			t.Fatalf("second node's member_added recorded: %+v", got)
		}
		mustAppend(t, b, "presence-dup", leave("u", clk))
		if got := mustAppend(t, a, "presence-dup", leave("u", clk)); len(got) != 0 {
			t.Fatalf("second node's member_removed recorded: %+v", got)
		}
		if items := readPresence(t, a, "presence-dup", presencehistory.Read{}); len(items) != 2 {
			t.Fatalf("%d events, want 2", len(items))
		}
	})
}

func join(u string, clk *Clock) presencehistory.Event {
	return presencehistory.Event{Event: channels.PresenceMemberAdded, Cause: channels.CauseJoin, UserID: u, ConnectionID: "1.1",
		UserInfo: json.RawMessage(`{"name":"` + u + `"}`), PublishedAtMs: clk.Now().UnixMilli()}
}

func leave(u string, clk *Clock) presencehistory.Event {
	return presencehistory.Event{Event: channels.PresenceMemberRemoved, Cause: channels.CauseDisconnect, UserID: u, ConnectionID: "1.1",
		PublishedAtMs: clk.Now().UnixMilli()}
}

func mustAppend(t *testing.T, s presencehistory.Store, ch string, evs ...presencehistory.Event) []presencehistory.Event {
	t.Helper()
	out, err := s.AppendPresence(ctx, "app", ch, evs, presencehistory.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readPresence pages through the channel with q (oldest first unless q.Newest), 3 at a time.
func readPresence(t *testing.T, s presencehistory.Store, ch string, q presencehistory.Read) []presencehistory.Event {
	t.Helper()
	q.Limit = 3
	var all []presencehistory.Event
	for range 10000 {
		p, err := s.ReadPresence(ctx, "app", ch, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Items...)
		if !p.HasMore {
			return all
		}
		if len(p.Items) == 0 {
			t.Fatal("has_more with an empty page")
		}
		q.After = p.Items[len(p.Items)-1].Serial
	}
	t.Fatal("pages never end")
	return nil
}

func testPresenceAppend(t *testing.T, newStore func(*testing.T, *Clock) presencehistory.Store) {
	clk := NewClock()
	s := newStore(t, clk)
	st, err := s.PresenceStream(ctx, "app", "presence-a", presencehistory.Retention{})
	if err != nil || st.StreamID != "" || st.Events != 0 || st.OldestSerial != 0 {
		t.Fatalf("stream of a new channel = %+v, %v", st, err)
	}
	upd := presencehistory.Event{Event: channels.PresenceMemberUpdated, Cause: channels.CauseUpdate, UserID: "u1", ConnectionID: "1.1",
		UserInfo: json.RawMessage(`{"status":"away"}`), PublishedAtMs: clk.Now().UnixMilli() + 1}
	orphan := presencehistory.Event{Event: channels.PresenceMemberRemoved, Cause: channels.CauseOrphanCleanup, UserID: "u1", DeadNodeID: "node-b",
		PublishedAtMs: clk.Now().UnixMilli() + 2}
	out := mustAppend(t, s, "presence-a", join("u1", clk), upd, orphan)
	if len(out) != 3 {
		t.Fatalf("recorded %d, want 3", len(out))
	}
	for i, e := range out {
		if e.Serial != uint64(i+1) || e.StreamID == "" || e.StreamID != out[0].StreamID {
			t.Fatalf("event %d: serial %d stream %q", i, e.Serial, e.StreamID)
		}
	}
	var p struct {
		StreamID      string          `json:"stream_id"`
		Serial        uint64          `json:"serial"`
		PublishedAtMs int64           `json:"published_at_ms"`
		Event         string          `json:"event"`
		Cause         string          `json:"cause"`
		UserID        string          `json:"user_id"`
		ConnectionID  *string         `json:"connection_id"`
		UserInfo      json.RawMessage `json:"user_info"`
		DeadNodeID    *string         `json:"dead_node_id"`
	}
	items := readPresence(t, s, "presence-a", presencehistory.Read{})
	if len(items) != 3 {
		t.Fatalf("read %d", len(items))
	}
	if err := json.Unmarshal(items[2].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Serial != 3 || p.Event != "member_removed" || p.Cause != "orphan_cleanup" || p.ConnectionID != nil || p.DeadNodeID == nil ||
		*p.DeadNodeID != "node-b" || string(p.UserInfo) != "null" || p.StreamID != out[0].StreamID || p.PublishedAtMs != orphan.PublishedAtMs {
		t.Errorf("payload %s", items[2].Payload)
	}
	if err := json.Unmarshal(items[1].Payload, &p); err != nil || string(p.UserInfo) != `{"status":"away"}` || p.Cause != "update" {
		t.Errorf("payload %s", items[1].Payload)
	}
	if e := items[2]; e.DeadNodeID != "node-b" || e.ConnectionID != "" || e.Cause != channels.CauseOrphanCleanup || e.UserID != "u1" {
		t.Errorf("item %+v", e)
	}
	st, err = s.PresenceStream(ctx, "app", "presence-a", presencehistory.Retention{})
	var bytes int64
	for _, e := range items {
		bytes += int64(len(e.Payload))
	}
	if err != nil || st.Events != 3 || st.OldestSerial != 1 || st.NewestSerial != 3 || st.NextSerial != 4 || st.Bytes != bytes ||
		st.OldestMs != items[0].PublishedAtMs || st.NewestMs != orphan.PublishedAtMs {
		t.Fatalf("stream = %+v (bytes want %d), %v", st, bytes, err)
	}
	// A user id with a NUL byte and non-ASCII text round-trips.
	odd := "u\x00ü"
	mustAppend(t, s, "presence-a", join(odd, clk))
	if items := readPresence(t, s, "presence-a", presencehistory.Read{StartSerial: 4}); len(items) != 1 || items[0].UserID != odd {
		t.Fatalf("odd user id read back as %+v", items)
	}
}

func testPresenceDedupe(t *testing.T, newStore func(*testing.T, *Clock) presencehistory.Store) {
	clk := NewClock()
	s := newStore(t, clk)
	upd := presencehistory.Event{Event: channels.PresenceMemberUpdated, Cause: channels.CauseUpdate, UserID: "u", UserInfo: json.RawMessage(`{}`),
		PublishedAtMs: clk.Now().UnixMilli()}
	out := mustAppend(t, s, "presence-d", join("u", clk), join("u", clk), upd, upd, leave("u", clk), leave("u", clk), leave("v", clk), join("u", clk))
	var kinds []channels.PresenceEventKind
	for _, e := range out {
		kinds = append(kinds, e.Event)
	}
	want := []channels.PresenceEventKind{"member_added", "member_updated", "member_updated", "member_removed", "member_added"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("recorded %v, want %v", kinds, want)
	}
	if out[len(out)-1].Serial != 5 {
		t.Fatalf("serials have gaps: last %d", out[len(out)-1].Serial)
	}
}

func testPresencePages(t *testing.T, newStore func(*testing.T, *Clock) presencehistory.Store) {
	clk := NewClock()
	s := newStore(t, clk)
	t0 := clk.Now().UnixMilli()
	for i := range 10 {
		mustAppend(t, s, "presence-p", join(fmt.Sprintf("u%d", i), clk))
		clk.Advance(time.Second)
	}
	serials := func(items []presencehistory.Event) string {
		var out []uint64
		for _, e := range items {
			out = append(out, e.Serial)
		}
		return fmt.Sprint(out)
	}
	cases := []struct {
		q    presencehistory.Read
		want string
	}{
		{presencehistory.Read{}, "[1 2 3 4 5 6 7 8 9 10]"},
		{presencehistory.Read{Newest: true}, "[10 9 8 7 6 5 4 3 2 1]"},
		{presencehistory.Read{StartSerial: 3, EndSerial: 6}, "[3 4 5 6]"},
		{presencehistory.Read{Newest: true, StartSerial: 3, EndSerial: 6}, "[6 5 4 3]"},
		{presencehistory.Read{StartMs: t0 + 2000, EndMs: t0 + 4000}, "[3 4 5]"},
		{presencehistory.Read{Newest: true, EndMs: t0 + 1000}, "[2 1]"},
		{presencehistory.Read{StartSerial: 11}, "[]"},
		{presencehistory.Read{After: 8}, "[9 10]"},
		{presencehistory.Read{Newest: true, After: 3}, "[2 1]"},
	}
	for _, c := range cases {
		if got := serials(readPresence(t, s, "presence-p", c.q)); got != c.want {
			t.Errorf("%+v: %s, want %s", c.q, got, c.want)
		}
	}
	p, err := s.ReadPresence(ctx, "app", "presence-p", presencehistory.Read{Limit: 10})
	if err != nil || len(p.Items) != 10 || p.HasMore {
		t.Fatalf("exact page: %d items, has_more %v, %v", len(p.Items), p.HasMore, err)
	}
	p, err = s.ReadPresence(ctx, "app", "presence-none", presencehistory.Read{Limit: 10})
	if err != nil || len(p.Items) != 0 || p.HasMore || p.Retained.StreamID != "" {
		t.Fatalf("unknown channel: %+v, %v", p, err)
	}
}

func testPresenceRetention(t *testing.T, newStore func(*testing.T, *Clock) presencehistory.Store) {
	clk := NewClock()
	s := newStore(t, clk)
	for i := range 200 {
		mustAppend(t, s, "presence-r", join(fmt.Sprintf("u%03d", i), clk))
	}
	r := presencehistory.Retention{MaxEvents: 50}
	p, err := s.ReadPresence(ctx, "app", "presence-r", presencehistory.Read{Limit: 5, Retention: r})
	if err != nil || len(p.Items) != 5 || p.Items[0].Serial != 151 || p.Retained.OldestSerial != 151 || p.Retained.Events != 50 || p.Retained.NewestSerial != 200 {
		t.Fatalf("max events: first %v, retained %+v, %v", p.Items, p.Retained, err)
	}
	// Appends with the bound trim physically too; reads stay exact.
	for i := 200; i < 300; i++ {
		if _, err := s.AppendPresence(ctx, "app", "presence-r", []presencehistory.Event{join(fmt.Sprintf("u%03d", i), clk)}, r); err != nil {
			t.Fatal(err)
		}
	}
	if items := readPresence(t, s, "presence-r", presencehistory.Read{Retention: r}); len(items) != 50 || items[0].Serial != 251 {
		t.Fatalf("after trimming appends: %d items from %d", len(items), items[0].Serial)
	}
	// A byte bound: what is kept fits it.
	one := int64(len(readPresence(t, s, "presence-r", presencehistory.Read{Retention: r})[0].Payload))
	rb := presencehistory.Retention{MaxBytes: 10 * one}
	st, err := s.PresenceStream(ctx, "app", "presence-r", rb)
	if err != nil || st.Bytes > 10*one || st.Events < 9 || st.Events > 10 || st.NewestSerial != 300 {
		t.Fatalf("max bytes %d: %+v, %v", 10*one, st, err)
	}
	// Age: events older than the window are gone.
	clk.Advance(time.Hour)
	mustAppend(t, s, "presence-r", join("late", clk))
	ra := presencehistory.Retention{Window: 30 * time.Minute}
	items := readPresence(t, s, "presence-r", presencehistory.Read{Retention: ra})
	if len(items) != 1 || items[0].UserID != "late" || items[0].Serial != 301 {
		t.Fatalf("window: %+v", items)
	}
	clk.Advance(time.Hour)
	st, err = s.PresenceStream(ctx, "app", "presence-r", ra)
	if err != nil || st.Events != 0 || st.OldestSerial != 0 || st.NextSerial != 302 {
		t.Fatalf("all expired: %+v, %v", st, err)
	}
}

func testPresenceReset(t *testing.T, newStore func(*testing.T, *Clock) presencehistory.Store) {
	clk := NewClock()
	s := newStore(t, clk)
	first := mustAppend(t, s, "presence-x", join("u1", clk), join("u2", clk))
	before, after, err := s.ResetPresence(ctx, "app", "presence-x")
	if err != nil || before.Events != 2 || before.StreamID != first[0].StreamID || after.StreamID == "" || after.StreamID == before.StreamID ||
		after.NextSerial != 1 || after.Events != 0 {
		t.Fatalf("reset: before %+v after %+v, %v", before, after, err)
	}
	// The members are forgotten with the stream: u1 may join again, u2's leave is not a change.
	out := mustAppend(t, s, "presence-x", leave("u2", clk), join("u1", clk))
	if len(out) != 1 || out[0].Serial != 1 || out[0].StreamID != after.StreamID {
		t.Fatalf("after reset: %+v", out)
	}
	if items := readPresence(t, s, "presence-x", presencehistory.Read{}); len(items) != 1 {
		t.Fatalf("after reset read %d", len(items))
	}
	if _, after, err := s.ResetPresence(ctx, "app", "presence-new"); err != nil || after.StreamID == "" {
		t.Fatalf("reset of a new channel: %+v, %v", after, err)
	}
}

func testPresenceApart(t *testing.T, newStore func(*testing.T, *Clock) presencehistory.Store) {
	clk := NewClock()
	s := newStore(t, clk)
	mustAppend(t, s, "presence-1", join("u", clk))
	if out, err := s.AppendPresence(ctx, "other", "presence-1", []presencehistory.Event{join("u", clk)}, presencehistory.Retention{}); err != nil || len(out) != 1 || out[0].Serial != 1 {
		t.Fatalf("other app: %+v, %v", out, err)
	}
	if out := mustAppend(t, s, "presence-2", join("u", clk)); len(out) != 1 || out[0].Serial != 1 {
		t.Fatalf("other channel: %+v", out)
	}
}

// Sweeper is a store that frees idle state on demand (Memory.Sweep).
type Sweeper interface{ Sweep() }

// RunPresenceSweep checks that a sweep keeps what is retained and what a channel's members
// need, and frees the rest: a swept channel starts a new stream.
func RunPresenceSweep(t *testing.T, newStore func(t *testing.T, clk *Clock) presencehistory.Store) {
	clk := NewClock()
	s := newStore(t, clk)
	sw, ok := s.(Sweeper)
	if !ok {
		t.Skip("the store has no Sweep")
	}
	r := presencehistory.Retention{Window: time.Hour}
	add := func(ch string, evs ...presencehistory.Event) []presencehistory.Event {
		out, err := s.AppendPresence(ctx, "app", ch, evs, r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	gone := add("presence-gone", join("u", clk), leave("u", clk))
	stay := add("presence-stay", join("u", clk))
	clk.Advance(2 * time.Hour)
	sw.Sweep()
	// presence-stay still has its member: its leave is a change, in the same stream.
	if out := add("presence-stay", leave("u", clk)); len(out) != 1 || out[0].StreamID != stay[0].StreamID || out[0].Serial != 2 {
		t.Fatalf("member kept across a sweep: %+v", out)
	}
	// presence-gone was freed: a new stream.
	if out := add("presence-gone", join("v", clk)); len(out) != 1 || out[0].StreamID == gone[0].StreamID || out[0].Serial != 1 {
		t.Fatalf("swept channel: %+v", out)
	}
}
