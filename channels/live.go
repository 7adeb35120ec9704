package channels

import (
	"slices"

	"github.com/pushwire/pushwire/protocol"
)

// UserOnChannel reports whether the user has a live socket subscribed to the channel: a
// presence member anywhere in the cluster, or one of the user's connections on this node
// (signed in or a presence member) subscribed to it. The push bridge asks it before pushing
// a realtime publish to a user. It takes the users and channel read locks briefly and does
// no I/O.
func (h *Hub) UserOnChannel(appID, channel, userID string) bool {
	app, ok := h.byID[appID]
	if !ok || userID == "" {
		return false
	}
	if protocol.Classify(channel).Type != protocol.Presence {
		// not a presence channel: only local connections can tell
	} else if ids, err := h.Users(appID, channel); err == nil && len(ids) > 0 {
		if _, found := slices.BinarySearch(ids, userID); found {
			return true
		}
	}
	app.usersMu.Lock()
	conns := make([]*Conn, 0, len(app.users[userID]))
	for c := range app.users[userID] {
		conns = append(conns, c)
	}
	app.usersMu.Unlock()
	if len(conns) == 0 {
		return false
	}
	ch := app.lookup(channel)
	if ch == nil {
		return false
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	for _, c := range conns {
		if _, ok := ch.subs[c]; ok {
			return true
		}
	}
	return false
}
