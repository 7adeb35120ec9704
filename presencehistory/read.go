package presencehistory

import (
	"context"
	"encoding/json"
	"sort"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// The reads of the HTTP API (Sockudo's routes and shapes): a page of events, a snapshot of
// the members at a point, the stream's state, and reset.

// HistoryItem is one event of a presence history page.
type HistoryItem struct {
	StreamID         string                     `json:"stream_id"`
	Serial           uint64                     `json:"serial"`
	PublishedAtMs    int64                      `json:"published_at_ms"`
	Event            channels.PresenceEventKind `json:"event"`
	Cause            channels.PresenceCause     `json:"cause"`
	UserID           string                     `json:"user_id"`
	ConnectionID     *string                    `json:"connection_id"`
	DeadNodeID       *string                    `json:"dead_node_id"`
	PayloadSizeBytes int                        `json:"payload_size_bytes"`
	PresenceEvent    json.RawMessage            `json:"presence_event"`
}

// Continuity describes what the store retains of the channel's presence stream.
type Continuity struct {
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

// StreamState is the presence stream's health as this node sees it.
type StreamState struct {
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

// HistoryResult is GET .../presence/history.
type HistoryResult struct {
	Items       []HistoryItem          `json:"items"`
	Direction   string                 `json:"direction"`
	Limit       int                    `json:"limit"`
	HasMore     bool                   `json:"has_more"`
	NextCursor  *string                `json:"next_cursor"`
	Bounds      channels.HistoryBounds `json:"bounds"`
	Continuity  Continuity             `json:"continuity"`
	StreamState StreamState            `json:"stream_state"`
}

// SnapshotMember is one member of a snapshot.
type SnapshotMember struct {
	UserID          string                     `json:"user_id"`
	LastEvent       channels.PresenceEventKind `json:"last_event"`
	LastEventSerial uint64                     `json:"last_event_serial"`
	LastEventAtMs   int64                      `json:"last_event_at_ms"`
}

// SnapshotResult is GET .../presence/history/snapshot.
type SnapshotResult struct {
	Channel        string           `json:"channel"`
	Members        []SnapshotMember `json:"members"`
	MemberCount    int              `json:"member_count"`
	EventsReplayed int64            `json:"events_replayed"`
	SnapshotSerial *uint64          `json:"snapshot_serial"`
	SnapshotTimeMs *int64           `json:"snapshot_time_ms"`
	Continuity     Continuity       `json:"continuity"`
}

// StreamRetained is the retained part of a presence stream inspection.
type StreamRetained struct {
	StreamID       *string `json:"stream_id"`
	RetainedEvents int64   `json:"retained_events"`
	RetainedBytes  int64   `json:"retained_bytes"`
	OldestSerial   *uint64 `json:"oldest_available_serial"`
	NewestSerial   *uint64 `json:"newest_available_serial"`
	OldestMs       *int64  `json:"oldest_available_published_at_ms"`
	NewestMs       *int64  `json:"newest_available_published_at_ms"`
}

// StreamInspection is a presence stream: its id, next serial, retained range and
// health.
type StreamInspection struct {
	StreamID   *string        `json:"stream_id"`
	NextSerial uint64         `json:"next_serial"`
	Retained   StreamRetained `json:"retained"`
	State      StreamState    `json:"state"`
}

// StateResult is GET .../presence/history/state.
type StateResult struct {
	Channel string           `json:"channel"`
	Stream  StreamInspection `json:"stream"`
}

// ResetResult is POST .../presence/history/reset.
type ResetResult struct {
	OK               bool             `json:"ok"`
	Operation        string           `json:"operation"`
	Channel          string           `json:"channel"`
	Reason           string           `json:"reason"`
	RequestedBy      *string          `json:"requested_by"`
	PreviousStreamID *string          `json:"previous_stream_id"`
	NewStreamID      string           `json:"new_stream_id"`
	PurgedEvents     int64            `json:"purged_events"`
	PurgedBytes      int64            `json:"purged_bytes"`
	Stream           StreamInspection `json:"stream"`
}

// app resolves a presence-history request: the app, a valid presence channel whose
// app records presence history.
func (s *Service) app(appID, channel string) (config.App, *channels.HistoryError) {
	a, ok := s.apps[appID]
	if !ok {
		return a, channels.NewHistoryError(404, "app_not_found", "Unknown app")
	}
	if err := protocol.ValidateChannelName(channel, a.MaxChannelNameLength); err != nil {
		return a, channels.NewHistoryError(400, "invalid_input", err.Message)
	}
	if protocol.Classify(channel).Type != protocol.Presence {
		return a, channels.NewHistoryError(400, "invalid_input", "Only presence channels support this endpoint")
	}
	if !s.on(a) {
		return a, channels.NewHistoryError(422, "feature_disabled", "Presence history is disabled by policy for channel '"+protocol.Truncate(channel, 200)+"'")
	}
	return a, nil
}

func presenceUnavailable(err error) *channels.HistoryError {
	return channels.NewHistoryError(503, "persistence_unavailable", "Presence history store unavailable: "+err.Error())
}

// presenceCursorChannel is the channel a presence-history cursor names: not the channel's
// own name, so a message-history cursor of the same channel is refused here and the other
// way round.
func presenceCursorChannel(channel string) string { return "presence-history:" + channel }

// Read answers GET .../presence/history (r as for channels.Hub.ReadHistory;
// UntilAttach is ignored).
func (s *Service) Read(ctx context.Context, appID, channel string, r channels.HistoryRequest) (*HistoryResult, *channels.HistoryError) {
	a, herr := s.app(appID, channel)
	if herr != nil {
		return nil, herr
	}
	switch {
	case r.Limit < 0:
		return nil, channels.NewHistoryError(400, "invalid_input", "Presence history limit must be greater than 0")
	case r.Limit == 0 || r.Limit > channels.MaxHistoryPage:
		r.Limit = channels.MaxHistoryPage
	}
	if r.StartSerial != 0 && r.EndSerial != 0 && r.StartSerial > r.EndSerial {
		return nil, channels.NewHistoryError(400, "invalid_input", "start_serial must be less than or equal to end_serial")
	}
	if r.StartMs != 0 && r.EndMs != 0 && r.StartMs > r.EndMs {
		return nil, channels.NewHistoryError(400, "invalid_input", "start_time_ms must be less than or equal to end_time_ms")
	}
	r.UntilAttach = false
	bounds := channels.HistoryBoundsOf(r)
	q := Read{Newest: r.Direction == protocol.NewestFirst, Limit: r.Limit, StartSerial: r.StartSerial, EndSerial: r.EndSerial,
		StartMs: r.StartMs, EndMs: r.EndMs, Retention: retention(a)}
	var curStream string
	var curSerial uint64
	hasCursor := r.Cursor != ""
	if hasCursor {
		stream, serial, herr := channels.OpenHistoryCursor(a, presenceCursorChannel(channel), r)
		if herr != nil {
			if herr.Message == "History cursor does not belong to this app and channel" {
				herr = channels.NewHistoryError(400, "invalid_input", "Presence history cursor does not belong to this app and channel")
			}
			return nil, herr
		}
		curStream, curSerial = stream, serial
		q.After = serial
	}
	page, err := s.store.ReadPresence(ctx, appID, channel, q)
	if err != nil {
		return nil, presenceUnavailable(err)
	}
	st := page.Retained
	if hasCursor {
		if curStream != st.StreamID {
			return nil, channels.NewHistoryError(400, "invalid_input", "Expired presence history cursor: channel stream changed")
		}
		if st.OldestSerial != 0 && curSerial < st.OldestSerial {
			return nil, channels.NewHistoryError(400, "invalid_input", "Expired presence history cursor: cursor points before retained history")
		}
	}
	res := &HistoryResult{Items: make([]HistoryItem, 0, len(page.Items)), Direction: r.Direction.String(),
		Limit: r.Limit, HasMore: page.HasMore, Bounds: bounds}
	for i := range page.Items {
		res.Items = append(res.Items, presenceItem(&page.Items[i]))
	}
	if page.HasMore && len(page.Items) > 0 {
		c := channels.SignHistoryCursor(a, presenceCursorChannel(channel), r, st.StreamID, page.Items[len(page.Items)-1].Serial)
		res.NextCursor = &c
	}
	degraded := s.isDegraded(appID, channel)
	res.Continuity = presenceContinuity(st)
	res.Continuity.Degraded = &degraded
	res.Continuity.TruncatedByRetention = presenceTruncated(r.StartSerial, r.StartMs, st)
	res.Continuity.Complete = !res.HasMore && !res.Continuity.TruncatedByRetention && !degraded
	res.StreamState = s.streamState(appID, channel, st.StreamID)
	return res, nil
}

// presenceTruncated reports whether retention dropped events the read asked for: it starts
// before the oldest retained serial or time, or (open start) the stream's first events are
// gone.
func presenceTruncated(startSerial uint64, startMs int64, st Retained) bool {
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

func presenceItem(e *Event) HistoryItem {
	it := HistoryItem{StreamID: e.StreamID, Serial: e.Serial, PublishedAtMs: e.PublishedAtMs, Event: e.Event, Cause: e.Cause,
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
		it.PresenceEvent = EncodePayload(e)
		it.PayloadSizeBytes = len(it.PresenceEvent)
	}
	return it
}

func presenceContinuity(st Retained) Continuity {
	c := Continuity{RetainedEvents: st.Events, RetainedBytes: st.Bytes}
	if st.StreamID != "" {
		c.StreamID = &st.StreamID
	}
	if st.OldestSerial != 0 {
		c.OldestSerial, c.NewestSerial, c.OldestMs, c.NewestMs = &st.OldestSerial, &st.NewestSerial, &st.OldestMs, &st.NewestMs
	}
	return c
}

func (s *Service) streamState(appID, channel, streamID string) StreamState {
	src := s.store.PresenceSource()
	st := StreamState{DurableState: "healthy", ContinuityProven: true, AuthoritativeSource: src, ObservedSource: src}
	if streamID != "" {
		st.StreamID = &streamID
	}
	if d, ok := s.degradedOf(appID, channel); ok {
		reason, at := d.reason, d.atMs
		st.DurableState, st.ContinuityProven, st.Reason, st.LastTransitionAtMs = "degraded", false, &reason, &at
	}
	return st
}

// SnapshotAt selects the point of a snapshot: the last event at or before Serial
// and at or before TimeMs (both inclusive; zero = open, both zero = the latest).
type SnapshotAt struct {
	Serial uint64
	TimeMs int64
}

// Snapshot answers GET .../presence/history/snapshot: the members of the channel as
// the retained events up to at leave them, replayed in serial order.
func (s *Service) Snapshot(ctx context.Context, appID, channel string, at SnapshotAt) (*SnapshotResult, *channels.HistoryError) {
	a, herr := s.app(appID, channel)
	if herr != nil {
		return nil, herr
	}
	members := map[string]*SnapshotMember{}
	res := &SnapshotResult{Channel: channel, Members: []SnapshotMember{}}
	q := Read{Limit: 1000, EndSerial: at.Serial, EndMs: at.TimeMs, Retention: retention(a)}
	var st Retained
	stream := ""
	for {
		page, err := s.store.ReadPresence(ctx, appID, channel, q)
		if err != nil {
			return nil, presenceUnavailable(err)
		}
		st = page.Retained
		for i := range page.Items {
			e := &page.Items[i]
			if stream == "" {
				stream = e.StreamID
			} else if e.StreamID != stream {
				return nil, channels.NewHistoryError(409, "conflict", "The presence history stream was reset while the snapshot was read; retry")
			}
			res.EventsReplayed++
			serial, ms := e.Serial, e.PublishedAtMs
			res.SnapshotSerial, res.SnapshotTimeMs = &serial, &ms
			switch e.Event {
			case channels.PresenceMemberAdded:
				members[e.UserID] = &SnapshotMember{UserID: e.UserID, LastEvent: e.Event, LastEventSerial: e.Serial, LastEventAtMs: e.PublishedAtMs}
			case channels.PresenceMemberUpdated:
				if m := members[e.UserID]; m != nil {
					m.LastEvent, m.LastEventSerial, m.LastEventAtMs = e.Event, e.Serial, e.PublishedAtMs
				}
			case channels.PresenceMemberRemoved:
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
	degraded := s.isDegraded(appID, channel)
	res.Continuity = presenceContinuity(st)
	res.Continuity.TruncatedByRetention = presenceTruncated(0, 0, st)
	res.Continuity.Complete = !res.Continuity.TruncatedByRetention && !degraded
	return res, nil
}

// State answers GET .../presence/history/state.
func (s *Service) State(ctx context.Context, appID, channel string) (*StateResult, *channels.HistoryError) {
	a, herr := s.app(appID, channel)
	if herr != nil {
		return nil, herr
	}
	st, err := s.store.PresenceStream(ctx, appID, channel, retention(a))
	if err != nil {
		return nil, presenceUnavailable(err)
	}
	return &StateResult{Channel: channel, Stream: s.inspection(appID, channel, st)}, nil
}

func (s *Service) inspection(appID, channel string, st Retained) StreamInspection {
	c := presenceContinuity(st)
	next := st.NextSerial
	if next == 0 {
		next = 1
	}
	return StreamInspection{StreamID: c.StreamID, NextSerial: next, State: s.streamState(appID, channel, st.StreamID),
		Retained: StreamRetained{StreamID: c.StreamID, RetainedEvents: c.RetainedEvents, RetainedBytes: c.RetainedBytes,
			OldestSerial: c.OldestSerial, NewestSerial: c.NewestSerial, OldestMs: c.OldestMs, NewestMs: c.NewestMs}}
}

// Reset deletes every presence event of the channel and starts a new stream
// (serials from 1); a degraded stream is healthy again. Members present now are not
// re-recorded: the new stream starts empty, and its snapshots list those who join after.
func (s *Service) Reset(ctx context.Context, appID, channel string, op channels.Operator) (*ResetResult, *channels.HistoryError) {
	if _, herr := s.app(appID, channel); herr != nil {
		return nil, herr
	}
	_ = s.Flush(ctx) // events queued before the reset belong to the old stream
	before, after, err := s.store.ResetPresence(ctx, appID, channel)
	if err != nil {
		return nil, presenceUnavailable(err)
	}
	s.degradedMu.Lock()
	delete(s.degraded, streamRef{appID, channel})
	s.degradedMu.Unlock()
	s.log.Info("presence history reset", zap.String("app_id", appID), zap.String("channel", channel),
		zap.String("previous_stream_id", before.StreamID), zap.String("new_stream_id", after.StreamID),
		zap.Int64("purged_events", before.Events), zap.String("reason", op.Reason), zap.String("requested_by", op.RequestedBy))
	res := &ResetResult{OK: true, Operation: "reset", Channel: channel, Reason: op.Reason, RequestedBy: nonEmpty(op.RequestedBy),
		NewStreamID: after.StreamID, PurgedEvents: before.Events, PurgedBytes: before.Bytes,
		Stream: s.inspection(appID, channel, after)}
	if before.StreamID != "" {
		res.PreviousStreamID = &before.StreamID
	}
	return res, nil
}

// nonEmpty is s, or nil when it is empty (a JSON null).
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
