package server

import (
	"context"
	"sync"
	"sync/atomic"
)

// goGroup owns the goroutines the server starts that can outlive a connection's
// unregistering: the netpoller's loop and its readiness callbacks, the flushers, writer
// goroutines, the goroutine that ends a pollWire connection, V2 native pings on
// coder/websocket, and a paused read side's timer. Shutdown waits for it (wait), so it
// returns only once every one of them has exited.
//
// Unlike sync.WaitGroup it may gain a goroutine while someone waits with none running (a
// timer of a connection already gone), which a WaitGroup forbids.
//
// Starting and ending a goroutine costs an atomic add each (readiness callbacks run per
// inbound message); the mutex is taken only when the count reaches zero or someone waits.
type goGroup struct {
	n    atomic.Int64
	mu   sync.Mutex
	zero chan struct{} // closed when n drops to 0; made by wait
}

// Go runs f in a goroutine the group owns.
func (g *goGroup) Go(f func()) {
	g.add()
	go func() {
		defer g.done()
		f()
	}()
}

// add counts a goroutine (or a timer that will run one) before it starts; done ends it.
func (g *goGroup) add() { g.n.Add(1) }

func (g *goGroup) done() {
	if g.n.Add(-1) != 0 {
		return
	}
	g.mu.Lock()
	if g.n.Load() == 0 && g.zero != nil {
		close(g.zero)
		g.zero = nil
	}
	g.mu.Unlock()
}

// wait returns when no goroutine of the group runs, or with ctx's error.
func (g *goGroup) wait(ctx context.Context) error {
	g.mu.Lock()
	if g.n.Load() == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.zero == nil {
		g.zero = make(chan struct{})
	}
	z := g.zero
	g.mu.Unlock()
	select {
	case <-z:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
