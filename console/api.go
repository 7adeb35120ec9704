package console

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// snapshotBody is what a viewer sees of its app: counts on this node, and the occupied
// channels (cluster-wide when clustered) with the members of presence channels.
type snapshotBody struct {
	AppID    string     `json:"app_id"`
	TimeMs   int64      `json:"t"`
	Viewers  int        `json:"viewers"`
	Counts   counts     `json:"counts"`
	Channels []chanInfo `json:"channels"`
	// Truncated: more channels are occupied than listed.
	Truncated bool `json:"truncated,omitempty"`
}

type counts struct {
	Connections              int `json:"connections"`
	AuthenticatedConnections int `json:"authenticated_connections"`
	Users                    int `json:"users"`
	Channels                 int `json:"channels"`
	Subscriptions            int `json:"subscriptions"`
	PresenceChannels         int `json:"presence_channels"`
	PresenceMembers          int `json:"presence_members"`
}

type chanInfo struct {
	Name          string   `json:"name"`
	Subscriptions int      `json:"subscriptions"`
	Users         int      `json:"users,omitempty"`
	Members       []string `json:"members,omitempty"`
}

// snapshot builds the app's snapshot as JSON.
func (c *Console) snapshot(appID string) []byte {
	out := snapshotBody{AppID: appID, TimeMs: c.now().UnixMilli(), Viewers: int(c.watching[appID].Load()), Channels: []chanInfo{}}
	hub := c.hub.Load()
	if hub == nil {
		b, _ := json.Marshal(out)
		return b
	}
	if st, err := hub.Stats(appID); err == nil {
		out.Counts = counts{Connections: st.Connections, AuthenticatedConnections: st.AuthenticatedConnections, Users: st.Users,
			Channels: st.Channels, Subscriptions: st.Subscriptions, PresenceChannels: st.PresenceChannels, PresenceMembers: st.PresenceMembers}
	}
	list, _ := hub.Channels(appID, "")
	if len(list) > maxListed {
		list, out.Truncated = list[:maxListed], true
	}
	for _, ch := range list {
		ci := chanInfo{Name: ch.Name, Subscriptions: ch.SubscriptionCount, Users: ch.UserCount}
		if strings.HasPrefix(ch.Name, "presence-") {
			if users, err := hub.Users(appID, ch.Name); err == nil {
				ci.Members = users[:min(len(users), maxListed)]
			}
		}
		out.Channels = append(out.Channels, ci)
	}
	b, _ := json.Marshal(out)
	return b
}

// session answers GET api/session: which app this browser signed in to, and the limits of
// the publish form.
func (c *Console) session(w http.ResponseWriter, _ *http.Request, appID string) {
	a := c.apps[appID]
	writeJSON(w, http.StatusOK, map[string]any{"app_id": appID, "key": a.Key, "max_payload_kb": a.MaxEventPayloadKB})
}

// snapshotJSON answers GET api/snapshot with one snapshot.
func (c *Console) snapshotJSON(w http.ResponseWriter, _ *http.Request, appID string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(c.snapshot(appID))
}

// publishRequest is the test-event form.
type publishRequest struct {
	Channel string `json:"channel"`
	Event   string `json:"event"`
	Data    string `json:"data"`
}

// publish answers POST api/publish {"channel","event","data"}: the event goes to the
// channel's subscribers as an HTTP API publish would send it (data as a string), and the
// answer carries its serial when the channel keeps history.
func (c *Console) publish(w http.ResponseWriter, r *http.Request, appID string) {
	a := c.apps[appID]
	limit := int64(a.MaxEventPayloadKB) << 10
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+4<<10))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errBody{"Could not read the request"})
		return
	}
	var in publishRequest
	if err := json.Unmarshal(body, &in); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody{"Expected {\"channel\",\"event\",\"data\"} (data a string)"})
		return
	}
	if int64(len(in.Data)) > limit {
		writeJSON(w, http.StatusRequestEntityTooLarge, errBody{"data is larger than the app's max_event_payload_kb"})
		return
	}
	hub := c.hub.Load()
	if hub == nil {
		writeJSON(w, http.StatusServiceUnavailable, errBody{"Not ready"})
		return
	}
	acks, err := hub.PublishAcks(appID, channels.Event{Name: in.Event, Channels: []string{in.Channel}, Data: in.Data})
	if err != nil {
		msg := err.Error()
		var perr *protocol.Error
		if errors.As(err, &perr) {
			msg = perr.Message
		}
		writeJSON(w, http.StatusBadRequest, errBody{msg})
		return
	}
	res := map[string]any{"ok": true, "channel": in.Channel}
	if len(acks) == 1 && acks[0].Serial > 0 {
		res["serial"] = acks[0].Serial
	}
	writeJSON(w, http.StatusOK, res)
}
