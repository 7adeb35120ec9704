package channels_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/protocol"
)

// sharedStoreCluster starts n hubs of the default app on one fake bus, sharing one history
// store (as nodes share a Postgres), and waits until they see each other.
func sharedStoreCluster(t *testing.T, store channels.History, n int) []*channels.Hub {
	t.Helper()
	bus := &fakeBus{}
	var hubs []*channels.Hub
	for i := range n {
		app := config.DefaultApp()
		app.ApplyDefaults()
		h := channels.New([]config.App{app}, channels.Options{History: store})
		b := bus.node(fmt.Sprintf("n%d", i))
		if err := h.StartCluster(context.Background(), b, channels.ClusterOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.StopCluster(); _ = b.Close() })
		hubs = append(hubs, h)
	}
	for _, h := range hubs {
		waitFor(t, "the nodes see each other", func() bool { return h.ClusterNodes() == n })
	}
	return hubs
}

// TestClusterSerialOrder: on a clustered node, a channel's messages go out in serial order
// even when they arrive out of it. Serial 2 is stored (by a node whose broker message is
// lost) but never delivered through the broker; serial 3 arrives: every node waits, fills
// 2 from the shared history store, then delivers 3.
func TestClusterSerialOrder(t *testing.T) {
	store := history.NewMemory(history.MemoryOptions{})
	hubs := sharedStoreCluster(t, store, 2)
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
	publish("c")
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
