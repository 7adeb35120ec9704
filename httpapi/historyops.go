package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// The history operator endpoints (http-api §3.1), with Sockudo's shapes:
//
//	GET    /apps/{app_id}/channels/{channel}/history/state   the stream: id, next serial, retained range, health
//	POST   /apps/{app_id}/channels/{channel}/history/reset   every message gone, a new stream (serials from 1)
//	POST   /apps/{app_id}/channels/{channel}/history/purge   the oldest messages gone (mode all|before_serial|before_time_ms)
//	DELETE /apps/{app_id}/channels/{channel}/history         the same purge, its parameters in the signed query
//
// Reset and purge bodies must confirm what they do (confirm_channel = the channel of the path,
// confirm_operation = "reset" or "purge") and say why (reason, not blank); requested_by is
// optional. Sockudo's SDKs (sockudo-http-python's purge_channel_history) send the purge as
// POST .../history/purge; DELETE .../history is pushwire's spelling of it for callers with
// only a signed DELETE, and takes mode, before_serial, before_time_ms, reason and
// requested_by from the query (a DELETE's body is not covered by the signature).

// Limits of the operator fields.
const (
	maxReasonBytes      = 1024
	maxRequestedByBytes = 256
)

// historyOpBody is the body of a reset or purge.
type historyOpBody struct {
	ConfirmChannel   *string `json:"confirm_channel"`
	ConfirmOperation *string `json:"confirm_operation"`
	Reason           *string `json:"reason"`
	RequestedBy      *string `json:"requested_by"`
	Mode             *string `json:"mode"`
	BeforeSerial     *uint64 `json:"before_serial"`
	BeforeTimeMs     *int64  `json:"before_time_ms"`
}

// parseHistoryOp validates a reset (operation "reset") or purge ("purge") body for channel.
func parseHistoryOp(operation, channel string, body []byte) (channels.PurgeRequest, channels.Operator, *apiError) {
	var b historyOpBody
	if err := decodeJSON(body, &b); err != nil {
		return channels.PurgeRequest{}, channels.Operator{}, err
	}
	switch {
	case b.ConfirmChannel == nil:
		return channels.PurgeRequest{}, channels.Operator{}, badRequest("confirm_channel is required: the channel of the path, to confirm the %s", operation)
	case *b.ConfirmChannel != channel:
		return channels.PurgeRequest{}, channels.Operator{}, badRequest("confirm_channel must exactly match the channel path")
	case b.ConfirmOperation == nil || *b.ConfirmOperation != operation:
		return channels.PurgeRequest{}, channels.Operator{}, badRequest("confirm_operation must be %q", operation)
	}
	op, aerr := operator(b.Reason, b.RequestedBy)
	if aerr != nil {
		return channels.PurgeRequest{}, channels.Operator{}, aerr
	}
	if operation == "reset" {
		if b.Mode != nil || b.BeforeSerial != nil || b.BeforeTimeMs != nil {
			return channels.PurgeRequest{}, channels.Operator{}, badRequest("reset takes no mode, before_serial or before_time_ms (that is a purge)")
		}
		return channels.PurgeRequest{}, op, nil
	}
	if b.Mode == nil {
		return channels.PurgeRequest{}, channels.Operator{}, badRequest("mode is required: all, before_serial or before_time_ms")
	}
	p, aerr := purgeRequest(*b.Mode, b.BeforeSerial, b.BeforeTimeMs)
	return p, op, aerr
}

// operator validates reason (required, not blank) and requested_by.
func operator(reason, requestedBy *string) (channels.Operator, *apiError) {
	if reason == nil || strings.TrimSpace(*reason) == "" {
		return channels.Operator{}, badRequest("reason must not be empty")
	}
	if len(*reason) > maxReasonBytes {
		return channels.Operator{}, badRequest("reason is %d bytes, the limit is %d", len(*reason), maxReasonBytes)
	}
	op := channels.Operator{Reason: *reason}
	if requestedBy != nil {
		if len(*requestedBy) > maxRequestedByBytes {
			return channels.Operator{}, badRequest("requested_by is %d bytes, the limit is %d", len(*requestedBy), maxRequestedByBytes)
		}
		op.RequestedBy = *requestedBy
	}
	return op, nil
}

// purgeRequest checks a purge mode and its bound: exactly the bound the mode names.
func purgeRequest(mode string, beforeSerial *uint64, beforeMs *int64) (channels.PurgeRequest, *apiError) {
	m, ok := channels.ParsePurgeMode(mode)
	if !ok || mode == "" {
		return channels.PurgeRequest{}, badRequest("mode must be all, before_serial or before_time_ms, not %q", protocol.Truncate(mode, 32))
	}
	p := channels.PurgeRequest{Mode: m}
	switch m {
	case channels.PurgeAll:
		if beforeSerial != nil || beforeMs != nil {
			return p, badRequest("purge mode 'all' does not accept bounds")
		}
	case channels.PurgeBeforeSerial:
		if beforeSerial == nil || beforeMs != nil {
			return p, badRequest("purge mode 'before_serial' requires before_serial only")
		}
		p.BeforeSerial = *beforeSerial
	case channels.PurgeBeforeTime:
		if beforeMs == nil || beforeSerial != nil {
			return p, badRequest("purge mode 'before_time_ms' requires before_time_ms only")
		}
		if *beforeMs < 0 {
			return p, badRequest("before_time_ms must be a Unix time in milliseconds")
		}
		p.BeforeMs = *beforeMs
	}
	return p, nil
}

// channelOp is the handler of an operator route on the path's {channel}: run reads the rest
// of the request and asks the hub; its answer is written as JSON, its error as the envelope.
func (a *api) channelOp(run func(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := signedOf(r)
		name, aerr := channelParam(r, s.app.MaxChannelNameLength)
		var res any
		var herr *channels.HistoryError
		if aerr == nil {
			res, aerr, herr = run(r, s, name)
		}
		switch {
		case aerr != nil:
			fail(w, aerr)
		case herr != nil:
			writeError(w, herr.Status, herr.Kind, herr.Message)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}
}

// getHistoryState answers GET .../history/state.
func (a *api) getHistoryState(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	res, herr := a.hub.HistoryState(r.Context(), s.app.ID, channel)
	return res, nil, herr
}

// postHistoryReset answers POST .../history/reset.
func (a *api) postHistoryReset(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	_, op, aerr := parseHistoryOp("reset", channel, s.body)
	if aerr != nil {
		return nil, aerr, nil
	}
	res, herr := a.hub.ResetHistory(r.Context(), s.app.ID, channel, op)
	return res, nil, herr
}

// postHistoryPurge answers POST .../history/purge.
func (a *api) postHistoryPurge(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	p, op, aerr := parseHistoryOp("purge", channel, s.body)
	if aerr != nil {
		return nil, aerr, nil
	}
	res, herr := a.hub.PurgeHistory(r.Context(), s.app.ID, channel, p, op)
	return res, nil, herr
}

// deleteHistory answers DELETE .../history: a purge whose parameters are in the query
// (mode, default all; before_serial; before_time_ms; reason; requested_by).
func (a *api) deleteHistory(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	p, op, aerr := parseDeleteQuery(s.query.Params)
	if aerr != nil {
		return nil, aerr, nil
	}
	res, herr := a.hub.PurgeHistory(r.Context(), s.app.ID, channel, p, op)
	return res, nil, herr
}

// parseDeleteQuery reads the purge of a DELETE .../history from its signed query
// parameters. reason is optional here (the method says what happens); without one the log
// records "DELETE .../history".
func parseDeleteQuery(params map[string]string) (channels.PurgeRequest, channels.Operator, *apiError) {
	var beforeSerial *uint64
	var beforeMs *int64
	if v, ok := params["before_serial"]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return channels.PurgeRequest{}, channels.Operator{}, badRequest("before_serial must be a non-negative integer")
		}
		beforeSerial = &n
	}
	if v, ok := params["before_time_ms"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return channels.PurgeRequest{}, channels.Operator{}, badRequest("before_time_ms must be a Unix time in milliseconds")
		}
		beforeMs = &n
	}
	mode, ok := params["mode"]
	if !ok {
		mode = string(channels.PurgeAll)
		switch {
		case beforeSerial != nil && beforeMs == nil:
			mode = string(channels.PurgeBeforeSerial)
		case beforeMs != nil && beforeSerial == nil:
			mode = string(channels.PurgeBeforeTime)
		}
	}
	p, aerr := purgeRequest(mode, beforeSerial, beforeMs)
	if aerr != nil {
		return p, channels.Operator{}, aerr
	}
	reason := "DELETE .../history"
	if v, ok := params["reason"]; ok {
		reason = v
	}
	var requestedBy *string
	if v, ok := params["requested_by"]; ok {
		requestedBy = &v
	}
	op, aerr := operator(&reason, requestedBy)
	return p, op, aerr
}

// forceReconnect answers POST /apps/{appID}/users/{userID}/force_reconnect with
// {"ok":true}: every connection of that user, on every node, is closed with 4200 so its
// client reconnects at once (and may resume).
func (a *api) forceReconnect(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	userID, err := pathParam(r, "userID")
	if err != nil || userID == "" {
		fail(w, badRequest("Invalid user id in the path"))
		return
	}
	n := a.hub.ForceReconnectUser(s.app.ID, userID)
	a.log.Debug("forced user connections to reconnect", zap.String("app_id", s.app.ID), zap.String("user_id", userID), zap.Int("connections", n))
	writeRawJSON(w, http.StatusOK, okTrue)
}

// okTrue is Sockudo's {"ok":true} answer.
var okTrue = json.RawMessage(`{"ok":true}`)
