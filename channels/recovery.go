package channels

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Recovery limits (ws-protocol §3.4, §3.5).
const (
	// HotReplaySize is how many recent messages per channel the hot replay buffer keeps.
	HotReplaySize = 100
	// HotReplayTTL is how long a message stays in the hot replay buffer.
	HotReplayTTL = 120 * time.Second
	// MaxResumeReplay caps the messages one resume replays per channel (a larger gap fails
	// with position_expired and the client rebuilds from history).
	MaxResumeReplay = 1000
	// MaxRewind caps a subscribe-time rewind.
	MaxRewind = MaxHistoryPage
)

// recovery is an app's resume state: the hot replay buffers and the channels whose history
// has a hole (an append failed, the message went out live without being stored).
type recovery struct {
	mu       sync.Mutex
	hot      map[string]*hotRing
	degraded map[string]degradedMark // channel → positions at or below its serial cannot be resumed
	sweepAt  time.Time
	// degradedSweepAt is when markDegraded next drops marks older than the history retention.
	degradedSweepAt time.Time
}

// degradedMark is a channel's hole: positions at or below serial cannot be proven complete.
// It is kept as long as the store may keep messages of that time (Options.HistoryMaxAge):
// after that every position it covers is past retention anyway, and the mark is dropped.
type degradedMark struct {
	serial uint64
	at     time.Time
}

// hotRing holds a channel's recent stored messages in serial order.
type hotRing struct {
	streamID string
	msgs     []*protocol.Message
}

func (r *recovery) init() {
	r.hot = map[string]*hotRing{}
	r.degraded = map[string]degradedMark{}
}

// remember adds a stored message to its channel's hot buffer, in serial order: callers hold
// the channel's sequencer turn.
func (a *appState) remember(m *protocol.Message, now time.Time) {
	r := &a.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.hot[m.Channel]
	if ring == nil || ring.streamID != m.StreamID || (len(ring.msgs) > 0 && ring.msgs[len(ring.msgs)-1].Serial+1 != m.Serial) {
		ring = &hotRing{streamID: m.StreamID}
		r.hot[m.Channel] = ring
	}
	if len(ring.msgs) == HotReplaySize {
		copy(ring.msgs, ring.msgs[1:])
		ring.msgs = ring.msgs[:HotReplaySize-1]
	}
	ring.msgs = append(ring.msgs, m)
	if now.After(r.sweepAt) {
		r.sweepAt = now.Add(HotReplayTTL)
		cutoff := now.Add(-HotReplayTTL).UnixMilli()
		for ch, g := range r.hot {
			if len(g.msgs) == 0 || g.msgs[len(g.msgs)-1].PublishedAtMs < cutoff {
				delete(r.hot, ch)
			}
		}
	}
}

// markDegraded records that a message of channel went out without being stored: no resume
// from a position before it can be proven complete.
func (a *appState) markDegraded(channel string) {
	r := &a.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	mark := ^uint64(0) >> 1 // unknown: every earlier position
	if ring := r.hot[channel]; ring != nil && len(ring.msgs) > 0 {
		mark = ring.msgs[len(ring.msgs)-1].Serial
	}
	now := a.hub.now()
	if old, ok := r.degraded[channel]; !ok || mark > old.serial {
		r.degraded[channel] = degradedMark{serial: mark, at: now}
	} else {
		r.degraded[channel] = degradedMark{serial: old.serial, at: now}
	}
	if maxAge := a.hub.historyMaxAge; maxAge > 0 && now.After(r.degradedSweepAt) {
		r.degradedSweepAt = now.Add(maxAge / 10)
		for ch, m := range r.degraded {
			if now.Sub(m.at) > maxAge {
				delete(r.degraded, ch)
			}
		}
	}
}

// degradedAt returns the channel's hole mark, if it has one within the history retention.
func (a *appState) degradedAt(channel string) (uint64, bool) {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	m, ok := a.rec.degraded[channel]
	if ok && a.hub.historyMaxAge > 0 && a.hub.now().Sub(m.at) > a.hub.historyMaxAge {
		delete(a.rec.degraded, channel)
		return 0, false
	}
	return m.serial, ok
}

// hotReplay returns the messages after serial from the hot buffer, when it holds all of them
// up to head in stream streamID.
func (a *appState) hotReplay(channel, streamID string, serial, head uint64, now time.Time) ([]*protocol.Message, bool) {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	ring := a.rec.hot[channel]
	if ring == nil || ring.streamID != streamID || len(ring.msgs) == 0 || ring.msgs[len(ring.msgs)-1].Serial != head {
		return nil, false
	}
	first := ring.msgs[0].Serial
	if serial+1 < first {
		return nil, false
	}
	out := append([]*protocol.Message(nil), ring.msgs[serial+1-first:]...)
	cutoff := now.Add(-HotReplayTTL).UnixMilli()
	for _, m := range out {
		if m.PublishedAtMs < cutoff {
			return nil, false
		}
	}
	return out, true
}

// historyPosition is what a V2 subscription to a history channel learns at attach time.
type historyPosition struct {
	state protocol.StreamState
	ok    bool // the store answered
}

// attachData adds attach_serial to an ack payload ("{}" or the presence object).
func attachData(data []byte, serial uint64) []byte {
	out := make([]byte, 0, len(data)+24)
	out = append(out, data[:len(data)-1]...)
	if len(data) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"attach_serial":`...)
	out = strconv.AppendUint(out, serial, 10)
	return append(out, '}')
}

// rewind sends the channel's recent history up to st's head after the ack, oldest first and
// filtered like live delivery, then rewind_complete, then the frames q queued meanwhile
// (replay.go); then runs after the rewind's frames, before the live ones. The caller put q
// on the subscription under the channel's sequencer turn and released the turn: the store
// is read with nothing held that a publish needs, and no live message can interleave: no
// gap, no duplicate, live_count 0.
func (c *Conn) rewind(name string, spec *RewindSpec, filter MessageFilter, st protocol.StreamState, q *replayQueue, s *subscription, then func()) {
	defer s.endReplay(q)
	items, byLimit, byRetention, err := c.readRewind(name, spec, st)
	q.finish(st.HeadSerial, s.delta, func() {
		if err != nil {
			c.sub.Send(rewindFailed)
			then()
			return
		}
		sent := 0
		for i := range items {
			m := &items[i]
			if !passes(filter, m) {
				continue
			}
			c.sub.Send(m.AppendV2(make([]byte, 0, m.Size())))
			sent++
		}
		c.sub.Send(protocol.RewindComplete(protocol.V2, name, sent, 0, !byLimit && !byRetention, byRetention, byLimit))
		then()
	})
}

// rewindFailed is the error frame of a rewind the store could not answer.
var rewindFailed = protocol.ErrorFrame(protocol.V2, &protocol.Error{Code: protocol.CodeChannelError, Message: "Rewind failed: history unavailable"})

// rewindOverflow is the error frame of a rewind whose live frames overflowed their queue
// while the store was read (replay.go).
var rewindOverflow = protocol.ErrorFrame(protocol.V2, &protocol.Error{Code: protocol.CodeChannelError, Message: "Rewind failed: too many live messages arrived while history was read"})

// readRewind reads what a rewind replays: the messages of st's stream up to its head, in
// serial order. It holds nothing.
func (c *Conn) readRewind(name string, spec *RewindSpec, st protocol.StreamState) (items []protocol.Message, byLimit, byRetention bool, err error) {
	app := c.app
	if st.HeadSerial == 0 {
		return nil, false, false, nil // nothing stored yet (EndSerial 0 would mean no bound)
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	if spec.Count > 0 {
		n := min(spec.Count, MaxRewind)
		byLimit = spec.Count > MaxRewind
		page, err := app.hub.history.Read(ctx, app.cfg.ID, name, protocol.HistoryQuery{Direction: protocol.NewestFirst, Limit: n, EndSerial: st.HeadSerial, MessagesOnly: true})
		if err != nil {
			return nil, false, false, err
		}
		items = page.Items
		for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
			items[i], items[j] = items[j], items[i]
		}
		byLimit = byLimit || (page.HasMore && spec.Count > n)
		byRetention = len(items) < spec.Count && st.HeadSerial > uint64(len(items)) && !byLimit
	} else {
		since := app.hub.now().Add(-time.Duration(spec.Seconds) * time.Second).UnixMilli()
		page, err := app.hub.history.Read(ctx, app.cfg.ID, name, protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: MaxRewind, StartMs: since, EndSerial: st.HeadSerial, MessagesOnly: true})
		if err != nil {
			return nil, false, false, err
		}
		items, byLimit = page.Items, page.HasMore
		byRetention = st.OldestMs > since && st.OldestSerial > 1
	}
	// A reset of the stream while it was read: keep only messages of the stream acknowledged.
	items = slices.DeleteFunc(items, func(m protocol.Message) bool { return m.StreamID != "" && m.StreamID != st.StreamID })
	if err := app.latestOf(ctx, name, items); err != nil {
		return nil, false, false, err
	}
	return items, byLimit, byRetention, nil
}

// ChannelHistory answers sockudo:channel_history for a subscribed V2 connection.
func (c *Conn) ChannelHistory(data json.RawMessage, frameChannel string) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "channel_history needs a protocol 2 connection"}
	}
	req, name, perr := protocol.ParseHistoryFrame(data, frameChannel)
	if perr != nil {
		return perr
	}
	if !c.channels.has(name) {
		return protocol.Errorf(protocol.CodeChannelError, "channel_history: not subscribed to %s", protocol.Truncate(name, 200))
	}
	if err := c.allow(protocol.OpHistory, name); err != nil {
		return err
	}
	var attach *uint64
	if a, ok := c.attach[name]; ok {
		attach = &a
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	frame, herr := c.app.historyFrame(ctx, name, req, attach)
	if herr != nil {
		return &protocol.Error{Code: herr.Code, Message: "channel_history: " + herr.Message}
	}
	c.sub.Send(frame)
	return nil
}

// resumeFailure is one channel a resume could not recover.
type resumeFailure struct {
	Channel         string  `json:"channel,omitempty"`
	Code            string  `json:"code"`
	Reason          string  `json:"reason"`
	ExpectedStream  *string `json:"expected_stream_id"`
	CurrentStream   *string `json:"current_stream_id"`
	OldestAvailable *uint64 `json:"oldest_available_serial"`
	NewestAvailable *uint64 `json:"newest_available_serial"`
}

type resumeRecovered struct {
	Channel  string            `json:"channel"`
	Source   string            `json:"source"`
	Replayed int               `json:"replayed"`
	Position protocol.Position `json:"position"`
}

// Resume handles sockudo:resume {"channel_positions":{ch:{stream_id,serial,last_message_id}}}
// (or the legacy {"channel_serials":{ch:serial}}): for each subscribed channel it replays
// what the connection missed from the hot buffer or the store — the normal V2 frames,
// filtered like live delivery — or answers resume_failed with the reason, then one
// resume_success. Live messages of a channel wait while it replays, so order holds. The
// positions of channels not subscribed yet wait for their subscribes (pending.go).
func (c *Conn) Resume(data json.RawMessage) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: "Connection recovery needs a protocol 2 connection"}
	}
	app := c.app
	if app.hub.history == nil {
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: "Connection recovery is not enabled"}
	}
	var w struct {
		Positions map[string]protocol.Position `json:"channel_positions"`
		Serials   map[string]uint64            `json:"channel_serials"`
	}
	if err := protocol.DecodeData(data, &w); err != nil {
		return protocol.Errorf(protocol.CodeGeneric, "Invalid resume data: %v", err)
	}
	legacy := map[string]bool{}
	if w.Positions == nil {
		w.Positions = map[string]protocol.Position{}
	}
	for ch, s := range w.Serials {
		if _, ok := w.Positions[ch]; !ok {
			w.Positions[ch] = protocol.Position{Serial: s}
			legacy[ch] = true
		}
	}
	if len(w.Positions) == 0 {
		return &protocol.Error{Code: 4302, Message: "resume needs channel_positions"}
	}
	if len(w.Positions) > MaxResumeChannels {
		return protocol.Errorf(protocol.CodeGeneric, "resume has more than %d channels", MaxResumeChannels)
	}
	names := make([]string, 0, len(w.Positions))
	for ch := range w.Positions {
		names = append(names, ch)
	}
	sort.Strings(names)
	// Each subscribed channel is planned under its sequencer turn, which is released before
	// its store read; its live frames wait in a replay queue (replay.go) until the
	// resume_success is out, since both clients overwrite a channel's position with the one
	// resume_success reports. Every other frame keeps the channels' name order.
	out := resumeOutcome{Recovered: []resumeRecovered{}, Failed: []resumeFailure{}}
	pending := 0
	var jobs []*resumeJob
	defer func() {
		for _, j := range jobs {
			j.release()
		}
	}()
	for _, ch := range names {
		if !c.paceResume() {
			return nil // the connection is going away (pace.go)
		}
		var rec *resumeRecovered
		var fail *resumeFailure
		switch {
		case !app.cfg.HistoryFor(ch):
			fail = resumeFail(w.Positions[ch], "position_expired", "hot_replay_expired_and_durable_history_disabled", nil)
		case !c.channels.has(ch) && c.coveredByWildcard(ch):
			// Delivered through a wildcard subscription: no exact subscribe will come.
			fail = resumeFail(w.Positions[ch], "continuity_unverifiable", "channel_not_subscribed", nil)
		case !c.channels.has(ch):
			// Not subscribed yet: the subscribe usually follows (pending.go).
			if fail = c.addPending(ch, w.Positions[ch], legacy[ch]); fail == nil {
				pending++
				continue
			}
		default:
			var j *resumeJob
			if j, fail = c.startResume(ch, w.Positions[ch], legacy[ch]); j != nil {
				jobs = append(jobs, j)
				if rec, fail = j.run(); fail != nil {
					out.Failed = append(out.Failed, *fail) // sent by run
					continue
				}
			}
		}
		if fail != nil {
			c.sendResumeFailed(ch, fail)
			out.Failed = append(out.Failed, *fail)
			continue
		}
		out.Recovered = append(out.Recovered, *rec)
	}
	if pending > 0 && len(out.Recovered)+len(out.Failed) == 0 {
		return nil // every channel is reported when its subscribe comes, or its window ends
	}
	for _, j := range jobs {
		if j.rec != nil && j.q.overflowed() {
			// Its live frames overflowed their queue after the replay: resume_failed went
			// out then, and the channel is reported failed.
			out.Recovered = slices.DeleteFunc(out.Recovered, func(r resumeRecovered) bool { return r.Channel == j.ch })
			out.Failed = append(out.Failed, *j.overflowed())
		}
	}
	b, _ := json.Marshal(out)
	c.sub.Send(protocol.ResumeSuccess(protocol.V2, b))
	return nil
}

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// resumeFail builds a resume failure of a requested position; st, when known, adds the
// channel's current stream and retained range.
func resumeFail(pos protocol.Position, code, reason string, st *protocol.StreamState) *resumeFailure {
	f := &resumeFailure{Code: code, Reason: reason, ExpectedStream: strp(pos.StreamID)}
	if st != nil {
		f.CurrentStream = strp(st.StreamID)
		if st.Retained > 0 {
			f.OldestAvailable, f.NewestAvailable = &st.OldestSerial, &st.NewestSerial
		}
	}
	return f
}

// resumeJob is the resume of one channel the connection is subscribed to.
type resumeJob struct {
	c      *Conn
	ch     string
	plan   *replayPlan
	q      *replayQueue
	sub    *subscription
	filter MessageFilter
	held   bool // the subscription's resume hold was on: the whole gap is replayed
	rec    *resumeRecovered
}

// overflowed is the job's failure when its live frames overflowed their queue, built only
// then (a resume of many channels would otherwise build one per channel for nothing).
func (j *resumeJob) overflowed() *resumeFailure {
	f := resumeFail(j.plan.req, "persistence_unavailable", "failed_to_deliver_recovery_payload", &j.plan.st)
	f.Channel = j.ch
	return f
}

// startResume plans the resume of a subscribed channel: under the channel's sequencer turn
// it reads the stream state, ends the subscription's resume hold and starts queueing its
// live frames (replay.go). It returns the job, or why the channel cannot be resumed.
func (c *Conn) startResume(ch string, pos protocol.Position, legacy bool) (*resumeJob, *resumeFailure) {
	app := c.app
	s, subscribed := c.subscription(ch)
	if !subscribed {
		return nil, resumeFail(pos, "continuity_unverifiable", "channel_not_subscribed", nil)
	}
	st, unlock, err := app.lockedState(ch)
	defer unlock()
	if err != nil {
		return nil, resumeFail(pos, "persistence_unavailable", "history_store_error", nil)
	}
	plan, fail := c.planReplay(ch, pos, legacy, st)
	if fail != nil {
		return nil, fail
	}
	j := &resumeJob{c: c, ch: ch, plan: plan, filter: s.filter}
	// Messages after the attach serial were delivered live unless the subscription is still
	// held; a held subscription gets the whole gap now and its held frames are dropped.
	j.held = s.hold != nil && s.hold.release(st.HeadSerial)
	if j.held && s.delta != nil {
		// The held frames (full ones, see deltaFanout.frameFor) the replay supersedes were
		// dropped: the client's base is not the server's, so start again from a full frame.
		// The channel's sequencer turn is held: no fan-out of it runs meanwhile.
		s.delta.reset()
	}
	if j.q, j.sub = c.startReplay(ch, func() { c.sendResumeFailed(ch, j.overflowed()) }); j.q == nil {
		return nil, resumeFail(pos, "continuity_unverifiable", "channel_not_subscribed", nil)
	}
	return j, nil
}

// run reads the job's replay from the store, holding nothing, and sends it — or the
// channel's resume_failed — before any queued live frame. A failure it returns was sent.
func (j *resumeJob) run() (*resumeRecovered, *resumeFailure) {
	c := j.c
	fail := c.loadReplay(j.plan)
	attach, attached := c.attach[j.ch]
	if !j.q.deliver(j.plan.st.HeadSerial, func() {
		if fail != nil {
			c.sendResumeFailed(j.ch, fail)
			return
		}
		j.rec = c.sendReplay(j.plan, j.filter, func(m *protocol.Message) bool { return !j.held && attached && m.Serial > attach })
	}) {
		return nil, j.overflowed() // its resume_failed went out when the queue overflowed
	}
	return j.rec, fail
}

// release sends the frames the job's queue held and lets the channel's live frames through.
func (j *resumeJob) release() {
	j.q.release(j.sub.delta)
	j.sub.endReplay(j.q)
}

// replayPlan is what a resume of one channel replays: the messages after the requested
// position up to the stream's head as read under the channel's sequencer turn.
type replayPlan struct {
	channel string
	source  string
	start   protocol.Position // the requested position, on the current stream
	msgs    []*protocol.Message
	fulls   map[int][]byte // append_mode=full: the accumulated data of appends, by index
	// cold: msgs are still to be read from the store (loadReplay), from start.Serial+1 to
	// st.HeadSerial.
	cold bool
	req  protocol.Position // the position as requested, for failures
	st   protocol.StreamState
}

// planReplay checks resuming channel ch from pos against the stream state st read under
// the channel's sequencer turn, which the caller holds, and takes the messages from the hot
// buffer when it holds them all (no I/O). A cold plan is read by loadReplay, without the turn.
func (c *Conn) planReplay(ch string, pos protocol.Position, legacy bool, st protocol.StreamState) (*replayPlan, *resumeFailure) {
	app := c.app
	req := pos
	if mark, ok := app.degradedAt(ch); ok && pos.Serial <= mark {
		return nil, resumeFail(pos, "persistence_unavailable", "history_stream_degraded", &st)
	}
	if legacy {
		pos.StreamID = st.StreamID
	}
	switch {
	case pos.StreamID != st.StreamID:
		return nil, resumeFail(pos, "stream_reset", "stream_id_mismatch", &st)
	case pos.Serial > st.HeadSerial:
		return nil, resumeFail(pos, "continuity_unverifiable", "position_ahead_of_stream", &st)
	case st.HeadSerial-pos.Serial > MaxResumeReplay:
		return nil, resumeFail(pos, "position_expired", "recovery_window_exceeded", &st)
	}
	plan := &replayPlan{channel: ch, source: "hot", req: req, st: st,
		start: protocol.Position{StreamID: st.StreamID, Serial: pos.Serial, LastMessageID: pos.LastMessageID}}
	if pos.Serial < st.HeadSerial {
		var ok bool
		plan.msgs, ok = app.hotReplay(ch, st.StreamID, pos.Serial, st.HeadSerial, app.hub.now())
		if !ok {
			if legacy {
				return nil, resumeFail(pos, "continuity_unverifiable", "legacy_serial_without_stream_id", &st)
			}
			if st.Retained == 0 || st.OldestSerial > pos.Serial+1 {
				return nil, resumeFail(pos, "position_expired", "retention_boundary_crossed_during_reconnect", &st)
			}
			plan.source, plan.cold = "cold", true
		}
	}
	return plan, nil
}

// loadReplay reads from the store what plan p still needs: its cold messages, and the
// accumulated data of appends for an append_mode=full connection. It holds nothing: the
// serials it reads, up to the head of the plan's state, are stored already.
func (c *Conn) loadReplay(p *replayPlan) *resumeFailure {
	app := c.app
	if !p.cold && !c.appendFull {
		return nil // a hot plan: nothing to read
	}
	fail := func(code, reason string) *resumeFailure { return resumeFail(p.req, code, reason, &p.st) }
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	if p.cold {
		head := p.st.HeadSerial
		next := p.start.Serial + 1
		for next <= head {
			page, err := app.hub.history.Read(ctx, app.cfg.ID, p.channel, protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 1000, StartSerial: next, EndSerial: head})
			if err != nil {
				return fail("persistence_unavailable", "history_store_error")
			}
			if len(page.Items) == 0 {
				break
			}
			for i := range page.Items {
				m := &page.Items[i]
				if m.Serial != next || m.StreamID != "" && m.StreamID != p.st.StreamID {
					return fail("continuity_unverifiable", "history_not_contiguous")
				}
				p.msgs = append(p.msgs, m)
				next++
			}
		}
		if next != head+1 {
			return fail("continuity_unverifiable", "history_head_unavailable")
		}
	}
	if c.appendFull {
		var err error
		if p.fulls, err = app.appendFulls(ctx, p.channel, p.msgs); err != nil {
			return fail("persistence_unavailable", "history_store_error")
		}
	}
	return nil
}

// sendReplay sends a plan's messages that pass filter, in serial order, skipping those
// delivered reports were already delivered live; it returns the channel's recovered entry
// with the terminal position (also when the filter suppressed the tail).
func (c *Conn) sendReplay(p *replayPlan, filter MessageFilter, delivered func(*protocol.Message) bool) *resumeRecovered {
	rec := &resumeRecovered{Channel: p.channel, Source: p.source, Position: p.start}
	for i, m := range p.msgs {
		rec.Position.Serial, rec.Position.LastMessageID = m.Serial, m.MessageID
		if delivered != nil && delivered(m) {
			continue
		}
		if !passes(filter, m) {
			continue
		}
		if full, ok := p.fulls[i]; ok {
			f := *m
			mu := *m.Mutable
			mu.Full, f.Mutable = full, &mu
			c.sub.Send(f.AppendV2Full(make([]byte, 0, f.Size()+len(full))))
		} else {
			c.sub.Send(m.AppendV2(make([]byte, 0, m.Size())))
		}
		rec.Replayed++
	}
	return rec
}

// subscription returns the connection's subscription of a channel.
func (c *Conn) subscription(name string) (subscription, bool) {
	if !c.channels.has(name) {
		return subscription{}, false
	}
	ch := c.app.lookup(name)
	if ch == nil {
		return subscription{}, false
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	s, ok := ch.subs[c]
	if !ok {
		return subscription{}, false
	}
	return subscription{userID: s.userID, filter: s.filter, hold: s.hold, delta: s.delta}, true
}
