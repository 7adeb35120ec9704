package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/cluster"
	"github.com/pushwire/pushwire/cluster/clustertest"
	"github.com/pushwire/pushwire/replication"
)

func TestLocalConformance(t *testing.T) {
	var mu sync.Mutex
	buses := map[string]*cluster.LocalBus{}
	clustertest.Run(t, func(t *testing.T) replication.Broker {
		mu.Lock()
		defer mu.Unlock()
		id := clustertest.ClusterID(t)
		if buses[id] == nil {
			buses[id] = cluster.NewLocalBus()
		}
		return cluster.NewLocal(buses[id], "")
	})
}

// A Local alone on its bus is a single node: its publishes succeed and reach nobody.
func TestLocalSingleNode(t *testing.T) {
	bus := cluster.NewLocalBus()
	l := cluster.NewLocal(bus, "solo")
	defer l.Close()
	got := make(chan []byte, 1)
	if err := l.Start(context.Background(), func(_, _ string, env []byte) { got <- env }); err != nil {
		t.Fatal(err)
	}
	if l.NodeID() != "solo" || !l.Healthy() {
		t.Fatalf("NodeID %q, Healthy %v", l.NodeID(), l.Healthy())
	}
	if err := l.Publish(context.Background(), "app", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Proof by a later event rather than a wait: a peer joins the bus and publishes; deliveries
	// to a node keep the order they were queued in, so had the first publish been queued to
	// the node itself, it would arrive before the peer's.
	peer := cluster.NewLocal(bus, "peer")
	defer peer.Close()
	if err := peer.Publish(context.Background(), "app", []byte("sentinel")); err != nil {
		t.Fatal(err)
	}
	select {
	case env := <-got:
		if string(env) != "sentinel" {
			t.Fatalf("single node received its own envelope %q", env)
		}
	case <-time.After(time.Minute): // a hang guard
		t.Fatal("the peer's envelope never arrived")
	}
}

// Publish honours an ended context.
func TestLocalPublishCancelled(t *testing.T) {
	l := cluster.NewLocal(nil, "")
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Publish(ctx, "app", nil); err == nil {
		t.Fatal("Publish with a cancelled context succeeded")
	}
}

// TestLocalHubs: hubs joined through Locals behave as one server.
func TestLocalHubs(t *testing.T) {
	bus := cluster.NewLocalBus()
	clustertest.RunHubs(t, func(t *testing.T) replication.Broker { return cluster.NewLocal(bus, "") })
}
