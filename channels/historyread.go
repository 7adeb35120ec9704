package channels

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// History page limits (http-api §3.1, ws-protocol §3.6).
const (
	// MaxHistoryPage caps one history page (max_page_size).
	MaxHistoryPage = 100
	maxCursorBytes = 16 << 10
)

// versionedExtra is about what protocol.AppendVersioned adds to a message's V2 frame (the
// reserved headers and the version members), so a history item is encoded into one buffer.
const versionedExtra = 384

// HistoryBounds echo a request's bounds; null when open.
type HistoryBounds struct {
	StartSerial  *uint64 `json:"start_serial"`
	EndSerial    *uint64 `json:"end_serial"`
	StartTimeMs  *int64  `json:"start_time_ms"`
	EndTimeMs    *int64  `json:"end_time_ms"`
	UntilAttach  *bool   `json:"until_attach,omitempty"`
	AttachSerial *uint64 `json:"attach_serial,omitempty"`
}

// HistoryItem is one message of a history page.
type HistoryItem struct {
	StreamID         string          `json:"stream_id"`
	Serial           uint64          `json:"serial"`
	PublishedAtMs    int64           `json:"published_at_ms"`
	MessageID        string          `json:"message_id"`
	EventName        string          `json:"event_name"`
	OperationKind    string          `json:"operation_kind"`
	PayloadSizeBytes int             `json:"payload_size_bytes"`
	Message          json.RawMessage `json:"message"`
}

// HistoryContinuity describes what the store retains for the channel.
type HistoryContinuity struct {
	StreamID             *string `json:"stream_id"`
	OldestSerial         *uint64 `json:"oldest_available_serial"`
	NewestSerial         *uint64 `json:"newest_available_serial"`
	OldestMs             *int64  `json:"oldest_available_published_at_ms"`
	NewestMs             *int64  `json:"newest_available_published_at_ms"`
	Retained             int64   `json:"retained_messages"`
	RetainedBytes        int64   `json:"retained_bytes"`
	Complete             bool    `json:"complete"`
	TruncatedByRetention bool    `json:"truncated_by_retention"`
}

// HistoryStreamState is the stream's health as this node sees it.
type HistoryStreamState struct {
	StreamID            *string `json:"stream_id"`
	DurableState        string  `json:"durable_state"`
	RecoveryAllowed     bool    `json:"recovery_allowed"`
	ResetRequired       bool    `json:"reset_required"`
	Reason              *string `json:"reason"`
	NodeID              *string `json:"node_id"`
	LastTransitionAtMs  *int64  `json:"last_transition_at_ms"`
	AuthoritativeSource *string `json:"authoritative_source"`
	ObservedSource      *string `json:"observed_source"`
}

// HistoryResult is a history page in the wire shape shared by the WebSocket frame and the
// HTTP endpoint.
type HistoryResult struct {
	Items       []HistoryItem      `json:"items"`
	Direction   string             `json:"direction"`
	Limit       int                `json:"limit"`
	HasMore     bool               `json:"has_more"`
	NextCursor  *string            `json:"next_cursor"`
	Bounds      HistoryBounds      `json:"bounds"`
	Continuity  HistoryContinuity  `json:"continuity"`
	StreamState HistoryStreamState `json:"stream_state"`
}

// HistoryError is a refused history read: Status is the HTTP status, Code the WebSocket one.
type HistoryError struct {
	Status  int
	Code    int
	Kind    string // snake_case HTTP error code
	Message string
}

func (e *HistoryError) Error() string { return e.Message }

func histErr(status int, kind, msg string) *HistoryError {
	code := protocol.CodeChannelError
	if status >= 500 {
		code = protocol.CodeGeneric
	}
	return &HistoryError{Status: status, Code: code, Kind: kind, Message: msg}
}

// cursor is the signed position of a history page.
type cursor struct {
	Version   int           `json:"version"`
	AppID     string        `json:"app_id"`
	Channel   string        `json:"channel"`
	StreamID  string        `json:"stream_id"`
	Serial    uint64        `json:"serial"`
	Direction string        `json:"direction"`
	Bounds    HistoryBounds `json:"bounds"`
	Sig       string        `json:"sig"`
}

// sign returns the cursor's HMAC (app secret) over everything but the signature, so a
// cursor cannot be forged or moved to another app, channel, direction or bounds.
func (c cursor) sign(secret string) string {
	c.Sig = ""
	b, _ := json.Marshal(c)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(b)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

func boundsOf(r HistoryRequest) HistoryBounds {
	var b HistoryBounds
	if r.StartSerial != 0 {
		b.StartSerial = &r.StartSerial
	}
	if r.EndSerial != 0 {
		b.EndSerial = &r.EndSerial
	}
	if r.StartMs != 0 {
		b.StartTimeMs = &r.StartMs
	}
	if r.EndMs != 0 {
		b.EndTimeMs = &r.EndMs
	}
	return b
}

func sameBounds(a, b HistoryBounds) bool {
	x, _ := json.Marshal(HistoryBounds{StartSerial: a.StartSerial, EndSerial: a.EndSerial, StartTimeMs: a.StartTimeMs, EndTimeMs: a.EndTimeMs})
	y, _ := json.Marshal(HistoryBounds{StartSerial: b.StartSerial, EndSerial: b.EndSerial, StartTimeMs: b.StartTimeMs, EndTimeMs: b.EndTimeMs})
	return bytes.Equal(x, y)
}

// ReadHistory reads one page of a channel's history for the HTTP API.
func (h *Hub) ReadHistory(ctx context.Context, appID, channel string, r HistoryRequest) (*HistoryResult, *HistoryError) {
	app, ok := h.byID[appID]
	if !ok {
		return nil, histErr(404, "app_not_found", "Unknown app")
	}
	return app.readHistory(ctx, channel, r, nil)
}

// readHistory validates r, resolves its cursor and reads one page. attach is the
// subscription's attach serial for until_attach (nil when none was recorded).
func (a *appState) readHistory(ctx context.Context, channel string, r HistoryRequest, attach *uint64) (*HistoryResult, *HistoryError) {
	r, bounds, st, herr := a.historyState(ctx, channel, r, attach)
	if herr != nil {
		return nil, herr
	}
	return a.readHistoryAt(ctx, channel, r, bounds, attach, st)
}

// historyState checks r (checkHistory) and reads the stream state its page is read against.
func (a *appState) historyState(ctx context.Context, channel string, r HistoryRequest, attach *uint64) (HistoryRequest, HistoryBounds, protocol.StreamState, *HistoryError) {
	r, bounds, herr := a.checkHistory(channel, r, attach)
	if herr != nil {
		return r, bounds, protocol.StreamState{}, herr
	}
	st, err := a.hub.history.State(ctx, a.cfg.ID, channel)
	if err != nil {
		return r, bounds, st, histErr(503, "persistence_unavailable", "History store unavailable: "+err.Error())
	}
	return r, bounds, st, nil
}

// historyFrame is the sockudo:channel_history frame of one page, from the hub's page cache
// when the same request on the same stream state was answered before (pageKey).
func (a *appState) historyFrame(ctx context.Context, channel string, r HistoryRequest, attach *uint64) ([]byte, *HistoryError) {
	r, bounds, st, herr := a.historyState(ctx, channel, r, attach)
	if herr != nil {
		return nil, herr
	}
	key := pageKey{app: a.cfg.ID, secret: a.cfg.Secret, channel: channel, req: r, st: st}
	if r.UntilAttach {
		key.attach = *attach
	}
	key.degradedSerial, key.degraded = a.degradedAt(channel)
	if frame, ok := a.hub.pages.get(key); ok {
		return frame, nil
	}
	res, herr := a.readHistoryAt(ctx, channel, r, bounds, attach, st)
	if herr != nil {
		return nil, herr
	}
	frame, err := appendHistoryFrame(make([]byte, 0, historyItemsSize(res)+len(channel)+64), channel, res)
	if err != nil {
		return nil, histErr(500, "internal_error", "encoding failed")
	}
	a.hub.pages.put(key, frame)
	return frame, nil
}

// checkHistory validates r and returns it normalized (the page limit) with its bounds.
func (a *appState) checkHistory(channel string, r HistoryRequest, attach *uint64) (HistoryRequest, HistoryBounds, *HistoryError) {
	if err := protocol.ValidateChannelName(channel, a.cfg.MaxChannelNameLength); err != nil {
		return r, HistoryBounds{}, histErr(400, "invalid_input", err.Message)
	}
	if a.hub.history == nil || !a.cfg.HistoryFor(channel) {
		return r, HistoryBounds{}, histErr(422, "feature_disabled", "History is not enabled for channel "+protocol.Truncate(channel, 200))
	}
	switch {
	case r.Limit < 0:
		return r, HistoryBounds{}, histErr(400, "invalid_input", "limit must be positive")
	case r.Limit == 0:
		r.Limit = MaxHistoryPage
	case r.Limit > MaxHistoryPage:
		r.Limit = MaxHistoryPage
	}
	if r.StartSerial != 0 && r.EndSerial != 0 && r.StartSerial > r.EndSerial {
		return r, HistoryBounds{}, histErr(400, "invalid_input", "start_serial is greater than end_serial")
	}
	if r.StartMs != 0 && r.EndMs != 0 && r.StartMs > r.EndMs {
		return r, HistoryBounds{}, histErr(400, "invalid_input", "start_time_ms is greater than end_time_ms")
	}
	bounds := boundsOf(r)
	if r.UntilAttach {
		if attach == nil {
			return r, HistoryBounds{}, histErr(400, "invalid_input", "until_attach needs a subscription with an attach serial")
		}
		t := true
		bounds.UntilAttach, bounds.AttachSerial = &t, attach
		if r.EndSerial == 0 || r.EndSerial > *attach {
			r.EndSerial = *attach
		}
	}
	return r, bounds, nil
}

// readHistoryAt reads one page of r (checked by checkHistory) against the stream state st.
func (a *appState) readHistoryAt(ctx context.Context, channel string, r HistoryRequest, bounds HistoryBounds, attach *uint64, st protocol.StreamState) (*HistoryResult, *HistoryError) {
	q := protocol.HistoryQuery{Direction: r.Direction, Limit: r.Limit, StartSerial: r.StartSerial, EndSerial: r.EndSerial, StartMs: r.StartMs, EndMs: r.EndMs,
		MessagesOnly: true}
	if r.UntilAttach && *attach == 0 {
		q.StartSerial = ^uint64(0) // attached to an empty stream: nothing before it
	}
	if r.Cursor != "" {
		c, herr := a.decodeCursor(r.Cursor, channel, r.Direction, bounds)
		if herr != nil {
			return nil, herr
		}
		if c.StreamID != st.StreamID || (st.OldestSerial != 0 && c.Serial < st.OldestSerial) {
			return nil, histErr(400, "invalid_input", "Expired history cursor")
		}
		if r.Direction == protocol.OldestFirst {
			q.StartSerial = c.Serial + 1
		} else if q.EndSerial == 0 || c.Serial-1 < q.EndSerial {
			q.EndSerial = c.Serial - 1
			if q.EndSerial == 0 {
				q.StartSerial = ^uint64(0) // nothing left
			}
		}
	}
	page, err := a.hub.history.Read(ctx, a.cfg.ID, channel, q)
	if err != nil {
		return nil, histErr(503, "persistence_unavailable", "History store unavailable: "+err.Error())
	}
	res := &HistoryResult{Items: make([]HistoryItem, 0, len(page.Items)), Direction: r.Direction.String(), Limit: r.Limit, HasMore: page.HasMore, Bounds: bounds}
	shown := append([]protocol.Message(nil), page.Items...)
	if err := a.latestOf(ctx, channel, shown); err != nil {
		return nil, histErr(503, "persistence_unavailable", "History store unavailable: "+err.Error())
	}
	for i := range page.Items {
		m, v := &page.Items[i], &shown[i]
		item := HistoryItem{StreamID: m.StreamID, Serial: m.Serial, PublishedAtMs: m.PublishedAtMs, MessageID: m.MessageID,
			EventName: v.Event, OperationKind: "append", PayloadSizeBytes: len(v.Data)}
		if v.Mutable != nil {
			item.Message = protocol.AppendVersioned(make([]byte, 0, v.Size()+versionedExtra), v)
		} else {
			item.Message = v.AppendV2(make([]byte, 0, v.Size()))
		}
		res.Items = append(res.Items, item)
	}
	if page.HasMore && len(page.Items) > 0 {
		c := cursor{Version: 1, AppID: a.cfg.ID, Channel: channel, StreamID: st.StreamID, Serial: page.Items[len(page.Items)-1].Serial,
			Direction: r.Direction.String(), Bounds: bounds}
		c.Sig = c.sign(a.cfg.Secret)
		b, _ := json.Marshal(c)
		s := base64.RawURLEncoding.EncodeToString(b)
		res.NextCursor = &s
	}
	res.Continuity = continuityOf(st)
	startBelowOldest := r.StartSerial != 0 && st.OldestSerial > r.StartSerial
	res.Continuity.TruncatedByRetention = startBelowOldest || (r.StartSerial == 0 && r.StartMs == 0 && st.OldestSerial > 1) ||
		(st.OldestSerial == 0 && st.HeadSerial > 0)
	res.Continuity.Complete = !res.HasMore && !res.Continuity.TruncatedByRetention
	res.StreamState = a.streamState(channel, st)
	return res, nil
}

func continuityOf(st protocol.StreamState) HistoryContinuity {
	c := HistoryContinuity{Retained: st.Retained, RetainedBytes: st.RetainedBytes}
	if st.StreamID != "" {
		c.StreamID = &st.StreamID
	}
	if st.Retained > 0 {
		c.OldestSerial, c.NewestSerial, c.OldestMs, c.NewestMs = &st.OldestSerial, &st.NewestSerial, &st.OldestMs, &st.NewestMs
	}
	return c
}

// streamState reports the stream's health: degraded after a failed append (a message was
// delivered without being stored, so recovery across it is refused).
func (a *appState) streamState(channel string, st protocol.StreamState) HistoryStreamState {
	s := HistoryStreamState{DurableState: "healthy", RecoveryAllowed: true}
	if st.StreamID != "" {
		s.StreamID = &st.StreamID
	}
	if _, degraded := a.degradedAt(channel); degraded {
		reason := "history_append_failed"
		s.DurableState, s.Reason = "degraded", &reason
	}
	return s
}

func (a *appState) decodeCursor(raw, channel string, dir protocol.Direction, bounds HistoryBounds) (cursor, *HistoryError) {
	return decodeCursor(a.cfg, raw, channel, dir, bounds)
}

func decodeCursor(app config.App, raw, channel string, dir protocol.Direction, bounds HistoryBounds) (cursor, *HistoryError) {
	bad := histErr(400, "invalid_input", "Invalid history cursor")
	if len(raw) > maxCursorBytes {
		return cursor{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(raw, "="))
	if err != nil {
		return cursor{}, bad
	}
	var c cursor
	if json.Unmarshal(b, &c) != nil || c.Version != 1 {
		return cursor{}, bad
	}
	if !hmac.Equal([]byte(c.Sig), []byte(c.sign(app.Secret))) || c.AppID != app.ID || c.Channel != channel {
		return cursor{}, histErr(400, "invalid_input", "History cursor does not belong to this app and channel")
	}
	if c.Direction != dir.String() || !sameBounds(c.Bounds, bounds) {
		return cursor{}, histErr(400, "invalid_input", "History cursor must be used with the same direction and bounds")
	}
	return c, nil
}
