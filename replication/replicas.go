package replication

import (
	"encoding/json"
	"strings"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Node is the hub's channels.Cluster: the methods below are what the hub calls. The event
// methods queue (the hub may hold its locks); Forward and ForwardSummary publish at once.
var _ channels.Cluster = (*Node)(nil)

// Deliver delivers a message published on this node here, in serial order (order.go).
func (cn *Node) Deliver(app string, m *protocol.Message, sender *channels.Conn, exceptSocketID string) {
	if o := cn.ord[app]; o != nil {
		o.deliver(m, sender, exceptSocketID)
		return
	}
	cn.local.DeliverLocal(app, m, sender, exceptSocketID)
}

// Forward publishes a message this node delivered to the other nodes. On a broker that is
// down or refuses it the message stays local, which is logged and counted; after a failed
// publish the next failPause of messages stay local without waiting on the broker.
func (cn *Node) Forward(app string, m *protocol.Message, exceptSocketID string) {
	if cn.stopped.Load() {
		return
	}
	if !cn.b.Healthy() || cn.local.Now().UnixNano() < cn.failedUntil.Load() {
		if cn.o.OnLocalOnly != nil {
			cn.o.OnLocalOnly(app)
		}
		return
	}
	if err := cn.send(app, &envelope{Kind: envPublish, Msg: m, Except: exceptSocketID}); err != nil {
		cn.failedUntil.Store(cn.local.Now().Add(failPause).UnixNano())
		cn.warn("cluster: message delivered on this node only", zap.String("app_id", app), zap.String("channel", m.Channel), zap.Error(err))
		if cn.o.OnLocalOnly != nil {
			cn.o.OnLocalOnly(app)
		}
	}
}

// ForwardSummary sends an annotation summary this node computed to the other nodes.
func (cn *Node) ForwardSummary(app, channel, messageSerial string, version uint64, m *protocol.Message) {
	if cn.stopped.Load() || !cn.b.Healthy() {
		return
	}
	if err := cn.send(app, &envelope{Kind: envSummary, Msg: m, Channel: channel, Summary: &summaryEnvelope{messageSerial, version}}); err != nil {
		cn.warn("cluster: annotation summary delivered on this node only", zap.String("app_id", app), zap.String("channel", channel), zap.Error(err))
	}
}

// Joined tells the other nodes this node now holds a presence member.
func (cn *Node) Joined(app, channel, user string, info json.RawMessage) {
	cn.queue(app, envelope{Kind: envJoin, Channel: channel, User: user, Info: info})
}

// Left tells the other nodes this node no longer holds a presence member.
func (cn *Node) Left(app, channel, user string) {
	cn.queue(app, envelope{Kind: envLeave, Channel: channel, User: user})
}

// PresenceUpdated tells the other nodes a member replaced its user_info.
func (cn *Node) PresenceUpdated(app, channel, user string, info json.RawMessage) {
	cn.queue(app, envelope{Kind: envUpdate, Channel: channel, User: user, Info: info})
}

// Counted records a channel's new local subscription count (see count).
func (cn *Node) Counted(app, channel string, n, before int) { cn.count(app, channel, n, before) }

// Terminate asks the other nodes to close the user's connections too.
func (cn *Node) Terminate(app, user string) {
	cn.queue(app, envelope{Kind: envTerminate, User: user})
}

// Reconnect asks the other nodes to force the user's connections to reconnect too.
func (cn *Node) Reconnect(app, user string) {
	cn.queue(app, envelope{Kind: envReconnect, User: user})
}

// HistoryChanged tells the other nodes that a channel's history was reset or purged.
func (cn *Node) HistoryChanged(app, channel string, hc channels.HistoryChange) {
	cn.queue(app, envelope{Kind: envHistory, Channel: channel, History: &historyChange{Reset: hc.Reset, Stream: hc.Stream, Cut: hc.Cut}})
}

// Seed gives a channel just created on this node the presence members other nodes hold
// (member, once per node holding one) and returns their subscription count. The hub holds
// the channel's shard lock (write).
func (cn *Node) Seed(app, channel string, member func(user string, info json.RawMessage)) int {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	n := cn.remoteSubsLocked(app, channel)
	for _, p := range cn.peers {
		st := p.apps[app]
		if st == nil {
			continue
		}
		for u, info := range st.Members[channel] {
			member(u, info)
		}
	}
	return n
}

// RemoteSubs sums the other nodes' subscriptions of channel.
func (cn *Node) RemoteSubs(app, channel string) int {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.remoteSubsLocked(app, channel)
}

// RemoteChannels returns the other nodes' occupied channels starting with prefix, with
// their counts and, for presence channels, their member ids.
func (cn *Node) RemoteChannels(app, prefix string) map[string]channels.RemoteChannel {
	out := map[string]channels.RemoteChannel{}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for _, p := range cn.peers {
		st := p.apps[app]
		if st == nil {
			continue
		}
		for name, n := range st.Counts {
			if n <= 0 || !strings.HasPrefix(name, prefix) {
				continue
			}
			rc := out[name]
			rc.Subs += n
			if rc.Users == nil && protocol.Classify(name).Type == protocol.Presence {
				rc.Users = map[string]struct{}{}
			}
			out[name] = rc
		}
	}
	for name, rc := range out {
		if rc.Users == nil {
			continue
		}
		for _, p := range cn.peers {
			if st := p.apps[app]; st != nil {
				for u := range st.Members[name] {
					rc.Users[u] = struct{}{}
				}
			}
		}
	}
	return out
}

// RemoteUsers adds the presence members other nodes hold on channel to set.
func (cn *Node) RemoteUsers(app, channel string, set map[string]struct{}) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for _, p := range cn.peers {
		if st := p.apps[app]; st != nil {
			for u := range st.Members[channel] {
				set[u] = struct{}{}
			}
		}
	}
}

// remoteSubsLocked sums the other nodes' subscriptions of channel. Callers hold cn.mu.
func (cn *Node) remoteSubsLocked(app, channel string) int {
	n := 0
	for _, p := range cn.peers {
		if st := p.apps[app]; st != nil {
			n += st.Counts[channel]
		}
	}
	return n
}

// refreshRemoteSubs updates the other nodes' subscription count kept on this node's
// channels, sending pusher_internal:subscription_count where the app wants it.
func (cn *Node) refreshRemoteSubs(app string, chans []string) {
	for _, name := range chans {
		cn.mu.Lock()
		n := cn.remoteSubsLocked(app, name)
		cn.mu.Unlock()
		cn.local.SetRemoteSubs(app, name, n)
	}
}

// remoteHoldersLocked counts the other nodes holding user on channel. Callers hold cn.mu.
func (cn *Node) remoteHoldersLocked(app, channel, user string) int {
	n := 0
	for _, p := range cn.peers {
		if st := p.apps[app]; st != nil {
			if _, ok := st.Members[channel][user]; ok {
				n++
			}
		}
	}
	return n
}
