package channels

import (
	"hash/maphash"
	"sync"
)

// The per-channel sequencer orders what happens to one channel on this node — its history
// appends, its deliveries, and the operations that need the channel quiet (a V2 subscribe
// reading the stream head, reset, purge, mutations; a rewind or resume only while it reads
// the head and starts queueing its subscription's live frames — it reads history after,
// replay.go) — without any lock or wait shared with another channel.
//
// Every operation on a channel takes a ticket. Tickets of a channel form a chain, in the
// order they were taken, and each ticket passes three gates in chain order:
//
//   - submitted: its message was handed to the history store (serial order is queue order);
//   - stored: the store answered (committed, or failed);
//   - done: it was delivered (or its exclusive operation finished).
//
// A ticket passes a gate only after its predecessor passed it, so a channel's serials,
// deliveries and exclusive operations keep one order, while several appends of the channel
// can be in flight in a pipelined store at once (their submitted gates open one after the
// other without waiting for the commits). Waiting happens on the ticket's own goroutine on
// channels closed by the predecessor: nothing is held while a store or a broker works, and
// the only shared lock (a shard of the ticket table) is held for a map access.
//
// Kinds of tickets:
//
//   - pipelined append: wait submitted(prev), queue the append, open submitted; wait for the
//     commit and stored(prev), open stored; wait done(prev), deliver, open done.
//   - synchronous append (a store that is not pipelined, or a mutable create, which is one
//     transaction of its own): wait stored(prev) — every earlier append committed — append,
//     open submitted and stored; wait done(prev), deliver, open done.
//   - no append (channels without history, ephemeral messages): wait done(prev), deliver,
//     open all three gates.
//   - exclusive: wait done(prev), run, open all three gates; later tickets queue nothing
//     while it runs.

// closedGate is a gate that is already open.
var closedGate = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// seqShards is the number of shards of the ticket table.
const seqShards = 64

// chanSeq is one channel's chain: the gates of its last ticket. It exists while the
// channel has tickets outstanding.
type chanSeq struct {
	refs                  int // guarded by the shard's lock
	mu                    sync.Mutex
	sub, stored, finished chan struct{}
}

type seqShard struct {
	mu    sync.Mutex
	chans map[string]*chanSeq
}

// sequencer holds the chains of one app's channels.
type sequencer struct {
	seed   maphash.Seed
	shards [seqShards]seqShard
}

func (s *sequencer) init(seed maphash.Seed) {
	s.seed = seed
	for i := range s.shards {
		s.shards[i].chans = map[string]*chanSeq{}
	}
}

// ticket is one operation's place in its channel's chain.
type ticket struct {
	seq                               *sequencer
	channel                           string
	cs                                *chanSeq
	prevSub, prevStored, prevFinished chan struct{}
	sub, stored, finished             chan struct{}
	subOpen, storedOpen               bool // gates closed (by the ticket's owner only)
}

// ticketKind says which gates a ticket opens on its own.
type ticketKind int

const (
	ticketAppend    ticketKind = iota // an append: the three gates open separately
	ticketExclusive                   // no append, or an exclusive operation: all at done
)

// take puts a new ticket at the end of channel's chain.
func (s *sequencer) take(channel string, kind ticketKind) *ticket {
	sh := &s.shards[maphash.String(s.seed, channel)%seqShards]
	sh.mu.Lock()
	cs := sh.chans[channel]
	if cs == nil {
		cs = &chanSeq{sub: closedGate, stored: closedGate, finished: closedGate}
		sh.chans[channel] = cs
	}
	cs.refs++
	sh.mu.Unlock()

	t := &ticket{seq: s, channel: channel, cs: cs}
	t.finished = make(chan struct{})
	if kind == ticketAppend {
		t.sub, t.stored = make(chan struct{}), make(chan struct{})
	} else {
		t.sub, t.stored = t.finished, t.finished
	}
	cs.mu.Lock()
	t.prevSub, t.prevStored, t.prevFinished = cs.sub, cs.stored, cs.finished
	cs.sub, cs.stored, cs.finished = t.sub, t.stored, t.finished
	cs.mu.Unlock()
	return t
}

// submitted opens the ticket's submitted gate; the caller has waited for prevSub. Again is
// a no-op.
func (t *ticket) submitted() {
	if t.sub != t.finished && !t.subOpen {
		close(t.sub)
		t.subOpen = true
	}
}

// storedNow opens the stored gate, once the predecessor's is open; again is a no-op.
func (t *ticket) storedNow() {
	if t.stored != t.finished && !t.storedOpen {
		<-t.prevStored
		close(t.stored)
		t.storedOpen = true
	}
}

// turn waits until every earlier ticket of the channel is done.
func (t *ticket) turn() { <-t.prevFinished }

// done opens every gate still closed (in chain order) and leaves the chain. Every ticket
// calls it exactly once, after turn.
func (t *ticket) done() {
	if t.sub != t.finished {
		if !t.subOpen {
			<-t.prevSub
			t.submitted()
		}
		t.storedNow()
	}
	close(t.finished)
	sh := &t.seq.shards[maphash.String(t.seq.seed, t.channel)%seqShards]
	sh.mu.Lock()
	if t.cs.refs--; t.cs.refs == 0 {
		delete(sh.chans, t.channel)
	}
	sh.mu.Unlock()
}

// exclusive waits until the channel is quiet on this node — every earlier operation done —
// and returns the function that lets the next ones go. Nothing later is stored or delivered
// before it is called.
func (a *appState) exclusive(channel string) func() {
	t := a.seq.take(channel, ticketExclusive)
	t.turn()
	return t.done
}
