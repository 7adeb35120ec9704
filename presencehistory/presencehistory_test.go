package presencehistory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/hubtest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/replication"
)

// presenceHub is a hub of the default app (presence history on) over a memory store.
func presenceHub(t testing.TB, obs channels.Observer, edit func(*config.App)) node {
	t.Helper()
	store := history.NewMemory(history.MemoryOptions{})
	return newNode(defaultApp(edit), store, channels.Options{History: store, Observer: obs})
}

// presenceLog reads the whole presence history of channel, oldest first, as
// "serial event cause user [dead node]" lines, paging with the cursor 2 at a time.
func presenceLog(t *testing.T, h node, channel string) []string {
	t.Helper()
	if err := h.ph.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []string
	req := channels.HistoryRequest{Direction: 1, Limit: 2}
	req.Direction, _ = protocol.ParseHistoryDirection("oldest_first")
	for range 1000 {
		res, herr := h.ph.Read(context.Background(), appID, channel, req)
		if herr != nil {
			t.Fatalf("ReadPresenceHistory: %v", herr)
		}
		for _, it := range res.Items {
			line := fmt.Sprintf("%d %s %s %s", it.Serial, it.Event, it.Cause, it.UserID)
			if it.DeadNodeID != nil {
				line += " " + *it.DeadNodeID
			}
			out = append(out, line)
		}
		if res.NextCursor == nil {
			return out
		}
		req.Cursor = *res.NextCursor
	}
	t.Fatal("pages never end")
	return nil
}

func snapshotUsers(t *testing.T, h node, channel string, at presencehistory.SnapshotAt) []string {
	t.Helper()
	res, herr := h.ph.Snapshot(context.Background(), appID, channel, at)
	if herr != nil {
		t.Fatalf("PresenceSnapshot: %v", herr)
	}
	users := []string{}
	for _, m := range res.Members {
		users = append(users, m.UserID)
	}
	if res.MemberCount != len(users) {
		t.Errorf("member_count %d for %d members", res.MemberCount, len(users))
	}
	return users
}

// updObserver records member_updated webhooks.
type updObserver struct {
	hubtest.Observer
	mu  sync.Mutex
	upd []string
}

func (o *updObserver) MemberUpdated(_, ch, u string, info json.RawMessage) {
	o.mu.Lock()
	o.upd = append(o.upd, ch+" "+u+" "+string(info))
	o.mu.Unlock()
}

// TestPresenceHistoryCauses: every membership change is one event, in order, with its
// cause: join; update; a user's second connection neither joins nor leaves again;
// unsubscribe and a dropped socket are disconnect; a heartbeat timeout is timeout;
// terminate_connections and force_reconnect are forced_disconnect. Snapshots at each step
// are the members the test saw live.
func TestPresenceHistoryCauses(t *testing.T) {
	obs := &updObserver{}
	h := presenceHub(t, obs, nil)
	const ch = "presence-room"
	var live [][]string // the members after each recorded event
	see := func() { u, _ := h.Users(appID, ch); live = append(live, append([]string{}, u...)) }

	a, as := connectV2(t, h, channels.ConnOptions{})
	mustSubscribe(t, a, as, ch, member("alice", `{"n":1}`))
	see()
	b, bs := connect(t, h)
	mustSubscribe(t, b, bs, ch, member("bob", ""))
	see()
	b2, b2s := connect(t, h) // bob's second connection: no event
	mustSubscribe(t, b2, b2s, ch, member("bob", ""))
	if err := a.PresenceUpdate(json.RawMessage(`{"channel":"presence-room","data":{"status":"away"}}`), ""); err != nil {
		t.Fatal(err)
	}
	see()
	b2.Disconnect() // bob still has a connection: no event
	b.Unsubscribe(ch)
	see()
	c, cs := connect(t, h)
	mustSubscribe(t, c, cs, ch, member("carol", ""))
	see()
	c.MarkTimedOut()
	c.Disconnect()
	see()
	d, ds := connect(t, h)
	mustSubscribe(t, d, ds, ch, member("dave", ""))
	see()
	if n := h.TerminateUserConnections(appID, "dave"); n != 1 {
		t.Fatalf("terminated %d", n)
	}
	d.Disconnect() // the server does this when the socket closes
	see()
	e, es := connect(t, h)
	mustSubscribe(t, e, es, ch, member("erin", ""))
	see()
	h.ForceReconnectUser(appID, "erin")
	e.Disconnect()
	see()
	a.Disconnect()
	see()

	got := presenceLog(t, h, ch)
	want := []string{
		"1 member_added join alice",
		"2 member_added join bob",
		"3 member_updated update alice",
		"4 member_removed disconnect bob",
		"5 member_added join carol",
		"6 member_removed timeout carol",
		"7 member_added join dave",
		"8 member_removed forced_disconnect dave",
		"9 member_added join erin",
		"10 member_removed forced_disconnect erin",
		"11 member_removed disconnect alice",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("presence history\n got %q\nwant %q", got, want)
	}
	for i, members := range live {
		if got := snapshotUsers(t, h, ch, presencehistory.SnapshotAt{Serial: uint64(i + 1)}); !reflect.DeepEqual(got, members) {
			t.Errorf("snapshot at serial %d = %v, live %v", i+1, got, members)
		}
	}
	if got := snapshotUsers(t, h, ch, presencehistory.SnapshotAt{}); len(got) != 0 {
		t.Errorf("latest snapshot %v, want empty", got)
	}
	obs.mu.Lock()
	if !reflect.DeepEqual(obs.upd, []string{`presence-room alice {"status":"away"}`}) {
		t.Errorf("member_updated webhooks %q", obs.upd)
	}
	obs.mu.Unlock()

	// The stored presence_event of the update carries the new user_info.
	res, herr := h.ph.Read(context.Background(), appID, ch, channels.HistoryRequest{StartSerial: 3, EndSerial: 3})
	if herr != nil || len(res.Items) != 1 {
		t.Fatalf("read serial 3: %+v %v", res, herr)
	}
	var pe struct {
		UserInfo     json.RawMessage `json:"user_info"`
		ConnectionID string          `json:"connection_id"`
	}
	if err := json.Unmarshal(res.Items[0].PresenceEvent, &pe); err != nil || string(pe.UserInfo) != `{"status":"away"}` || pe.ConnectionID != as.SocketID() {
		t.Errorf("presence_event %s", res.Items[0].PresenceEvent)
	}
	if !res.Continuity.Complete && res.HasMore {
		t.Errorf("continuity %+v", res.Continuity)
	}
}

// TestPresenceHistoryRefusals: bad requests get the error Sockudo gives.
func TestPresenceHistoryRefusals(t *testing.T) {
	h := presenceHub(t, nil, nil)
	for i := range 5 {
		c, s := connect(t, h)
		mustSubscribe(t, c, s, "presence-a", member(fmt.Sprintf("u%d", i), ""))
		c2, s2 := connect(t, h)
		mustSubscribe(t, c2, s2, "presence-b", member(fmt.Sprintf("u%d", i), ""))
	}
	_ = h.ph.Flush(context.Background())
	ctx := context.Background()
	page, herr := h.ph.Read(ctx, appID, "presence-a", channels.HistoryRequest{Limit: 2})
	if herr != nil || page.NextCursor == nil {
		t.Fatalf("first page: %+v %v", page, herr)
	}
	cases := []struct {
		name    string
		channel string
		req     channels.HistoryRequest
		status  int
		msg     string
	}{
		{"not a presence channel", "private-a", channels.HistoryRequest{}, 400, "Only presence channels support this endpoint"},
		{"invalid channel name", "presence-a b", channels.HistoryRequest{}, 400, ""},
		{"cursor of another channel", "presence-b", channels.HistoryRequest{Limit: 2, Cursor: *page.NextCursor}, 400, "does not belong"},
		{"cursor with another direction", "presence-a", channels.HistoryRequest{Limit: 2, Direction: 1, Cursor: *page.NextCursor}, 400, "same direction"},
		{"garbage cursor", "presence-a", channels.HistoryRequest{Cursor: "!!"}, 400, "Invalid history cursor"},
		{"start after end", "presence-a", channels.HistoryRequest{StartSerial: 5, EndSerial: 2}, 400, "start_serial"},
	}
	for _, c := range cases {
		_, herr := h.ph.Read(ctx, appID, c.channel, c.req)
		if herr == nil || herr.Status != c.status || !strings.Contains(herr.Message, c.msg) {
			t.Errorf("%s: %+v, want %d %q", c.name, herr, c.status, c.msg)
		}
	}
	// A message-history cursor of the same channel is not a presence cursor.
	// After a reset, the old stream's cursor has expired.
	if _, herr := h.ph.Reset(ctx, appID, "presence-a", channels.Operator{Reason: "test"}); herr != nil {
		t.Fatal(herr)
	}
	if _, herr := h.ph.Read(ctx, appID, "presence-a", channels.HistoryRequest{Limit: 2, Cursor: *page.NextCursor}); herr == nil ||
		herr.Status != 400 || !strings.Contains(herr.Message, "stream changed") {
		t.Errorf("cursor after reset: %+v", herr)
	}

	off := presenceHub(t, nil, func(a *config.App) { f := false; a.PresenceHistory.Enabled = &f })
	if _, herr := off.ph.Read(ctx, appID, "presence-a", channels.HistoryRequest{}); herr == nil || herr.Status != 422 || herr.Kind != "feature_disabled" {
		t.Errorf("disabled app: %+v", herr)
	}
	if _, herr := off.ph.Snapshot(ctx, appID, "presence-a", presencehistory.SnapshotAt{}); herr == nil || herr.Status != 422 {
		t.Errorf("disabled app snapshot: %+v", herr)
	}
}

// TestPresenceHistoryRetention: past max_events_per_channel the oldest events are gone and
// the page says truncated_by_retention; a snapshot says it is not complete.
func TestPresenceHistoryRetention(t *testing.T) {
	h := presenceHub(t, nil, func(a *config.App) { a.PresenceHistory.MaxEventsPerChannel = 3 })
	for i := range 5 {
		c, s := connect(t, h)
		mustSubscribe(t, c, s, "presence-r", member(fmt.Sprintf("u%d", i), ""))
	}
	_ = h.ph.Flush(context.Background())
	res, herr := h.ph.Read(context.Background(), appID, "presence-r", channels.HistoryRequest{})
	if herr != nil || len(res.Items) != 3 || !res.Continuity.TruncatedByRetention || res.Continuity.Complete ||
		*res.Continuity.OldestSerial != 3 || res.Continuity.RetainedEvents != 3 {
		t.Fatalf("page %+v continuity %+v, %v", res.Items, res.Continuity, herr)
	}
	snap, herr := h.ph.Snapshot(context.Background(), appID, "presence-r", presencehistory.SnapshotAt{})
	if herr != nil || snap.Continuity.Complete || !snap.Continuity.TruncatedByRetention || snap.EventsReplayed != 3 {
		t.Fatalf("snapshot %+v, %v", snap, herr)
	}
}

// TestClusterPresenceOrphanCleanup: a node dies holding members; the leader of the others
// records their member_removed once, cause orphan_cleanup with the dead node's id, in the
// store the nodes share.
func TestClusterPresenceOrphanCleanup(t *testing.T) {
	store := history.NewMemory(history.MemoryOptions{})
	o := replication.Options{Heartbeat: 50 * time.Millisecond, NodeTimeout: 300 * time.Millisecond}
	_, hubs, nodes, brokers := newCluster(t, 3, o, store, channels.Options{History: store})
	const ch = "presence-c"
	w, ws := connect(t, hubs[0])
	mustSubscribe(t, w, ws, ch, member("w", ""))
	// Each node records its own changes: the store orders changes on different nodes by when
	// they reach it, so node 0's is stored before node 2's are made.
	_ = hubs[0].ph.Flush(context.Background())
	for _, u := range []string{"g1", "g2"} {
		c, s := connect(t, hubs[2])
		mustSubscribe(t, c, s, ch, member(u, ""))
	}
	_ = hubs[2].ph.Flush(context.Background())
	waitFor(t, "node 1 sees all three", func() bool { u, _ := hubs[1].Users(appID, ch); return len(u) == 3 })
	_ = brokers[2].Close() // dies without a word
	nodes[2].Stop()
	waitFor(t, "the others drop node 2's members", func() bool {
		u0, _ := hubs[0].Users(appID, ch)
		u1, _ := hubs[1].Users(appID, ch)
		return len(u0) == 1 && len(u1) == 1
	})
	waitFor(t, "orphan cleanup recorded", func() bool { return len(presenceLog(t, hubs[0], ch)) >= 5 })
	_ = hubs[1].ph.Flush(context.Background())
	got := presenceLog(t, hubs[0], ch)
	want := []string{
		"1 member_added join w",
		"2 member_added join g1",
		"3 member_added join g2",
		"4 member_removed orphan_cleanup g1 n2",
		"5 member_removed orphan_cleanup g2 n2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("presence history\n got %q\nwant %q", got, want)
	}
}

// FuzzPresenceHistoryCursor: no cursor string panics a presence-history read; a cursor that
// is not one this app signed for this channel, direction and bounds is a 400.
func FuzzPresenceHistoryCursor(f *testing.F) {
	h := presenceHub(f, nil, nil)
	for i := range 4 {
		c, s := connect(f, h)
		mustSubscribe(f, c, s, "presence-f", member(fmt.Sprint("u", i), ""))
	}
	_ = h.ph.Flush(context.Background())
	res, herr := h.ph.Read(context.Background(), appID, "presence-f", channels.HistoryRequest{Limit: 1})
	if herr != nil || res.NextCursor == nil {
		f.Fatalf("seed page: %v", herr)
	}
	f.Add(*res.NextCursor, uint8(1), uint64(0))
	f.Add("", uint8(0), uint64(3))
	f.Add("eyJ2ZXJzaW9uIjoxfQ", uint8(1), uint64(1))
	f.Add(strings.Repeat("A", 20000), uint8(1), uint64(0))
	f.Fuzz(func(t *testing.T, cursor string, limit uint8, start uint64) {
		req := channels.HistoryRequest{Limit: int(limit), Cursor: cursor, StartSerial: start}
		res, herr := h.ph.Read(context.Background(), appID, "presence-f", req)
		if herr != nil {
			if herr.Status != 400 || herr.Message == "" {
				t.Fatalf("refusal %+v", herr)
			}
			return
		}
		if len(res.Items) > max(int(limit), 1) && limit != 0 {
			t.Fatalf("%d items for limit %d", len(res.Items), limit)
		}
	})
}

// failingStore is a memory store whose appends fail while fail is set.
type failingStore struct {
	*history.Memory
	mu      sync.Mutex
	fail    bool
	appends int
}

func (s *failingStore) AppendPresence(ctx context.Context, appID, channel string, evs []presencehistory.Event, r presencehistory.Retention) ([]presencehistory.Event, error) {
	s.mu.Lock()
	s.appends++
	fail := s.fail
	s.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("%w: test outage", channels.ErrHistoryUnavailable)
	}
	return s.Memory.AppendPresence(ctx, appID, channel, evs, r)
}

// TestPresenceHistoryDegraded: an append that keeps failing is retried, then given up: the
// channel's presence stream says degraded (complete false) until it is reset.
func TestPresenceHistoryDegraded(t *testing.T) {
	defer presencehistory.SetRetryWaits([]time.Duration{time.Millisecond, time.Millisecond})()
	app := config.DefaultApp()
	app.ApplyDefaults()
	store := &failingStore{Memory: history.NewMemory(history.MemoryOptions{})}
	h := newNode(app, store, channels.Options{})
	c, s := connect(t, h)
	mustSubscribe(t, c, s, "presence-down", member("u1", ""))
	_ = h.ph.Flush(context.Background())
	store.mu.Lock()
	store.fail = true
	store.mu.Unlock()
	c2, s2 := connect(t, h)
	mustSubscribe(t, c2, s2, "presence-down", member("u2", ""))
	_ = h.ph.Flush(context.Background())
	store.mu.Lock()
	if store.appends != 1+3 {
		t.Errorf("%d appends, want 1 and 3 tries of the failing one", store.appends)
	}
	store.fail = false
	store.mu.Unlock()
	res, herr := h.ph.Read(context.Background(), appID, "presence-down", channels.HistoryRequest{})
	if herr != nil || len(res.Items) != 1 || !*res.Continuity.Degraded || res.Continuity.Complete || res.StreamState.DurableState != "degraded" ||
		res.StreamState.ContinuityProven || res.StreamState.Reason == nil {
		t.Fatalf("after a lost event: %+v %+v, %v", res.Continuity, res.StreamState, herr)
	}
	if _, herr := h.ph.Reset(context.Background(), appID, "presence-down", channels.Operator{Reason: "recovered"}); herr != nil {
		t.Fatal(herr)
	}
	res, _ = h.ph.Read(context.Background(), appID, "presence-down", channels.HistoryRequest{})
	if *res.Continuity.Degraded || res.StreamState.DurableState != "healthy" {
		t.Fatalf("after the reset: %+v %+v", res.Continuity, res.StreamState)
	}
}

// TestClusterPresenceLeaveBothNodes: a user connected to two nodes leaves both at once, each
// node counting on the other's hold; the member leaves when the holds cross, and the
// presence history records that member_removed once.
func TestClusterPresenceLeaveBothNodes(t *testing.T) {
	store := history.NewMemory(history.MemoryOptions{})
	bus, hubs, _, _ := newCluster(t, 2, replication.Options{}, store, channels.Options{})
	const ch = "presence-both"
	w, ws := connect(t, hubs[0])
	mustSubscribe(t, w, ws, ch, member("w", ""))
	_ = hubs[0].ph.Flush(context.Background())
	a, as := connect(t, hubs[0])
	mustSubscribe(t, a, as, ch, member("u", ""))
	_ = hubs[0].ph.Flush(context.Background())
	waitFor(t, "node 1 sees u", func() bool { u, _ := hubs[1].Users(appID, ch); return len(u) == 2 })
	b, bs := connect(t, hubs[1])
	mustSubscribe(t, b, bs, ch, member("u", ""))
	// Node 0 has heard of node 1's hold once a publish node 1 made after it arrived (the
	// broker keeps one sender's order).
	x, xs := connect(t, hubs[0])
	mustSubscribe(t, x, xs, "sync", "")
	xs.Take()
	if err := hubs[1].Publish(appID, channels.Event{Name: "e", Channels: []string{"sync"}, Data: "after"}); err != nil {
		t.Fatal(err)
	}
	xs.WaitFrames(t, 1, waitTimeout)
	bus.Hold.Lock() // neither node hears of the other's leave until both left
	a.Disconnect()
	b.Disconnect()
	bus.Hold.Unlock()
	for i, h := range hubs {
		waitFor(t, fmt.Sprintf("node %d: u gone", i), func() bool { u, _ := h.Users(appID, ch); return len(u) == 1 })
	}
	_ = hubs[1].ph.Flush(context.Background())
	got := presenceLog(t, hubs[0], ch)
	want := []string{"1 member_added join w", "2 member_added join u", "3 member_removed disconnect u"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("presence history\n got %q\nwant %q", got, want)
	}
}
