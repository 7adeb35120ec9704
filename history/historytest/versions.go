package historytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// VersionStore is a history store that also keeps mutable messages.
type VersionStore interface {
	channels.History
	channels.Versions
}

// RunVersions runs the mutable-message suite. newStore must return an empty store each time.
func RunVersions(t *testing.T, newStore func(t *testing.T) VersionStore) {
	t.Run("create", func(t *testing.T) { testCreate(t, newStore(t)) })
	t.Run("update delete append", func(t *testing.T) { testMutations(t, newStore(t)) })
	t.Run("not found", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("op ids", func(t *testing.T) { testOpIDs(t, newStore(t)) })
	t.Run("refused plan", func(t *testing.T) { testRefusedPlan(t, newStore(t)) })
	t.Run("versions paging", func(t *testing.T) { testVersionPaging(t, newStore(t)) })
	t.Run("concurrent appends", func(t *testing.T) {
		s := newStore(t)
		testConcurrentAppends(t, s, s)
	})
}

// RunVersionsShared checks two handles on one store (two nodes sharing a database):
// concurrent appends to one message through both lose no fragment and apply in one order.
func RunVersionsShared(t *testing.T, open func(t *testing.T) (a, b VersionStore)) {
	a, b := open(t)
	testConcurrentAppends(t, a, b)
}

// create stores a create of channel with data and returns its message serial.
func create(t *testing.T, s VersionStore, app, channel, data string) *protocol.Message {
	t.Helper()
	now := time.Now().UnixMilli()
	serial := protocol.FormatSerial(now, "test", nextCounter())
	meta := protocol.VersionMeta{Serial: serial, TimestampMs: now, ClientID: "c1"}
	m := &protocol.Message{Event: "chat.message", Channel: channel, Data: []byte(data), MessageID: protocol.NewUUID(),
		Tags: map[string]string{"room": "r1"}, PublishedAtMs: now,
		Mutable: &protocol.Mutable{Action: protocol.ActionCreate, MessageSerial: serial, Version: meta}}
	agg := protocol.VersionedMessage{Channel: channel, MessageSerial: serial, Event: m.Event, Data: m.Data, Tags: m.Tags,
		OriginalClientID: "c1", LatestAction: protocol.ActionCreate, LatestVersion: meta, CreatedAtMs: m.PublishedAtMs}
	if err := s.Create(ctx, app, m, agg); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return m
}

var (
	counterMu sync.Mutex
	counter   uint64
)

func nextCounter() uint64 {
	counterMu.Lock()
	defer counterMu.Unlock()
	counter++
	return counter
}

// planFor returns the plan of op as the hub builds it (Apply, then Delivery).
func planFor(op protocol.Mutation) func(protocol.VersionedMessage) (protocol.MutationPlan, error) {
	return func(cur protocol.VersionedMessage) (protocol.MutationPlan, error) {
		serial, ts := protocol.NextVersionSerial(cur.LatestVersion.Serial, time.Now().UnixMilli(), "test", nextCounter())
		meta := protocol.VersionMeta{Serial: serial, TimestampMs: ts, ClientID: op.ClientID, Description: op.Description, Metadata: op.Metadata}
		next, err := cur.Apply(&op, meta)
		if err != nil {
			return protocol.MutationPlan{}, err
		}
		data := next.Data
		if op.Action == protocol.ActionAppend {
			data = op.Data
		}
		return protocol.MutationPlan{Next: next, Delivery: next.Delivery(op.Action, data, protocol.NewUUID(), false),
			Version: protocol.MessageVersion{MessageSerial: cur.MessageSerial, HistorySerial: cur.HistorySerial, Action: op.Action,
				Event: next.Event, Data: data, Extras: next.Extras, Version: meta}}, nil
	}
}

func mutate(t *testing.T, s VersionStore, app, channel, serial string, op protocol.Mutation) protocol.MutationPlan {
	t.Helper()
	p, dup, err := s.Mutate(ctx, app, channel, serial, "", "", planFor(op))
	if err != nil || dup {
		t.Fatalf("Mutate %s: dup %v, %v", op.Action, dup, err)
	}
	return p
}

func testCreate(t *testing.T, s VersionStore) {
	plain := protocol.Message{Event: "e", Channel: "chat", Data: []byte(`"plain"`)}
	if err := s.Append(ctx, "app", &plain); err != nil {
		t.Fatal(err)
	}
	m := create(t, s, "app", "chat", `"hello"`)
	if m.Serial != 2 || m.StreamID != plain.StreamID || m.Mutable.HistorySerial != 2 {
		t.Fatalf("create: serial %d stream %q history serial %d, want 2, %q, 2", m.Serial, m.StreamID, m.Mutable.HistorySerial, plain.StreamID)
	}
	agg, err := s.Message(ctx, "app", "chat", m.Mutable.MessageSerial)
	if err != nil {
		t.Fatal(err)
	}
	if agg.HistorySerial != 2 || agg.LatestDeliverySerial != 2 || string(agg.Data) != `"hello"` || agg.Event != "chat.message" ||
		agg.LatestAction != protocol.ActionCreate || agg.LatestVersion.Serial != m.Mutable.MessageSerial || agg.StreamID != m.StreamID ||
		agg.LatestMessageID != m.MessageID || agg.OriginalClientID != "c1" || agg.Tags["room"] != "r1" {
		t.Fatalf("aggregate after create: %+v", agg)
	}
	page, err := s.Read(ctx, "app", "chat", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 10})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("read: %d items, %v", len(page.Items), err)
	}
	if page.Items[0].Mutable != nil {
		t.Errorf("a plain message came back mutable: %+v", page.Items[0].Mutable)
	}
	got := page.Items[1].Mutable
	if got == nil || got.Action != protocol.ActionCreate || got.MessageSerial != m.Mutable.MessageSerial || got.HistorySerial != 2 ||
		got.Version.Serial != m.Mutable.MessageSerial || got.Version.ClientID != "c1" {
		t.Fatalf("stored create: %+v", got)
	}
	vs, more, err := s.ReadVersions(ctx, "app", "chat", m.Mutable.MessageSerial, channels.VersionQuery{Direction: protocol.OldestFirst, Limit: 10})
	if err != nil || more || len(vs) != 1 || vs[0].Action != protocol.ActionCreate || vs[0].DeliverySerial != 2 || string(vs[0].Data) != `"hello"` {
		t.Fatalf("versions after create: %+v more %v, %v", vs, more, err)
	}
}

func testMutations(t *testing.T, s VersionStore) {
	m := create(t, s, "app", "chat", `"hello"`)
	serial := m.Mutable.MessageSerial
	name := "chat.edited"
	up := mutate(t, s, "app", "chat", serial, protocol.Mutation{Action: protocol.ActionUpdate, Name: &name, Data: []byte(`"hello, edited"`),
		Extras: []byte(`{"headers":{"k":"v"}}`), Description: "typo", Metadata: []byte(`{"x":1}`), ClientID: "u1"})
	if up.Delivery.Serial != 2 || up.Next.LatestDeliverySerial != 2 || up.Version.DeliverySerial != 2 || up.Delivery.StreamID != m.StreamID {
		t.Fatalf("update serials: delivery %d next %d version %d", up.Delivery.Serial, up.Next.LatestDeliverySerial, up.Version.DeliverySerial)
	}
	ap := mutate(t, s, "app", "chat", serial, protocol.Mutation{Action: protocol.ActionAppend, Data: []byte(`" world"`)})
	if ap.Delivery.Serial != 3 || string(ap.Next.Data) != `"hello, edited world"` || string(ap.Delivery.Data) != `" world"` ||
		string(ap.Delivery.Mutable.Full) != `"hello, edited world"` {
		t.Fatalf("append: serial %d data %s delivery %s full %s", ap.Delivery.Serial, ap.Next.Data, ap.Delivery.Data, ap.Delivery.Mutable.Full)
	}
	del := mutate(t, s, "app", "chat", serial, protocol.Mutation{Action: protocol.ActionDelete, ClearData: true})
	if del.Delivery.Serial != 4 || del.Next.Data != nil {
		t.Fatalf("delete: serial %d data %s", del.Delivery.Serial, del.Next.Data)
	}
	agg, err := s.Message(ctx, "app", "chat", serial)
	if err != nil {
		t.Fatal(err)
	}
	if agg.LatestAction != protocol.ActionDelete || agg.Data != nil || agg.Event != name || string(agg.Extras) != `{"headers":{"k":"v"}}` ||
		agg.LatestDeliverySerial != 4 || agg.HistorySerial != 1 || agg.LatestVersion.Serial != del.Version.Version.Serial ||
		agg.LatestMessageID != del.Delivery.MessageID {
		t.Fatalf("aggregate after delete: %+v", agg)
	}
	vs, _, err := s.ReadVersions(ctx, "app", "chat", serial, channels.VersionQuery{Direction: protocol.OldestFirst, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i, v := range vs {
		actions = append(actions, string(v.Action))
		if i > 0 && v.Version.Serial <= vs[i-1].Version.Serial {
			t.Errorf("version %d serial %s not after %s", i, v.Version.Serial, vs[i-1].Version.Serial)
		}
		if v.DeliverySerial != uint64(i+1) || v.HistorySerial != 1 || v.MessageSerial != serial {
			t.Errorf("version %d: delivery %d history %d serial %s", i, v.DeliverySerial, v.HistorySerial, v.MessageSerial)
		}
	}
	if strings.Join(actions, ",") != "create,update,append,delete" {
		t.Fatalf("versions: %s", strings.Join(actions, ","))
	}
	if string(vs[1].Version.Metadata) != `{"x":1}` || vs[1].Version.Description != "typo" || vs[1].Version.ClientID != "u1" || string(vs[2].Data) != `" world"` {
		t.Errorf("version fields: update %+v, append data %s", vs[1].Version, vs[2].Data)
	}
	// The stream holds every delivery; MessagesOnly shows only the create.
	all, err := s.Read(ctx, "app", "chat", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 10})
	if err != nil || len(all.Items) != 4 {
		t.Fatalf("read all: %d, %v", len(all.Items), err)
	}
	for i, want := range []protocol.Action{protocol.ActionCreate, protocol.ActionUpdate, protocol.ActionAppend, protocol.ActionDelete} {
		it := all.Items[i]
		if it.Mutable == nil || it.Mutable.Action != want || it.Mutable.HistorySerial != 1 || it.Mutable.MessageSerial != serial {
			t.Errorf("stream item %d: %+v, want %s", i, it.Mutable, want)
		}
	}
	if all.Items[2].Event != "sockudo:message.append" || all.Items[2].Name != name || string(all.Items[2].Data) != `" world"` {
		t.Errorf("stored append delivery: event %s name %s data %s", all.Items[2].Event, all.Items[2].Name, all.Items[2].Data)
	}
	only, err := s.Read(ctx, "app", "chat", protocol.HistoryQuery{Direction: protocol.NewestFirst, Limit: 10, MessagesOnly: true})
	if err != nil || len(only.Items) != 1 || only.Items[0].Serial != 1 {
		t.Fatalf("messages only: %+v, %v", only.Items, err)
	}
	latest, err := s.Latest(ctx, "app", "chat", []string{serial, "unknown"})
	if err != nil || len(latest) != 1 || latest[serial].LatestAction != protocol.ActionDelete {
		t.Fatalf("latest: %+v, %v", latest, err)
	}
	// Appending to non-string data is refused by the plan and changes nothing.
	obj := create(t, s, "app", "chat", `{"n":1}`)
	_, _, err = s.Mutate(ctx, "app", "chat", obj.Mutable.MessageSerial, "", "", planFor(protocol.Mutation{Action: protocol.ActionAppend, Data: []byte(`"x"`)}))
	if !errors.Is(err, protocol.ErrAppendNotString) {
		t.Fatalf("append to an object: %v", err)
	}
}

func testNotFound(t *testing.T, s VersionStore) {
	m := create(t, s, "app", "chat", `"hello"`)
	serial := m.Mutable.MessageSerial
	for _, c := range []struct{ app, channel, serial string }{
		{"app", "chat", "00000000000000000001:x:00000000000000000001"},
		{"app", "other", serial},
		{"other-app", "chat", serial},
	} {
		_, _, err := s.Mutate(ctx, c.app, c.channel, c.serial, "", "", planFor(protocol.Mutation{Action: protocol.ActionAppend, Data: []byte(`"x"`)}))
		if !errors.Is(err, channels.ErrMessageNotFound) {
			t.Errorf("Mutate %+v: %v, want ErrMessageNotFound", c, err)
		}
		if _, err := s.Message(ctx, c.app, c.channel, c.serial); !errors.Is(err, channels.ErrMessageNotFound) {
			t.Errorf("Message %+v: %v", c, err)
		}
		if _, _, err := s.ReadVersions(ctx, c.app, c.channel, c.serial, channels.VersionQuery{Limit: 10}); !errors.Is(err, channels.ErrMessageNotFound) {
			t.Errorf("ReadVersions %+v: %v", c, err)
		}
	}
	st, _ := s.State(ctx, "app", "chat")
	if st.HeadSerial != 1 {
		t.Errorf("refused mutations consumed serials: head %d", st.HeadSerial)
	}
}

func testOpIDs(t *testing.T, s VersionStore) {
	m := create(t, s, "app", "chat", `"a"`)
	serial := m.Mutable.MessageSerial
	op := protocol.Mutation{Action: protocol.ActionAppend, Data: []byte(`"b"`)}
	first, dup, err := s.Mutate(ctx, "app", "chat", serial, "key-1", "fp-1", planFor(op))
	if err != nil || dup {
		t.Fatalf("first: dup %v %v", dup, err)
	}
	again, dup, err := s.Mutate(ctx, "app", "chat", serial, "key-1", "fp-1", planFor(op))
	if err != nil || !dup {
		t.Fatalf("retry: dup %v %v", dup, err)
	}
	if again.Version.Version.Serial != first.Version.Version.Serial || again.Version.DeliverySerial != first.Version.DeliverySerial ||
		again.Version.Action != protocol.ActionAppend || again.Delivery != nil {
		t.Fatalf("retry answered %+v, want the first version %+v and no delivery", again.Version, first.Version)
	}
	if _, _, err := s.Mutate(ctx, "app", "chat", serial, "key-1", "fp-2", planFor(op)); !errors.Is(err, channels.ErrOperationConflict) {
		t.Fatalf("reuse with another payload: %v", err)
	}
	agg, _ := s.Message(ctx, "app", "chat", serial)
	if string(agg.Data) != `"ab"` || agg.LatestDeliverySerial != 2 {
		t.Fatalf("after retries: data %s delivery %d, want \"ab\" 2", agg.Data, agg.LatestDeliverySerial)
	}
	// Another op key appends again.
	if _, dup, err := s.Mutate(ctx, "app", "chat", serial, "key-2", "fp-1", planFor(op)); err != nil || dup {
		t.Fatalf("second key: %v %v", dup, err)
	}
}

func testRefusedPlan(t *testing.T, s VersionStore) {
	m := create(t, s, "app", "chat", `"a"`)
	boom := errors.New("refused")
	_, _, err := s.Mutate(ctx, "app", "chat", m.Mutable.MessageSerial, "k", "f", func(protocol.VersionedMessage) (protocol.MutationPlan, error) {
		return protocol.MutationPlan{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("plan error: %v", err)
	}
	st, _ := s.State(ctx, "app", "chat")
	vs, _, _ := s.ReadVersions(ctx, "app", "chat", m.Mutable.MessageSerial, channels.VersionQuery{Limit: 10})
	if st.HeadSerial != 1 || len(vs) != 1 {
		t.Fatalf("a refused plan left head %d and %d versions", st.HeadSerial, len(vs))
	}
	// The op key of a refused plan is free.
	if _, dup, err := s.Mutate(ctx, "app", "chat", m.Mutable.MessageSerial, "k", "f", planFor(protocol.Mutation{Action: protocol.ActionAppend, Data: []byte(`"b"`)})); err != nil || dup {
		t.Fatalf("after a refused plan: %v %v", dup, err)
	}
}

func testVersionPaging(t *testing.T, s VersionStore) {
	m := create(t, s, "app", "chat", `""`)
	serial := m.Mutable.MessageSerial
	for i := range 9 {
		mutate(t, s, "app", "chat", serial, protocol.Mutation{Action: protocol.ActionAppend, Data: []byte(fmt.Sprintf(`"%d"`, i))})
	}
	for _, dir := range []protocol.Direction{protocol.OldestFirst, protocol.NewestFirst} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			vs, more, err := s.ReadVersions(ctx, "app", "chat", serial, channels.VersionQuery{Direction: dir, Limit: 3, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				got = append(got, v.Version.Serial)
			}
			if !more {
				if pages != 3 {
					t.Errorf("%s: %d pages, want 4 (10 versions by 3)", dir, pages+1)
				}
				break
			}
			after = vs[len(vs)-1].Version.Serial
		}
		if len(got) != 10 {
			t.Fatalf("%s: %d versions, want 10", dir, len(got))
		}
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if dir == protocol.NewestFirst {
			slices.Reverse(sorted)
		}
		if !slices.Equal(got, sorted) {
			t.Errorf("%s: versions out of order: %v", dir, got)
		}
	}
}

// testConcurrentAppends appends from 8 writers (half through each handle) to one message:
// every fragment is in the result exactly once, deliveries take consecutive serials, and
// the versions, folded in order, give the same string.
func testConcurrentAppends(t *testing.T, a, b VersionStore) {
	m := create(t, a, "app", "chat", `""`)
	serial := m.Mutable.MessageSerial
	const writers, each = 8, 60
	var wg sync.WaitGroup
	for w := range writers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				op := protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str(Fragment(w, i))}
				if _, _, err := s.Mutate(ctx, "app", "chat", serial, "", "", planFor(op)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	agg, err := b.Message(ctx, "app", "chat", serial)
	if err != nil {
		t.Fatal(err)
	}
	var final string
	if err := jsonString(agg.Data, &final); err != nil {
		t.Fatal(err)
	}
	CheckFragments(t, final, writers, each)
	if agg.LatestDeliverySerial != writers*each+1 {
		t.Fatalf("latest delivery %d, want %d", agg.LatestDeliverySerial, writers*each+1)
	}
	// The stream holds every delivery in serial order; folding them gives the same string.
	var folded []byte
	next := uint64(1)
	for next <= agg.LatestDeliverySerial {
		page, err := a.Read(ctx, "app", "chat", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 1000, StartSerial: next})
		if err != nil || len(page.Items) == 0 {
			t.Fatalf("read from %d: %v", next, err)
		}
		for _, it := range page.Items {
			if it.Serial != next {
				t.Fatalf("serial %d, want %d", it.Serial, next)
			}
			if it.Mutable.Action == protocol.ActionCreate {
				folded = it.Data
			} else if folded, err = protocol.AppendData(folded, it.Data); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	if string(folded) != string(agg.Data) {
		t.Fatalf("folded stream %s != aggregate %s", folded, agg.Data)
	}
}

func jsonString(b []byte, s *string) error { return json.Unmarshal(b, s) }

// CreateForTest stores a create of channel with data and returns it (for implementation
// tests of retention).
func CreateForTest(t *testing.T, s VersionStore, app, channel, data string) *protocol.Message {
	t.Helper()
	return create(t, s, app, channel, data)
}

// AppendForTest appends frag (a Go string) to a message.
func AppendForTest(s VersionStore, app, channel, serial, frag string) error {
	_, _, err := s.Mutate(ctx, app, channel, serial, "", "", planFor(protocol.Mutation{Action: protocol.ActionAppend, Data: protocol.Str(frag)}))
	return err
}

// Fragment is the i-th fragment writer w appends in concurrency tests.
func Fragment(w, i int) string { return fmt.Sprintf("<%d.%d>", w, i) }

// CheckFragments checks a string built by concurrent appends of Fragment(w, i) for writers
// w and i < each: every fragment is there exactly once, each writer's in its order.
func CheckFragments(t testing.TB, final string, writers, each int) {
	t.Helper()
	for w := range writers {
		last := -1
		for i := range each {
			frag := Fragment(w, i)
			if n := strings.Count(final, frag); n != 1 {
				t.Fatalf("fragment %s appears %d times", frag, n)
			}
			at := strings.Index(final, frag)
			if at < last {
				t.Fatalf("fragment %s comes before its writer's previous one", frag)
			}
			last = at
		}
	}
}
