package channels

import (
	"encoding/json"
	"errors"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// The seam between the core and the cluster replication protocol (package replication).
//
// The hub tells the cluster what happens on this node through Cluster, an interface
// declared here, beside its consumer; replication.Node implements it. The cluster acts on
// this node through LocalNode, the handle AttachCluster returns: deliver a message another
// node sent, apply another node's presence members and subscription counts, close a
// user's connections, forget purged history. channels imports nothing of replication; the
// hooks are the whole surface (cmd/pushwire wires them).

// Cluster is what the hub needs of the cluster replication protocol. Its event methods
// may be called with hub locks held (a channel's shard and channel lock): they queue, never
// wait on the broker, except Forward and ForwardSummary, which the hub calls with no lock
// held (a publish may hold its own channel's sequencer turn, which no other channel waits
// on). The replica queries take the implementation's own lock, after the hub's (lock
// order: shard → channel → the cluster's).
type Cluster interface {
	// Deliver delivers a message published on this node to this node's subscribers, in
	// the cluster's serial order of its channel.
	Deliver(app string, m *protocol.Message, sender *Conn, exceptSocketID string)
	// Forward sends a message this node delivered to the other nodes.
	Forward(app string, m *protocol.Message, exceptSocketID string)
	// ForwardSummary sends an annotation summary this node computed to the other nodes.
	ForwardSummary(app, channel, messageSerial string, version uint64, m *protocol.Message)
	// Joined and Left: this node now holds (no longer holds) a presence member.
	Joined(app, channel, user string, info json.RawMessage)
	Left(app, channel, user string)
	// PresenceUpdated: a member held here replaced its user_info.
	PresenceUpdated(app, channel, user string, info json.RawMessage)
	// Counted: a channel's local subscription count changed from before to n.
	Counted(app, channel string, n, before int)
	// Terminate and Reconnect ask the other nodes to close a user's connections (4009,
	// 4200).
	Terminate(app, user string)
	Reconnect(app, user string)
	// HistoryChanged tells the other nodes a channel's history was reset or purged.
	HistoryChanged(app, channel string, hc HistoryChange)

	// Seed calls member for each presence member another node holds on channel (once per
	// node holding it) and returns the other nodes' subscription count. The hub calls it
	// when it creates a channel, under the shard lock.
	Seed(app, channel string, member func(user string, info json.RawMessage)) int
	// RemoteSubs is the other nodes' subscription count of channel.
	RemoteSubs(app, channel string) int
	// RemoteChannels returns the other nodes' occupied channels starting with prefix, with
	// their counts and, for presence channels, their member ids.
	RemoteChannels(app, prefix string) map[string]RemoteChannel
	// RemoteUsers adds the presence members other nodes hold on channel to set.
	RemoteUsers(app, channel string, set map[string]struct{})
}

// RemoteChannel is one channel as the other nodes hold it.
type RemoteChannel struct {
	Subs int
	// Users are the presence members (presence channels only; nil otherwise).
	Users map[string]struct{}
}

// HistoryChange tells a node what a reset or purge changed (also between nodes).
type HistoryChange struct {
	// Reset drops everything of the channel; otherwise serials below Cut of Stream are gone.
	Reset  bool
	Stream string
	Cut    uint64
}

// clusterRef holds the attached Cluster (Hub.cl).
type clusterRef struct{ c Cluster }

// cluster returns the attached Cluster, nil when the hub is not clustered.
func (h *Hub) cluster() Cluster {
	if r := h.cl.Load(); r != nil {
		return r.c
	}
	return nil
}

// AttachCluster makes c the hub's cluster and returns the hooks c acts through. Call it
// once, before serving clients (replication.Start does).
func (h *Hub) AttachCluster(c Cluster) (*LocalNode, error) {
	if !h.cl.CompareAndSwap(nil, &clusterRef{c}) {
		return nil, errors.New("channels: cluster already started")
	}
	return &LocalNode{h: h}, nil
}

// LocalNode is what the cluster replication protocol may do to this node's hub.
type LocalNode struct{ h *Hub }

// Detach undoes AttachCluster (a cluster that failed to start).
func (l *LocalNode) Detach() { l.h.cl.Store(nil) }

// Logger is the hub's logger.
func (l *LocalNode) Logger() *zap.Logger { return l.h.log }

// Now is the hub's clock (Options.Now).
func (l *LocalNode) Now() time.Time { return l.h.now() }

// AfterFunc runs f after d on the hub's clock (Options.AfterFunc).
func (l *LocalNode) AfterFunc(d time.Duration, f func()) Timer { return l.h.afterFunc(d, f) }

// History is the hub's history store (nil without one).
func (l *LocalNode) History() History { return l.h.history }

// Apps returns the ids of the apps this node serves.
func (l *LocalNode) Apps() []string {
	ids := make([]string, 0, len(l.h.byID))
	for id := range l.h.byID {
		ids = append(ids, id)
	}
	return ids
}

// HasApp reports whether this node serves app.
func (l *LocalNode) HasApp(app string) bool { return l.h.byID[app] != nil }

// DeliverLocal delivers m to this node's subscribers (sender: the publishing connection
// on this node, nil for another node's message).
func (l *LocalNode) DeliverLocal(app string, m *protocol.Message, sender *Conn, exceptSocketID string) {
	if a := l.h.byID[app]; a != nil {
		a.deliverLocal(m, sender, exceptSocketID)
	}
}

// DeliverSummary delivers an annotation summary another node computed, unless one of the
// same message at least as new went out already.
func (l *LocalNode) DeliverSummary(app, channel, messageSerial string, version uint64, m *protocol.Message) {
	if f := l.h.annotationFeature(); f != nil {
		f.RemoteSummary(app, channel, messageSerial, version, m)
	}
}

// HasLocalSubscribers reports whether a connection of this node receives channel's
// messages, directly or through a wildcard subscription.
func (l *LocalNode) HasLocalSubscribers(app, channel string) bool {
	a := l.h.byID[app]
	if a == nil {
		return false
	}
	if ch := a.lookup(channel); ch != nil {
		ch.mu.RLock()
		n := len(ch.subs)
		ch.mu.RUnlock()
		if n > 0 {
			return true
		}
	}
	return len(a.wildcardChannels(channel)) > 0
}

// RemoteMember is one presence member of a channel as the other nodes hold it, before and
// after a change of one node's replica.
type RemoteMember struct {
	Info json.RawMessage
	// Before and After count the other nodes holding the member.
	Before, After int
}

// UpdateMembers applies a change of another node's presence members on channel. update
// changes the replica and returns the members it touched; the hub runs it under the
// channel's shard lock, so a channel created meanwhile is seeded either before or after
// the change, never half. member_added / member_removed go to local subscribers for users
// who joined or left the cluster; UpdateMembers returns those users.
func (l *LocalNode) UpdateMembers(app, channel string, update func() map[string]RemoteMember) (added, removed []string) {
	a := l.h.byID[app]
	if a == nil {
		return nil, nil
	}
	s := a.shardFor(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	users := update()
	ch := s.channels[channel]
	if ch == nil || ch.members == nil {
		for u, us := range users {
			switch {
			case us.Before == 0 && us.After > 0:
				added = append(added, u)
			case us.Before > 0 && us.After == 0:
				removed = append(removed, u)
			}
		}
		return added, removed
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for u, us := range users {
		m := ch.members[u]
		switch {
		case m == nil && us.After > 0:
			m = &member{info: us.Info, remote: us.After}
			ch.addMember(u, m)
			added = append(added, u)
			info := m.info
			ch.fanoutSystem(func(v protocol.Version) []byte { return protocol.MemberAdded(v, channel, u, info) }, nil)
		case m != nil:
			m.remote = us.After
			if m.conns <= 0 && m.remote <= 0 {
				ch.removeMember(u)
				removed = append(removed, u)
				ch.fanoutSystem(func(v protocol.Version) []byte { return protocol.MemberRemoved(v, channel, u) }, nil)
				if m.leftHere != nil { // this node's leave counted on the other's hold
					a.recordPresence(channel, *m.leftHere)
				}
			}
		}
	}
	return added, removed
}

// MembersOrphaned records that users left channel with the dead node deadNode (presence
// history, cause orphan_cleanup) and tells the observer. The cluster's leader calls it.
func (l *LocalNode) MembersOrphaned(app, channel, deadNode string, users []string) {
	a := l.h.byID[app]
	if a == nil {
		return
	}
	for _, u := range users {
		a.recordPresence(channel, PresenceChange{Event: PresenceMemberRemoved, Cause: CauseOrphanCleanup, UserID: u, DeadNodeID: deadNode})
		if l.h.obs != nil {
			l.h.obs.MemberRemoved(app, channel, u)
		}
	}
}

// ChannelsOrphaned tells the observer channel_vacated for each of chans no node has a
// subscriber on any more. The cluster's leader calls it after dropping a dead node.
func (l *LocalNode) ChannelsOrphaned(app string, chans []string) {
	a := l.h.byID[app]
	if a == nil || l.h.obs == nil {
		return
	}
	for _, ch := range chans {
		if !a.occupiedAnywhere(ch) {
			l.h.obs.ChannelVacated(app, ch)
		}
	}
}

// SetRemoteSubs records the other nodes' subscription count of channel, sending
// pusher_internal:subscription_count where the app wants it.
func (l *LocalNode) SetRemoteSubs(app, channel string, n int) {
	a := l.h.byID[app]
	if a == nil {
		return
	}
	ch := a.lookup(channel)
	if ch == nil {
		return
	}
	ch.mu.Lock()
	if ch.remoteSubs != n {
		ch.remoteSubs = n
		a.subscriptionCountChanged(ch)
	}
	ch.mu.Unlock()
}

// PresenceUpdated records a member's new user_info from another node and sends
// presence_update to this node's V2 subscribers of the channel.
func (l *LocalNode) PresenceUpdated(app, channel, user string, info json.RawMessage) {
	a := l.h.byID[app]
	if a == nil {
		return
	}
	ch := a.lookup(channel)
	if ch == nil {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	m := ch.members[user]
	if m == nil {
		return
	}
	m.info = info
	var frame []byte
	var bin formCache
	for sc := range ch.subs {
		if sc.v2 {
			if frame == nil {
				frame = protocol.PresenceUpdate(protocol.V2, channel, user, info)
			}
			sc.sub.SendEncoded(bin.frameFor(sc, frame))
		}
	}
}

// CloseUser closes this node's connections of user: with 4200 (force_reconnect) when
// reconnect, else 4009 (terminate_connections). It reports how many.
func (l *LocalNode) CloseUser(app, user string, reconnect bool) int {
	a := l.h.byID[app]
	if a == nil {
		return 0
	}
	if reconnect {
		return l.h.closeUser(a, user, errForceReconnect)
	}
	return l.h.terminateLocal(a, user)
}

// HistoryChanged makes this node forget what another node's reset or purge removed.
func (l *LocalNode) HistoryChanged(app, channel string, hc HistoryChange) {
	if a := l.h.byID[app]; a != nil {
		a.historyChanged(channel, hc)
	}
}

// AppState is what this node holds of one app: subscription counts by channel and the
// presence members it holds connections of (user id → user_info) by channel.
type AppState struct {
	Counts  map[string]int
	Members map[string]map[string]json.RawMessage
}

// Snapshot returns this node's whole state, per app.
func (l *LocalNode) Snapshot() map[string]AppState {
	out := make(map[string]AppState, len(l.h.byID))
	for id, a := range l.h.byID {
		st := AppState{Counts: map[string]int{}, Members: map[string]map[string]json.RawMessage{}}
		for i := range a.shards {
			s := &a.shards[i]
			s.mu.RLock()
			for name, ch := range s.channels {
				ch.mu.RLock()
				if len(ch.subs) > 0 {
					st.Counts[name] = len(ch.subs)
				}
				for u, m := range ch.members {
					if m.conns > 0 {
						if st.Members[name] == nil {
							st.Members[name] = map[string]json.RawMessage{}
						}
						st.Members[name][u] = m.info
					}
				}
				ch.mu.RUnlock()
			}
			s.mu.RUnlock()
		}
		out[id] = st
	}
	return out
}

// The hooks below are called by the hub; each does nothing on a node without a cluster.

// deliverOrdered delivers a message published on this node here, in the cluster's order.
func (a *appState) deliverOrdered(m *protocol.Message, sender *Conn, exceptSocketID string) {
	if c := a.hub.cluster(); c != nil {
		c.Deliver(a.cfg.ID, m, sender, exceptSocketID)
		return
	}
	a.deliverLocal(m, sender, exceptSocketID)
}

// forward publishes a message this node delivered to the other nodes.
func (a *appState) forward(m *protocol.Message, exceptSocketID string) {
	if c := a.hub.cluster(); c != nil {
		c.Forward(a.cfg.ID, m, exceptSocketID)
	}
}

// clusterSeed gives a channel just created on this node the presence members other nodes
// hold and their subscription count. Callers hold the channel's shard lock (write).
func (a *appState) clusterSeed(ch *channel) {
	c := a.hub.cluster()
	if c == nil {
		return
	}
	ch.remoteSubs = c.Seed(a.cfg.ID, ch.name, func(u string, info json.RawMessage) {
		if ch.members == nil {
			return
		}
		m := ch.members[u]
		if m == nil {
			m = &member{info: info}
			ch.addMember(u, m)
		}
		m.remote++
	})
}

// clusterJoined tells the other nodes this node now holds a presence member. Callers hold
// the channel's lock.
func (a *appState) clusterJoined(channel, userID string, info json.RawMessage) {
	if c := a.hub.cluster(); c != nil {
		c.Joined(a.cfg.ID, channel, userID, info)
	}
}

// clusterLeft tells the other nodes this node no longer holds a presence member. Callers
// hold the channel's lock.
func (a *appState) clusterLeft(channel, userID string) {
	if c := a.hub.cluster(); c != nil {
		c.Left(a.cfg.ID, channel, userID)
	}
}

// clusterPresenceUpdate tells the other nodes a member replaced its user_info. Callers hold
// the channel's lock.
func (a *appState) clusterPresenceUpdate(channel, userID string, info json.RawMessage) {
	if c := a.hub.cluster(); c != nil {
		c.PresenceUpdated(a.cfg.ID, channel, userID, info)
	}
}

// clusterCount tells the other nodes a channel's local subscription count changed from
// before to n. Callers hold the channel's lock.
func (a *appState) clusterCount(channel string, n, before int) {
	if c := a.hub.cluster(); c != nil {
		c.Counted(a.cfg.ID, channel, n, before)
	}
}

// clusterTerminate asks the other nodes to close the user's connections too.
func (a *appState) clusterTerminate(userID string) {
	if c := a.hub.cluster(); c != nil {
		c.Terminate(a.cfg.ID, userID)
	}
}

// clusterReconnect asks the other nodes to force the user's connections to reconnect too.
func (a *appState) clusterReconnect(userID string) {
	if c := a.hub.cluster(); c != nil {
		c.Reconnect(a.cfg.ID, userID)
	}
}

// clusterHistory tells the other nodes that a channel's history was reset or purged.
func (a *appState) clusterHistory(channel string, hc HistoryChange) {
	if c := a.hub.cluster(); c != nil {
		c.HistoryChanged(a.cfg.ID, channel, hc)
	}
}

// occupiedElsewhere reports whether another live node has subscribers on channel.
func (a *appState) occupiedElsewhere(channel string) bool {
	c := a.hub.cluster()
	return c != nil && c.RemoteSubs(a.cfg.ID, channel) > 0
}

// occupiedAnywhere reports whether any node, this one included, has subscribers on channel.
func (a *appState) occupiedAnywhere(channel string) bool {
	if ch := a.lookup(channel); ch != nil {
		ch.mu.RLock()
		n := len(ch.subs)
		ch.mu.RUnlock()
		if n > 0 {
			return true
		}
	}
	return a.occupiedElsewhere(channel)
}

// clusterChannels adds the other nodes' channels and counts to a local channel list.
func (a *appState) clusterChannels(local []ChannelInfo, prefix string) []ChannelInfo {
	c := a.hub.cluster()
	if c == nil {
		return local
	}
	byName := make(map[string]int, len(local))
	for i, ci := range local {
		byName[ci.Name] = i
	}
	remote := c.RemoteChannels(a.cfg.ID, prefix)
	for name, rc := range remote {
		i, ok := byName[name]
		if !ok {
			i = len(local)
			byName[name] = i
			local = append(local, ChannelInfo{Name: name, Occupied: true})
		}
		local[i].SubscriptionCount += rc.Subs
	}
	for name, rc := range remote {
		if rc.Users == nil {
			continue
		}
		set := rc.Users
		if ch := a.lookup(name); ch != nil {
			ch.mu.RLock()
			for u := range ch.members {
				set[u] = struct{}{}
			}
			ch.mu.RUnlock()
		}
		local[byName[name]].UserCount = len(set)
	}
	return local
}

// clusterChannel adds the other nodes' counts and members to one channel's local info.
func (a *appState) clusterChannel(info ChannelInfo) ChannelInfo {
	c := a.hub.cluster()
	if c == nil {
		return info
	}
	info.SubscriptionCount += c.RemoteSubs(a.cfg.ID, info.Name)
	info.Occupied = info.SubscriptionCount > 0
	if protocol.Classify(info.Name).Type == protocol.Presence {
		info.UserCount = len(a.clusterUsers(info.Name, nil))
	}
	return info
}

// clusterUsers returns the presence user ids of channel on every node, sorted; local holds
// this node's.
func (a *appState) clusterUsers(channel string, local []string) []string {
	c := a.hub.cluster()
	if c == nil {
		return local
	}
	set := make(map[string]struct{}, len(local))
	for _, u := range local {
		set[u] = struct{}{}
	}
	if ch := a.lookup(channel); ch != nil {
		ch.mu.RLock()
		for u := range ch.members {
			set[u] = struct{}{}
		}
		ch.mu.RUnlock()
	}
	c.RemoteUsers(a.cfg.ID, channel, set)
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// terminateLocal closes this node's connections of the user with 4009 and reports how many.
func (h *Hub) terminateLocal(app *appState, userID string) int {
	return h.closeUser(app, userID, errTerminated)
}

// errTerminated is the close of terminate_connections.
var errTerminated = &protocol.Error{Code: protocol.CodeUnauthorized, Message: "You got disconnected by the app."}

// closeUser closes this node's connections of the user with err and reports how many.
func (h *Hub) closeUser(app *appState, userID string, err *protocol.Error) int {
	app.usersMu.Lock()
	conns := make([]*Conn, 0, len(app.users[userID]))
	for c := range app.users[userID] {
		conns = append(conns, c)
	}
	app.usersMu.Unlock()
	for _, c := range conns {
		c.markForced()
		c.sub.Close(err)
	}
	return len(conns)
}
