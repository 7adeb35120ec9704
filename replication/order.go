package replication

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
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
	app   string
	local *channels.LocalNode
	hist  channels.History // nil: nothing to fill gaps from, nothing is held
	log   *zap.Logger

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
	timer  channels.Timer // the gap wait, on the hub's clock
	last   time.Time      // when the last message arrived (the hub's clock)
	// dead: swept from orderer.chans (under both locks); a holder that finds it so looks
	// the channel up again.
	dead bool
}

type heldMessage struct {
	m      *protocol.Message
	sender *channels.Conn
	except string
}

// deliver delivers m on this node in serial order (see above).
func (o *orderer) deliver(m *protocol.Message, sender *channels.Conn, except string) {
	if m.Serial == 0 || m.StreamID == "" || o.hist == nil {
		o.deliverLocal(m, sender, except)
		return
	}
	co := o.lock(m.Channel)
	defer co.mu.Unlock()
	co.last = o.local.Now()
	switch {
	case co.stream != m.StreamID || co.next == 0:
		// First message seen here, or a new stream: it sets the position.
		co.reset(m.StreamID)
		co.next = m.Serial + 1
		o.deliverLocal(m, sender, except)
	case m.Serial == co.next:
		co.next++
		o.deliverLocal(m, sender, except)
		o.flush(co)
	case m.Serial < co.next:
		// Late: dropped when history already delivered it, else delivered now (a message
		// from before this node's first one for the channel).
		if co.filled[m.Serial] {
			delete(co.filled, m.Serial)
			return
		}
		o.deliverLocal(m, sender, except)
	default:
		co.pending[m.Serial] = heldMessage{m, sender, except}
		if len(co.pending) >= maxPending {
			o.fillGap(co)
		} else if co.timer == nil {
			channel := m.Channel
			co.timer = o.local.AfterFunc(gapWait, func() { o.gapTimeout(channel, co) })
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

// sweep drops the ordering state of the channels idle for orderIdle with nothing held and
// no subscriber on this node (see orderIdle for why that is safe). The node's monitor calls
// it at each heartbeat.
func (o *orderer) sweep(now time.Time) {
	o.mu.Lock()
	cands := make(map[string]*chanOrder, len(o.chans))
	for name, co := range o.chans {
		cands[name] = co
	}
	o.mu.Unlock()
	for name, co := range cands {
		co.mu.Lock()
		if len(co.pending) == 0 && now.Sub(co.last) >= orderIdle && !o.local.HasLocalSubscribers(o.app, name) {
			o.mu.Lock()
			if o.chans[name] == co {
				delete(o.chans, name)
			}
			o.mu.Unlock()
			co.dead = true
			if co.timer != nil {
				co.timer.Stop()
				co.timer = nil
			}
		}
		co.mu.Unlock()
	}
}

// size reports how many channels have ordering state (tests).
func (o *orderer) size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.chans)
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
func (o *orderer) flush(co *chanOrder) {
	for {
		h, ok := co.pending[co.next]
		if !ok {
			break
		}
		delete(co.pending, co.next)
		co.next++
		o.deliverLocal(h.m, h.sender, h.except)
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

func (o *orderer) gapTimeout(channel string, co *chanOrder) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.dead {
		return
	}
	co.timer = nil
	if len(co.pending) > 0 {
		o.fillGap(co)
	}
}

// fillGap delivers the missing messages before the first held one from the history store
// (or skips them when the store cannot give them), then what is held after them; a later
// gap waits again. Callers hold co.mu.
func (o *orderer) fillGap(co *chanOrder) {
	first := uint64(0)
	var channel string
	for s, h := range co.pending {
		if first == 0 || s < first {
			first, channel = s, h.m.Channel
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	page, err := o.hist.Read(ctx, o.app, channel, protocol.HistoryQuery{Direction: protocol.OldestFirst,
		Limit: int(min(first-co.next, 1000)), StartSerial: co.next, EndSerial: first - 1})
	cancel()
	if err != nil {
		o.log.Warn("cluster: messages missing from the node's stream and the history store unavailable: delivering on",
			zap.String("app_id", o.app), zap.String("channel", channel), zap.Uint64("from", co.next), zap.Uint64("to", first-1), zap.Error(err))
	}
	for i := range page.Items {
		m := &page.Items[i]
		if m.StreamID != co.stream || m.Serial < co.next || m.Serial >= first {
			continue
		}
		co.filled[m.Serial] = true
		o.deliverLocal(m, nil, "")
	}
	co.next = first
	o.flush(co)
	if len(co.pending) > 0 && co.timer == nil {
		co.timer = o.local.AfterFunc(gapWait, func() { o.gapTimeout(channel, co) })
	}
}

func (o *orderer) deliverLocal(m *protocol.Message, sender *channels.Conn, except string) {
	o.local.DeliverLocal(o.app, m, sender, except)
}
