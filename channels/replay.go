package channels

import (
	"sync"
	"sync/atomic"
)

// Replays without the channel's turn.
//
// A replay to one connection — a rewind on subscribe, a sockudo:resume of a subscribed
// channel, a pending resume completed inside a subscribe — may read up to a thousand
// messages from the history store. The channel's sequencer turn is held only for an O(1)
// step: the stream state is read (its head serial H fixes what the replay covers) and a
// replayQueue is put on the connection's subscription. The turn is then released and the
// store is read with nothing held that a publish needs: publishes of the channel are
// stored, acknowledged and delivered to every other subscriber meanwhile. Their frames for
// this subscription (and the channel's system frames: member_added, counts) are queued
// instead of sent. When the read is done the connection gets, in this order and under the
// queue's lock so no fan-out can come between:
//
//	the replay (serial order, up to H), and the frames the replay owes (rewind_complete;
//	the ack and resume outcome of a subscribe that completed a pending resume)
//	the queued frames with a serial above H (each serial once), and the system frames
//	then live frames, sent as they come
//
// Queued frames are full frames, never deltas (fanoutTo passes held to frameFor), and the
// subscription's delta state is reset when the queue ends, so the first live frame after a
// replay is full: no delta ever refers to a base the client has not seen.
//
// The queue is bounded (Options.ReplayQueueLimit). A replay so slow that more frames than
// that arrive meanwhile fails: at the frame that overflows, the connection gets the
// failure the clients know (resume_failed persistence_unavailable /
// failed_to_deliver_recovery_payload, or the rewind's error frame), then every queued frame
// and the live stream; the replay that finishes later sends nothing. So nothing is dropped
// silently: the client learns that its position has a gap, and the live stream it gets
// after that has none.
//
// A sockudo:resume of several channels keeps every channel's queue until its one
// resume_success is out (both clients overwrite their positions with the ones it reports, so
// no live frame of a recovered channel may precede it). A channel replayed early in a long
// resume can therefore overflow after its replay went out: it gets resume_failed at that
// moment and is reported failed, and its live frames flow from there.

// DefaultReplayQueueLimit is the most live frames queued for one subscription while its
// replay is read, when Options.ReplayQueueLimit is zero.
const DefaultReplayQueueLimit = 10000

// replayQueue holds one subscription's live frames while a replay is read.
type replayQueue struct {
	mu     sync.Mutex
	on     bool
	ended  atomic.Bool // !on, read without the lock
	frames []heldFrame
	limit  int
	// overflow, set before the queue is published, sends the replay's failure (and
	// anything owed before the live frames) when the queue overflows. Called under mu.
	overflow func()
	failed   bool
	// replayed: the replay up to head went out (deliver); the queued frames wait for release.
	replayed bool
	head     uint64
	send     func([]byte)
}

func newReplayQueue(limit int, send func([]byte)) *replayQueue {
	return &replayQueue{on: true, limit: limit, send: send}
}

// active reports whether frames are being queued (false for a nil queue).
func (q *replayQueue) active() bool { return q != nil && !q.ended.Load() }

// add queues frame and reports true while the queue is on. The frame that overflows it
// fails the replay: the failure, the queued frames the client has not had and this one are
// sent at once.
func (q *replayQueue) add(serial uint64, frame []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on {
		return false
	}
	q.frames = append(q.frames, heldFrame{serial, frame})
	if len(q.frames) <= q.limit {
		return true
	}
	q.failed = true
	if q.overflow != nil {
		q.overflow()
	}
	if !q.replayed {
		q.head = 0 // nothing was replayed: every queued frame is new to the client
	}
	q.flushLocked()
	return true
}

// flushLocked sends the queued frames with a serial above head (each serial once; system
// frames, serial 0, all) and ends the queue.
func (q *replayQueue) flushLocked() {
	last := q.head
	for _, f := range q.frames {
		if f.serial == 0 {
			q.send(f.frame)
		} else if f.serial > last {
			q.send(f.frame)
			last = f.serial
		}
	}
	q.on, q.frames = false, nil
	q.ended.Store(true)
}

// deliver sends the replay up to head through emit, before any queued frame, unless the
// queue overflowed before (then it sends nothing and reports false). The queued frames
// wait for release.
func (q *replayQueue) deliver(head uint64, emit func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed {
		return false
	}
	emit()
	q.replayed, q.head = true, head
	return true
}

// overflowed reports whether the queue overflowed (its replay failed).
func (q *replayQueue) overflowed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failed
}

// release ends a delivered queue: the queued frames with a serial above the replay's head
// go out, and the delta state d (may be nil) is reset, so the next live frame is full.
func (q *replayQueue) release(d *deltaSub) {
	if d != nil {
		d.mu.Lock() // fan-outs hold it from choosing a frame until it is queued
		defer d.mu.Unlock()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on {
		return
	}
	q.flushLocked()
	if d != nil {
		d.resetLocked()
	}
}

// finish is deliver then release as one step: no frame can overflow the queue in between.
func (q *replayQueue) finish(head uint64, d *deltaSub, emit func()) bool {
	if d != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failed {
		return false
	}
	emit()
	q.replayed, q.head = true, head
	q.flushLocked()
	if d != nil {
		d.resetLocked()
	}
	return true
}

// cancel drops the queue (the subscription ended).
func (q *replayQueue) cancel() {
	q.mu.Lock()
	q.on, q.frames, q.failed = false, nil, true
	q.ended.Store(true)
	q.mu.Unlock()
}

// startReplay puts a replay queue on the connection's subscription of name and returns it
// with the subscription (nil when not subscribed); overflow (see replayQueue) may be nil.
// Callers hold the channel's sequencer turn.
func (c *Conn) startReplay(name string, overflow func()) (*replayQueue, *subscription) {
	ch := c.app.lookup(name)
	if ch == nil {
		return nil, nil
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	s, ok := ch.subs[c]
	if !ok {
		return nil, nil
	}
	q := c.newReplayQueue(overflow)
	s.replay.Store(q)
	return q, s
}

// newReplayQueue is a replay queue of the connection, not yet on a subscription.
func (c *Conn) newReplayQueue(overflow func()) *replayQueue {
	q := newReplayQueue(c.app.hub.replayLimit, c.sub.SendEncoded)
	q.overflow = overflow
	return q
}

// endReplay takes a finished (or failed) queue off the subscription.
func (s *subscription) endReplay(q *replayQueue) {
	s.replay.CompareAndSwap(q, nil)
}
