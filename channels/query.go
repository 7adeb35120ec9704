package channels

import (
	"sort"
	"strings"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// ChannelInfo describes one channel on this node.
type ChannelInfo struct {
	Name string
	// Occupied is true when at least one connection is subscribed.
	Occupied bool
	// SubscriptionCount is the number of subscribed connections.
	SubscriptionCount int
	// UserCount is the number of distinct presence members (presence channels only).
	UserCount int
}

// Channels lists the occupied channels of an app whose names start with prefix, by name.
func (h *Hub) Channels(appID, prefix string) ([]ChannelInfo, error) {
	app, ok := h.byID[appID]
	if !ok {
		return nil, ErrUnknownApp
	}
	var out []ChannelInfo
	for i := range app.shards {
		s := &app.shards[i]
		s.mu.RLock()
		for name, ch := range s.channels {
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			ch.mu.RLock()
			if len(ch.subs) > 0 {
				out = append(out, ChannelInfo{Name: name, Occupied: true, SubscriptionCount: len(ch.subs), UserCount: len(ch.members)})
			}
			ch.mu.RUnlock()
		}
		s.mu.RUnlock()
	}
	out = app.clusterChannels(out, prefix)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Channel describes one channel of an app; an unoccupied channel has zero counts.
func (h *Hub) Channel(appID, name string) (ChannelInfo, error) {
	app, ok := h.byID[appID]
	if !ok {
		return ChannelInfo{}, ErrUnknownApp
	}
	info := ChannelInfo{Name: name}
	if ch := app.lookup(name); ch != nil {
		ch.mu.RLock()
		info.SubscriptionCount = len(ch.subs)
		info.UserCount = len(ch.members)
		info.Occupied = len(ch.subs) > 0
		ch.mu.RUnlock()
	}
	return app.clusterChannel(info), nil
}

// Users returns the user ids present in a presence channel, sorted.
func (h *Hub) Users(appID, name string) ([]string, error) {
	app, ok := h.byID[appID]
	if !ok {
		return nil, ErrUnknownApp
	}
	var ids []string
	if ch := app.lookup(name); ch != nil {
		ch.mu.RLock()
		for id := range ch.members {
			ids = append(ids, id)
		}
		ch.mu.RUnlock()
	}
	sort.Strings(ids)
	return app.clusterUsers(name, ids), nil
}

// CachedEvent returns the wire frame cached for a cache channel and its remaining TTL.
func (h *Hub) CachedEvent(appID, name string) ([]byte, time.Duration, bool) {
	app, ok := h.byID[appID]
	if !ok {
		return nil, 0, false
	}
	return app.cached(name)
}

// Connections returns the number of open connections of an app on this node.
func (h *Hub) Connections(appID string) int {
	app, ok := h.byID[appID]
	if !ok {
		return 0
	}
	return int(app.conns.Load())
}

// OccupiedChannels returns how many of the app's channels have a subscriber on this node: a
// maintained counter, O(1) (0 for an unknown app).
func (h *Hub) OccupiedChannels(appID string) int {
	app, ok := h.byID[appID]
	if !ok {
		return 0
	}
	return int(app.occupied.Load())
}

// AppStats are an app's counts on this node, as GET /stats reports them.
type AppStats struct {
	// Connections are the open connections; AuthenticatedConnections those signed in
	// (pusher:signin), by Users distinct user ids.
	Connections, AuthenticatedConnections, Users int
	// Channels are the occupied channels and Subscriptions their subscriptions, presence
	// channels included; PresenceChannels, PresenceSubscriptions and PresenceMembers (distinct
	// users per channel, summed) count the presence channels alone.
	Channels, Subscriptions, PresenceChannels, PresenceSubscriptions, PresenceMembers int
}

// Stats counts an app's connections, users and channel occupancy on this node.
func (h *Hub) Stats(appID string) (AppStats, error) {
	app, ok := h.byID[appID]
	if !ok {
		return AppStats{}, ErrUnknownApp
	}
	st := AppStats{Connections: int(app.conns.Load())}
	for i := range app.shards {
		s := &app.shards[i]
		s.mu.RLock()
		for _, ch := range s.channels {
			ch.mu.RLock()
			if n := len(ch.subs); n > 0 {
				st.Channels++
				st.Subscriptions += n
				if ch.class.Type == protocol.Presence {
					st.PresenceChannels++
					st.PresenceSubscriptions += n
					st.PresenceMembers += len(ch.members)
				}
			}
			ch.mu.RUnlock()
		}
		s.mu.RUnlock()
	}
	app.usersMu.Lock()
	st.Users = len(app.signedIn)
	for _, conns := range app.signedIn {
		st.AuthenticatedConnections += len(conns)
	}
	app.usersMu.Unlock()
	return st, nil
}

// HistoryStats describe the history store as this node uses it.
type HistoryStats struct {
	// Enabled: a store is configured and at least one app keeps history.
	Enabled bool
	// DegradedChannels are channels whose messages went out without a serial since the
	// store failed (no resume across that point can be proven complete).
	DegradedChannels int
}

// HistoryStats reports whether history is on and how many channels are degraded.
func (h *Hub) HistoryStats() HistoryStats {
	var st HistoryStats
	for _, app := range h.byID {
		if h.history != nil && (app.cfg.EnableHistory == nil || *app.cfg.EnableHistory) {
			st.Enabled = true
		}
		app.rec.mu.Lock()
		st.DegradedChannels += len(app.rec.degraded)
		app.rec.mu.Unlock()
	}
	return st
}
