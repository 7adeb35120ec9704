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
	timer  *time.Timer
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
	a.ord.mu.Lock()
	if a.ord.chans == nil {
		a.ord.chans = map[string]*chanOrder{}
	}
	co := a.ord.chans[m.Channel]
	if co == nil {
		co = &chanOrder{}
		a.ord.chans[m.Channel] = co
	}
	a.ord.mu.Unlock()

	co.mu.Lock()
	defer co.mu.Unlock()
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
			co.timer = time.AfterFunc(gapWait, func() { a.gapTimeout(channel, co) })
		}
	}
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
		co.timer = time.AfterFunc(gapWait, func() { a.gapTimeout(channel, co) })
	}
}
