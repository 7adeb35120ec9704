package replication_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/replication"
	"github.com/pushwire/pushwire/replication/replicationtest"
)

// sharedStoreClusterClock starts n hubs of the default app on one fake bus, sharing one
// history store (as nodes share a Postgres), with the hubs on clk (the wall clock when nil),
// and waits until they see each other.
func sharedStoreClusterClock(t *testing.T, store channels.History, n int, clk *testkit.Clock) ([]*channels.Hub, []*replication.Node) {
	t.Helper()
	bus := &replicationtest.Bus{}
	var hubs []*channels.Hub
	var nodes []*replication.Node
	for i := range n {
		app := config.DefaultApp()
		app.ApplyDefaults()
		opts := channels.Options{History: store}
		if clk != nil {
			opts.Now, opts.AfterFunc = clk.Now, func(d time.Duration, f func()) channels.Timer { return clk.AfterFunc(d, f) }
		}
		h := channels.New([]config.App{app}, opts)
		b := bus.Node(fmt.Sprintf("n%d", i))
		hubs, nodes = append(hubs, h), append(nodes, replicationtest.Start(t, h, b, replication.Options{}))
	}
	replicationtest.WaitNodes(t, nodes, n)
	return hubs, nodes
}

// TestClusterSerialOrder: on a clustered node, a channel's messages go out in serial order
// even when they arrive out of it. Serial 2 is stored (by a node whose broker message is
// lost) but never delivered through the broker; serial 3 arrives: every node holds it
// until the gap wait ends on the hub's clock, fills 2 from the shared history store, then
// delivers 3.
func TestClusterSerialOrder(t *testing.T) {
	store := history.NewMemory(history.MemoryOptions{})
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	hubs, _ := sharedStoreClusterClock(t, store, 2, clk)
	var subs []*channelstest.Sub
	for _, h := range hubs {
		c, s := connect(t, h)
		mustSubscribe(t, c, s, "orders", "")
		s.Take()
		subs = append(subs, s)
	}
	publish := func(data string) {
		t.Helper()
		if err := hubs[1].Publish(appID, channels.Event{Name: "e", Channels: []string{"orders"}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	publish("a")
	for _, s := range subs {
		s.WaitFrames(t, 1, waitTimeout)
	}
	lost := protocol.Message{Event: "e", Channel: "orders", Data: protocol.Str("b"), MessageID: protocol.NewUUID()}
	if err := store.Append(context.Background(), appID, &lost); err != nil || lost.Serial != 2 {
		t.Fatalf("append: serial %d, %v", lost.Serial, err)
	}
	timers := clk.Pending() // the cluster tickers
	publish("c")
	// Both nodes hold 3 behind the gap (one gap wait each) and deliver nothing yet.
	waitFor(t, "3 held on both nodes", func() bool { return clk.Pending() == timers+2 })
	for i, s := range subs {
		if n := s.Len(); n != 1 {
			t.Fatalf("node %d delivered %q before the gap wait ended", i, s.Frames())
		}
	}
	clk.Add(replication.GapWait)
	for i, s := range subs {
		s.WaitFrames(t, 3, waitTimeout)
		got := s.Frames()
		want := []string{`"data":"a"`, `"data":"b"`, `"data":"c"`}
		for j, w := range want {
			if j >= len(got) || !strings.Contains(got[j], w) {
				t.Fatalf("node %d frames %q, want a, b, c in order", i, got)
			}
		}
	}
	// The late broker copy of serial 2 would be dropped; a fresh publish continues in order.
	publish("d")
	for _, s := range subs {
		s.WaitFrames(t, 4, waitTimeout)
		if n := s.Len(); n != 4 {
			t.Fatalf("%d frames, want 4", n)
		}
	}
}

// TestClusterOrderStateShrinks: the per-channel ordering state of a clustered node returns
// to empty after many channels come and go (subscribed here, or only published elsewhere),
// while a channel still subscribed keeps it; a channel whose state was dropped orders its
// next messages from a fresh position, gap fill included.
func TestClusterOrderStateShrinks(t *testing.T) {
	store := history.NewMemory(history.MemoryOptions{})
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	hubs, nodes := sharedStoreClusterClock(t, store, 2, clk)
	publish := func(ch, data string) {
		t.Helper()
		if err := hubs[1].Publish(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	kc, keep := connect(t, hubs[0])
	mustSubscribe(t, kc, keep, "keep", "")
	keep.Take()
	publish("keep", "k1")
	keep.WaitFrames(t, 1, waitTimeout)
	for round := range 3 {
		var conns []*channels.Conn
		for i := range 50 {
			room, remote := fmt.Sprintf("room:%d:%d", round, i), fmt.Sprintf("remote:%d:%d", round, i)
			c, s := connect(t, hubs[0])
			mustSubscribe(t, c, s, room, "")
			s.Take()
			publish(room, "r")
			publish(remote, "x") // nobody here: state all the same
			s.WaitFrames(t, 1, waitTimeout)
			conns = append(conns, c)
		}
		waitFor(t, "state of every channel on node 0", func() bool { return nodes[0].OrderChannels(appID) == 101 })
		// Node 1 (the publisher) has no subscriber: "keep" there went with round 0's sweep.
		if n, want := nodes[1].OrderChannels(appID), 100+max(0, 1-round); n != want {
			t.Fatalf("node 1 holds %d channels, want %d", n, want)
		}
		for _, c := range conns {
			c.Disconnect()
		}
		// Past the idle bound, the next heartbeat sweeps: only "keep" (subscribed) stays.
		clk.Add(replication.OrderIdle)
		waitFor(t, "node 0 back to the subscribed channel", func() bool { return nodes[0].OrderChannels(appID) == 1 })
		waitFor(t, "node 1 back to empty", func() bool { return nodes[1].OrderChannels(appID) == 0 })
	}
	// "keep" kept its position: a gap is still filled in order.
	lost := protocol.Message{Event: "e", Channel: "keep", Data: protocol.Str("k2"), MessageID: protocol.NewUUID()}
	if err := store.Append(context.Background(), appID, &lost); err != nil || lost.Serial != 2 {
		t.Fatalf("append: serial %d, %v", lost.Serial, err)
	}
	timers := clk.Pending()
	publish("keep", "k3")
	// Only node 0 holds k3: node 1 (no subscriber) lost its "keep" state in a sweep, so k3
	// set a fresh position there.
	waitFor(t, "k3 held on node 0", func() bool { return clk.Pending() == timers+1 })
	clk.Add(replication.GapWait)
	got := keep.WaitFrames(t, 3, waitTimeout)
	for j, w := range []string{"k1", "k2", "k3"} {
		if !strings.Contains(got[j], `"data":"`+w+`"`) {
			t.Fatalf("keep got %q, want k1, k2, k3", got)
		}
	}
	// A dropped channel starts again from its next message, and orders after it.
	c, s := connect(t, hubs[0])
	mustSubscribe(t, c, s, "room:0:0", "")
	s.Take()
	publish("room:0:0", "again")
	s.WaitFrames(t, 1, waitTimeout)
	lost = protocol.Message{Event: "e", Channel: "room:0:0", Data: protocol.Str("gap"), MessageID: protocol.NewUUID()}
	if err := store.Append(context.Background(), appID, &lost); err != nil {
		t.Fatal(err)
	}
	timers = clk.Pending()
	publish("room:0:0", "after")
	waitFor(t, "held on both nodes", func() bool { return clk.Pending() == timers+2 })
	clk.Add(replication.GapWait)
	got = s.WaitFrames(t, 3, waitTimeout)
	for j, w := range []string{"again", "gap", "after"} {
		if !strings.Contains(got[j], `"data":"`+w+`"`) {
			t.Fatalf("room got %q, want again, gap, after", got)
		}
	}
}
