package webhook

import (
	"slices"

	"github.com/pushwire/pushwire/channels"
)

// HubChecker adapts a hub to Checker, answering from its current local state. An unknown
// app counts as unoccupied and without members.
func HubChecker(h *channels.Hub) Checker { return hubChecker{h} }

type hubChecker struct{ h *channels.Hub }

// Occupied implements Checker with Hub.Channel.
func (c hubChecker) Occupied(appID, channel string) bool {
	info, err := c.h.Channel(appID, channel)
	return err == nil && info.Occupied
}

// HasMember implements Checker with Hub.Users (sorted).
func (c hubChecker) HasMember(appID, channel, userID string) bool {
	ids, err := c.h.Users(appID, channel)
	if err != nil {
		return false
	}
	_, found := slices.BinarySearch(ids, userID)
	return found
}
