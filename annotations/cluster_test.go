package annotations_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/replication"
	"github.com/pushwire/pushwire/replication/replicationtest"
)

// TestClusterSummaryReachesOtherNodes: through the seam end to end on a fake bus — an
// annotation published on node 0 reaches a raw subscriber on node 1 (Deliver, in the
// cluster's order), and node 0's summary reaches node 1's subscriber once (ForwardSummary
// out of node 0, LocalNode.DeliverSummary into node 1's feature).
func TestClusterSummaryReachesOtherNodes(t *testing.T) {
	store := history.NewMemory(history.MemoryOptions{}) // shared, as nodes share a Postgres
	bus := &replicationtest.Bus{}
	var hubs []hub
	var nodes []*replication.Node
	for i := range 2 {
		h := channels.New([]config.App{defaultApp()}, channels.Options{History: store})
		hubs = append(hubs, hub{h, annotations.Attach(h, store, annotations.Options{})})
		nodes = append(nodes, replicationtest.Start(t, h, bus.Node(fmt.Sprintf("n%d", i)), replication.Options{}))
	}
	replicationtest.WaitNodes(t, nodes, 2)
	const ch = "chat:cluster"
	_, plain := v2Sub(t, hubs[1], ch, channels.ConnOptions{}, true) // a rewind skips the resume hold
	raw, perr := annConn(t, hubs[1], testkit.NewClock(time.Now()), ch, "watcher", []string{"subscribe", "annotation-subscribe"}, true)
	if perr != nil {
		t.Fatal(perr)
	}
	msg := create(t, hubs[0], ch, "hello")
	plain.WaitFrames(t, 1, 5*time.Second)
	raw.WaitFrames(t, 1, 5*time.Second)
	plain.Take()
	raw.Take()

	a := publishAnn(t, hubs[0], ch, msg, protocol.Annotation{Type: "views:total.v1"})
	plain.WaitFrames(t, 1, 5*time.Second) // the summary, after SummaryWindow on node 0
	raw.WaitFrames(t, 2, 5*time.Second)   // the event, then the summary
	bus.Settle(t)
	anns, sums, other := frames(t, plain)
	if len(anns) != 0 || len(sums) != 1 || len(other) != 0 {
		t.Fatalf("node 1's plain subscriber: %d events, %d summaries, other %v", len(anns), len(sums), other)
	}
	serial, sum := summaryOf(t, sums[0])
	if serial != msg || sum["views:total.v1"].(map[string]any)["total"] != float64(1) {
		t.Fatalf("summary of %s: %v", serial, sum)
	}
	anns, sums, other = frames(t, raw)
	if len(anns) != 1 || anns[0].Serial != a.Serial || len(sums) != 1 || len(other) != 0 {
		t.Fatalf("node 1's raw subscriber: events %+v, %d summaries, other %v", anns, len(sums), other)
	}
}
