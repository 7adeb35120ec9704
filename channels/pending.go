package channels

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Resume before subscribe.
//
// sockudo_flutter (every channel: its subscribes await authorization) and sockudo-js
// (private and presence channels) send sockudo:resume as soon as connection_established
// arrives, so the resume usually reaches the server BEFORE the subscribes it is about. The
// positions of channels the connection has not subscribed yet are kept pending, per
// connection, for ResumeWindow; when the subscribe for such a channel succeeds, the gap is
// replayed inside it (read without the channel's sequencer turn while the subscription's live
// frames wait in a replay queue, replay.go, so no live message can come between):
//
//	replayed messages (serial order, filtered like live delivery)
//	sockudo_internal:subscription_succeeded   (carries the head = the last replayed serial)
//	sockudo:resume_failed                      (only when the replay is impossible)
//	sockudo:resume_success {"recovered":[ch]}  or {"failed":[ch]}
//	live messages
//
// The replay goes before the acknowledgement because both clients overwrite a channel's
// stored position with every frame carrying a serial, the ack included: a socket cut between
// an earlier ack (at the head) and the replay would make the client's next resume skip the
// gap. Failures go after the ack, so the clients' reaction to resume_failed (re-subscribe)
// finds the channel subscribed and does nothing.
//
// A pending channel not subscribed within the window gets resume_failed
// {continuity_unverifiable, channel_not_subscribed}, then one resume_success listing every
// channel that expired at that moment as failed. So every channel a resume names is
// reported in exactly one resume_success: the one answering the resume frame (channels
// subscribed already, or failing at once), or the one sent when it resolves later. A
// resume whose channels are all pending gets no immediate resume_success.
//
// A channel the connection receives through one of its wildcard subscriptions (sockudo-js
// keeps positions under the real channel name) fails at once, as before: no exact
// subscribe will come for it.
//
// A subscribe with a rewind asks for the last messages instead: its pending position is
// answered after the rewind with resume_failed {continuity_unverifiable,
// subscribed_with_rewind} (replaying both would send messages twice).
//
// A later resume naming a pending channel replaces its position and restarts its window
// (the client sends its newest positions); pending channels it does not name keep theirs.
// At most MaxResumeChannels channels are pending per connection (past it a channel fails
// at once with reason pending_resume_limit); positions are bounded (stream and message ids
// of at most maxPositionID bytes, valid channel names), so one connection pins at most
// about half a megabyte, for at most the window. Disconnect frees everything.

// DefaultResumeWindow is how long resume positions of channels not subscribed yet are kept
// when Options.ResumeWindow is zero: the time a client may take to authorize its
// subscribes after reconnecting.
const DefaultResumeWindow = 30 * time.Second

// MaxResumeChannels caps the channels of one resume frame, and the channels pending on one
// connection.
const MaxResumeChannels = 1000

// maxPositionID caps the stream_id and last_message_id of a pending position (ours are
// 36-byte UUIDs).
const maxPositionID = 128

// pendingResume is a connection's resume positions waiting for their subscribes.
type pendingResume struct {
	mu      sync.Mutex
	entries map[string]pendingPos
	timer   Timer
	timerAt time.Time
	closed  bool
}

type pendingPos struct {
	pos      protocol.Position
	legacy   bool
	deadline time.Time
}

// coveredByWildcard reports whether one of the connection's wildcard subscriptions
// matches ch (sockudo-js then tracks positions under ch itself). Reader goroutine only.
func (c *Conn) coveredByWildcard(ch string) bool {
	if c.wildcards == 0 {
		return false
	}
	for _, pat := range c.app.wild.match(ch, nil) {
		if c.channels.has(pat) {
			return true
		}
	}
	return false
}

// addPending keeps ch's position until the connection subscribes to it. It returns a
// failure when the channel cannot be kept (limit, malformed position).
func (c *Conn) addPending(ch string, pos protocol.Position, legacy bool) *resumeFailure {
	if len(pos.StreamID) > maxPositionID || len(pos.LastMessageID) > maxPositionID {
		return resumeFail(protocol.Position{}, "continuity_unverifiable", "invalid_position", nil)
	}
	if protocol.ValidateChannelName(ch, c.app.cfg.MaxChannelNameLength) != nil {
		return resumeFail(pos, "continuity_unverifiable", "channel_not_subscribed", nil)
	}
	p := &c.pending
	now := c.app.hub.now()
	deadline := now.Add(c.app.hub.resumeWindow)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return resumeFail(pos, "continuity_unverifiable", "channel_not_subscribed", nil)
	}
	if p.entries == nil {
		p.entries = map[string]pendingPos{}
	}
	if _, ok := p.entries[ch]; !ok && len(p.entries) >= MaxResumeChannels {
		return resumeFail(pos, "continuity_unverifiable", "pending_resume_limit", nil)
	}
	p.entries[ch] = pendingPos{pos: pos, legacy: legacy, deadline: deadline}
	c.armPendingLocked(now)
	return nil
}

// armPendingLocked makes sure a timer fires by the earliest pending deadline. p.mu held.
func (c *Conn) armPendingLocked(now time.Time) {
	p := &c.pending
	if len(p.entries) == 0 {
		if p.timer != nil {
			p.timer.Stop()
			p.timer = nil
		}
		return
	}
	var first time.Time
	for _, e := range p.entries {
		if first.IsZero() || e.deadline.Before(first) {
			first = e.deadline
		}
	}
	if p.timer != nil && !p.timerAt.After(first) {
		return // an earlier or equal call is already on its way
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timerAt = first
	p.timer = c.app.hub.afterFunc(max(first.Sub(now), 0), c.expirePending)
}

// takePending removes and returns ch's pending position.
func (c *Conn) takePending(ch string) (pendingPos, bool) {
	p := &c.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[ch]
	if ok {
		delete(p.entries, ch)
		if len(p.entries) == 0 && p.timer != nil {
			p.timer.Stop()
			p.timer = nil
		}
	}
	return e, ok
}

// restorePending puts back a position taken by a subscribe that then failed.
func (c *Conn) restorePending(ch string, e pendingPos) {
	p := &c.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if _, newer := p.entries[ch]; newer {
		return
	}
	if p.entries == nil {
		p.entries = map[string]pendingPos{}
	}
	p.entries[ch] = e
	c.armPendingLocked(c.app.hub.now())
}

// PendingResumes returns how many channels have resume positions waiting for their
// subscribes on this connection.
func (c *Conn) PendingResumes() int {
	c.pending.mu.Lock()
	defer c.pending.mu.Unlock()
	return len(c.pending.entries)
}

// expirePending runs on the hub's timer: channels whose window ended get resume_failed,
// then one resume_success lists them.
func (c *Conn) expirePending() {
	p := &c.pending
	now := c.app.hub.now()
	p.mu.Lock()
	p.timer = nil
	if p.closed {
		p.mu.Unlock()
		return
	}
	var expired []string
	gone := map[string]pendingPos{}
	for ch, e := range p.entries {
		if !e.deadline.After(now) {
			expired = append(expired, ch)
			gone[ch] = e
			delete(p.entries, ch)
		}
	}
	c.armPendingLocked(now)
	// Sent under p.mu so a resume_success of a later expiry cannot overtake these; Send
	// only queues.
	if len(expired) > 0 {
		sort.Strings(expired)
		failed := make([]resumeFailure, 0, len(expired))
		for _, ch := range expired {
			f := resumeFail(gone[ch].pos, "continuity_unverifiable", "channel_not_subscribed", nil)
			f.Channel = ch
			b, _ := json.Marshal(f)
			c.sub.Send(protocol.ResumeFailed(protocol.V2, ch, b))
			failed = append(failed, *f)
		}
		b, _ := json.Marshal(resumeOutcome{Recovered: []resumeRecovered{}, Failed: failed})
		c.sub.Send(protocol.ResumeSuccess(protocol.V2, b))
	}
	p.mu.Unlock()
}

// dropPending frees the pending positions (the connection ended).
func (c *Conn) dropPending() {
	p := &c.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.entries = nil
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// resumeOutcome is the data of sockudo:resume_success.
type resumeOutcome struct {
	Recovered []resumeRecovered `json:"recovered"`
	Failed    []resumeFailure   `json:"failed"`
}

// sendResumeFailed sends resume_failed for one channel; the channel is named at frame level
// (as Sockudo does) and inside data, where sockudo-js and sockudo_flutter read it to drop
// the stored position and re-subscribe.
func (c *Conn) sendResumeFailed(ch string, f *resumeFailure) {
	f.Channel = ch
	b, _ := json.Marshal(f)
	c.sub.Send(protocol.ResumeFailed(protocol.V2, ch, b))
}

// failPending answers a pending position that will not be replayed: resume_failed
// {continuity_unverifiable, reason}, then a resume_success listing it.
func (c *Conn) failPending(ch string, e pendingPos, reason string) {
	f := resumeFail(e.pos, "continuity_unverifiable", reason, nil)
	c.sendResumeFailed(ch, f)
	b, _ := json.Marshal(resumeOutcome{Recovered: []resumeRecovered{}, Failed: []resumeFailure{*f}})
	c.sub.Send(protocol.ResumeSuccess(protocol.V2, b))
}

// pendingReplay is a pending resume completed by a subscribe: planned under the channel's
// sequencer turn (resumeOnSubscribe), read and sent after it (completePending).
type pendingReplay struct {
	e    pendingPos
	st   *protocol.StreamState // nil when the store could not tell
	plan *replayPlan
	fail *resumeFailure
	// ack is the subscription's acknowledgement and rest the frames that follow it (the
	// delta announcement, the cached event), set under the channel's lock.
	ack  []byte
	rest [][]byte
}

// resumeOnSubscribe takes ch's pending position for its subscribe and plans the replay: st
// is the stream state read under the channel's sequencer turn, which the caller still holds.
// ok is false when ch had no pending position; undo puts it back.
func (c *Conn) resumeOnSubscribe(ch string, st *protocol.StreamState) (pr *pendingReplay, undo func(), ok bool) {
	e, ok := c.takePending(ch)
	if !ok {
		return nil, nil, false
	}
	pr = &pendingReplay{e: e, st: st}
	if st == nil {
		pr.fail = resumeFail(e.pos, "persistence_unavailable", "history_store_error", nil)
	} else {
		pr.plan, pr.fail = c.planReplay(ch, e.pos, e.legacy, *st)
	}
	return pr, func() { c.restorePending(ch, e) }, true
}

// completePending runs after a subscribe that completed a pending resume released the
// channel's turn: it reads the replay, then sends — before any live frame of the channel,
// which q held meanwhile — the replay, the ack, the outcome and the frames that follow the
// ack.
func (c *Conn) completePending(ch string, pr *pendingReplay, q *replayQueue, s *subscription, filter MessageFilter) {
	defer s.endReplay(q)
	if pr.fail == nil {
		pr.fail = c.loadReplay(pr.plan)
	}
	head := uint64(0)
	if pr.st != nil {
		head = pr.st.HeadSerial
	}
	q.finish(head, s.delta, func() {
		out := resumeOutcome{Recovered: []resumeRecovered{}, Failed: []resumeFailure{}}
		if pr.fail == nil {
			out.Recovered = append(out.Recovered, *c.sendReplay(pr.plan, filter, nil))
		}
		c.sub.Send(pr.ack)
		if pr.fail != nil {
			c.sendResumeFailed(ch, pr.fail)
			out.Failed = append(out.Failed, *pr.fail)
		}
		b, _ := json.Marshal(out)
		c.sub.Send(protocol.ResumeSuccess(protocol.V2, b))
		for _, f := range pr.rest {
			c.sub.Send(f)
		}
	})
}

// pendingOverflow answers a pending resume whose subscription's live frames overflowed
// their queue while the replay was read (replay.go): the ack, the failure, the frames that
// follow the ack. Called under the queue's lock.
func (c *Conn) pendingOverflow(ch string, pr *pendingReplay) {
	c.sub.Send(pr.ack)
	f := resumeFail(pr.e.pos, "persistence_unavailable", "failed_to_deliver_recovery_payload", pr.st)
	c.sendResumeFailed(ch, f)
	b, _ := json.Marshal(resumeOutcome{Recovered: []resumeRecovered{}, Failed: []resumeFailure{*f}})
	c.sub.Send(protocol.ResumeSuccess(protocol.V2, b))
	for _, fr := range pr.rest {
		c.sub.Send(fr)
	}
}
