package channels

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"hash/maphash"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// Presence history: every membership change of a presence channel (member_added,
// member_updated, member_removed) is recorded, on the node where it happened, as an event
// with its own per-channel serial and stream id in a PresenceHistory store. The HTTP API
// reads it in pages and replays it into point-in-time member snapshots (Sockudo's shapes).
//
// Recording never holds up presence: the event is taken, in channel order, under the
// channel's lock into an in-memory lane (one of presenceLanes, chosen by channel), and the
// lane's goroutine, started when it has work and gone when it has none, appends it to the
// store outside every hub lock. A store that keeps failing after retries loses the event:
// the channel's presence stream is then reported degraded (continuity.degraded, complete
// false) until it is reset.
//
// Across nodes sharing a store, one channel's events are ordered by when they reach the
// store (its serials), which for changes made on different nodes within a few milliseconds
// (a node's first write: its connection setup) may differ from the order a watcher saw them
// live; a change reported by two nodes (a member held on both) is recorded once by the
// store; a node that crashes loses the events still queued in its lanes. A member held on
// several nodes whose connections all leave at once is recorded by the node(s) whose leave
// counted on another's hold, when the holds cross (member.leftHere).

// PresenceEventKind names a membership change.
type PresenceEventKind string

// Presence event kinds.
const (
	PresenceMemberAdded   PresenceEventKind = "member_added"
	PresenceMemberUpdated PresenceEventKind = "member_updated"
	PresenceMemberRemoved PresenceEventKind = "member_removed"
)

// PresenceCause says why a membership changed.
type PresenceCause string

// Presence causes.
const (
	// CauseJoin: the user's first connection subscribed.
	CauseJoin PresenceCause = "join"
	// CauseUpdate: a V2 presence_update replaced the member's user_info.
	CauseUpdate PresenceCause = "update"
	// CauseDisconnect: the user's last connection unsubscribed, closed or dropped.
	CauseDisconnect PresenceCause = "disconnect"
	// CauseTimeout: the last connection was closed for missing its heartbeat (pong timeout).
	CauseTimeout PresenceCause = "timeout"
	// CauseForcedDisconnect: the app closed it (terminate_connections, force_reconnect).
	CauseForcedDisconnect PresenceCause = "forced_disconnect"
	// CauseOrphanCleanup: the cluster node holding the member died (DeadNodeID).
	CauseOrphanCleanup PresenceCause = "orphan_cleanup"
)

// PresenceEvent is one membership change of a presence channel.
type PresenceEvent struct {
	Event         PresenceEventKind
	Cause         PresenceCause
	UserID        string
	ConnectionID  string          // the socket whose change it was ("" none: orphan cleanup)
	DeadNodeID    string          // the dead node of an orphan cleanup ("" otherwise)
	UserInfo      json.RawMessage // member_added and member_updated (nil otherwise)
	PublishedAtMs int64

	// Set by the store when it records the event.
	StreamID string
	Serial   uint64
	// Payload is the stored presence_event JSON (EncodePresencePayload).
	Payload json.RawMessage
}

// PresenceRetention bounds what a channel's presence stream retains: events older than
// Window, beyond the newest MaxEvents, or beyond MaxBytes of payload are dropped, oldest
// first. Zero fields are unbounded.
type PresenceRetention struct {
	Window    time.Duration
	MaxEvents int
	MaxBytes  int64
}

// PresenceRead selects one page of a channel's retained presence events. Bounds are
// inclusive; zero means open. After (with AfterStream) continues past a cursor's serial in
// the direction read.
type PresenceRead struct {
	Newest      bool // newest first (default oldest first)
	Limit       int
	StartSerial uint64
	EndSerial   uint64
	StartMs     int64
	EndMs       int64
	After       uint64 // 0 none
	Retention   PresenceRetention
}

// PresenceRetained describes a channel's presence stream and what it retains.
type PresenceRetained struct {
	StreamID     string // "" when the channel never had an event
	NextSerial   uint64
	Events       int64
	Bytes        int64
	OldestSerial uint64 // 0 when nothing is retained
	NewestSerial uint64
	OldestMs     int64
	NewestMs     int64
}

// PresencePage is one page of events, and the stream as it was read.
type PresencePage struct {
	Items    []PresenceEvent
	HasMore  bool
	Retained PresenceRetained
}

// PresenceHistory stores presence events. history.Memory and history.Postgres implement it;
// history/historytest.RunPresence is the conformance suite both pass. Methods are safe for
// concurrent use, from every node sharing the store.
type PresenceHistory interface {
	// AppendPresence records events, in order, as the next events of the channel's presence
	// stream (creating it on first use): each recorded event gets its Serial (1 for the
	// first of a stream, then +1, across every node sharing the store), StreamID and
	// Payload, and is returned. An event repeating a member's state is dropped, not
	// recorded: member_added of a user already a member, member_removed of a user who is
	// not (two nodes reporting one change). On error nothing of events was recorded.
	AppendPresence(ctx context.Context, appID, channel string, events []PresenceEvent, r PresenceRetention) ([]PresenceEvent, error)
	// ReadPresence returns one page of the channel's retained events matching q.
	ReadPresence(ctx context.Context, appID, channel string, q PresenceRead) (PresencePage, error)
	// PresenceStream reports the channel's stream and what it retains under r.
	PresenceStream(ctx context.Context, appID, channel string, r PresenceRetention) (PresenceRetained, error)
	// ResetPresence deletes every event of the channel and starts a new stream (serials from
	// 1), returning the stream before.
	ResetPresence(ctx context.Context, appID, channel string) (before PresenceRetained, after PresenceRetained, err error)
	// PresenceSource names the store in stream_state (authoritative_source).
	PresenceSource() string
}

// PresenceUpdateObserver is an optional part of an Observer: an Observer that implements it
// is told, on the node where it happened, that a member's user_info was replaced by a V2
// presence_update (the member_updated webhook).
type PresenceUpdateObserver interface {
	MemberUpdated(appID, channel, userID string, info json.RawMessage)
}

// presencePayload is the stored presence_event (Sockudo's shape).
type presencePayload struct {
	StreamID      string            `json:"stream_id"`
	Serial        uint64            `json:"serial"`
	PublishedAtMs int64             `json:"published_at_ms"`
	Event         PresenceEventKind `json:"event"`
	Cause         PresenceCause     `json:"cause"`
	UserID        string            `json:"user_id"`
	ConnectionID  *string           `json:"connection_id"`
	UserInfo      json.RawMessage   `json:"user_info"`
	DeadNodeID    *string           `json:"dead_node_id"`
}

// EncodePresencePayload returns the presence_event JSON of e (its StreamID and Serial set):
// {stream_id, serial, published_at_ms, event, cause, user_id, connection_id, user_info,
// dead_node_id}, null for what the event has not. Stores call it to fill Payload.
func EncodePresencePayload(e *PresenceEvent) json.RawMessage {
	p := presencePayload{StreamID: e.StreamID, Serial: e.Serial, PublishedAtMs: e.PublishedAtMs, Event: e.Event, Cause: e.Cause,
		UserID: e.UserID, UserInfo: e.UserInfo}
	if e.ConnectionID != "" {
		p.ConnectionID = &e.ConnectionID
	}
	if e.DeadNodeID != "" {
		p.DeadNodeID = &e.DeadNodeID
	}
	if len(p.UserInfo) == 0 || !json.Valid(p.UserInfo) {
		p.UserInfo = json.RawMessage("null")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// presenceRetention is the app's retention of presence events.
func (a *appState) presenceRetention() PresenceRetention {
	p := a.cfg.PresenceHistory
	return PresenceRetention{Window: p.RetentionWindow.D(), MaxEvents: p.MaxEventsPerChannel, MaxBytes: p.MaxBytesPerChannel}
}

// presenceOn reports whether the app records presence history (a store is configured and
// the app enables it).
func (a *appState) presenceOn() bool { return a.hub.presence != nil && a.cfg.PresenceHistory.On() }

// Leave causes kept on a Conn (leaveCause), read when its last presence membership ends.
const (
	leaveDisconnect int32 = iota
	leaveTimeout
	leaveForced
)

// MarkTimedOut records that the connection is being closed for missing its heartbeat: the
// presence members it ends leave with cause "timeout". Call it before Disconnect.
func (c *Conn) MarkTimedOut() { c.leaveCause.CompareAndSwap(leaveDisconnect, leaveTimeout) }

// markForced records that the app is closing the connection (terminate, force_reconnect).
func (c *Conn) markForced() { c.leaveCause.Store(leaveForced) }

// presenceLeaveCause is the cause of a member_removed ending with c.
func (c *Conn) presenceLeaveCause() PresenceCause {
	switch c.leaveCause.Load() {
	case leaveTimeout:
		return CauseTimeout
	case leaveForced:
		return CauseForcedDisconnect
	}
	return CauseDisconnect
}

// recordPresence queues e for the channel's presence stream when the app records presence
// history. Callers may hold ch.mu (it only queues): events of one channel are queued, and
// so stored, in the order they happened on this node.
func (a *appState) recordPresence(channel string, e PresenceEvent) {
	if !a.presenceOn() {
		return
	}
	if e.PublishedAtMs == 0 {
		e.PublishedAtMs = a.hub.now().UnixMilli()
	}
	a.hub.presenceRec.add(presenceJob{app: a, channel: channel, ev: e})
}

// presenceLanes is the number of recording lanes (goroutines at most) of a hub.
const presenceLanes = 8

// Recording retries: a failing append is retried after each of these waits, then given up.
var presenceRetryWaits = []time.Duration{50 * time.Millisecond, 250 * time.Millisecond, time.Second, 3 * time.Second}

// presenceBatch caps the events of one channel appended in one store call.
const presenceBatch = 256

// presenceQueueMax caps the events waiting in one lane (a store down for long): past it an
// event is dropped and its channel's presence stream marked degraded, rather than memory
// growing without bound.
const presenceQueueMax = 100_000

type presenceJob struct {
	app     *appState
	channel string
	ev      PresenceEvent
}

// presenceRecorder queues presence events per lane and appends them to the store.
type presenceRecorder struct {
	hub   *Hub
	seed  maphash.Seed
	lanes [presenceLanes]presenceLane

	degradedMu sync.Mutex
	degraded   map[streamRef]presenceDegraded
}

type streamRef struct{ app, channel string }

type presenceDegraded struct {
	reason string
	atMs   int64
}

type presenceLane struct {
	mu      sync.Mutex
	pending []presenceJob
	running bool
	idle    chan struct{} // closed when the lane has no work (replaced when it gets some)
}

func (r *presenceRecorder) init(h *Hub) {
	r.hub, r.seed = h, maphash.MakeSeed()
	r.degraded = map[streamRef]presenceDegraded{}
	for i := range r.lanes {
		r.lanes[i].idle = make(chan struct{})
		close(r.lanes[i].idle)
	}
}

func (r *presenceRecorder) add(j presenceJob) {
	l := &r.lanes[maphash.String(r.seed, j.app.cfg.ID+"\x00"+j.channel)%presenceLanes]
	l.mu.Lock()
	if len(l.pending) >= presenceQueueMax {
		l.mu.Unlock()
		r.markDegraded(j.app.cfg.ID, j.channel, "presence_history_queue_full")
		return
	}
	l.pending = append(l.pending, j)
	start := !l.running
	if start {
		l.running = true
		l.idle = make(chan struct{})
	}
	l.mu.Unlock()
	if start {
		go r.run(l) // owned by the lane: it ends when the lane is empty (Flush waits for it)
	}
}

// run drains the lane, then marks it idle and returns.
func (r *presenceRecorder) run(l *presenceLane) {
	for {
		l.mu.Lock()
		jobs := l.pending
		l.pending = nil
		if len(jobs) == 0 {
			l.running = false
			close(l.idle)
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		// Group by channel, keeping each channel's order; channels in a stable order.
		groups := map[streamRef][]presenceJob{}
		var order []streamRef
		for _, j := range jobs {
			k := streamRef{j.app.cfg.ID, j.channel}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], j)
		}
		for _, k := range order {
			g := groups[k]
			for len(g) > 0 {
				n := min(len(g), presenceBatch)
				r.store(g[:n])
				g = g[n:]
			}
		}
	}
}

// store appends one channel's jobs, retrying a failing store; given up, the channel's
// presence stream is marked degraded.
func (r *presenceRecorder) store(jobs []presenceJob) {
	a, channel := jobs[0].app, jobs[0].channel
	evs := make([]PresenceEvent, len(jobs))
	for i, j := range jobs {
		evs[i] = j.ev
	}
	var err error
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = r.hub.presence.AppendPresence(ctx, a.cfg.ID, channel, evs, a.presenceRetention())
		cancel()
		if err == nil || attempt >= len(presenceRetryWaits) {
			break
		}
		r.hub.log.Info("presence history append failed; retrying", zap.String("app_id", a.cfg.ID), zap.String("channel", channel),
			zap.Int("attempt", attempt+1), zap.Error(err))
		time.Sleep(presenceRetryWaits[attempt])
	}
	if err == nil {
		return
	}
	r.hub.log.Warn("presence history events lost", zap.String("app_id", a.cfg.ID), zap.String("channel", channel),
		zap.Int("events", len(evs)), zap.Error(err))
	r.markDegraded(a.cfg.ID, channel, "presence_history_write_failed")
}

// markDegraded records that an event of the channel was lost.
func (r *presenceRecorder) markDegraded(appID, channel, reason string) {
	r.degradedMu.Lock()
	r.degraded[streamRef{appID, channel}] = presenceDegraded{reason: reason, atMs: r.hub.now().UnixMilli()}
	r.degradedMu.Unlock()
}

// flush waits until every event queued before the call was handed to the store.
func (r *presenceRecorder) flush(ctx context.Context) error {
	for i := range r.lanes {
		l := &r.lanes[i]
		l.mu.Lock()
		idle := l.idle
		l.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// FlushPresenceHistory waits until every presence event queued on this node before the call
// was stored (or given up): for a graceful shutdown, and for tests that read right after a
// change.
func (h *Hub) FlushPresenceHistory(ctx context.Context) error { return h.presenceRec.flush(ctx) }

func (r *presenceRecorder) degradedOf(appID, channel string) (presenceDegraded, bool) {
	r.degradedMu.Lock()
	defer r.degradedMu.Unlock()
	d, ok := r.degraded[streamRef{appID, channel}]
	return d, ok
}

// ---- the HTTP API side ----

// PresenceHistoryItem is one event of a presence history page.
type PresenceHistoryItem struct {
	StreamID         string            `json:"stream_id"`
	Serial           uint64            `json:"serial"`
	PublishedAtMs    int64             `json:"published_at_ms"`
	Event            PresenceEventKind `json:"event"`
	Cause            PresenceCause     `json:"cause"`
	UserID           string            `json:"user_id"`
	ConnectionID     *string           `json:"connection_id"`
	DeadNodeID       *string           `json:"dead_node_id"`
	PayloadSizeBytes int               `json:"payload_size_bytes"`
	PresenceEvent    json.RawMessage   `json:"presence_event"`
}

// PresenceContinuity describes what the store retains of the channel's presence stream.
type PresenceContinuity struct {
	StreamID             *string `json:"stream_id"`
	OldestSerial         *uint64 `json:"oldest_available_serial"`
	NewestSerial         *uint64 `json:"newest_available_serial"`
	OldestMs             *int64  `json:"oldest_available_published_at_ms"`
	NewestMs             *int64  `json:"newest_available_published_at_ms"`
	RetainedEvents       int64   `json:"retained_events"`
	RetainedBytes        int64   `json:"retained_bytes"`
	Degraded             *bool   `json:"degraded,omitempty"`
	Complete             bool    `json:"complete"`
	TruncatedByRetention bool    `json:"truncated_by_retention"`
}

// PresenceStreamState is the presence stream's health as this node sees it.
type PresenceStreamState struct {
	StreamID            *string `json:"stream_id"`
	DurableState        string  `json:"durable_state"`
	ContinuityProven    bool    `json:"continuity_proven"`
	ResetRequired       bool    `json:"reset_required"`
	Reason              *string `json:"reason"`
	NodeID              *string `json:"node_id"`
	LastTransitionAtMs  *int64  `json:"last_transition_at_ms"`
	AuthoritativeSource string  `json:"authoritative_source"`
	ObservedSource      string  `json:"observed_source"`
}

// PresenceHistoryResult is GET .../presence/history.
type PresenceHistoryResult struct {
	Items       []PresenceHistoryItem `json:"items"`
	Direction   string                `json:"direction"`
	Limit       int                   `json:"limit"`
	HasMore     bool                  `json:"has_more"`
	NextCursor  *string               `json:"next_cursor"`
	Bounds      HistoryBounds         `json:"bounds"`
	Continuity  PresenceContinuity    `json:"continuity"`
	StreamState PresenceStreamState   `json:"stream_state"`
}

// PresenceSnapshotMember is one member of a snapshot.
type PresenceSnapshotMember struct {
	UserID          string            `json:"user_id"`
	LastEvent       PresenceEventKind `json:"last_event"`
	LastEventSerial uint64            `json:"last_event_serial"`
	LastEventAtMs   int64             `json:"last_event_at_ms"`
}

// PresenceSnapshotResult is GET .../presence/history/snapshot.
type PresenceSnapshotResult struct {
	Channel        string                   `json:"channel"`
	Members        []PresenceSnapshotMember `json:"members"`
	MemberCount    int                      `json:"member_count"`
	EventsReplayed int64                    `json:"events_replayed"`
	SnapshotSerial *uint64                  `json:"snapshot_serial"`
	SnapshotTimeMs *int64                   `json:"snapshot_time_ms"`
	Continuity     PresenceContinuity       `json:"continuity"`
}

// PresenceStreamRetained is the retained part of a presence stream inspection.
type PresenceStreamRetained struct {
	StreamID       *string `json:"stream_id"`
	RetainedEvents int64   `json:"retained_events"`
	RetainedBytes  int64   `json:"retained_bytes"`
	OldestSerial   *uint64 `json:"oldest_available_serial"`
	NewestSerial   *uint64 `json:"newest_available_serial"`
	OldestMs       *int64  `json:"oldest_available_published_at_ms"`
	NewestMs       *int64  `json:"newest_available_published_at_ms"`
}

// PresenceStreamInspection is a presence stream: its id, next serial, retained range and
// health.
type PresenceStreamInspection struct {
	StreamID   *string                `json:"stream_id"`
	NextSerial uint64                 `json:"next_serial"`
	Retained   PresenceStreamRetained `json:"retained"`
	State      PresenceStreamState    `json:"state"`
}

// PresenceStateResult is GET .../presence/history/state.
type PresenceStateResult struct {
	Channel string                   `json:"channel"`
	Stream  PresenceStreamInspection `json:"stream"`
}

// PresenceResetResult is POST .../presence/history/reset.
type PresenceResetResult struct {
	OK               bool                     `json:"ok"`
	Operation        string                   `json:"operation"`
	Channel          string                   `json:"channel"`
	Reason           string                   `json:"reason"`
	RequestedBy      *string                  `json:"requested_by"`
	PreviousStreamID *string                  `json:"previous_stream_id"`
	NewStreamID      string                   `json:"new_stream_id"`
	PurgedEvents     int64                    `json:"purged_events"`
	PurgedBytes      int64                    `json:"purged_bytes"`
	Stream           PresenceStreamInspection `json:"stream"`
}

// presenceApp resolves a presence-history request: the app, a valid presence channel whose
// app records presence history.
func (h *Hub) presenceApp(appID, channel string) (*appState, *HistoryError) {
	a, ok := h.byID[appID]
	if !ok {
		return nil, histErr(404, "app_not_found", "Unknown app")
	}
	if err := protocol.ValidateChannelName(channel, a.cfg.MaxChannelNameLength); err != nil {
		return nil, histErr(400, "invalid_input", err.Message)
	}
	if protocol.Classify(channel).Type != protocol.Presence {
		return nil, histErr(400, "invalid_input", "Only presence channels support this endpoint")
	}
	if !a.presenceOn() {
		return nil, histErr(422, "feature_disabled", "Presence history is disabled by policy for channel '"+protocol.Truncate(channel, 200)+"'")
	}
	return a, nil
}

func presenceUnavailable(err error) *HistoryError {
	return histErr(503, "persistence_unavailable", "Presence history store unavailable: "+err.Error())
}

// presenceCursorChannel is the channel a presence-history cursor names: not the channel's
// own name, so a message-history cursor of the same channel is refused here and the other
// way round.
func presenceCursorChannel(channel string) string { return "presence-history:" + channel }

// ReadPresenceHistory answers GET .../presence/history (r as for ReadHistory; UntilAttach is
// ignored).
func (h *Hub) ReadPresenceHistory(ctx context.Context, appID, channel string, r HistoryRequest) (*PresenceHistoryResult, *HistoryError) {
	a, herr := h.presenceApp(appID, channel)
	if herr != nil {
		return nil, herr
	}
	switch {
	case r.Limit < 0:
		return nil, histErr(400, "invalid_input", "Presence history limit must be greater than 0")
	case r.Limit == 0 || r.Limit > MaxHistoryPage:
		r.Limit = MaxHistoryPage
	}
	if r.StartSerial != 0 && r.EndSerial != 0 && r.StartSerial > r.EndSerial {
		return nil, histErr(400, "invalid_input", "start_serial must be less than or equal to end_serial")
	}
	if r.StartMs != 0 && r.EndMs != 0 && r.StartMs > r.EndMs {
		return nil, histErr(400, "invalid_input", "start_time_ms must be less than or equal to end_time_ms")
	}
	r.UntilAttach = false
	bounds := boundsOf(r)
	q := PresenceRead{Newest: r.Direction == protocol.NewestFirst, Limit: r.Limit, StartSerial: r.StartSerial, EndSerial: r.EndSerial,
		StartMs: r.StartMs, EndMs: r.EndMs, Retention: a.presenceRetention()}
	var cur *cursor
	if r.Cursor != "" {
		c, herr := a.decodeCursor(r.Cursor, presenceCursorChannel(channel), r.Direction, bounds)
		if herr != nil {
			if herr.Message == "History cursor does not belong to this app and channel" {
				herr = histErr(400, "invalid_input", "Presence history cursor does not belong to this app and channel")
			}
			return nil, herr
		}
		cur = &c
		q.After = c.Serial
	}
	page, err := h.presence.ReadPresence(ctx, appID, channel, q)
	if err != nil {
		return nil, presenceUnavailable(err)
	}
	st := page.Retained
	if cur != nil {
		if cur.StreamID != st.StreamID {
			return nil, histErr(400, "invalid_input", "Expired presence history cursor: channel stream changed")
		}
		if st.OldestSerial != 0 && cur.Serial < st.OldestSerial {
			return nil, histErr(400, "invalid_input", "Expired presence history cursor: cursor points before retained history")
		}
	}
	res := &PresenceHistoryResult{Items: make([]PresenceHistoryItem, 0, len(page.Items)), Direction: r.Direction.String(),
		Limit: r.Limit, HasMore: page.HasMore, Bounds: bounds}
	for i := range page.Items {
		res.Items = append(res.Items, presenceItem(&page.Items[i]))
	}
	if page.HasMore && len(page.Items) > 0 {
		c := cursor{Version: 1, AppID: appID, Channel: presenceCursorChannel(channel), StreamID: st.StreamID,
			Serial: page.Items[len(page.Items)-1].Serial, Direction: r.Direction.String(), Bounds: bounds}
		c.Sig = c.sign(a.cfg.Secret)
		b, _ := json.Marshal(c)
		s := base64.RawURLEncoding.EncodeToString(b)
		res.NextCursor = &s
	}
	degraded := h.presenceRec.isDegraded(appID, channel)
	res.Continuity = presenceContinuity(st)
	res.Continuity.Degraded = &degraded
	res.Continuity.TruncatedByRetention = presenceTruncated(r.StartSerial, r.StartMs, st)
	res.Continuity.Complete = !res.HasMore && !res.Continuity.TruncatedByRetention && !degraded
	res.StreamState = h.presenceStreamState(appID, channel, st.StreamID)
	return res, nil
}

func (r *presenceRecorder) isDegraded(appID, channel string) bool {
	_, ok := r.degradedOf(appID, channel)
	return ok
}

// presenceTruncated reports whether retention dropped events the read asked for: it starts
// before the oldest retained serial or time, or (open start) the stream's first events are
// gone.
func presenceTruncated(startSerial uint64, startMs int64, st PresenceRetained) bool {
	switch {
	case st.OldestSerial == 0:
		return st.NextSerial > 1 // everything recorded has expired
	case startSerial != 0:
		return startSerial < st.OldestSerial
	case startMs != 0:
		return startMs < st.OldestMs
	}
	return st.OldestSerial > 1
}

func presenceItem(e *PresenceEvent) PresenceHistoryItem {
	it := PresenceHistoryItem{StreamID: e.StreamID, Serial: e.Serial, PublishedAtMs: e.PublishedAtMs, Event: e.Event, Cause: e.Cause,
		UserID: e.UserID, PayloadSizeBytes: len(e.Payload), PresenceEvent: e.Payload}
	if e.ConnectionID != "" {
		s := e.ConnectionID
		it.ConnectionID = &s
	}
	if e.DeadNodeID != "" {
		s := e.DeadNodeID
		it.DeadNodeID = &s
	}
	if len(it.PresenceEvent) == 0 {
		it.PresenceEvent = EncodePresencePayload(e)
		it.PayloadSizeBytes = len(it.PresenceEvent)
	}
	return it
}

func presenceContinuity(st PresenceRetained) PresenceContinuity {
	c := PresenceContinuity{RetainedEvents: st.Events, RetainedBytes: st.Bytes}
	if st.StreamID != "" {
		c.StreamID = &st.StreamID
	}
	if st.OldestSerial != 0 {
		c.OldestSerial, c.NewestSerial, c.OldestMs, c.NewestMs = &st.OldestSerial, &st.NewestSerial, &st.OldestMs, &st.NewestMs
	}
	return c
}

func (h *Hub) presenceStreamState(appID, channel, streamID string) PresenceStreamState {
	src := h.presence.PresenceSource()
	s := PresenceStreamState{DurableState: "healthy", ContinuityProven: true, AuthoritativeSource: src, ObservedSource: src}
	if streamID != "" {
		s.StreamID = &streamID
	}
	if d, ok := h.presenceRec.degradedOf(appID, channel); ok {
		reason, at := d.reason, d.atMs
		s.DurableState, s.ContinuityProven, s.Reason, s.LastTransitionAtMs = "degraded", false, &reason, &at
	}
	return s
}

// PresenceSnapshotAt selects the point of a snapshot: the last event at or before Serial
// and at or before TimeMs (both inclusive; zero = open, both zero = the latest).
type PresenceSnapshotAt struct {
	Serial uint64
	TimeMs int64
}

// PresenceSnapshot answers GET .../presence/history/snapshot: the members of the channel as
// the retained events up to at leave them, replayed in serial order.
func (h *Hub) PresenceSnapshot(ctx context.Context, appID, channel string, at PresenceSnapshotAt) (*PresenceSnapshotResult, *HistoryError) {
	a, herr := h.presenceApp(appID, channel)
	if herr != nil {
		return nil, herr
	}
	members := map[string]*PresenceSnapshotMember{}
	res := &PresenceSnapshotResult{Channel: channel, Members: []PresenceSnapshotMember{}}
	q := PresenceRead{Limit: 1000, EndSerial: at.Serial, EndMs: at.TimeMs, Retention: a.presenceRetention()}
	var st PresenceRetained
	stream := ""
	for {
		page, err := h.presence.ReadPresence(ctx, appID, channel, q)
		if err != nil {
			return nil, presenceUnavailable(err)
		}
		st = page.Retained
		for i := range page.Items {
			e := &page.Items[i]
			if stream == "" {
				stream = e.StreamID
			} else if e.StreamID != stream {
				return nil, histErr(409, "conflict", "The presence history stream was reset while the snapshot was read; retry")
			}
			res.EventsReplayed++
			serial, ms := e.Serial, e.PublishedAtMs
			res.SnapshotSerial, res.SnapshotTimeMs = &serial, &ms
			switch e.Event {
			case PresenceMemberAdded:
				members[e.UserID] = &PresenceSnapshotMember{UserID: e.UserID, LastEvent: e.Event, LastEventSerial: e.Serial, LastEventAtMs: e.PublishedAtMs}
			case PresenceMemberUpdated:
				if m := members[e.UserID]; m != nil {
					m.LastEvent, m.LastEventSerial, m.LastEventAtMs = e.Event, e.Serial, e.PublishedAtMs
				}
			case PresenceMemberRemoved:
				delete(members, e.UserID)
			}
		}
		if !page.HasMore || len(page.Items) == 0 {
			break
		}
		q.After = page.Items[len(page.Items)-1].Serial
	}
	for _, m := range members {
		res.Members = append(res.Members, *m)
	}
	sort.Slice(res.Members, func(i, j int) bool { return res.Members[i].UserID < res.Members[j].UserID })
	res.MemberCount = len(res.Members)
	degraded := h.presenceRec.isDegraded(appID, channel)
	res.Continuity = presenceContinuity(st)
	res.Continuity.TruncatedByRetention = presenceTruncated(0, 0, st)
	res.Continuity.Complete = !res.Continuity.TruncatedByRetention && !degraded
	return res, nil
}

// PresenceHistoryState answers GET .../presence/history/state.
func (h *Hub) PresenceHistoryState(ctx context.Context, appID, channel string) (*PresenceStateResult, *HistoryError) {
	a, herr := h.presenceApp(appID, channel)
	if herr != nil {
		return nil, herr
	}
	st, err := h.presence.PresenceStream(ctx, appID, channel, a.presenceRetention())
	if err != nil {
		return nil, presenceUnavailable(err)
	}
	return &PresenceStateResult{Channel: channel, Stream: h.presenceInspection(appID, channel, st)}, nil
}

func (h *Hub) presenceInspection(appID, channel string, st PresenceRetained) PresenceStreamInspection {
	c := presenceContinuity(st)
	next := st.NextSerial
	if next == 0 {
		next = 1
	}
	return PresenceStreamInspection{StreamID: c.StreamID, NextSerial: next, State: h.presenceStreamState(appID, channel, st.StreamID),
		Retained: PresenceStreamRetained{StreamID: c.StreamID, RetainedEvents: c.RetainedEvents, RetainedBytes: c.RetainedBytes,
			OldestSerial: c.OldestSerial, NewestSerial: c.NewestSerial, OldestMs: c.OldestMs, NewestMs: c.NewestMs}}
}

// ResetPresenceHistory deletes every presence event of the channel and starts a new stream
// (serials from 1); a degraded stream is healthy again. Members present now are not
// re-recorded: the new stream starts empty, and its snapshots list those who join after.
func (h *Hub) ResetPresenceHistory(ctx context.Context, appID, channel string, op Operator) (*PresenceResetResult, *HistoryError) {
	if _, herr := h.presenceApp(appID, channel); herr != nil {
		return nil, herr
	}
	_ = h.presenceRec.flush(ctx) // events queued before the reset belong to the old stream
	before, after, err := h.presence.ResetPresence(ctx, appID, channel)
	if err != nil {
		return nil, presenceUnavailable(err)
	}
	h.presenceRec.degradedMu.Lock()
	delete(h.presenceRec.degraded, streamRef{appID, channel})
	h.presenceRec.degradedMu.Unlock()
	h.log.Info("presence history reset", zap.String("app_id", appID), zap.String("channel", channel),
		zap.String("previous_stream_id", before.StreamID), zap.String("new_stream_id", after.StreamID),
		zap.Int64("purged_events", before.Events), zap.String("reason", op.Reason), zap.String("requested_by", op.RequestedBy))
	res := &PresenceResetResult{OK: true, Operation: "reset", Channel: channel, Reason: op.Reason, RequestedBy: strp(op.RequestedBy),
		NewStreamID: after.StreamID, PurgedEvents: before.Events, PurgedBytes: before.Bytes,
		Stream: h.presenceInspection(appID, channel, after)}
	if before.StreamID != "" {
		res.PreviousStreamID = &before.StreamID
	}
	return res, nil
}
