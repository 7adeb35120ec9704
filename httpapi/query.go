package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// queryError maps an error of a hub query, which only fails for an unknown app (the
// signature check already found the app, so this is an internal error).
func (a *api) queryError(appID string, err error) *apiError {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return badRequest("%s", pe.Message)
	}
	a.log.Error("channel query failed", zap.String("app_id", appID), zap.Error(err))
	return errInternal
}

// getChannels answers GET /apps/{appID}/channels?filter_by_prefix=&info=: the occupied
// channels, {"channels":{"<name>":{...}}}. info=user_count needs filter_by_prefix=presence-.
func (a *api) getChannels(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	prefix := s.param("filter_by_prefix")
	info := splitInfo(s.param("info"))
	if info["user_count"] && !strings.HasPrefix(prefix, "presence-") {
		fail(w, badRequest("info=user_count is only available for presence channels: add filter_by_prefix=presence-"))
		return
	}
	list, err := a.hub.Channels(s.app.ID, prefix)
	if err != nil {
		fail(w, a.queryError(s.app.ID, err))
		return
	}
	out := make(map[string]channelCounts, len(list))
	for _, c := range list {
		var cc channelCounts
		if info["subscription_count"] {
			cc.SubscriptionCount = &c.SubscriptionCount
		}
		if info["user_count"] {
			cc.UserCount = &c.UserCount
		}
		out[c.Name] = cc
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
}

// channelParam returns the validated {channel} path parameter.
func channelParam(r *http.Request, maxLen int) (string, *apiError) {
	name, err := pathParam(r, "channel")
	if err != nil {
		return "", badRequest("Invalid channel name in the path: %v", err)
	}
	if perr := protocol.ValidateChannelName(name, maxLen); perr != nil {
		return "", channelError(name, perr)
	}
	return name, nil
}

// channelBody is the answer of GET /apps/{appID}/channels/{channel}.
type channelBody struct {
	Occupied          bool       `json:"occupied"`
	SubscriptionCount *int       `json:"subscription_count,omitempty"`
	UserCount         *int       `json:"user_count,omitempty"`
	Cache             *cacheBody `json:"cache,omitempty"`
}

// cacheBody is the last event of a cache channel: its wire frame and the seconds it has left.
type cacheBody struct {
	Data string `json:"data"`
	TTL  int    `json:"ttl"`
}

// getChannel answers GET /apps/{appID}/channels/{channel}?info=subscription_count,user_count,cache.
func (a *api) getChannel(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, aerr := channelParam(r, s.app.MaxChannelNameLength)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	info := splitInfo(s.param("info"))
	class := protocol.Classify(name)
	if info["user_count"] && class.Type != protocol.Presence {
		fail(w, badRequest("info=user_count is only available for presence channels, not %q", protocol.Truncate(name, 64)))
		return
	}
	ci, err := a.hub.Channel(s.app.ID, name)
	if err != nil {
		fail(w, a.queryError(s.app.ID, err))
		return
	}
	out := channelBody{Occupied: ci.Occupied}
	if info["subscription_count"] {
		out.SubscriptionCount = &ci.SubscriptionCount
	}
	if info["user_count"] {
		out.UserCount = &ci.UserCount
	}
	if info["cache"] && class.Cache {
		if frame, ttl, ok := a.hub.CachedEvent(s.app.ID, name); ok {
			out.Cache = &cacheBody{Data: string(frame), TTL: int(math.Ceil(ttl.Seconds()))}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// user is one member of GET /apps/{appID}/channels/{channel}/users.
type user struct {
	ID string `json:"id"`
}

// getUsers answers GET /apps/{appID}/channels/{channel}/users: {"users":[{"id":"1"},...]},
// presence channels only.
func (a *api) getUsers(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, aerr := channelParam(r, s.app.MaxChannelNameLength)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	if protocol.Classify(name).Type != protocol.Presence {
		fail(w, badRequest("Only presence channels support this endpoint, not %q", protocol.Truncate(name, 64)))
		return
	}
	ids, err := a.hub.Users(s.app.ID, name)
	if err != nil {
		fail(w, a.queryError(s.app.ID, err))
		return
	}
	users := make([]user, len(ids))
	for i, id := range ids {
		users[i] = user{ID: id}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

// terminate answers POST /apps/{appID}/users/{userID}/terminate_connections with {}: every
// connection of that user on this node is closed with 4009.
func (a *api) terminate(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	userID, err := pathParam(r, "userID")
	if err != nil || userID == "" {
		fail(w, badRequest("Invalid user id in the path"))
		return
	}
	n := a.hub.TerminateUserConnections(s.app.ID, userID)
	a.log.Debug("terminated user connections", zap.String("app_id", s.app.ID), zap.String("user_id", userID), zap.Int("connections", n))
	writeJSON(w, http.StatusOK, struct{}{})
}
