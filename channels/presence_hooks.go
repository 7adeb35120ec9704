package channels

import "encoding/json"

// The seam of presence history (package presencehistory): the core reports every
// membership change of a presence channel, with its cause, to the PresenceRecorder it was
// given (Options.PresenceRecorder); recording, storing and reading the events is the
// recorder's.

// PresenceEventKind names a membership change.
type PresenceEventKind string

// Presence event kinds.
const (
	PresenceMemberAdded   PresenceEventKind = "member_added"
	PresenceMemberUpdated PresenceEventKind = "member_updated"
	PresenceMemberRemoved PresenceEventKind = "member_removed"
)

// PresenceCause says why a membership changed.
type PresenceCause string

// Presence causes.
const (
	// CauseJoin: the user's first connection subscribed.
	CauseJoin PresenceCause = "join"
	// CauseUpdate: a V2 presence_update replaced the member's user_info.
	CauseUpdate PresenceCause = "update"
	// CauseDisconnect: the user's last connection unsubscribed, closed or dropped.
	CauseDisconnect PresenceCause = "disconnect"
	// CauseTimeout: the last connection was closed for missing its heartbeat (pong timeout).
	CauseTimeout PresenceCause = "timeout"
	// CauseForcedDisconnect: the app closed it (terminate_connections, force_reconnect).
	CauseForcedDisconnect PresenceCause = "forced_disconnect"
	// CauseOrphanCleanup: the cluster node holding the member died (DeadNodeID).
	CauseOrphanCleanup PresenceCause = "orphan_cleanup"
)

// PresenceChange is one membership change of a presence channel, as it happened on this
// node.
type PresenceChange struct {
	Event        PresenceEventKind
	Cause        PresenceCause
	UserID       string
	ConnectionID string          // the socket whose change it was ("" none: orphan cleanup)
	DeadNodeID   string          // the dead node of an orphan cleanup ("" otherwise)
	UserInfo     json.RawMessage // member_added and member_updated (nil otherwise)
	AtMs         int64           // when it happened, on the hub's clock
}

// PresenceRecorder is told every membership change of the presence channels of this
// node, per channel in the order they happened here. presencehistory.Service implements
// it. The hub calls it holding the channel's lock: it must only take the change (queue
// it), never block or do I/O.
type PresenceRecorder interface {
	MemberChanged(appID, channel string, c PresenceChange)
}

// PresenceUpdateObserver is an optional part of an Observer: an Observer that implements it
// is told, on the node where it happened, that a member's user_info was replaced by a V2
// presence_update (the member_updated webhook).
type PresenceUpdateObserver interface {
	MemberUpdated(appID, channel, userID string, info json.RawMessage)
}

// Leave causes kept on a Conn (leaveCause), read when its last presence membership ends.
const (
	leaveDisconnect int32 = iota
	leaveTimeout
	leaveForced
)

// MarkTimedOut records that the connection is being closed for missing its heartbeat: the
// presence members it ends leave with cause "timeout". Call it before Disconnect.
func (c *Conn) MarkTimedOut() { c.leaveCause.CompareAndSwap(leaveDisconnect, leaveTimeout) }

// markForced records that the app is closing the connection (terminate, force_reconnect).
func (c *Conn) markForced() { c.leaveCause.Store(leaveForced) }

// presenceLeaveCause is the cause of a member_removed ending with c.
func (c *Conn) presenceLeaveCause() PresenceCause {
	switch c.leaveCause.Load() {
	case leaveTimeout:
		return CauseTimeout
	case leaveForced:
		return CauseForcedDisconnect
	}
	return CauseDisconnect
}

// recordPresence hands e to the recorder, stamped with the hub's clock when it has no
// time yet. Callers may hold ch.mu: events of one channel reach the recorder in the order
// they happened on this node.
func (a *appState) recordPresence(channel string, e PresenceChange) {
	if a.hub.presenceRec == nil {
		return
	}
	if e.AtMs == 0 {
		e.AtMs = a.hub.now().UnixMilli()
	}
	a.hub.presenceRec.MemberChanged(a.cfg.ID, channel, e)
}
