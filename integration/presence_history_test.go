package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
)

// presenceItem is one item of GET .../presence/history.
type presenceItem struct {
	StreamID      string          `json:"stream_id"`
	Serial        uint64          `json:"serial"`
	PublishedAtMs int64           `json:"published_at_ms"`
	Event         string          `json:"event"`
	Cause         string          `json:"cause"`
	UserID        string          `json:"user_id"`
	ConnectionID  *string         `json:"connection_id"`
	DeadNodeID    *string         `json:"dead_node_id"`
	PresenceEvent json.RawMessage `json:"presence_event"`
}

// presenceHistory reads a channel's whole presence history from s, oldest first, following
// next_cursor 3 items at a time.
func presenceHistory(t testing.TB, s *testkit.Server, channel string) []presenceItem {
	t.Helper()
	var all []presenceItem
	params := url.Values{"direction": {"oldest_first"}, "limit": {"3"}}
	for range 1000 {
		status, body := apiGet(t, s, "/apps/"+testkit.AppID+"/channels/"+url.PathEscape(channel)+"/presence/history", params)
		if status != http.StatusOK {
			t.Fatalf("presence history: HTTP %d %s", status, body)
		}
		var page struct {
			Items      []presenceItem `json:"items"`
			NextCursor *string        `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("presence history: %v: %s", err, body)
		}
		all = append(all, page.Items...)
		if page.NextCursor == nil {
			return all
		}
		params.Set("cursor", *page.NextCursor)
	}
	t.Fatal("presence history pages never end")
	return nil
}

// presenceLines is the history as "event cause user" lines (serials checked to run 1..n).
func presenceLines(t testing.TB, items []presenceItem) []string {
	t.Helper()
	var out []string
	for i, it := range items {
		if it.Serial != uint64(i+1) || it.StreamID != items[0].StreamID {
			t.Fatalf("item %d: serial %d stream %s", i, it.Serial, it.StreamID)
		}
		line := it.Event + " " + it.Cause + " " + it.UserID
		if it.DeadNodeID != nil {
			line += " dead=" + *it.DeadNodeID
		}
		out = append(out, line)
	}
	return out
}

// presenceSnapshot is GET .../presence/history/snapshot with params: the member ids, sorted.
func presenceSnapshot(t testing.TB, s *testkit.Server, channel string, params url.Values) []string {
	t.Helper()
	status, body := apiGet(t, s, "/apps/"+testkit.AppID+"/channels/"+url.PathEscape(channel)+"/presence/history/snapshot", params)
	if status != http.StatusOK {
		t.Fatalf("snapshot: HTTP %d %s", status, body)
	}
	var snap struct {
		Members []struct {
			UserID string `json:"user_id"`
		} `json:"members"`
		MemberCount int `json:"member_count"`
	}
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatalf("snapshot: %v: %s", err, body)
	}
	ids := []string{}
	for _, m := range snap.Members {
		ids = append(ids, m.UserID)
	}
	if len(ids) != snap.MemberCount {
		t.Fatalf("member_count %d for %v", snap.MemberCount, ids)
	}
	return ids
}

// TestPresenceHistoryRoom runs the room on the memory and the Postgres store.
func TestPresenceHistoryRoom(t *testing.T) {
	for _, store := range []string{"memory", "postgres"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			args := []string{"--activity-timeout=1s", "--pong-timeout=1s"}
			if store == "postgres" {
				args = append(args, "--history", "postgres", "--database-url", testkit.PostgresURL(t))
			}
			s := testkit.Start(t, testkit.Options{Port: -1, Args: args})
			testPresenceRoom(t, s)
		})
	}
}

// testPresenceRoom: users join, update and leave a presence room every way a member can
// leave — unsubscribe, socket cut, heartbeat timeout, terminate_connections — while a V2
// watcher records the members it sees after each change. The presence history lists every
// change once, in order, with its cause; a snapshot at each serial, and at each change's
// time, is the member set the watcher saw then.
func testPresenceRoom(t *testing.T, s *testkit.Server) {
	const ch = "presence-it-room"
	members := map[string]bool{}
	var live [][]string // the members after each change, as the watcher saw them
	snap := func() {
		ids := []string{}
		for id := range members {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		live = append(live, ids)
	}
	w := connectV2(t, s, v2Options{})
	w.subscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"watcher"}`})
	members["watcher"] = true
	snap()
	// seen waits for the watcher to see event about user.
	seen := func(event, user string) {
		t.Helper()
		f := w.expectV2(t, "sockudo_internal:"+event, ch)
		if !strings.Contains(f.dataString(), `"user_id":"`+user+`"`) {
			t.Fatalf("watcher got %s, want %s of %s", f.raw, event, user)
		}
		switch event {
		case "member_added":
			members[user] = true
		case "member_removed":
			delete(members, user)
		}
		snap()
	}
	join := func(user string) *v2Client {
		c := connectV2(t, s, v2Options{})
		c.subscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"` + user + `","user_info":{"name":"` + user + `"}}`})
		seen("member_added", user)
		return c
	}
	alice := join("alice")
	bob := join("bob")
	alice.sendEvent(t, "sockudo:presence_update", "", map[string]any{"channel": ch, "data": map[string]string{"status": "away"}})
	seen("presence_update", "alice")
	_ = bob.ws.CloseNow() // the socket cut: no close frame
	seen("member_removed", "bob")
	carol := connectKey(t, s, testkit.AppKey, 1) // V1: answers no pusher:ping
	carol.subscribePresence(t, ch, `{"user_id":"carol"}`)
	seen("member_added", "carol")
	seen("member_removed", "carol") // closed with 4201 after the ping went unanswered
	dave := join("dave")
	if status, body := apiPost(t, s, "/apps/"+testkit.AppID+"/users/dave/terminate_connections", []byte(`{}`)); status != 200 {
		t.Fatalf("terminate: %d %s", status, body)
	}
	seen("member_removed", "dave")
	_ = dave
	alice.sendEvent(t, "sockudo:unsubscribe", "", map[string]any{"channel": ch})
	seen("member_removed", "alice")

	want := []string{
		"member_added join watcher",
		"member_added join alice",
		"member_added join bob",
		"member_updated update alice",
		"member_removed disconnect bob",
		"member_added join carol",
		"member_removed timeout carol",
		"member_added join dave",
		"member_removed forced_disconnect dave",
		"member_removed disconnect alice",
	}
	var items []presenceItem
	testkit.WaitFor(t, clusterWait, "every change recorded", func() bool {
		items = presenceHistory(t, s, ch)
		return len(items) >= len(want)
	})
	if got := presenceLines(t, items); !reflect.DeepEqual(got, want) {
		t.Fatalf("presence history\n got %q\nwant %q", got, want)
	}
	var upd struct {
		UserInfo json.RawMessage `json:"user_info"`
	}
	if err := json.Unmarshal(items[3].PresenceEvent, &upd); err != nil || string(upd.UserInfo) != `{"status":"away"}` {
		t.Errorf("member_updated presence_event %s", items[3].PresenceEvent)
	}
	if len(live) != len(want) {
		t.Fatalf("watcher saw %d states for %d events", len(live), len(want))
	}
	for i, m := range live {
		if got := presenceSnapshot(t, s, ch, url.Values{"at_serial": {strconv.Itoa(i + 1)}}); !reflect.DeepEqual(got, m) {
			t.Errorf("snapshot at serial %d = %v, watcher saw %v", i+1, got, m)
		}
		// By time: the last event of that millisecond decides.
		last := i
		for last+1 < len(items) && items[last+1].PublishedAtMs == items[i].PublishedAtMs {
			last++
		}
		if got := presenceSnapshot(t, s, ch, url.Values{"at_time_ms": {strconv.FormatInt(items[i].PublishedAtMs, 10)}}); !reflect.DeepEqual(got, live[last]) {
			t.Errorf("snapshot at %d ms (serial %d) = %v, watcher saw %v", items[i].PublishedAtMs, i+1, got, live[last])
		}
	}
	w.pingV2(t) // nothing more came to the watcher
}

// TestClusterPresenceHistory: three nodes over one Postgres; members join on every node and
// one node is killed. The history lists each change once, in order, and the killed node's
// members leave once, cause orphan_cleanup with its node id.
func TestClusterPresenceHistory(t *testing.T) {
	redisURL := "redis://" + testkit.RedisAddr(t) + "/0"
	nodes := startNodes(t, 3, clusterArgs("redis", redisURL, "", clusterPrefix(), testkit.PostgresURL(t)))
	const ch = "presence-cl-history"
	t.Cleanup(func() {
		if t.Failed() {
			for i, n := range nodes {
				t.Logf("node %d:\n%s", i, grepLines(n.Output(), "presence"))
			}
		}
	})
	// recorded waits until the shared store holds n events. Changes on different nodes are
	// ordered by when they reach the store (each node records its own, a few ms after the
	// change): the test waits for each node's changes to be recorded before making changes
	// on another, so the order it saw live is the order they were recorded in.
	recorded := func(n int) {
		t.Helper()
		testkit.WaitFor(t, clusterWait, fmt.Sprintf("%d events recorded", n), func() bool { return len(presenceHistory(t, nodes[1], ch)) >= n })
	}
	w := connectV2(t, nodes[0], v2Options{})
	w.subscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"watcher"}`})
	recorded(1)
	var clients []*v2Client
	for i, s := range nodes {
		for _, u := range []string{fmt.Sprintf("n%d-a", i), fmt.Sprintf("n%d-b", i)} {
			c := connectV2(t, s, v2Options{})
			c.subscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"` + u + `"}`})
			clients = append(clients, c)
			f := w.expectV2(t, "sockudo_internal:member_added", ch)
			if !strings.Contains(f.dataString(), u) {
				t.Fatalf("watcher got %s, want %s", f.raw, u)
			}
		}
		recorded(1 + 2*(i+1))
	}
	// The same user on two nodes is one member: no second member_added.
	dup := connectV2(t, nodes[1], v2Options{})
	dup.subscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"n0-a"}`})
	_ = clients[1].ws.CloseNow() // n0-b's socket is cut on node 0
	w.expectV2(t, "sockudo_internal:member_removed", ch)
	recorded(8)
	nodes[2].Kill()
	for range 2 {
		f := w.expectV2Within(t, "sockudo_internal:member_removed", ch, clusterWait)
		if !strings.Contains(f.dataString(), "n2-") {
			t.Fatalf("member_removed %s", f.raw)
		}
	}
	want := []string{
		"member_added join watcher",
		"member_added join n0-a",
		"member_added join n0-b",
		"member_added join n1-a",
		"member_added join n1-b",
		"member_added join n2-a",
		"member_added join n2-b",
		"member_removed disconnect n0-b",
		"member_removed orphan_cleanup n2-a",
		"member_removed orphan_cleanup n2-b",
	}
	var items []presenceItem
	testkit.WaitFor(t, clusterWait, "every change recorded", func() bool {
		items = presenceHistory(t, nodes[1], ch)
		return len(items) >= len(want)
	})
	got := presenceLines(t, items)
	for i := 8; i < len(got); i++ {
		dead := items[i].DeadNodeID
		if dead == nil || *dead == "" {
			t.Errorf("orphan cleanup %d without dead_node_id", i)
		}
		got[i] = strings.Split(got[i], " dead=")[0]
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("presence history\n got %q\nwant %q", got, want)
	}
	if *items[8].DeadNodeID != *items[9].DeadNodeID {
		t.Errorf("dead node ids differ: %s %s", *items[8].DeadNodeID, *items[9].DeadNodeID)
	}
	if got := presenceSnapshot(t, nodes[0], ch, nil); !reflect.DeepEqual(got, []string{"n0-a", "n1-a", "n1-b", "watcher"}) {
		t.Errorf("latest snapshot %v", got)
	}
	w.pingV2(t) // each removal came once
}

// expectV2Within is expectV2 with a longer wait (a node's death to be noticed).
func (c *v2Client) expectV2Within(t testing.TB, event, channel string, d time.Duration) v2Frame {
	t.Helper()
	m, ok := c.recv(d)
	if !ok {
		t.Fatalf("no %s within %s", event, d)
	}
	var f v2Frame
	if err := json.Unmarshal(m.data, &f); err != nil || f.Event != event || (channel != "" && f.Channel != channel) {
		t.Fatalf("frame %s, want %s on %q", m.data, event, channel)
	}
	f.raw = string(m.data)
	return f
}
