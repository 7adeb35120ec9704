package channels

import (
	"sync"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Append rollup (append_rollup_window, ws-protocol §1.1). A V2 connection may ask for a
// window of 20, 40, 100 or 500 ms: then the appends to one mutable message that follow each
// other within the window reach it as one sockudo:message.append frame. That frame is the
// last append's (its serial, message_id, version headers), with data = the appended
// fragments joined (append_mode=delta; sockudo-js's reducer concatenates it onto what it has,
// reaching the server's string) or the whole string after the last one (append_mode=full).
// As in Sockudo (its AI rollup engine), the first append of a window goes out at once and
// opens the window; the next ones wait until it ends; an update, a delete or a terminal
// append (extras.ai status complete or cancelled) flushes what waits, then goes out itself
// and ends the window.
//
// Unlike Sockudo, a window belongs to the connection (Sockudo validates the parameter and uses
// one server-wide window on AI channels), and any other message of the channel flushes the
// waiting appends before it goes out: a batch always covers consecutive serials of the
// channel, so the serial a client tracks for resume never passes a fragment it has not
// received. Appends interleaved with other messages therefore go out one by one.
//
// Connections with the same window share one group per channel: each batch is encoded once
// for all of them. A connection takes part in a group's batches only from the first batch
// that starts after it subscribed and after its resume hold ended; until then it gets every
// append on its own, so a batch never repeats a fragment the client already holds (from a
// rewind, a resume or a single-append frame).

// Timer is a pending call scheduled by Options.AfterFunc.
type Timer interface {
	// Stop cancels the call; it reports whether the call was still pending.
	Stop() bool
}

// windowSet is a set of rollup window indexes (protocol.RollupWindows): bit i is window i;
// bit 0 is "no rollup", which every V1 subscriber and every V2 subscriber outside a batch has.
type windowSet uint8

// everyWindow reaches every subscriber.
const everyWindow windowSet = 1<<len(protocol.RollupWindows) - 1

// rollupIndex returns the index of d in protocol.RollupWindows (0 when d is not one).
func rollupIndex(d time.Duration) int {
	for i, w := range protocol.RollupWindows {
		if w == d {
			return i
		}
	}
	return 0
}

// rollup is a channel's append rollup state: one group per window (index 0 unused).
type rollup struct {
	mu     sync.Mutex
	subs   [len(protocol.RollupWindows)]int // subscribers per window; changed under channel.mu (write)
	groups [len(protocol.RollupWindows)]rollGroup
}

// rollGroup is the rollup of one window on one channel.
type rollGroup struct {
	// serial is the mutable message whose window is open ("" when none), until deadline.
	serial   string
	deadline time.Time
	timer    Timer
	// pending is the appends waiting for the window to end, as one delivery (nil when none).
	pending *protocol.Message
	// batch numbers the batches: it is the current one while pending is set, else the last.
	batch uint64
}

// rollupMember returns the window index c takes part in for this delivery: its own, or 0
// while the subscription is held for a resume or joined after the group's current batch
// began. Callers hold ch.mu; ch.roll is set.
func (ch *channel) rollupMember(c *Conn, s *subscription) int {
	w := c.rollIdx
	if w == 0 || ch.roll == nil {
		return 0
	}
	g := &ch.roll.groups[w]
	if s.hold != nil && s.hold.active() || s.replay.Load().active() {
		// Frames reach a held subscription one by one, so a resume can skip exactly what it
		// replays; it joins the batches that start after the hold.
		s.rollFrom.Store(g.batch + 1)
		return 0
	}
	if s.rollFrom.Load() > g.batch {
		return 0
	}
	return w
}

// joinRollup counts a new subscription of c and sets where it may join its group. Callers
// hold ch.mu (write).
func (ch *channel) joinRollup(c *Conn, s *subscription) {
	if c.rollIdx == 0 {
		return
	}
	if ch.roll == nil {
		ch.roll = &rollup{}
	}
	ch.roll.mu.Lock()
	ch.roll.subs[c.rollIdx]++
	s.rollFrom.Store(ch.roll.groups[c.rollIdx].batch + 1)
	ch.roll.mu.Unlock()
}

// leaveRollup uncounts a subscription of c. Callers hold ch.mu (write).
func (ch *channel) leaveRollup(c *Conn) {
	if c.rollIdx == 0 || ch.roll == nil {
		return
	}
	ch.roll.mu.Lock()
	ch.roll.subs[c.rollIdx]--
	ch.roll.mu.Unlock()
}

// deliver fans m out, through the rollup when some subscriber asked for one. Callers hold
// ch.mu (read).
func (ch *channel) deliver(a *appState, m *protocol.Message, sender *Conn, exceptSocketID string, v1, v2 []byte) {
	r := ch.roll
	if r == nil {
		ch.fanout(m, sender, exceptSocketID, v1, v2)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	to := everyWindow
	mu := m.Mutable
	rollable := mu != nil && mu.Action == protocol.ActionAppend && m.Serial != 0 && sender == nil && exceptSocketID == "" &&
		!protocol.TerminalAppend(m.Extras)
	for w := 1; w < len(r.groups); w++ {
		if r.subs[w] == 0 {
			// Nobody left to receive the group's batches.
			r.groups[w].pending = nil
			r.groups[w].end()
			continue
		}
		if ch.route(a, w, m, rollable) {
			to &^= 1 << w
		}
	}
	ch.fanoutTo(m, sender, exceptSocketID, v1, v2, nil, to)
}

// route runs m through window w's group and reports whether the group holds it back (it
// joined the pending batch). rollable: m is a stored, non-terminal append from the HTTP API
// (no sender, no excluded socket). Callers hold ch.mu (read) and ch.roll.mu.
func (ch *channel) route(a *appState, w int, m *protocol.Message, rollable bool) bool {
	g := &ch.roll.groups[w]
	mu := m.Mutable
	if rollable && g.serial == mu.MessageSerial && a.hub.now().Before(g.deadline) {
		if g.pending == nil {
			g.batch++
			p := *m
			g.pending = &p
		} else {
			g.pending = mergeAppend(g.pending, m)
		}
		return true
	}
	ch.flushGroup(w)
	switch {
	case rollable:
		// The first append of a window goes out now and opens it.
		if g.timer != nil {
			g.timer.Stop()
		}
		window := protocol.RollupWindows[w]
		serial, deadline := mu.MessageSerial, a.hub.now().Add(window)
		g.serial, g.deadline = serial, deadline
		g.timer = a.hub.afterFunc(window, func() { ch.rollupDeadline(w, serial, deadline) })
	case mu != nil && mu.MessageSerial == g.serial && mu.Action != protocol.ActionCreate:
		// An update, a delete or a terminal append ends the message's window.
		g.end()
	}
	return false
}

// end closes the group's window. Callers hold ch.roll.mu.
func (g *rollGroup) end() {
	g.serial, g.deadline = "", time.Time{}
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// flushGroup sends window w's pending batch to the group's members. Callers hold ch.mu
// (read) and ch.roll.mu.
func (ch *channel) flushGroup(w int) {
	g := &ch.roll.groups[w]
	if g.pending == nil {
		return
	}
	p := g.pending
	ch.fanoutTo(p, nil, "", nil, nil, nil, 1<<w) // g.batch is still p's: its members receive it
	g.pending = nil
}

// rollupDeadline ends window w of message serial when it is still the one opened at
// deadline: the pending batch goes out and the next append opens a new window.
func (ch *channel) rollupDeadline(w int, serial string, deadline time.Time) {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	ch.roll.mu.Lock()
	defer ch.roll.mu.Unlock()
	g := &ch.roll.groups[w]
	if g.serial != serial || !g.deadline.Equal(deadline) {
		return
	}
	ch.flushGroup(w)
	g.end()
}

// mergeAppend folds the append m into the pending batch p: m's serial, ids, version and
// extras, with the fragments joined (and m's whole string for append_mode=full).
func mergeAppend(p, m *protocol.Message) *protocol.Message {
	data, err := protocol.AppendData(p.Data, m.Data)
	if err != nil {
		data = m.Data // not reached: both are validated string fragments
	}
	next := *m
	next.Data = data
	return &next
}

// active reports whether the hold is still on.
func (q *heldQueue) active() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.on
}
