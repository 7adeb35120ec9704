package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pushwire/pushwire/replication"
)

// LocalBus connects the Locals made from it, in one process. The zero value is not usable;
// call NewLocalBus.
type LocalBus struct {
	mu    sync.RWMutex
	nodes map[*Local]struct{}
}

// NewLocalBus returns an empty bus.
func NewLocalBus() *LocalBus {
	return &LocalBus{nodes: make(map[*Local]struct{})}
}

// Local is an in-process replication.Broker. A Local on a bus of its own is a single-node
// cluster: Publish succeeds and reaches nobody, since a node never receives its own
// envelopes. Locals sharing a bus deliver to each other, through an unbounded queue per
// receiving node, so Publish never blocks. Envelopes are copied on Publish.
type Local struct {
	bus  *LocalBus
	node string

	mu      sync.Mutex
	queue   []localItem
	wake    chan struct{} // capacity 1: the queue has items or the node is closing; never closed
	started bool
	closed  bool
	done    chan struct{} // closed when the delivery goroutine has exited
}

type localItem struct {
	app, from string
	env       []byte
}

var _ replication.Broker = (*Local)(nil)

// NewLocal returns a node on bus with the given node id; a nil bus gives the node a bus of
// its own (single node) and an empty nodeID a random one.
func NewLocal(bus *LocalBus, nodeID string) *Local {
	if bus == nil {
		bus = NewLocalBus()
	}
	if nodeID == "" {
		nodeID = newNodeID()
	}
	l := &Local{bus: bus, node: nodeID, wake: make(chan struct{}, 1), done: make(chan struct{})}
	bus.mu.Lock()
	bus.nodes[l] = struct{}{}
	bus.mu.Unlock()
	return l
}

// NodeID returns the node id.
func (l *Local) NodeID() string { return l.node }

// Publish copies env into the queue of every other started node on the bus.
func (l *Local) Publish(ctx context.Context, appID string, env []byte) error {
	if err := checkAppID(appID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cluster: local publish: %w", err)
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return fmt.Errorf("cluster: local publish: %w", ErrClosed)
	}
	cp := append([]byte(nil), env...)
	l.bus.mu.RLock()
	defer l.bus.mu.RUnlock()
	for n := range l.bus.nodes {
		if n != l {
			n.enqueue(localItem{app: appID, from: l.node, env: cp})
		}
	}
	return nil
}

// enqueue appends it to the node's queue if the node is started and open. Receivers share
// one copy of the envelope; each handler gets its own copy (see run).
func (l *Local) enqueue(it localItem) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started && !l.closed {
		l.queue = append(l.queue, it)
		l.signal()
	}
}

// signal wakes the delivery goroutine without blocking.
func (l *Local) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Start begins delivering envelopes from the other nodes to handle. It fails on a closed or
// already started node.
func (l *Local) Start(ctx context.Context, handle func(appID, fromNode string, env []byte)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cluster: local start: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return fmt.Errorf("cluster: local start: %w", ErrClosed)
	case l.started:
		return errors.New("cluster: local start: already started")
	}
	l.started = true
	go l.run(handle)
	return nil
}

// run delivers the queue to handle until the node is closed.
func (l *Local) run(handle func(appID, fromNode string, env []byte)) {
	defer close(l.done)
	for range l.wake {
		for {
			l.mu.Lock()
			if l.closed {
				l.mu.Unlock()
				return
			}
			if len(l.queue) == 0 {
				l.mu.Unlock()
				break
			}
			it := l.queue[0]
			l.queue[0] = localItem{}
			l.queue = l.queue[1:]
			if len(l.queue) == 0 {
				l.queue = nil // let the backing array go
			}
			l.mu.Unlock()
			handle(it.app, it.from, append([]byte(nil), it.env...))
		}
	}
}

// Healthy reports whether the node is open.
func (l *Local) Healthy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

// Close leaves the bus, drops undelivered envelopes and waits for an envelope being handled
// to finish (so it must not be called from the handler). Closing twice is harmless.
func (l *Local) Close() error {
	l.bus.mu.Lock()
	delete(l.bus.nodes, l)
	l.bus.mu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.queue = nil
	started := l.started
	l.signal()
	l.mu.Unlock()
	if started {
		<-l.done
	}
	return nil
}
