package channels

import (
	"sort"
	"strings"
	"time"
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
