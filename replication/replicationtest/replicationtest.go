// Package replicationtest holds an in-process broker network for tests of clustered hubs
// (cluster.Local is the real one; tests of channels and replication must not import it)
// and the helper that starts a hub's replication on it.
package replicationtest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/replication"
)

// waitTimeout bounds Settle and WaitNodes.
const waitTimeout = 5 * time.Second

// Bus is a broker network in one process. Down cuts every node off.
type Bus struct {
	mu    sync.Mutex
	nodes []*Broker
	Down  atomic.Bool
	Hang  atomic.Bool  // Publish waits for its context to end and fails, Healthy stays true
	Drop  atomic.Bool  // Publish succeeds and delivers nothing
	Hold  sync.RWMutex // a test holding it (Lock) keeps deliveries waiting, in order
	Hangs atomic.Int64 // message publishes that waited on a hanging broker
}

// Broker is one node of a Bus: a replication.Broker.
type Broker struct {
	bus    *Bus
	id     string
	ch     chan [3]string
	closed atomic.Bool
	done   chan struct{}
	// queued and handled count the envelopes put in ch and those handle returned from
	// (Settle waits for them to meet); sent counts this node's publishes by kind.
	queued, handled atomic.Int64
	sentMu          sync.Mutex
	sent            map[string]int
}

var _ replication.Broker = (*Broker)(nil)

// SentKind reports how many envelopes of kind this node published (lost ones included).
func (n *Broker) SentKind(kind string) int {
	n.sentMu.Lock()
	defer n.sentMu.Unlock()
	return n.sent[kind]
}

// Settle waits until every open node has handled every envelope published to it so far:
// after it, what was published before has had all its effects.
func (b *Bus) Settle(t testing.TB) {
	t.Helper()
	testkit.WaitFor(t, waitTimeout, "the bus delivered everything", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, n := range b.nodes {
			if !n.closed.Load() && n.handled.Load() != n.queued.Load() {
				return false
			}
		}
		return true
	})
}

// Node adds a node with id to the bus.
func (b *Bus) Node(id string) *Broker {
	n := &Broker{bus: b, id: id, ch: make(chan [3]string, 10000), done: make(chan struct{})}
	b.mu.Lock()
	b.nodes = append(b.nodes, n)
	b.mu.Unlock()
	return n
}

// NodeID implements replication.Broker.
func (n *Broker) NodeID() string { return n.id }

// Publish implements replication.Broker.
func (n *Broker) Publish(ctx context.Context, app string, env []byte) error {
	var kind struct {
		K string `json:"k"`
	}
	_ = json.Unmarshal(env, &kind)
	n.sentMu.Lock()
	if n.sent == nil {
		n.sent = map[string]int{}
	}
	n.sent[kind.K]++
	n.sentMu.Unlock()
	if n.bus.Hang.Load() {
		if kind.K == "pub" {
			n.bus.Hangs.Add(1)
		}
		<-ctx.Done()
		return ctx.Err()
	}
	if n.bus.Down.Load() {
		return errors.New("fake broker down")
	}
	if n.bus.Drop.Load() {
		return nil
	}
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	for _, o := range n.bus.nodes {
		if o != n && !o.closed.Load() {
			o.queued.Add(1)
			o.ch <- [3]string{app, n.id, string(env)}
		}
	}
	return nil
}

// Start implements replication.Broker.
func (n *Broker) Start(_ context.Context, handle func(appID, fromNode string, env []byte)) error {
	go func() {
		defer close(n.done)
		for it := range n.ch {
			if n.closed.Load() {
				return
			}
			n.bus.Hold.RLock()
			handle(it[0], it[1], []byte(it[2]))
			n.bus.Hold.RUnlock()
			n.handled.Add(1)
		}
	}()
	return nil
}

// Feed hands env to this node as if node from had published it for app (after what is
// queued already), so a test can send bytes no node of the bus would.
func (n *Broker) Feed(app, from, env string) {
	n.queued.Add(1)
	n.ch <- [3]string{app, from, env}
}

// Healthy implements replication.Broker.
func (n *Broker) Healthy() bool { return !n.closed.Load() && !n.bus.Down.Load() }

// Close implements replication.Broker.
func (n *Broker) Close() error {
	if n.closed.CompareAndSwap(false, true) {
		n.bus.mu.Lock()
		close(n.ch)
		n.bus.mu.Unlock()
	}
	return nil
}

// Start starts h's replication through b; the test's cleanup stops it and closes b.
func Start(t testing.TB, h *channels.Hub, b replication.Broker, o replication.Options) *replication.Node {
	t.Helper()
	n, err := replication.Start(context.Background(), h, b, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(); _ = b.Close() })
	return n
}

// WaitNodes waits until each of nodes sees want live nodes (itself included).
func WaitNodes(t testing.TB, nodes []*replication.Node, want int) {
	t.Helper()
	for _, n := range nodes {
		testkit.WaitFor(t, waitTimeout, "every node sees the others", func() bool { return n.Nodes() == want })
	}
}
