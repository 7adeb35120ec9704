package channels

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// Operator endpoints of a channel's history (http-api §3.1): its state, a reset (every
// message gone, a new stream) and a purge (the oldest messages gone, same stream).
//
// What they mean beyond the store:
//   - the hot resume buffer (this node's and, through the cluster, every other node's)
//     forgets what the store forgot, so a resume never replays a purged message: a position
//     before the purge fails with position_expired, one in the old stream (after a reset)
//     with stream_reset;
//   - live subscribers stay subscribed; after a reset their next message carries the new
//     stream_id and serial 1, which clients adopt as their position (a client that
//     reconnects before that resumes from the old stream and gets stream_reset);
//   - mutable messages go with their creates: a reset deletes every one of the channel's, a
//     purge those created before the cut; mutating one then answers 404;
//   - with a Postgres store shared by several nodes, one request acts for all of them: the
//     store is shared and the other nodes drop their hot buffers on the cluster envelope.

// HistoryAdmin is the optional part of History behind the operator endpoints; history.Memory
// and history.Postgres implement it (history/historytest checks both). Both operations are
// atomic with the channel's appends and mutations, from any node sharing the store.
type HistoryAdmin interface {
	// Reset deletes every message and mutable message of the channel and starts a new stream:
	// a new stream id, serials from 1 again.
	Reset(ctx context.Context, appID, channel string) (HistoryReset, error)
	// Purge deletes the channel's oldest messages (and the mutable messages they created):
	// all of them, those below BeforeSerial, or every one up to the last published before
	// BeforeMs. What remains is still a contiguous run of serials ending at the head; the
	// stream and its serials go on.
	Purge(ctx context.Context, appID, channel string, p PurgeRequest) (HistoryPurge, error)
}

// PurgeMode is what a purge deletes.
type PurgeMode string

// Purge modes (Sockudo's names).
const (
	PurgeAll          PurgeMode = "all"
	PurgeBeforeSerial PurgeMode = "before_serial"
	PurgeBeforeTime   PurgeMode = "before_time_ms"
)

// PurgeRequest selects the messages a purge deletes. BeforeSerial is used with
// PurgeBeforeSerial, BeforeMs (Unix milliseconds) with PurgeBeforeTime.
type PurgeRequest struct {
	Mode         PurgeMode
	BeforeSerial uint64
	BeforeMs     int64
}

// HistoryReset is what a reset did.
type HistoryReset struct {
	// PreviousStreamID is the stream that was dropped ("" when the channel had none).
	PreviousStreamID string
	// NewStreamID is the stream the channel's next message starts.
	NewStreamID string
	// PurgedMessages and PurgedBytes are the retained messages deleted and their size.
	PurgedMessages int64
	PurgedBytes    int64
	// State is the stream after the reset.
	State protocol.StreamState
}

// HistoryPurge is what a purge did.
type HistoryPurge struct {
	// Cut is the first serial kept: every message below it is gone.
	Cut uint64
	// PurgedMessages and PurgedBytes are the retained messages deleted and their size.
	PurgedMessages int64
	PurgedBytes    int64
	// State is the stream after the purge.
	State protocol.StreamState
}

// HistoryStream is GET .../history/state's "stream" (Sockudo's stream inspection).
type HistoryStream struct {
	StreamID   *string            `json:"stream_id"`
	NextSerial uint64             `json:"next_serial"`
	Retained   HistoryRetained    `json:"retained"`
	State      HistoryStreamState `json:"state"`
}

// HistoryRetained is what the store keeps of a channel.
type HistoryRetained struct {
	StreamID      *string `json:"stream_id"`
	Retained      int64   `json:"retained_messages"`
	RetainedBytes int64   `json:"retained_bytes"`
	OldestSerial  *uint64 `json:"oldest_available_serial"`
	NewestSerial  *uint64 `json:"newest_available_serial"`
	OldestMs      *int64  `json:"oldest_available_published_at_ms"`
	NewestMs      *int64  `json:"newest_available_published_at_ms"`
}

// HistoryStateResult is the answer of GET .../history/state.
type HistoryStateResult struct {
	Channel string        `json:"channel"`
	Stream  HistoryStream `json:"stream"`
}

// HistoryResetResult is the answer of a reset (POST .../history/reset).
type HistoryResetResult struct {
	OK               bool          `json:"ok"`
	Operation        string        `json:"operation"`
	Channel          string        `json:"channel"`
	Reason           string        `json:"reason"`
	RequestedBy      *string       `json:"requested_by"`
	PreviousStreamID *string       `json:"previous_stream_id"`
	NewStreamID      string        `json:"new_stream_id"`
	PurgedMessages   int64         `json:"purged_messages"`
	PurgedBytes      int64         `json:"purged_bytes"`
	Stream           HistoryStream `json:"stream"`
}

// HistoryPurgeResult is the answer of a purge (POST .../history/purge, DELETE .../history).
type HistoryPurgeResult struct {
	OK             bool          `json:"ok"`
	Operation      string        `json:"operation"`
	Channel        string        `json:"channel"`
	Mode           PurgeMode     `json:"mode"`
	BeforeSerial   *uint64       `json:"before_serial"`
	BeforeTimeMs   *int64        `json:"before_time_ms"`
	Reason         string        `json:"reason"`
	RequestedBy    *string       `json:"requested_by"`
	PurgedMessages int64         `json:"purged_messages"`
	PurgedBytes    int64         `json:"purged_bytes"`
	Stream         HistoryStream `json:"stream"`
}

// Operator is who asked for a reset or purge, and why (logged and echoed in the answer).
type Operator struct {
	Reason      string
	RequestedBy string
}

// historyApp resolves an operator request: the app, a valid channel that keeps history, and
// a store that can reset and purge.
func (h *Hub) historyApp(appID, channel string) (*appState, *HistoryError) {
	a, ok := h.byID[appID]
	if !ok {
		return nil, histErr(404, "app_not_found", "Unknown app")
	}
	if err := protocol.ValidateChannelName(channel, a.cfg.MaxChannelNameLength); err != nil {
		return nil, histErr(400, "invalid_input", err.Message)
	}
	if h.history == nil || !a.cfg.HistoryFor(channel) {
		return nil, histErr(422, "feature_disabled", "History is not enabled for channel "+protocol.Truncate(channel, 200))
	}
	return a, nil
}

// HistoryState answers GET .../history/state: the channel's stream, what is retained and
// the stream's health on this node.
func (h *Hub) HistoryState(ctx context.Context, appID, channel string) (*HistoryStateResult, *HistoryError) {
	a, herr := h.historyApp(appID, channel)
	if herr != nil {
		return nil, herr
	}
	st, err := h.history.State(ctx, appID, channel)
	if err != nil {
		return nil, histErr(503, "persistence_unavailable", "History store unavailable: "+err.Error())
	}
	return &HistoryStateResult{Channel: channel, Stream: a.inspect(channel, st)}, nil
}

// inspect builds the stream inspection of st.
func (a *appState) inspect(channel string, st protocol.StreamState) HistoryStream {
	c := continuityOf(st)
	return HistoryStream{StreamID: c.StreamID, NextSerial: st.HeadSerial + 1, State: a.streamState(channel, st),
		Retained: HistoryRetained{StreamID: c.StreamID, Retained: c.Retained, RetainedBytes: c.RetainedBytes,
			OldestSerial: c.OldestSerial, NewestSerial: c.NewestSerial, OldestMs: c.OldestMs, NewestMs: c.NewestMs}}
}

// admin returns the store's HistoryAdmin, or the 501 when it has none.
func (h *Hub) admin() (HistoryAdmin, *HistoryError) {
	adm, ok := h.history.(HistoryAdmin)
	if !ok {
		return nil, histErr(501, "not_implemented", "This history store cannot reset or purge streams")
	}
	return adm, nil
}

// ResetHistory deletes every message of the channel and starts a new stream (see the top of
// this file for what that means for resume, subscribers and mutable messages).
func (h *Hub) ResetHistory(ctx context.Context, appID, channel string, op Operator) (*HistoryResetResult, *HistoryError) {
	a, herr := h.historyApp(appID, channel)
	if herr != nil {
		return nil, herr
	}
	adm, herr := h.admin()
	if herr != nil {
		return nil, herr
	}
	// With the channel quiet on this node (exclusive): no message of this node is between its
	// serial and its delivery while the stream changes.
	unlock := a.exclusive(channel)
	res, err := adm.Reset(ctx, appID, channel)
	if err == nil {
		change := HistoryChange{Reset: true, Stream: res.NewStreamID}
		a.historyChanged(channel, change)
		a.clusterHistory(channel, change)
	}
	unlock()
	if err != nil {
		return nil, h.adminError("reset", appID, channel, err)
	}
	h.log.Info("history reset", zap.String("app_id", appID), zap.String("channel", channel),
		zap.String("previous_stream_id", res.PreviousStreamID), zap.String("new_stream_id", res.NewStreamID),
		zap.Int64("purged_messages", res.PurgedMessages), zap.String("reason", op.Reason), zap.String("requested_by", op.RequestedBy))
	out := &HistoryResetResult{OK: true, Operation: "reset", Channel: channel, Reason: op.Reason, RequestedBy: strp(op.RequestedBy),
		PreviousStreamID: strp(res.PreviousStreamID), NewStreamID: res.NewStreamID, PurgedMessages: res.PurgedMessages,
		PurgedBytes: res.PurgedBytes, Stream: a.inspect(channel, res.State)}
	return out, nil
}

// PurgeHistory deletes the channel's oldest messages (see HistoryAdmin.Purge and the top of
// this file).
func (h *Hub) PurgeHistory(ctx context.Context, appID, channel string, p PurgeRequest, op Operator) (*HistoryPurgeResult, *HistoryError) {
	a, herr := h.historyApp(appID, channel)
	if herr != nil {
		return nil, herr
	}
	switch p.Mode {
	case PurgeAll, PurgeBeforeSerial, PurgeBeforeTime:
	default:
		return nil, histErr(400, "invalid_input", "mode must be all, before_serial or before_time_ms")
	}
	adm, herr := h.admin()
	if herr != nil {
		return nil, herr
	}
	unlock := a.exclusive(channel)
	res, err := adm.Purge(ctx, appID, channel, p)
	if err == nil {
		change := HistoryChange{Stream: res.State.StreamID, Cut: res.Cut}
		a.historyChanged(channel, change)
		a.clusterHistory(channel, change)
	}
	unlock()
	if err != nil {
		return nil, h.adminError("purge", appID, channel, err)
	}
	h.log.Info("history purged", zap.String("app_id", appID), zap.String("channel", channel), zap.String("mode", string(p.Mode)),
		zap.Uint64("cut", res.Cut), zap.Int64("purged_messages", res.PurgedMessages), zap.String("reason", op.Reason),
		zap.String("requested_by", op.RequestedBy))
	out := &HistoryPurgeResult{OK: true, Operation: "purge", Channel: channel, Mode: p.Mode, Reason: op.Reason,
		RequestedBy: strp(op.RequestedBy), PurgedMessages: res.PurgedMessages, PurgedBytes: res.PurgedBytes, Stream: a.inspect(channel, res.State)}
	switch p.Mode {
	case PurgeBeforeSerial:
		out.BeforeSerial = &p.BeforeSerial
	case PurgeBeforeTime:
		out.BeforeTimeMs = &p.BeforeMs
	}
	return out, nil
}

// adminError maps a store failure of a reset or purge.
func (h *Hub) adminError(what, appID, channel string, err error) *HistoryError {
	h.log.Warn("history "+what+" failed", zap.String("app_id", appID), zap.String("channel", channel), zap.Error(err))
	if errors.Is(err, ErrHistoryUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return histErr(503, "persistence_unavailable", "History store unavailable: retry later")
	}
	return histErr(500, "internal_error", "Internal server error")
}

// historyChanged makes this node forget what a reset or purge removed: the channel's hot
// resume buffer (all of it after a reset, the purged serials otherwise) and, after a reset,
// its degraded mark (the new stream starts healthy, as in Sockudo).
func (a *appState) historyChanged(channel string, hc HistoryChange) {
	r := &a.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if hc.Reset {
		delete(r.hot, channel)
		delete(r.degraded, channel)
		return
	}
	ring := r.hot[channel]
	if ring == nil {
		return
	}
	if ring.streamID != hc.Stream {
		delete(r.hot, channel)
		return
	}
	i := 0
	for i < len(ring.msgs) && ring.msgs[i].Serial < hc.Cut {
		i++
	}
	ring.msgs = append(ring.msgs[:0], ring.msgs[i:]...)
}

// ParsePurgeMode reads a purge mode ("" is all).
func ParsePurgeMode(s string) (PurgeMode, bool) {
	switch m := PurgeMode(s); m {
	case "":
		return PurgeAll, true
	case PurgeAll, PurgeBeforeSerial, PurgeBeforeTime:
		return m, true
	}
	return "", false
}
