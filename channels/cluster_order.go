package channels

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// With several nodes, two messages of one channel published on different nodes may reach
// a node in the other order than their serials (each node delivers its own publish at
// once and the other's through the broker). A single node never does that: its channel
// sequencer orders allocation and delivery. So that a subscriber on any node sees what
// it would see on one node, a clustered node delivers each channel's serial messages in
// serial order: a message ahead of the next expected serial waits (gapWait) for the ones
// before it, and a gap still open then is filled from the history store. Messages without
// a serial (no history, ephemeral, a failed store) go out as they come.

// gapWait is how long a message ahead of a gap waits for the messages before it.
const gapWait = 200 * time.Millisecond

// maxPending bounds the messages held for one channel; past it the gap is filled at once.
const maxPending = 1000

// orderIdle is how long a channel's ordering state stays after its last message when
// nothing is held and the channel has no subscriber on this node; the cluster monitor
// sweeps it away at its next heartbeat after that (sweepOrder).
//
// Why dropping it cannot reorder or lose a message. The state is only a position (the next
// serial), the messages held ahead of a gap and the serials filled from history. Nothing
// is held, so nothing can be lost: every message that arrives later is delivered, as
// before. Nobody here receives the channel now (no subscriber, directly or through a
// wildcard), so nobody here can be shown a later message before an earlier one by the
// drop: whoever subscribes afterwards starts from the next message, which sets a fresh
// position exactly as the first message of a channel does on a node that just started,
// and a gap before it belongs to nobody here (a subscriber that wants what came before
// reads it from history with its own position: rewind or resume). A late message below the
// position is delivered at once with or without the state, so that does not change either.
// The one thing a dropped state knew that a fresh one does not is which serials it filled
// from history, whose late broker copies it would drop: those arrive within about a gap
// wait of the fill, and orderIdle is fifty of those.
const orderIdle = 10 * time.Second

// orderer holds the per-channel ordering state of one app.
type orderer struct {
	mu    sync.Mutex
	chans map[string]*chanOrder
}

// chanOrder is the delivery position of one channel on this node.
type chanOrder struct {
	mu      sync.Mutex
	stream  string
	next    uint64 // the next serial to deliver (0 until the first message)
	pending map[uint64]heldMessage
	// filled are serials delivered from history to close a gap; their late live copies
	// are dropped.
	filled map[uint64]bool
	timer  Timer     // the gap wait, on the hub's clock
	last   time.Time // when the last message arrived (the hub's clock)
	// dead: swept from orderer.chans (under both locks); a holder that finds it so looks
	// the channel up again.
	dead bool
}

type heldMessage struct {
	m      *protocol.Message
	sender *Conn
	except string
}

// deliverOrdered delivers m on this node in serial order (see above). Only a clustered
// node calls it.
func (a *appState) deliverOrdered(m *protocol.Message, sender *Conn, except string) {
	if m.Serial == 0 || m.StreamID == "" || a.hub.history == nil {
		a.deliverLocal(m, sender, except)
		return
	}
	co := a.ord.lock(m.Channel)
	defer co.mu.Unlock()
	co.last = a.hub.now()
	switch {
	case co.stream != m.StreamID || co.next == 0:
		// First message seen here, or a new stream: it sets the position.
		co.reset(m.StreamID)
		co.next = m.Serial + 1
		a.deliverLocal(m, sender, except)
	case m.Serial == co.next:
		co.next++
		a.deliverLocal(m, sender, except)
		a.flush(co)
	case m.Serial < co.next:
		// Late: dropped when history already delivered it, else delivered now (a message
		// from before this node's first one for the channel).
		if co.filled[m.Serial] {
			delete(co.filled, m.Serial)
			return
		}
		a.deliverLocal(m, sender, except)
	default:
		co.pending[m.Serial] = heldMessage{m, sender, except}
		if len(co.pending) >= maxPending {
			a.fillGap(co)
		} else if co.timer == nil {
			channel := m.Channel
			co.timer = a.hub.afterFunc(gapWait, func() { a.gapTimeout(channel, co) })
		}
	}
}

// lock returns the channel's ordering state, created when missing, locked.
func (o *orderer) lock(channel string) *chanOrder {
	for {
		o.mu.Lock()
		if o.chans == nil {
			o.chans = map[string]*chanOrder{}
		}
		co := o.chans[channel]
		if co == nil {
			co = &chanOrder{}
			o.chans[channel] = co
		}
		o.mu.Unlock()
		co.mu.Lock()
		if !co.dead {
			return co
		}
		co.mu.Unlock() // swept between the two locks: take the new one
	}
}

// sweepOrder drops the ordering state of the channels idle for orderIdle with nothing held
// and no subscriber on this node (see orderIdle for why that is safe). The cluster monitor
// calls it at each heartbeat.
func (a *appState) sweepOrder(now time.Time) {
	a.ord.mu.Lock()
	cands := make(map[string]*chanOrder, len(a.ord.chans))
	for name, co := range a.ord.chans {
		cands[name] = co
	}
	a.ord.mu.Unlock()
	for name, co := range cands {
		co.mu.Lock()
		if len(co.pending) == 0 && now.Sub(co.last) >= orderIdle && !a.hasLocalSubscribers(name) {
			a.ord.mu.Lock()
			if a.ord.chans[name] == co {
				delete(a.ord.chans, name)
			}
			a.ord.mu.Unlock()
			co.dead = true
			if co.timer != nil {
				co.timer.Stop()
				co.timer = nil
			}
		}
		co.mu.Unlock()
	}
}

// hasLocalSubscribers reports whether a connection of this node receives channel's
// messages, directly or through a wildcard subscription.
func (a *appState) hasLocalSubscribers(channel string) bool {
	if ch := a.lookup(channel); ch != nil {
		ch.mu.RLock()
		n := len(ch.subs)
		ch.mu.RUnlock()
		if n > 0 {
			return true
		}
	}
	return len(a.wildcardChannels(channel)) > 0
}

// orderChannels reports how many channels have ordering state (tests).
func (a *appState) orderChannels() int {
	a.ord.mu.Lock()
	defer a.ord.mu.Unlock()
	return len(a.ord.chans)
}

func (co *chanOrder) reset(stream string) {
	co.stream, co.next = stream, 0
	co.pending, co.filled = map[uint64]heldMessage{}, map[uint64]bool{}
	if co.timer != nil {
		co.timer.Stop()
		co.timer = nil
	}
}

// flush delivers the held messages that are next in order. Callers hold co.mu.
func (a *appState) flush(co *chanOrder) {
	for {
		h, ok := co.pending[co.next]
		if !ok {
			break
		}
		delete(co.pending, co.next)
		co.next++
		a.deliverLocal(h.m, h.sender, h.except)
	}
	if len(co.pending) == 0 && co.timer != nil {
		co.timer.Stop()
		co.timer = nil
	}
	if len(co.filled) > 4*maxPending {
		for s := range co.filled {
			if s+maxPending < co.next {
				delete(co.filled, s)
			}
		}
	}
}

func (a *appState) gapTimeout(channel string, co *chanOrder) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.dead {
		return
	}
	co.timer = nil
	if len(co.pending) > 0 {
		a.fillGap(co)
	}
}

// fillGap delivers the missing messages before the first held one from the history store
// (or skips them when the store cannot give them), then what is held after them; a later
// gap waits again. Callers hold co.mu.
func (a *appState) fillGap(co *chanOrder) {
	first := uint64(0)
	var channel string
	for s, h := range co.pending {
		if first == 0 || s < first {
			first, channel = s, h.m.Channel
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	page, err := a.hub.history.Read(ctx, a.cfg.ID, channel, protocol.HistoryQuery{Direction: protocol.OldestFirst,
		Limit: int(min(first-co.next, 1000)), StartSerial: co.next, EndSerial: first - 1})
	cancel()
	if err != nil {
		a.hub.log.Warn("cluster: messages missing from the node's stream and the history store unavailable: delivering on",
			zap.String("app_id", a.cfg.ID), zap.String("channel", channel), zap.Uint64("from", co.next), zap.Uint64("to", first-1), zap.Error(err))
	}
	for i := range page.Items {
		m := &page.Items[i]
		if m.StreamID != co.stream || m.Serial < co.next || m.Serial >= first {
			continue
		}
		co.filled[m.Serial] = true
		a.deliverLocal(m, nil, "")
	}
	co.next = first
	a.flush(co)
	if len(co.pending) > 0 && co.timer == nil {
		co.timer = a.hub.afterFunc(gapWait, func() { a.gapTimeout(channel, co) })
	}
}
