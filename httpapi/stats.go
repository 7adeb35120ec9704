package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/pushwire/pushwire/channels"
)

// statsBody is GET /stats, in Sockudo's shape (its operator stats handler): the host's
// memory, the history stores' status, totals and one entry per app. Every count is
// node-local. connections_with_meta is always 0: pushwire has no connection metadata.
type statsBody struct {
	Memory          hostMemory    `json:"memory"`
	History         historyStatus `json:"history"`
	PresenceHistory historyStatus `json:"presence_history"`
	Totals          totalStats    `json:"totals"`
	Apps            []appStats    `json:"apps"`
}

type hostMemory struct {
	Free    uint64  `json:"free"`
	Used    uint64  `json:"used"`
	Total   uint64  `json:"total"`
	Percent float64 `json:"percent"`
}

type historyStatus struct {
	Enabled               bool   `json:"enabled"`
	Backend               string `json:"backend"`
	StateAuthority        string `json:"state_authority"`
	DegradedChannels      int    `json:"degraded_channels"`
	ResetRequiredChannels int    `json:"reset_required_channels"`
	QueueDepth            int    `json:"queue_depth"`
}

type occupancy struct {
	Channels              int `json:"channels"`
	Subscriptions         int `json:"subscriptions"`
	PresenceChannels      int `json:"presence_channels"`
	PresenceSubscriptions int `json:"presence_subscriptions"`
	PresenceMembers       int `json:"presence_members"`
}

type appStats struct {
	AppID                    string    `json:"app_id"`
	Connections              int       `json:"connections"`
	AuthenticatedConnections int       `json:"authenticated_connections"`
	Users                    int       `json:"users"`
	ConnectionsWithMeta      int       `json:"connections_with_meta"`
	Occupancy                occupancy `json:"occupancy"`
}

type totalStats struct {
	Apps                     int       `json:"apps"`
	Connections              int       `json:"connections"`
	AuthenticatedConnections int       `json:"authenticated_connections"`
	Users                    int       `json:"users"`
	ConnectionsWithMeta      int       `json:"connections_with_meta"`
	Occupancy                occupancy `json:"occupancy"`
}

// stats answers GET /stats for the app the caller proved it holds: a request signed with
// that app's key and secret (Pusher's scheme over the path /stats), or the console's
// credential. One credential covers one app, so on a node serving several apps each sees
// only its own entry and totals (Sockudo's unauthenticated /stats shows every app).
func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	app, ok := a.callerStats(w, r, false)
	if !ok {
		return
	}
	h := a.hub.HistoryStats()
	hist := historyStatus{Backend: "disabled", StateAuthority: "disabled"}
	if h.Enabled {
		hist = historyStatus{Enabled: true, Backend: a.backend, StateAuthority: "in_memory", DegradedChannels: h.DegradedChannels}
		if a.backend != "memory" {
			hist.StateAuthority = "durable_store"
		}
	}
	writeJSON(w, http.StatusOK, statsBody{
		Memory:          readHostMemory(),
		History:         hist,
		PresenceHistory: historyStatus{Backend: "disabled", StateAuthority: "disabled"},
		Totals: totalStats{Apps: 1, Connections: app.Connections, AuthenticatedConnections: app.AuthenticatedConnections,
			Users: app.Users, Occupancy: app.Occupancy},
		Apps: []appStats{app},
	})
}

// appStats answers GET /apps/{id}/stats: the app's entry of /stats.
func (a *api) appStats(w http.ResponseWriter, r *http.Request) {
	if app, ok := a.callerStats(w, r, true); ok {
		writeJSON(w, http.StatusOK, app)
	}
}

// callerStats authenticates the request (statsCaller) and counts its app, or answers the
// error and reports false.
func (a *api) callerStats(w http.ResponseWriter, r *http.Request, pathApp bool) (appStats, bool) {
	id, aerr := a.statsCaller(r, pathApp)
	if aerr != nil {
		fail(w, aerr)
		return appStats{}, false
	}
	st, err := a.hub.Stats(id)
	if err != nil {
		fail(w, errInternal)
		return appStats{}, false
	}
	return toAppStats(id, st), true
}

// statsCaller returns the app the request is authenticated for: by signature when it
// carries auth_signature, else by the console credential. pathApp: the app must be the
// {appID} of the path.
func (a *api) statsCaller(r *http.Request, pathApp bool) (string, *apiError) {
	if a.console != nil && !strings.Contains(r.URL.RawQuery, "auth_signature") {
		id, ok := a.console(r)
		if !ok {
			return "", authFailed("Sign the request with an app's key and secret, or give the console credential (HTTP Basic: app id and the app's console token or secret)")
		}
		if want, err := pathParam(r, "appID"); pathApp && (err != nil || want != id) {
			return "", authFailed("The console credential is for another app")
		}
		return id, nil
	}
	s, aerr := a.verify(r, pathApp)
	if aerr != nil {
		return "", aerr
	}
	return s.app.ID, nil
}

func toAppStats(id string, st channels.AppStats) appStats {
	return appStats{AppID: id, Connections: st.Connections, AuthenticatedConnections: st.AuthenticatedConnections,
		Users: st.Users, Occupancy: occupancy{Channels: st.Channels, Subscriptions: st.Subscriptions,
			PresenceChannels: st.PresenceChannels, PresenceSubscriptions: st.PresenceSubscriptions,
			PresenceMembers: st.PresenceMembers}}
}

// readHostMemory reads the host's memory from /proc/meminfo (zeros where there is none):
// used is total minus available, as Sockudo reports it.
func readHostMemory() hostMemory {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return hostMemory{}
	}
	defer f.Close()
	return parseMeminfo(f)
}

// parseMeminfo reads MemTotal and MemAvailable (kB) from /proc/meminfo text.
func parseMeminfo(r io.Reader) hostMemory {
	var total, avail uint64
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > 1<<53 {
			continue
		}
		switch key {
		case "MemTotal":
			total = n * 1024
		case "MemAvailable":
			avail = n * 1024
		}
	}
	m := hostMemory{Total: total, Free: min(avail, total)}
	m.Used = total - m.Free
	if total > 0 {
		m.Percent = float64(m.Used) / float64(total) * 100
	}
	return m
}

// RoutePatterns lists the route patterns the API reports to Metrics.ObserveHTTP (besides
// "unmatched"), so their series can be exported before the first request.
func RoutePatterns() []string {
	var out []string
	_ = chi.Walk((&api{}).router(), func(_, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !slices.Contains(out, route) {
			out = append(out, route)
		}
		return nil
	})
	return out
}

// watching reports whether the tap wants the app's activity.
func (a *api) watching(appID string) bool { return a.tap != nil && a.tap.Watching(appID) }

// recordRefusal shows a refused signed request to a console watching the app it named.
func (a *api) recordRefusal(r *http.Request, aerr *apiError) {
	if a.tap == nil {
		return
	}
	app, ok := a.hub.AppByKey(r.URL.Query().Get("auth_key"))
	if !ok || !a.tap.Watching(app.ID) {
		return
	}
	a.tap.Record(channels.Activity{Kind: channels.ActError, AppID: app.ID, Code: aerr.status,
		Event: r.Method + " " + r.URL.Path, Detail: aerr.msg})
}

// serveRecordingErrors runs next and shows an error answer (4xx, 5xx) to the watching
// console, with the error message of its JSON envelope.
func (a *api) serveRecordingErrors(w http.ResponseWriter, r *http.Request, appID string, next http.Handler) {
	ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
	var body bytes.Buffer
	ww.Tee(&capped{&body, 4 << 10})
	next.ServeHTTP(ww, r)
	if ww.Status() < 400 {
		return
	}
	var e errorBody
	_ = json.Unmarshal(body.Bytes(), &e)
	a.tap.Record(channels.Activity{Kind: channels.ActError, AppID: appID, Code: ww.Status(),
		Event: r.Method + " " + r.URL.Path, Detail: e.Error})
}

// capped writes to w until n bytes were written, then drops the rest.
type capped struct {
	w *bytes.Buffer
	n int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.n - c.w.Len(); room > 0 {
		c.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
