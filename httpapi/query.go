package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/pushwire/pushwire/protocol"
)

func (a *api) getChannels(w http.ResponseWriter, r *http.Request) {
	app := appOf(r)
	prefix := r.URL.Query().Get("filter_by_prefix")
	info := splitInfo(r.URL.Query().Get("info"))
	if info["user_count"] && !strings.HasPrefix(prefix, "presence-") {
		fail(w, badRequest("info=user_count is only available for presence channels: add filter_by_prefix=presence-"))
		return
	}
	list, err := a.hub.Channels(app.ID, prefix)
	if err != nil {
		fail(w, protocolError(err))
		return
	}
	out := map[string]map[string]int{}
	for _, c := range list {
		m := map[string]int{}
		if info["user_count"] {
			m["user_count"] = c.UserCount
		}
		if info["subscription_count"] {
			m["subscription_count"] = c.SubscriptionCount
		}
		out[c.Name] = m
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
}

// channelParam returns the validated {channel} path parameter.
func channelParam(r *http.Request, maxLen int) (string, *apiError) {
	name, err := url.PathUnescape(chi.URLParam(r, "channel"))
	if err != nil {
		return "", badRequest("Invalid channel name in path: %v", err)
	}
	if perr := protocol.ValidateChannelName(name, maxLen); perr != nil {
		return "", badRequest("%s", perr.Message)
	}
	return name, nil
}

func (a *api) getChannel(w http.ResponseWriter, r *http.Request) {
	app := appOf(r)
	name, aerr := channelParam(r, app.MaxChannelNameLength)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	info := splitInfo(r.URL.Query().Get("info"))
	class := protocol.Classify(name)
	if info["user_count"] && class.Type != protocol.Presence {
		fail(w, badRequest("info=user_count is only available for presence channels"))
		return
	}
	ci, err := a.hub.Channel(app.ID, name)
	if err != nil {
		fail(w, protocolError(err))
		return
	}
	out := map[string]any{"occupied": ci.Occupied}
	if info["subscription_count"] {
		out["subscription_count"] = ci.SubscriptionCount
	}
	if info["user_count"] {
		out["user_count"] = ci.UserCount
	}
	if info["cache"] && class.Cache {
		if frame, ttl, ok := a.hub.CachedEvent(app.ID, name); ok {
			out["cache"] = map[string]any{"data": string(frame), "ttl": int(ttl.Seconds())}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) getUsers(w http.ResponseWriter, r *http.Request) {
	app := appOf(r)
	name, aerr := channelParam(r, app.MaxChannelNameLength)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	if protocol.Classify(name).Type != protocol.Presence {
		fail(w, badRequest("Only presence channels support this endpoint"))
		return
	}
	ids, err := a.hub.Users(app.ID, name)
	if err != nil {
		fail(w, protocolError(err))
		return
	}
	users := make([]map[string]string, len(ids))
	for i, id := range ids {
		users[i] = map[string]string{"id": id}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (a *api) terminate(w http.ResponseWriter, r *http.Request) {
	app := appOf(r)
	user, err := url.PathUnescape(chi.URLParam(r, "userID"))
	if err != nil || user == "" {
		fail(w, badRequest("user id is required"))
		return
	}
	a.hub.TerminateUserConnections(app.ID, user)
	writeJSON(w, http.StatusOK, struct{}{})
}
