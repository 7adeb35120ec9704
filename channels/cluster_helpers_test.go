package channels_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/replication"
	"github.com/pushwire/pushwire/replication/replicationtest"
)

// The core's tests of behaviour that spans nodes (presence history of a dead node, history
// purges, force_reconnect everywhere) join hubs through package replication on a fake bus;
// the replication protocol's own tests are in package replication.

// newCluster starts n hubs of the default app (options from opts, nil: none) on one fake
// bus, with node ids n0, n1, ... (n0 is the leader), and waits until they see each other.
func newCluster(t *testing.T, n int, o replication.Options, opts func(i int) channels.Options) (*replicationtest.Bus, []*channels.Hub, []*replication.Node) {
	t.Helper()
	bus := &replicationtest.Bus{}
	var hubs []*channels.Hub
	var nodes []*replication.Node
	for i := range n {
		app := config.DefaultApp()
		app.ApplyDefaults()
		var ho channels.Options
		if opts != nil {
			ho = opts(i)
		}
		h := channels.New([]config.App{app}, ho)
		b := bus.Node(fmt.Sprintf("n%d", i))
		hubs, nodes = append(hubs, h), append(nodes, replicationtest.Start(t, h, b, o))
	}
	replicationtest.WaitNodes(t, nodes, n)
	return bus, hubs, nodes
}

// sharedStoreCluster starts n hubs of the default app on one fake bus, sharing one history
// store (as nodes share a Postgres), and waits until they see each other.
func sharedStoreCluster(t *testing.T, store channels.History, n int) []*channels.Hub {
	t.Helper()
	_, hubs, _ := newCluster(t, n, replication.Options{}, func(int) channels.Options { return channels.Options{History: store} })
	return hubs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recObserver records webhook-worthy observer calls.
type recObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *recObserver) add(s string)                                                        { o.mu.Lock(); o.got = append(o.got, s); o.mu.Unlock() }
func (o *recObserver) ChannelOccupied(_, ch string)                                        { o.add("occupied " + ch) }
func (o *recObserver) ChannelVacated(_, ch string)                                         { o.add("vacated " + ch) }
func (o *recObserver) MemberAdded(_, ch, u string)                                         { o.add("member_added " + ch + " " + u) }
func (o *recObserver) MemberRemoved(_, ch, u string)                                       { o.add("member_removed " + ch + " " + u) }
func (o *recObserver) CacheMiss(string, string)                                            {}
func (o *recObserver) SubscriptionCount(string, string, int)                               {}
func (o *recObserver) ClientEvent(string, string, string, json.RawMessage, string, string) {}
