package channels

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Observer is told about channel lifecycle events (webhooks and metrics consume them). The
// hub calls it after releasing its locks, from the goroutine that caused the event; methods
// must return quickly and never block (queue the work instead).
type Observer interface {
	// ChannelOccupied: the channel got its first subscriber on this node.
	ChannelOccupied(appID, channel string)
	// ChannelVacated: the channel lost its last subscriber on this node.
	ChannelVacated(appID, channel string)
	// MemberAdded: a user's first connection joined a presence channel.
	MemberAdded(appID, channel, userID string)
	// MemberRemoved: a user's last connection left a presence channel.
	MemberRemoved(appID, channel, userID string)
	// ClientEvent: a client event was relayed. userID is set on presence channels.
	ClientEvent(appID, channel, event string, data json.RawMessage, socketID, userID string)
	// CacheMiss: a cache channel subscriber found nothing cached.
	CacheMiss(appID, channel string)
	// SubscriptionCount: the subscription count of a non-presence channel changed.
	SubscriptionCount(appID, channel string, count int)
}

// VersionObserver is an optional part of an Observer: an Observer that implements it is
// also told about every version of a mutable message (its create, each update, delete and
// append), after it was stored, e.g. for the message_version_created webhook.
type VersionObserver interface {
	MessageVersionCreated(appID, channel, messageSerial, versionSerial string, action protocol.Action)
}

// versionCreated tells the observer, if it wants it, about a stored version.
func (a *appState) versionCreated(channel string, mu *protocol.Mutable) {
	if vo, ok := a.hub.obs.(VersionObserver); ok && mu != nil {
		vo.MessageVersionCreated(a.cfg.ID, channel, mu.MessageSerial, mu.Version.Serial, mu.Action)
	}
}

// subscriptionCountBurst is the channel size up to which pusher_internal:subscription_count
// goes out on every change; larger channels get at most one per subscriptionCountDelay, so a
// crowd joining does not cost O(n²) frames.
const (
	subscriptionCountBurst = 100
	subscriptionCountDelay = time.Second
)

// subscriptionCountChanged sends pusher_internal:subscription_count to the subscribers of a
// non-presence channel when the app enables it. Callers hold ch.mu.
func (a *appState) subscriptionCountChanged(ch *channel) {
	if !a.cfg.SubscriptionCountEvents || ch.class.Type == protocol.Presence || len(ch.subs) == 0 {
		return
	}
	if len(ch.subs) <= subscriptionCountBurst {
		ch.sendSubscriptionCount()
		return
	}
	if ch.countPending {
		return
	}
	ch.countPending = true
	a.hub.afterFunc(subscriptionCountDelay, func() {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		ch.countPending = false
		if len(ch.subs) > 0 {
			ch.sendSubscriptionCount()
		}
	})
}

// sendSubscriptionCount fans out the current count. Callers hold ch.mu.
func (ch *channel) sendSubscriptionCount() {
	data := protocol.Str(`{"subscription_count":` + strconv.Itoa(len(ch.subs)+ch.remoteSubs) + `}`)
	ch.fanoutSystem(func(v protocol.Version) []byte {
		return protocol.OutFrame{Event: v.EventName(protocol.EventSubscriptionCount), Channel: ch.name, Data: data}.Bytes()
	}, nil)
}
