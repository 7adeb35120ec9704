package httpapi

import (
	"net/http"
	"strconv"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// getHistory answers GET /apps/{appID}/channels/{channel}/history with one page of the
// channel's stored messages: limit (default and max 100), direction (newest_first or
// oldest_first and their aliases), cursor (the next_cursor of the previous page, with the
// same direction and bounds), start_serial/end_serial and start_time_ms/end_time_ms
// (inclusive; start/end are aliases of the serial bounds). 422 when the channel keeps no
// history, 503 when the store is unavailable.
func (a *api) getHistory(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, aerr := channelParam(r, s.app.MaxChannelNameLength)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	req, aerr := parseHistoryQuery(s.query.Params)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	res, herr := a.hub.ReadHistory(r.Context(), s.app.ID, name, req)
	if herr != nil {
		writeError(w, herr.Status, herr.Kind, herr.Message)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// parseHistoryQuery reads the page parameters of a history read (messages or presence) from
// the signed query: direction, cursor, limit, start_serial/end_serial (aliases start/end),
// start_time_ms/end_time_ms.
func parseHistoryQuery(params map[string]string) (channels.HistoryRequest, *apiError) {
	dir, ok := protocol.ParseHistoryDirection(params["direction"])
	if !ok {
		return channels.HistoryRequest{}, badRequest("direction must be newest_first or oldest_first")
	}
	req := channels.HistoryRequest{Direction: dir, Cursor: params["cursor"]}
	if v := params["limit"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return req, badRequest("limit must be a positive integer")
		}
		req.Limit = min(n, channels.MaxHistoryPage)
	}
	for _, p := range []struct {
		names []string
		dst   *uint64
	}{{[]string{"start_serial", "start"}, &req.StartSerial}, {[]string{"end_serial", "end"}, &req.EndSerial}} {
		for _, n := range p.names {
			if v := params[n]; v != "" {
				u, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return req, badRequest("%s must be a non-negative integer", n)
				}
				*p.dst = u
			}
		}
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"start_time_ms", &req.StartMs}, {"end_time_ms", &req.EndMs}} {
		if v := params[p.name]; v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return req, badRequest("%s must be a Unix time in milliseconds", p.name)
			}
			*p.dst = n
		}
	}
	return req, nil
}
