package replication_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/replication"
	"github.com/pushwire/pushwire/replication/replicationtest"
)

// recObserver records webhook-worthy observer calls.
type recObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *recObserver) add(s string) { o.mu.Lock(); o.got = append(o.got, s); o.mu.Unlock() }
func (o *recObserver) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	g := o.got
	o.got = nil
	return g
}
func (o *recObserver) ChannelOccupied(_, ch string)                                        { o.add("occupied " + ch) }
func (o *recObserver) ChannelVacated(_, ch string)                                         { o.add("vacated " + ch) }
func (o *recObserver) MemberAdded(_, ch, u string)                                         { o.add("member_added " + ch + " " + u) }
func (o *recObserver) MemberRemoved(_, ch, u string)                                       { o.add("member_removed " + ch + " " + u) }
func (o *recObserver) CacheMiss(string, string)                                            {}
func (o *recObserver) SubscriptionCount(string, string, int)                               {}
func (o *recObserver) ClientEvent(string, string, string, json.RawMessage, string, string) {}

type testNode struct {
	hub  *channels.Hub
	node *replication.Node
	obs  *recObserver
	b    *replicationtest.Broker
}

// newCluster starts n hubs on one fake bus, with node ids n0, n1, ... (n0 is the leader).
func newCluster(t *testing.T, n int, o replication.Options) (*replicationtest.Bus, []*testNode) {
	t.Helper()
	return newClusterClock(t, n, o, nil)
}

// clockOptions puts a hub on clk (the wall clock when nil).
func clockOptions(opts channels.Options, clk *testkit.Clock) channels.Options {
	if clk != nil {
		opts.Now, opts.AfterFunc = clk.Now, func(d time.Duration, f func()) channels.Timer { return clk.AfterFunc(d, f) }
	}
	return opts
}

// newClusterClock is newCluster with every hub on clk (the wall clock when nil).
func newClusterClock(t *testing.T, n int, o replication.Options, clk *testkit.Clock) (*replicationtest.Bus, []*testNode) {
	t.Helper()
	bus := &replicationtest.Bus{}
	nodes := make([]*testNode, n)
	for i := range nodes {
		app := config.DefaultApp()
		app.ApplyDefaults()
		obs := &recObserver{}
		h := channels.New([]config.App{app}, clockOptions(channels.Options{Observer: obs}, clk))
		b := bus.Node(fmt.Sprintf("n%d", i))
		nodes[i] = &testNode{hub: h, node: replicationtest.Start(t, h, b, o), obs: obs, b: b}
	}
	for _, nd := range nodes {
		waitFor(t, "every node sees the others", func() bool { return nd.node.Nodes() == n })
	}
	return bus, nodes
}

// TestClusterPublishExactlyOnce: a publish on any node reaches every subscriber of every
// node once, V2 frames byte-identical everywhere, and socket_id exclusion works across
// nodes.
func TestClusterPublishExactlyOnce(t *testing.T) {
	bus, nodes := newCluster(t, 3, replication.Options{})
	var subs []*channelstest.Sub
	for _, nd := range nodes {
		for _, v2 := range []bool{false, true} {
			s := channelstest.New(nextSocketID())
			if v2 {
				s = channelstest.NewV2(nextSocketID())
			}
			c, _ := connectSub(t, nd.hub, s)
			mustSubscribe(t, c, s, "news", "")
			s.Take()
			subs = append(subs, s)
		}
	}
	for i, nd := range nodes {
		if err := nd.hub.Publish(appID, channels.Event{Name: "e", Channels: []string{"news"}, Data: fmt.Sprint(i), Tags: map[string]string{"k": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subs {
		s.WaitFrames(t, 3, waitTimeout)
	}
	bus.Settle(t) // nothing else is on its way
	v2 := map[string][]string{}
	for i, s := range subs {
		got := s.Frames()
		if len(got) != 3 {
			t.Fatalf("sub %d: %d frames, want 3: %q", i, len(got), got)
		}
		if s.Version() == protocol.V2 {
			for _, f := range got {
				v2[f[strings.Index(f, `"data"`):]] = append(v2[f[strings.Index(f, `"data"`):]], f)
			}
		}
	}
	for k, fs := range v2 {
		if len(fs) != 3 || fs[0] != fs[1] || fs[1] != fs[2] {
			t.Errorf("V2 frames of %s differ between nodes: %q", k, fs)
		}
	}
	// HTTP socket_id exclusion works across nodes.
	except := subs[3] // node 1, V2
	if err := nodes[0].hub.Publish(appID, channels.Event{Name: "e", Channels: []string{"news"}, Data: "x", ExceptSocketID: except.SocketID()}); err != nil {
		t.Fatal(err)
	}
	subs[5].WaitFrames(t, 4, waitTimeout)
	bus.Settle(t)
	if n := except.Len(); n != 3 {
		t.Errorf("excluded socket got %d frames, want 3", n)
	}
}

// TestClusterPresence: members, counts and webhooks are cluster-wide; member_added on the
// first socket anywhere and member_removed after the last one anywhere, once.
func TestClusterPresence(t *testing.T) {
	bus, nodes := newCluster(t, 3, replication.Options{})
	const ch = "presence-room"
	watch, ws := connect(t, nodes[2].hub)
	mustSubscribe(t, watch, ws, ch, member("watcher", ""))
	ws.Take()
	waitFor(t, "watcher visible on node 0", func() bool {
		u, _ := nodes[0].hub.Users(appID, ch)
		return reflect.DeepEqual(u, []string{"watcher"})
	})
	// u1 joins on node 0 and on node 1: one member_added, both sockets count.
	c0, s0 := connect(t, nodes[0].hub)
	mustSubscribe(t, c0, s0, ch, member("u1", `{"n":1}`))
	frames := s0.Take()
	if len(frames) != 1 || !strings.Contains(frames[0], `\"watcher\"`) {
		t.Fatalf("node 0 ack does not list the remote member: %q", frames)
	}
	ws.WaitFrames(t, 1, waitTimeout)
	if got := ws.Take(); len(got) != 1 || !strings.Contains(got[0], "member_added") || !strings.Contains(got[0], "u1") {
		t.Fatalf("watcher got %q, want member_added u1", got)
	}
	waitFor(t, "u1 visible on node 1", func() bool {
		u, _ := nodes[1].hub.Users(appID, ch)
		return len(u) == 2
	})
	c1, s1 := connect(t, nodes[1].hub)
	mustSubscribe(t, c1, s1, ch, member("u1", `{"n":1}`))
	waitFor(t, "subscription count 3 everywhere", func() bool {
		for _, nd := range nodes {
			info, _ := nd.hub.Channel(appID, ch)
			if info.SubscriptionCount != 3 || info.UserCount != 2 {
				return false
			}
		}
		return true
	})
	list, _ := nodes[1].hub.Channels(appID, "presence-")
	if len(list) != 1 || list[0].SubscriptionCount != 3 || list[0].UserCount != 2 {
		t.Errorf("Channels on node 1 = %+v", list)
	}
	// Leaving one of u1's two sockets: nothing; the last: member_removed once.
	c0.Disconnect()
	// Node 0 tells the others it no longer holds u1; once that has arrived, nothing else is due.
	waitFor(t, "node 0 sent its leave", func() bool { return nodes[0].b.SentKind("leave") == 1 })
	bus.Settle(t)
	if got := ws.Take(); len(got) != 0 {
		t.Fatalf("watcher got %q after u1's first socket left", got)
	}
	c1.Disconnect()
	ws.WaitFrames(t, 1, waitTimeout)
	if got := ws.Take(); len(got) != 1 || !strings.Contains(got[0], "member_removed") {
		t.Fatalf("watcher got %q, want member_removed u1", got)
	}
	var hooks []string
	for _, nd := range nodes {
		hooks = append(hooks, nd.obs.take()...)
	}
	want := map[string]int{"member_added presence-room watcher": 1, "member_added presence-room u1": 1,
		"member_removed presence-room u1": 1, "occupied presence-room": 1}
	count := map[string]int{}
	for _, h := range hooks {
		count[h]++
	}
	if !reflect.DeepEqual(count, want) {
		t.Errorf("webhook events %v, want %v", count, want)
	}
}

// TestClusterTerminate: terminating a user closes its connections on every node.
func TestClusterTerminate(t *testing.T) {
	_, nodes := newCluster(t, 3, replication.Options{})
	var subs []*channelstest.Sub
	for _, nd := range nodes[1:] {
		c, s := connect(t, nd.hub)
		mustSubscribe(t, c, s, "presence-x", member("bob", ""))
		subs = append(subs, s)
	}
	nodes[0].hub.TerminateUserConnections(appID, "bob")
	for _, s := range subs {
		if err := s.WaitClosed(t, waitTimeout); err.Code != protocol.CodeUnauthorized {
			t.Errorf("closed with %d", err.Code)
		}
	}
}

// TestClusterDeadNode: a node that stops talking has its members removed on the others
// after the timeout (on the hubs' clock, moved by hand one heartbeat at a time), not
// before, while the live nodes keep each other; member_removed goes out once (webhook from
// the leader only), and a node started later joins by itself.
func TestClusterDeadNode(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	o := replication.Options{Heartbeat: time.Second, NodeTimeout: 5 * time.Second}
	bus, nodes := newClusterClock(t, 3, o, clk)
	w, ws := connect(t, nodes[1].hub)
	mustSubscribe(t, w, ws, "presence-d", member("w", ""))
	c, s := connect(t, nodes[2].hub)
	mustSubscribe(t, c, s, "presence-d", member("ghost", ""))
	ws.WaitFrames(t, 2, waitTimeout)
	ws.Take()
	for _, nd := range nodes {
		nd.obs.take()
	}
	_ = nodes[2].b.Close() // dies without a word: cut off first, so no goodbye goes out
	nodes[2].node.Stop()
	bus.Settle(t) // node 2's last envelopes are handled at the clock's start: silent from here
	// One heartbeat at a time: each live node sends its heartbeat (and checks the others)
	// and every heartbeat is handled before the clock moves on.
	beat := func(i int) {
		t.Helper()
		clk.Add(o.Heartbeat)
		for _, nd := range nodes[:2] {
			waitFor(t, fmt.Sprint("heartbeat ", i), func() bool { return nd.b.SentKind("hb") >= i })
		}
		bus.Settle(t)
	}
	for i := 1; i <= 4; i++ { // 4 s of silence: not dead yet
		beat(i)
	}
	if u, _ := nodes[0].hub.Users(appID, "presence-d"); len(u) != 2 || ws.Len() != 0 || nodes[0].node.Nodes() != 3 {
		t.Fatalf("before the timeout: members %v, frames %q, %d nodes", u, ws.Frames(), nodes[0].node.Nodes())
	}
	beat(5) // 5 s: the timeout, not past it
	beat(6) // past it now
	ws.WaitFrames(t, 1, waitTimeout)
	if got := ws.Take(); len(got) != 1 || !strings.Contains(got[0], "member_removed") || !strings.Contains(got[0], "ghost") {
		t.Fatalf("got %q, want member_removed ghost", got)
	}
	waitFor(t, "two nodes left", func() bool { return nodes[0].node.Nodes() == 2 && nodes[1].node.Nodes() == 2 })
	hooks := append(nodes[0].obs.take(), nodes[1].obs.take()...)
	if !reflect.DeepEqual(hooks, []string{"member_removed presence-d ghost"}) {
		t.Errorf("webhooks %q, want one member_removed", hooks)
	}
	// A new node joins without help and sees the member.
	app := config.DefaultApp()
	app.ApplyDefaults()
	h := channels.New([]config.App{app}, clockOptions(channels.Options{}, clk))
	b := bus.Node("n9")
	replicationtest.Start(t, h, b, o)
	waitFor(t, "new node sees w", func() bool {
		u, _ := h.Users(appID, "presence-d")
		return reflect.DeepEqual(u, []string{"w"})
	})
}

// TestClusterBrokerOutage: while the broker is down publishes stay local (and are counted),
// and after it returns the nodes exchange their state again.
func TestClusterBrokerOutage(t *testing.T) {
	var localOnly atomic.Int64
	var state sync.Map
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	o := replication.Options{Heartbeat: time.Second, NodeTimeout: 5 * time.Second,
		OnLocalOnly:   func(string) { localOnly.Add(1) },
		OnBrokerState: func(up bool) { state.Store("up", up) }}
	bus, nodes := newClusterClock(t, 2, o, clk)
	c, s := connect(t, nodes[1].hub)
	mustSubscribe(t, c, s, "presence-o", member("o", ""))
	s.Take()
	waitFor(t, "o visible on node 0", func() bool { u, _ := nodes[0].hub.Users(appID, "presence-o"); return len(u) == 1 })
	bus.Down.Store(true)
	clk.Add(replication.HealthInterval)
	waitFor(t, "broker reported down", func() bool { v, _ := state.Load("up"); return v == false })
	if err := nodes[0].hub.Publish(appID, channels.Event{Name: "e", Channels: []string{"presence-o"}, Data: "lost"}); err != nil {
		t.Fatal(err)
	}
	if localOnly.Load() != 1 {
		t.Errorf("local-only count %d, want 1", localOnly.Load())
	}
	clk.Add(o.NodeTimeout + o.Heartbeat) // nothing heard from node 1 all that time
	waitFor(t, "node 1 dropped after the timeout", func() bool { u, _ := nodes[0].hub.Users(appID, "presence-o"); return len(u) == 0 })
	bus.Down.Store(false)
	clk.Add(replication.HealthInterval)
	waitFor(t, "o visible again after the broker returned", func() bool { u, _ := nodes[0].hub.Users(appID, "presence-o"); return len(u) == 1 })
	if err := nodes[0].hub.Publish(appID, channels.Event{Name: "e", Channels: []string{"presence-o"}, Data: "back"}); err != nil {
		t.Fatal(err)
	}
	got := s.WaitFrames(t, 1, waitTimeout)
	if !strings.Contains(got[len(got)-1], "back") {
		t.Errorf("got %q, want the publish made after the outage", got)
	}
}

// TestClusterPresenceUpdate: a V2 member's new user_info reaches V2 subscribers on other
// nodes and the presence hash there.
func TestClusterPresenceUpdate(t *testing.T) {
	_, nodes := newCluster(t, 2, replication.Options{})
	const ch = "presence-pu"
	a, as := connectV2(t, nodes[0].hub, channels.ConnOptions{})
	mustSubscribe(t, a, as, ch, member("agent", `{"s":"idle"}`))
	waitFor(t, "agent known on node 1", func() bool { u, _ := nodes[1].hub.Users(appID, ch); return len(u) == 1 })
	b, bs := connectV2(t, nodes[1].hub, channels.ConnOptions{})
	mustSubscribe(t, b, bs, ch, member("boss", ""))
	as.WaitFrames(t, 2, waitTimeout) // ack, member_added boss
	bs.Take()
	if err := a.PresenceUpdate(json.RawMessage(`{"channel":"`+ch+`","data":{"s":"busy"}}`), ""); err != nil {
		t.Fatal(err)
	}
	got := bs.WaitFrames(t, 1, waitTimeout)
	want := `{"event":"sockudo_internal:presence_update","channel":"presence-pu","data":"{\"user_id\":\"agent\",\"user_info\":{\"s\":\"busy\"}}"}`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("node 1 got %q, want %s", got, want)
	}
	c, cs := connectV2(t, nodes[1].hub, channels.ConnOptions{})
	mustSubscribe(t, c, cs, ch, member("late", ""))
	if ack := cs.Frames()[0]; !strings.Contains(ack, `\"agent\":{\"s\":\"busy\"}`) {
		t.Errorf("late joiner's hash lacks the new info: %s", ack)
	}
}

// TestClusterSubscriptionCountEvents: pusher_internal:subscription_count counts the
// subscribers of every node.
func TestClusterSubscriptionCountEvents(t *testing.T) {
	bus := &replicationtest.Bus{}
	var hubs []*channels.Hub
	var nodes []*replication.Node
	for i := range 2 {
		app := config.DefaultApp()
		app.ApplyDefaults()
		app.SubscriptionCountEvents = true
		h := channels.New([]config.App{app}, channels.Options{})
		b := bus.Node(fmt.Sprintf("n%d", i))
		hubs, nodes = append(hubs, h), append(nodes, replicationtest.Start(t, h, b, replication.Options{}))
	}
	replicationtest.WaitNodes(t, nodes, 2)
	a, as := connect(t, hubs[0])
	mustSubscribe(t, a, as, "counted", "")
	waitFor(t, "count on node 1", func() bool { info, _ := hubs[1].Channel(appID, "counted"); return info.SubscriptionCount == 1 })
	b, bs := connect(t, hubs[1])
	mustSubscribe(t, b, bs, "counted", "")
	if got := bs.Frames(); len(got) < 2 || !strings.Contains(got[1], `subscription_count\":2`) {
		t.Fatalf("node 1 subscriber got %q, want a count of 2", got)
	}
	waitFor(t, "node 0 subscriber told 2", func() bool {
		f := as.Frames()
		return strings.Contains(f[len(f)-1], `subscription_count\":2`)
	})
	b.Disconnect()
	waitFor(t, "node 0 subscriber told 1", func() bool {
		f := as.Frames()
		return strings.Contains(f[len(f)-1], `subscription_count\":1`)
	})
}

// TestClusterGracefulLeave: a node that stops cleanly is forgotten by the others at once,
// not after the node timeout.
func TestClusterGracefulLeave(t *testing.T) {
	_, nodes := newCluster(t, 3, replication.Options{NodeTimeout: time.Hour, Heartbeat: time.Minute})
	nodes[2].node.Stop()
	waitFor(t, "two nodes left", func() bool { return nodes[0].node.Nodes() == 2 && nodes[1].node.Nodes() == 2 })
}

// TestClusterCacheChannel: a cache channel's last event published on one node is replayed
// to a subscriber joining on another.
func TestClusterCacheChannel(t *testing.T) {
	_, nodes := newCluster(t, 2, replication.Options{})
	w, ws := connect(t, nodes[1].hub) // a subscriber on node 1 tells when the event arrived
	mustSubscribe(t, w, ws, "cache-prices", "")
	ws.Take()
	if err := nodes[0].hub.Publish(appID, channels.Event{Name: "price", Channels: []string{"cache-prices"}, Data: "42"}); err != nil {
		t.Fatal(err)
	}
	ws.WaitFrames(t, 1, waitTimeout)
	c, cs := connect(t, nodes[1].hub)
	mustSubscribe(t, c, cs, "cache-prices", "")
	want := []string{ack("cache-prices"), `{"event":"price","channel":"cache-prices","data":"42"}`}
	if got := cs.Take(); !reflect.DeepEqual(got, want) {
		t.Errorf("late subscriber on node 1 got %q, want %q", got, want)
	}
}

// TestClusterPresenceStress: sockets of a few users join and leave one presence channel on
// three nodes at once; afterwards every node agrees on the members, and each watcher saw
// every user's member_added and member_removed strictly alternate, ending with no member.
func TestClusterPresenceStress(t *testing.T) {
	bus, nodes := newCluster(t, 3, replication.Options{})
	const ch = "presence-stress"
	var watchers []*channelstest.Sub
	for i, nd := range nodes {
		c, s := connect(t, nd.hub)
		mustSubscribe(t, c, s, ch, member(fmt.Sprint("w", i), ""))
		watchers = append(watchers, s)
	}
	for _, nd := range nodes {
		waitFor(t, "watchers everywhere", func() bool { u, _ := nd.hub.Users(appID, ch); return len(u) == 3 })
	}
	for _, s := range watchers {
		s.Take()
	}
	var wg sync.WaitGroup
	for _, nd := range nodes {
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 40 {
					c, s := connect(t, nd.hub)
					if err := c.Subscribe(subReq(s, ch, member(fmt.Sprint("u", (g+i)%5), ""))); err != nil {
						t.Error(err)
						return
					}
					if i%3 == 0 {
						time.Sleep(time.Millisecond)
					}
					c.Disconnect()
				}
			}()
		}
	}
	wg.Wait()
	for i, nd := range nodes {
		waitFor(t, fmt.Sprint("node ", i, " back to the watchers"), func() bool {
			u, _ := nd.hub.Users(appID, ch)
			info, _ := nd.hub.Channel(appID, ch)
			return len(u) == 3 && info.SubscriptionCount == 3
		})
	}
	bus.Settle(t)
	for i, s := range watchers {
		present := map[string]bool{}
		for _, f := range s.Frames() {
			var fr struct {
				Event string `json:"event"`
				Data  string `json:"data"`
			}
			_ = json.Unmarshal([]byte(f), &fr)
			var d struct {
				UserID string `json:"user_id"`
			}
			_ = json.Unmarshal([]byte(fr.Data), &d)
			switch fr.Event {
			case "pusher_internal:member_added":
				if present[d.UserID] {
					t.Fatalf("watcher %d: member_added %s twice in a row", i, d.UserID)
				}
				present[d.UserID] = true
			case "pusher_internal:member_removed":
				if !present[d.UserID] {
					t.Fatalf("watcher %d: member_removed %s without member_added", i, d.UserID)
				}
				delete(present, d.UserID)
			}
		}
		for u := range present {
			if !strings.HasPrefix(u, "w") {
				t.Errorf("watcher %d: %s still a member by its frames", i, u)
			}
		}
	}
}

// TestClusterBrokerHangs: a broker that accepts connections but never answers costs one
// publish timeout, not one per message: the following messages stay local at once.
func TestClusterBrokerHangs(t *testing.T) {
	var localOnly atomic.Int64
	// The hubs' clock stands still: the pause after the failed publish does not run out
	// however slow the machine.
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	bus, nodes := newClusterClock(t, 2, replication.Options{PublishTimeout: 100 * time.Millisecond, OnLocalOnly: func(string) { localOnly.Add(1) }}, clk)
	c, s := connect(t, nodes[0].hub)
	mustSubscribe(t, c, s, "hang", "")
	s.Take()
	bus.Hang.Store(true)
	for i := range 5 {
		if err := nodes[0].hub.Publish(appID, channels.Event{Name: "e", Channels: []string{"hang"}, Data: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := bus.Hangs.Load(); n != 1 {
		t.Errorf("%d publishes waited on the hanging broker, want 1", n)
	}
	if got := s.Frames(); len(got) != 5 {
		t.Errorf("local subscriber got %d frames, want 5", len(got))
	}
	if localOnly.Load() != 5 {
		t.Errorf("%d messages counted local-only, want 5", localOnly.Load())
	}
	bus.Hang.Store(false)
}

// TestClusterResyncHealsLostEnvelopes: a join lost on the way (pub/sub is at most once) is
// repaired by the periodic resync.
func TestClusterResyncHealsLostEnvelopes(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	o := replication.Options{ResyncInterval: time.Minute}
	bus, nodes := newClusterClock(t, 2, o, clk)
	bus.Drop.Store(true) // every envelope is lost, the broker looks healthy
	c, s := connect(t, nodes[0].hub)
	mustSubscribe(t, c, s, "presence-lost", member("u", ""))
	waitFor(t, "the join sent (and lost)", func() bool { return nodes[0].b.SentKind("join") == 1 })
	bus.Drop.Store(false)
	if u, _ := nodes[1].hub.Users(appID, "presence-lost"); len(u) != 0 {
		t.Fatalf("node 1 knows %v before any resync", u)
	}
	clk.Add(o.ResyncInterval)
	waitFor(t, "node 1 learns the member from a resync", func() bool {
		u, _ := nodes[1].hub.Users(appID, "presence-lost")
		return len(u) == 1
	})
}

// TestClusterMixedEnvelopeVersions: a node fed by a peer of the previous (unversioned)
// format, and by one of a future minor format with members it does not know, keeps
// working (presence, publishes); envelopes of a future major format are dropped and
// counted, and the node goes on with what follows them. The bytes are written out as
// those nodes send them.
func TestClusterMixedEnvelopeVersions(t *testing.T) {
	refused := make(chan int, 10)
	_, nodes := newCluster(t, 1, replication.Options{OnRefusedEnvelope: func(_ string, major int) { refused <- major }})
	nd := nodes[0]
	c, s := connect(t, nd.hub)
	mustSubscribe(t, c, s, "news", "")
	s.Take()
	feed := nd.b.Feed
	const sys = "\x00pushwire-node"
	// The previous format: protocol.Message's Go field names, every member, no "v".
	feed(sys, "old", `{"k":"hello"}`)
	feed(appID, "old", `{"k":"join","c":"presence-room","u":"u-old","i":"eyJuYW1lIjoib2xkIn0="}`)
	feed(appID, "old", `{"k":"pub","m":{"Event":"e","Channel":"news","Data":"Im9sZCI=","Name":"","UserID":"","Tags":null,"MessageID":"","StreamID":"","Serial":0,"Extras":null,"Ephemeral":false,"NoDelta":false,"PublishedAtMs":0,"Mutable":null}}`)
	// A future minor: unknown members at every level.
	feed(appID, "new", `{"v":1,"vn":4,"k":"pub","m":{"Event":"e","Channel":"news","Data":"Im1pbm9yIg==","Priority":3},"route":{"via":"x"}}`)
	feed(appID, "new", `{"v":1,"vn":4,"k":"join","c":"presence-room","u":"u-new","i":"e30=","ttl":5}`)
	// A future major: refused whatever it holds, then the node goes on.
	feed(appID, "next", `{"v":2,"k":"pub","m":{"Event":"e","Channel":"news","Data":"Im1ham9yIg=="}}`)
	feed(appID, "next", `{"v":2,"k":"pub","m":"opaque"}`)
	feed(appID, "old", `{"k":"pub","m":{"Event":"e","Channel":"news","Data":"ImFmdGVyIg==","Mutable":null}}`)
	got := s.WaitFrames(t, 3, waitTimeout)
	want := []string{`"data":"old"`, `"data":"minor"`, `"data":"after"`}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Fatalf("frames %q, want old, minor, after", got)
		}
	}
	if n := s.Len(); n != 3 { // "after" was handled after both major envelopes
		t.Fatalf("%d frames: %q", n, s.Frames())
	}
	for range 2 {
		if major := <-refused; major != 2 {
			t.Fatalf("refused major %d, want 2", major)
		}
	}
	if n := nd.node.RefusedEnvelopes(); n != 2 {
		t.Fatalf("refused %d envelopes, want 2", n)
	}
	users, err := nd.hub.Users(appID, "presence-room")
	if err != nil || strings.Join(users, ",") != "u-new,u-old" {
		t.Fatalf("presence from mixed versions: %v, %v", users, err)
	}
}

// TestClusterStopStopsTimers: the cluster's tickers (heartbeat, health, resync, count
// gathering) run on the hub's clock and are owned by the cluster goroutines: once
// Stop returns none is left, and moving the clock sends nothing more.
func TestClusterStopStopsTimers(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	o := replication.Options{Heartbeat: time.Second}
	bus, nodes := newClusterClock(t, 2, o, clk)
	if n := clk.Pending(); n != 2*4 {
		t.Fatalf("%d timers pending with two nodes, want 8 (4 tickers each)", n)
	}
	clk.Add(o.Heartbeat)
	waitFor(t, "heartbeats", func() bool { return nodes[0].b.SentKind("hb") == 1 && nodes[1].b.SentKind("hb") == 1 })
	for _, nd := range nodes {
		nd.node.Stop()
	}
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers still pending after Stop", n)
	}
	clk.Add(10 * o.Heartbeat)
	bus.Settle(t)
	for i, nd := range nodes {
		if n := nd.b.SentKind("hb"); n != 1 {
			t.Errorf("node %d sent %d heartbeats, want 1 (none after Stop)", i, n)
		}
	}
}
