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

func newHeldQueue(send func([]byte)) *heldQueue {
	q := &heldQueue{on: true, send: send}
	time.AfterFunc(ResumeHold, func() { q.release(0) })
	return q
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
