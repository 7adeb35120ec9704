package server

import (
	"sync"
	"time"
)

// flusher writes the queues of pollWire connections from a few shared goroutines instead of
// a goroutine per connection: Send queues the frame and, if the connection is not already
// waiting for a turn, puts it on the ready list. A flusher takes connections off the list
// in order, a chunk at a time, and gives each one non-blocking write of everything it has
// queued (conn.flush). A publish to 5,000 subscribers therefore wakes one or two flushers,
// not 5,000 goroutines, and a connection whose frames pile up while it waits gets them in
// one write. A connection written to less than coalesceWindow ago waits out the window
// first, so a burst shares writes. A connection whose socket is full leaves the flushers for
// a writer goroutine of its own, so a slow client never holds a flusher.
type flusher struct {
	mu     sync.Mutex
	cond   sync.Cond
	ready  []*conn
	closed bool
	// later holds connections written to less than coalesceWindow ago; due gets them when
	// the window has passed, and they are written then without another look at the clock.
	later, due []*conn
	timer      bool // a release of later is scheduled
}

// coalesceWindow: a connection written to less than this long ago waits until the window
// has passed, so that messages arriving in quick succession (a presence storm, a fast
// ticker) share one write instead of one each. A connection that receives less often than
// this is written at once, so ordinary fan-out and chat latency is unchanged.
const coalesceWindow = 2 * time.Millisecond

// flushChunk is how many connections a flusher takes off the ready list at once.
const flushChunk = 64

// newFlusher starts workers flushers through spawn (the owner joins them after close).
func newFlusher(workers int, spawn func(func())) *flusher {
	f := &flusher{}
	f.cond.L = &f.mu
	for range max(workers, 1) {
		spawn(f.loop)
	}
	return f
}

// push puts c, which holds the writer role, on the ready list.
func (f *flusher) push(c *conn) {
	f.mu.Lock()
	f.ready = append(f.ready, c)
	f.mu.Unlock()
	f.cond.Signal()
}

// close stops the flushers once the list is empty.
func (f *flusher) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *flusher) loop() {
	mine := make([]*conn, 0, flushChunk)
	for {
		f.mu.Lock()
		for len(f.ready) == 0 && len(f.due) == 0 && !f.closed {
			f.cond.Wait()
		}
		if len(f.due) > 0 {
			mine = take(&f.due, mine)
			f.mu.Unlock()
			for _, c := range mine {
				c.flush()
			}
			clear(mine)
			continue
		}
		if len(f.ready) == 0 {
			f.mu.Unlock()
			return
		}
		mine = take(&f.ready, mine)
		if len(f.ready) > 0 {
			f.cond.Signal() // more for another flusher
		}
		f.mu.Unlock()
		now := time.Now().UnixNano()
		for _, c := range mine {
			if now-c.lastFlush.Load() < int64(coalesceWindow) {
				f.wait(c)
				continue
			}
			c.flush()
		}
		clear(mine)
	}
}

// take moves up to flushChunk connections from the front of *list into mine (emptied
// first) and returns it.
func take(list *[]*conn, mine []*conn) []*conn {
	l := *list
	k := min(len(l), flushChunk)
	mine = append(mine[:0], l[:k]...)
	n := copy(l, l[k:])
	clear(l[n:])
	*list = l[:n]
	return mine
}

// wait puts c on the later list, released to due when the window has passed.
func (f *flusher) wait(c *conn) {
	f.mu.Lock()
	f.later = append(f.later, c)
	if !f.timer {
		f.timer = true
		time.AfterFunc(coalesceWindow, f.release)
	}
	f.mu.Unlock()
}

func (f *flusher) release() {
	f.mu.Lock()
	f.due = append(f.due, f.later...)
	clear(f.later)
	f.later = f.later[:0]
	f.timer = false
	f.mu.Unlock()
	f.cond.Broadcast()
}
