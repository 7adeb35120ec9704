package channels

import (
	"sync"
	"sync/atomic"
	"time"
)

// ResumeHold is how long live messages of a new V2 subscription to a history channel are
// held back. Clients re-subscribe and then send sockudo:resume at once; holding the first
// live messages lets the resume replay the gap first, so the client sees every serial in
// order, once. Without a resume the held messages go out when the hold ends.
const ResumeHold = 150 * time.Millisecond

// maxHeld caps the messages held for one subscription; past it the hold ends early.
const maxHeld = 512

// heldQueue holds a subscription's live V2 frames until released.
type heldQueue struct {
	mu       sync.Mutex
	on       bool
	ended    atomic.Bool // !on, read without the lock
	canceled bool
	frames   []heldFrame
	send     func([]byte)
	// through is the last serial delivered when the hold ended by a resume (0 otherwise).
	released bool
}

type heldFrame struct {
	serial uint64
	frame  []byte
}

// newHeldQueue starts a hold; its ResumeHold runs from arm.
func newHeldQueue(send func([]byte)) *heldQueue {
	return &heldQueue{on: true, send: send}
}

// maxHoldExtensions bounds how many more ResumeHolds a hold waits while its connection has
// input not handled yet.
const maxHoldExtensions = 10

// arm starts the hold's time on the hub's clock (after): ResumeHold from now, then the held
// frames go out — unless pending (may be nil) reports input from the client that the server
// has not handled yet (a starved server may not have read the resume that follows the
// subscribe): then the hold waits another ResumeHold, at most maxHoldExtensions times.
func (q *heldQueue) arm(after func(time.Duration, func()) Timer, pending func() bool) {
	extended := 0
	var fire func()
	fire = func() {
		if pending != nil && extended < maxHoldExtensions && q.holding() && pending() {
			extended++
			after(ResumeHold, fire)
			return
		}
		q.release(0)
	}
	after(ResumeHold, fire)
}

// add holds frame and reports true while the hold is on.
func (q *heldQueue) add(serial uint64, frame []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on {
		return false
	}
	q.frames = append(q.frames, heldFrame{serial, frame})
	if len(q.frames) >= maxHeld {
		q.flushLocked(0)
	}
	return true
}

// release ends the hold: the held frames with a serial above skipThrough (a resume already
// replayed those) are sent, in order. It reports whether the hold was still on.
func (q *heldQueue) release(skipThrough uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on {
		return false
	}
	q.flushLocked(skipThrough)
	return true
}

func (q *heldQueue) flushLocked(skipThrough uint64) {
	if !q.canceled {
		for _, f := range q.frames {
			if f.serial == 0 || f.serial > skipThrough {
				q.send(f.frame)
			}
		}
	}
	q.on, q.frames, q.released = false, nil, true
	q.ended.Store(true)
}

// holding reports whether frames are still being held (false for a nil queue). Once it
// reports false it never reports true again.
func (q *heldQueue) holding() bool { return q != nil && !q.ended.Load() }

// cancel drops the held frames (the subscription ended).
func (q *heldQueue) cancel() {
	q.mu.Lock()
	q.canceled, q.on, q.frames = true, false, nil
	q.ended.Store(true)
	q.mu.Unlock()
}

// frameBatch defers the start of the holds of subscriptions made while a connection's
// transport dispatches the frames of one read (Conn.BeginFrames / EndFrames). Clients send
// their resume right behind their subscribe, so both usually arrive in one read: the resume
// is then handled before the hold's time starts, however long the machine takes between the
// two frames, and the held live frames can never overtake its replay.
type frameBatch struct {
	mu       sync.Mutex // a leaf: nothing else is taken under it
	batching bool
	unarmed  []*heldQueue
}

// InputPender is implemented by Subscribers whose transport can tell whether the client has
// sent input the server has not handled yet; a resume hold then waits for it.
type InputPender interface {
	InputPending() bool
}

// inputPending is the connection's InputPender, nil when its Subscriber has none.
func (c *Conn) inputPending() func() bool {
	if p, ok := c.sub.(InputPender); ok {
		return p.InputPending
	}
	return nil
}

// startHold starts q's time now, or at the end of the current batch.
func (c *Conn) startHold(q *heldQueue) {
	b := &c.batch
	b.mu.Lock()
	if b.batching {
		b.unarmed = append(b.unarmed, q)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	q.arm(c.app.hub.afterFunc, c.inputPending())
}

// BeginFrames tells the connection that its transport is about to dispatch the frames of one
// read; EndFrames that it has. Holds of subscriptions made in between start at EndFrames.
// Transports that dispatch one frame at a time need not call them.
func (c *Conn) BeginFrames() {
	c.batch.mu.Lock()
	c.batch.batching = true
	c.batch.mu.Unlock()
}

// EndFrames ends a batch begun by BeginFrames and starts the holds it deferred.
func (c *Conn) EndFrames() {
	c.batch.mu.Lock()
	qs := c.batch.unarmed
	c.batch.batching, c.batch.unarmed = false, nil
	c.batch.mu.Unlock()
	for _, q := range qs {
		q.arm(c.app.hub.afterFunc, c.inputPending())
	}
}
