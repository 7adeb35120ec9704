package httpapi

import (
	"net/http"
	"strconv"

	"github.com/pushwire/pushwire/channels"
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
	dir, ok := channels.ParseHistoryDirection(s.param("direction"))
	if !ok {
		fail(w, badRequest("direction must be newest_first or oldest_first"))
		return
	}
	req := channels.HistoryRequest{Direction: dir, Cursor: s.param("cursor")}
	if v := s.param("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail(w, badRequest("limit must be a positive integer"))
			return
		}
		req.Limit = min(n, channels.MaxHistoryPage)
	}
	for _, p := range []struct {
		names []string
		dst   *uint64
	}{{[]string{"start_serial", "start"}, &req.StartSerial}, {[]string{"end_serial", "end"}, &req.EndSerial}} {
		for _, n := range p.names {
			if v := s.param(n); v != "" {
				u, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					fail(w, badRequest("%s must be a non-negative integer", n))
					return
				}
				*p.dst = u
			}
		}
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"start_time_ms", &req.StartMs}, {"end_time_ms", &req.EndMs}} {
		if v := s.param(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				fail(w, badRequest("%s must be a Unix time in milliseconds", p.name))
				return
			}
			*p.dst = n
		}
	}
	res, herr := a.hub.ReadHistory(r.Context(), s.app.ID, name, req)
	if herr != nil {
		writeError(w, herr.Status, herr.Kind, herr.Message)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
