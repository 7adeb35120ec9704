package httpapi

import (
	"net/http"
	"strconv"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/presencehistory"
)

// The presence-history endpoints (Sockudo's routes and shapes), for presence channels of
// apps with presence_history enabled:
//
//	GET  /apps/{app_id}/channels/{channel}/presence/history           one page of membership events
//	GET  /apps/{app_id}/channels/{channel}/presence/history/snapshot  the members at a serial or time
//	GET  /apps/{app_id}/channels/{channel}/presence/history/state     the stream: id, next serial, retained range, health
//	POST /apps/{app_id}/channels/{channel}/presence/history/reset     every event gone, a new stream (serials from 1)
//
// The page takes the parameters of GET .../history (direction, limit, cursor,
// start_serial/end_serial, start_time_ms/end_time_ms); the snapshot at_serial and at_time_ms
// (alias at), both inclusive, none for the latest; reset a body confirming it, as for
// .../history/reset. A channel that is not a presence channel is 400, an app without
// presence history 422 feature_disabled, a cursor of another channel or direction 400.
// The answers are presencehistory.Service's (Options.PresenceHistory); without one every
// route is 422 feature_disabled.

// noPresenceHistory is the answer when no presence-history service is wired in.
var noPresenceHistory = channels.NewHistoryError(422, "feature_disabled", "Presence history is disabled")

// getPresenceHistory answers GET .../presence/history.
func (a *api) getPresenceHistory(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	req, aerr := parseHistoryQuery(s.query.Params)
	if aerr != nil {
		return nil, aerr, nil
	}
	if a.presence == nil {
		return nil, nil, noPresenceHistory
	}
	res, herr := a.presence.Read(r.Context(), s.app.ID, channel, req)
	return res, nil, herr
}

// getPresenceSnapshot answers GET .../presence/history/snapshot.
func (a *api) getPresenceSnapshot(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	at, aerr := parseSnapshotQuery(s.query.Params)
	if aerr != nil {
		return nil, aerr, nil
	}
	if a.presence == nil {
		return nil, nil, noPresenceHistory
	}
	res, herr := a.presence.Snapshot(r.Context(), s.app.ID, channel, at)
	return res, nil, herr
}

// parseSnapshotQuery reads at_serial and at_time_ms (or its alias at).
func parseSnapshotQuery(params map[string]string) (presencehistory.SnapshotAt, *apiError) {
	var at presencehistory.SnapshotAt
	if v, ok := params["at_serial"]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return at, badRequest("at_serial must be a positive integer")
		}
		at.Serial = n
	}
	for _, name := range []string{"at", "at_time_ms"} {
		if v, ok := params[name]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return at, badRequest("%s must be a Unix time in milliseconds", name)
			}
			at.TimeMs = n
		}
	}
	return at, nil
}

// getPresenceState answers GET .../presence/history/state.
func (a *api) getPresenceState(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	if a.presence == nil {
		return nil, nil, noPresenceHistory
	}
	res, herr := a.presence.State(r.Context(), s.app.ID, channel)
	return res, nil, herr
}

// postPresenceReset answers POST .../presence/history/reset.
func (a *api) postPresenceReset(r *http.Request, s *signed, channel string) (any, *apiError, *channels.HistoryError) {
	_, op, aerr := parseHistoryOp("reset", channel, s.body)
	if aerr != nil {
		return nil, aerr, nil
	}
	if a.presence == nil {
		return nil, nil, noPresenceHistory
	}
	res, herr := a.presence.Reset(r.Context(), s.app.ID, channel, op)
	return res, nil, herr
}
