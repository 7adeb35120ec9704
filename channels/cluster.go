package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// ClusterOptions tune StartCluster. The zero value works. Heartbeat, NodeTimeout,
// CountInterval and ResyncInterval run on the hub's clock (Options.Now and
// Options.AfterFunc), so tests move it by hand; PublishTimeout is an I/O deadline in real
// time.
type ClusterOptions struct {
	// Heartbeat is how often this node announces itself to the others. Default 3s.
	Heartbeat time.Duration
	// NodeTimeout is how long another node may stay silent before this node considers it
	// dead and drops its presence members and channel counts. Default 15s.
	NodeTimeout time.Duration
	// PublishTimeout bounds one broker publish of a message. Default 2s.
	PublishTimeout time.Duration
	// CountInterval is how long changed subscription counts gather before they are sent to
	// the other nodes (a channel becoming occupied or vacated is sent at once). Default 50ms.
	CountInterval time.Duration
	// ResyncInterval is how often this node sends its whole state even when nothing failed,
	// so a replica that missed an envelope (pub/sub delivers at most once) heals. Default 1m.
	ResyncInterval time.Duration
	// OnBrokerState, when set, is told when the broker connection goes down (false) or comes
	// back (true), and once at start.
	OnBrokerState func(up bool)
	// OnLocalOnly, when set, is told about each message delivered on this node only because
	// the broker was down or refused it.
	OnLocalOnly func(appID string)
	// OnNodes, when set, is told the number of live nodes (this one included) when it
	// changes.
	OnNodes func(n int)
	// OnRefusedEnvelope, when set, is told about each envelope dropped because its format's
	// major version is newer than this node reads (cluster_wire.go).
	OnRefusedEnvelope func(peer string, major int)
}

// failPause is how long messages stay local after a message publish failed.
const failPause = time.Second

// sysApp is the broker app id of node-level envelopes (hello, heartbeat, sync). No pushwire
// app id can be this (app ids come from configuration and are printable).
const sysApp = "\x00pushwire-node"

// Envelope kinds.
const (
	envPublish   = "pub"   // a message to deliver: Msg, Except
	envJoin      = "join"  // the sender holds a presence member: Channel, User, Info
	envLeave     = "leave" // the sender no longer holds it: Channel, User
	envCounts    = "cnt"   // the sender's subscription counts of some channels: Counts
	envTerminate = "term"  // close every connection of User
	envReconnect = "recon" // close every connection of User with 4200 (force_reconnect)
	envHistory   = "hist"  // the channel's history was reset or purged: History
	envUpdate    = "pupd"  // a member of the sender replaced its user_info: Channel, User, Info
	envHello     = "hello" // the sender (re)appeared: send it your state
	envHeartbeat = "hb"    // the sender is alive
	envSync      = "sync"  // the sender's whole state, replacing what was known: Apps
	envBye       = "bye"   // the sender is shutting down: forget it now
	envSummary   = "asum"  // an annotation summary of a message: Msg, Channel, Summary
)

// envelope is what one node tells the others. It travels as wireEnvelope (cluster_wire.go:
// the explicit, versioned format), through encodeEnvelope and decodeEnvelope only; its
// tags name the same members as wireEnvelope's.
type envelope struct {
	Kind    string                   `json:"k"`
	Msg     *protocol.Message        `json:"-"` // on the wire: "m", a wireMessage
	Except  string                   `json:"x,omitempty"`
	Channel string                   `json:"c,omitempty"`
	User    string                   `json:"u,omitempty"`
	Info    []byte                   `json:"i,omitempty"`
	Counts  map[string]int           `json:"n,omitempty"`
	Apps    map[string]*nodeAppState `json:"s,omitempty"`
	History *historyChange           `json:"h,omitempty"`
	Summary *summaryEnvelope         `json:"a,omitempty"`
}

// nodeAppState is what one node holds of one app: subscription counts by channel and
// presence members (user id → user_info) by channel.
type nodeAppState struct {
	Counts  map[string]int                        `json:"n,omitempty"`
	Members map[string]map[string]json.RawMessage `json:"m,omitempty"`
}

// maxEnvelope bounds an envelope the decoder accepts.
const maxEnvelope = 256 << 20

// decodeEnvelope parses and checks one envelope.
func decodeEnvelope(b []byte) (*envelope, error) {
	if len(b) > maxEnvelope {
		return nil, fmt.Errorf("cluster envelope: %d bytes", len(b))
	}
	e, err := unmarshalEnvelope(b)
	if err != nil {
		return nil, err
	}
	switch e.Kind {
	case envPublish:
		if e.Msg == nil || e.Msg.Channel == "" || e.Msg.Event == "" {
			return nil, errors.New("cluster envelope: publish without a message")
		}
		if e.Msg.Mutable != nil && e.Msg.Mutable.Full != nil && e.Msg.Mutable.Action != protocol.ActionAppend {
			e.Msg.Mutable.Full = nil
		}
	case envSummary:
		if e.Msg == nil || e.Channel == "" || e.Summary == nil || e.Msg.Channel != e.Channel {
			return nil, errors.New("cluster envelope: summary without message")
		}
	case envJoin, envLeave, envUpdate:
		if e.Channel == "" || e.User == "" {
			return nil, fmt.Errorf("cluster envelope: %s without channel or user", e.Kind)
		}
		if e.Kind != envLeave && (len(e.Info) == 0 || !json.Valid(e.Info)) {
			e.Info = []byte("{}")
		}
	case envTerminate, envReconnect:
		if e.User == "" {
			return nil, fmt.Errorf("cluster envelope: %s without user", e.Kind)
		}
	case envHistory:
		if e.Channel == "" || e.History == nil {
			return nil, errors.New("cluster envelope: history change without channel")
		}
	case envCounts:
		for ch, n := range e.Counts {
			if n < 0 || ch == "" {
				return nil, fmt.Errorf("cluster envelope: count %d of channel %q", n, ch)
			}
		}
	case envSync:
		for app, st := range e.Apps {
			if st == nil {
				delete(e.Apps, app)
				continue
			}
			for ch, n := range st.Counts {
				if n < 0 || ch == "" {
					return nil, fmt.Errorf("cluster envelope: count %d of channel %q", n, ch)
				}
			}
			for ch, users := range st.Members {
				for u, info := range users {
					if u == "" || ch == "" {
						return nil, errors.New("cluster envelope: member without channel or user")
					}
					if len(info) == 0 || !json.Valid(info) {
						users[u] = json.RawMessage("{}")
					}
				}
			}
		}
	case envHello, envHeartbeat, envBye:
	default:
		return nil, fmt.Errorf("cluster envelope: unknown kind %q", e.Kind)
	}
	return e, nil
}

// peerNode is what this node knows of another live node.
type peerNode struct {
	seen time.Time
	apps map[string]*nodeAppState
}

func (p *peerNode) app(id string) *nodeAppState {
	st := p.apps[id]
	if st == nil {
		st = &nodeAppState{Counts: map[string]int{}, Members: map[string]map[string]json.RawMessage{}}
		p.apps[id] = st
	}
	return st
}

// outItem is one queued state envelope.
type outItem struct {
	app string
	env envelope
}

// clusterNode connects a hub to the other nodes of its cluster through a Broker.
//
// Messages are delivered locally first, then published to the other nodes, which deliver
// them to their own subscribers (a node never receives its own envelopes). Presence
// members, subscription counts and terminations travel as envelopes too: every node keeps
// a replica of what each other live node holds, and answers channel, count and member
// queries from its own state plus those replicas. State envelopes leave through one queue
// in the order they happened, carry absolute values (idempotent), and a node that appears
// or reconnects exchanges its whole state with the others (hello, sync). Nodes silent for
// NodeTimeout are dropped.
//
// Lock order: shard → channel → clusterNode.mu; outMu is a leaf.
type clusterNode struct {
	hub *Hub
	b   Broker
	id  string
	o   ClusterOptions
	log *zap.Logger

	mu    sync.Mutex
	peers map[string]*peerNode

	outMu     sync.Mutex
	out       []outItem
	counts    map[string]map[string]int // app → channel → count, changed since the last send
	urgent    bool
	needSync  bool
	needHello bool
	wake      chan struct{}

	// newer remembers the (peer, major version) pairs already logged as unreadable.
	newerMu sync.Mutex
	newer   map[newerKey]bool
	refused atomic.Int64 // envelopes dropped for a newer major version

	up       atomic.Bool
	lastWarn atomic.Int64 // unix nanos of the last rate-limited warning
	// failedUntil (unix nanos): a message publish failed; until then messages stay local
	// without trying, so a broker that hangs costs one PublishTimeout, not one per message.
	failedUntil atomic.Int64
	stop        chan struct{}
	wg          sync.WaitGroup
	stopped     atomic.Bool
}

// StartCluster connects the hub to the other nodes of its cluster through b: from then on
// publishes, presence, subscription counts and terminations are shared (see clusterNode).
// Call it once, before serving clients; StopCluster ends it.
func (h *Hub) StartCluster(ctx context.Context, b Broker, o ClusterOptions) error {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 3 * time.Second
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 15 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 2 * time.Second
	}
	if o.CountInterval <= 0 {
		o.CountInterval = 50 * time.Millisecond
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = time.Minute
	}
	cn := &clusterNode{
		hub: h, b: b, id: b.NodeID(), o: o,
		log:    h.log.With(zap.String("node", b.NodeID())),
		peers:  map[string]*peerNode{},
		counts: map[string]map[string]int{},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	if !h.cl.CompareAndSwap(nil, cn) {
		return errors.New("channels: cluster already started")
	}
	if err := b.Start(ctx, cn.handle); err != nil {
		h.cl.Store(nil)
		return fmt.Errorf("channels: start cluster broker: %w", err)
	}
	up := b.Healthy()
	cn.up.Store(up)
	if o.OnBrokerState != nil {
		o.OnBrokerState(up)
	}
	if o.OnNodes != nil {
		o.OnNodes(1)
	}
	cn.outMu.Lock()
	cn.needHello, cn.needSync = true, true
	cn.outMu.Unlock()
	cn.signal()
	cn.wg.Add(2)
	go cn.sender()
	go cn.monitor()
	cn.log.Info("cluster: node started", zap.Bool("broker_up", up))
	return nil
}

// StopCluster sends what is still queued (the leaves of sockets closed at shutdown), tells
// the other nodes this one is leaving, and stops the cluster goroutines. The caller closes
// the broker afterwards.
func (h *Hub) StopCluster() {
	cn := h.cl.Load()
	if cn == nil || !cn.stopped.CompareAndSwap(false, true) {
		return
	}
	close(cn.stop)
	cn.wg.Wait()
	cn.flush()
	if cn.b.Healthy() {
		if err := cn.send(sysApp, &envelope{Kind: envBye}); err != nil {
			cn.log.Warn("cluster: goodbye not sent; the others drop this node after the timeout", zap.Error(err))
		}
	}
}

// ClusterRefusedEnvelopes returns how many envelopes this node dropped because their
// format's major version is newer than it reads (0 when not clustered).
func (h *Hub) ClusterRefusedEnvelopes() int64 {
	if cn := h.cl.Load(); cn != nil {
		return cn.refused.Load()
	}
	return 0
}

// ClusterNodes returns the number of live nodes this node knows, itself included (1 when
// not clustered).
func (h *Hub) ClusterNodes() int {
	cn := h.cl.Load()
	if cn == nil {
		return 1
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.peers) + 1
}

func (cn *clusterNode) signal() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// warn logs at most one warning per second (the broker failing floods otherwise).
func (cn *clusterNode) warn(msg string, fields ...zap.Field) {
	now := time.Now().UnixNano()
	last := cn.lastWarn.Load()
	if now-last < int64(time.Second) || !cn.lastWarn.CompareAndSwap(last, now) {
		return
	}
	cn.log.Warn(msg, fields...)
}

// queue adds a state envelope to the outgoing queue. Callers may hold hub locks.
func (cn *clusterNode) queue(app string, env envelope) {
	cn.outMu.Lock()
	cn.out = append(cn.out, outItem{app: app, env: env})
	cn.outMu.Unlock()
	cn.signal()
}

// count records a channel's new local subscription count; a channel becoming occupied or
// vacated is sent at once, other changes gather for CountInterval.
func (cn *clusterNode) count(app, channel string, n, before int) {
	cn.outMu.Lock()
	m := cn.counts[app]
	if m == nil {
		m = map[string]int{}
		cn.counts[app] = m
	}
	m[channel] = n
	if (n == 0) != (before == 0) {
		cn.urgent = true
	}
	urgent := cn.urgent
	cn.outMu.Unlock()
	if urgent {
		cn.signal()
	}
}

// sender publishes the queued state envelopes in order.
func (cn *clusterNode) sender() {
	defer cn.wg.Done()
	t := cn.ticker(cn.o.CountInterval)
	defer t.stop()
	for {
		select {
		case <-cn.stop:
			return
		case <-cn.wake:
			cn.outMu.Lock()
			hasCounts := len(cn.counts) > 0 && !cn.urgent
			cn.outMu.Unlock()
			if hasCounts { // let non-urgent counts gather
				cn.flushItems(false)
				continue
			}
		case <-t.c:
		}
		cn.flush()
	}
}

// flush sends everything queued.
func (cn *clusterNode) flush() { cn.flushItems(true) }

func (cn *clusterNode) flushItems(withCounts bool) {
	cn.outMu.Lock()
	items := cn.out
	cn.out = nil
	var counts map[string]map[string]int
	if withCounts || cn.urgent {
		counts = cn.counts
		cn.counts = map[string]map[string]int{}
		cn.urgent = false
	}
	hello, sync := cn.needHello, cn.needSync
	cn.needHello, cn.needSync = false, false
	cn.outMu.Unlock()
	if len(items) == 0 && len(counts) == 0 && !hello && !sync {
		return
	}
	if !cn.b.Healthy() {
		// Lost: the whole state goes out again once the broker is back.
		cn.outMu.Lock()
		cn.needSync = true
		cn.needHello = cn.needHello || hello
		cn.outMu.Unlock()
		return
	}
	failed := false
	send := func(app string, env *envelope) {
		if failed {
			return
		}
		if err := cn.send(app, env); err != nil {
			failed = true
			cn.warn("cluster: state envelope lost; will resend the whole state", zap.String("kind", env.Kind), zap.Error(err))
		}
	}
	if hello {
		send(sysApp, &envelope{Kind: envHello})
	}
	for i := range items {
		send(items[i].app, &items[i].env)
	}
	for app, m := range counts {
		send(app, &envelope{Kind: envCounts, Counts: m})
	}
	if sync {
		send(sysApp, &envelope{Kind: envSync, Apps: cn.snapshot()})
	}
	if failed {
		cn.outMu.Lock()
		cn.needSync = true
		cn.needHello = cn.needHello || hello
		cn.outMu.Unlock()
	}
}

func (cn *clusterNode) send(app string, env *envelope) error {
	b, err := encodeEnvelope(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cn.o.PublishTimeout)
	defer cancel()
	if err := cn.b.Publish(ctx, app, b); err != nil {
		return fmt.Errorf("publish %s envelope: %w", env.Kind, err)
	}
	return nil
}

// snapshot returns this node's whole state: its subscription counts and the presence
// members it holds connections of, per app.
func (cn *clusterNode) snapshot() map[string]*nodeAppState {
	out := make(map[string]*nodeAppState, len(cn.hub.byID))
	for id, a := range cn.hub.byID {
		st := &nodeAppState{Counts: map[string]int{}, Members: map[string]map[string]json.RawMessage{}}
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

// monitor sends heartbeats, drops silent nodes, follows the broker's health and schedules
// the periodic resync.
func (cn *clusterNode) monitor() {
	defer cn.wg.Done()
	hb := cn.ticker(cn.o.Heartbeat)
	defer hb.stop()
	health := cn.ticker(healthInterval)
	defer health.stop()
	resync := cn.ticker(cn.o.ResyncInterval)
	defer resync.stop()
	for {
		select {
		case <-cn.stop:
			return
		case <-resync.c:
			cn.outMu.Lock()
			cn.needSync = true
			cn.outMu.Unlock()
			cn.signal()
		case <-health.c:
			cn.checkBroker()
		case <-hb.c:
			cn.checkBroker()
			if cn.up.Load() {
				if err := cn.send(sysApp, &envelope{Kind: envHeartbeat}); err != nil {
					cn.warn("cluster: heartbeat not sent", zap.Error(err))
				}
			}
			now := cn.hub.now()
			cn.expire(now)
			for _, a := range cn.hub.byID {
				a.sweepOrder(now)
			}
		}
	}
}

// healthInterval is how often the monitor polls the broker's health.
const healthInterval = 250 * time.Millisecond

// clockTicker is time.Ticker on the hub's clock (Options.AfterFunc): a tick is dropped when
// the last one was not taken yet. Its owner stops it; no tick comes after stop returns.
type clockTicker struct {
	c       chan struct{}
	mu      sync.Mutex
	t       Timer
	stopped bool
}

func (cn *clusterNode) ticker(d time.Duration) *clockTicker {
	tk := &clockTicker{c: make(chan struct{}, 1)}
	var arm func()
	arm = func() {
		tk.t = cn.hub.afterFunc(d, func() {
			tk.mu.Lock()
			defer tk.mu.Unlock()
			if tk.stopped {
				return
			}
			select {
			case tk.c <- struct{}{}:
			default:
			}
			arm()
		})
	}
	tk.mu.Lock()
	arm()
	tk.mu.Unlock()
	return tk
}

func (tk *clockTicker) stop() {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.stopped = true
	tk.t.Stop()
}

// checkBroker logs and reports broker outages, and re-announces this node when the broker
// comes back.
func (cn *clusterNode) checkBroker() {
	up := cn.b.Healthy()
	if cn.up.Swap(up) == up {
		return
	}
	if up {
		cn.log.Info("cluster: broker connection restored; exchanging state with the other nodes")
		cn.outMu.Lock()
		cn.needHello, cn.needSync = true, true
		cn.outMu.Unlock()
		cn.signal()
	} else {
		cn.log.Warn("cluster: broker connection lost; delivering to this node's clients only until it returns")
	}
	if cn.o.OnBrokerState != nil {
		cn.o.OnBrokerState(up)
	}
}

// expire drops the nodes silent for longer than NodeTimeout.
func (cn *clusterNode) expire(now time.Time) {
	cn.mu.Lock()
	var dead []string
	for id, p := range cn.peers {
		if now.Sub(p.seen) > cn.o.NodeTimeout {
			dead = append(dead, id)
		}
	}
	cn.mu.Unlock()
	for _, id := range dead {
		cn.log.Warn("cluster: node silent; considered dead, dropping its presence members",
			zap.String("dead_node", id), zap.Duration("timeout", cn.o.NodeTimeout))
		cn.dropPeer(id, true)
	}
}

// leaderWithout reports whether this node has the smallest id of the live nodes other
// than dead: it sends the webhooks no other node would (a dead node's members leaving).
func (cn *clusterNode) leaderWithout(dead string) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for id := range cn.peers {
		if id != dead && id < cn.id {
			return false
		}
	}
	return true
}

// dropPeer forgets a node, removing its presence members and counts from every app.
// webhooks: this node, when leader and connected, reports the members and channels that
// left the cluster with it.
func (cn *clusterNode) dropPeer(id string, webhooks bool) {
	cn.mu.Lock()
	p := cn.peers[id]
	cn.mu.Unlock()
	if p == nil {
		return
	}
	notify := webhooks && cn.up.Load()
	for appID := range p.apps {
		a := cn.hub.byID[appID]
		if a == nil {
			continue
		}
		cn.mu.Lock()
		st := p.apps[appID]
		var chans []string
		members := map[string]map[string]json.RawMessage{}
		for ch, us := range st.Members {
			chans = append(chans, ch)
			members[ch] = us
		}
		counts := st.Counts
		cn.mu.Unlock()
		for _, ch := range chans {
			users := make([]string, 0, len(members[ch]))
			for u := range members[ch] {
				users = append(users, u)
			}
			_, removed := cn.applyMembers(a, id, ch, nil, users)
			if notify && len(removed) > 0 && cn.leaderWithout(id) {
				sort.Strings(removed)
				for _, u := range removed {
					a.recordPresence(ch, PresenceEvent{Event: PresenceMemberRemoved, Cause: CauseOrphanCleanup, UserID: u, DeadNodeID: id})
					if cn.hub.obs != nil {
						cn.hub.obs.MemberRemoved(appID, ch, u)
					}
				}
			}
		}
		cn.mu.Lock()
		st.Counts = map[string]int{}
		cn.mu.Unlock()
		gone := make([]string, 0, len(counts))
		for ch := range counts {
			gone = append(gone, ch)
		}
		cn.refreshRemoteSubs(a, gone)
		if notify && cn.hub.obs != nil && cn.leaderWithout(id) {
			for ch := range counts {
				if !a.occupiedAnywhere(ch) {
					cn.hub.obs.ChannelVacated(appID, ch)
				}
			}
		}
	}
	cn.mu.Lock()
	if cn.peers[id] == p {
		delete(cn.peers, id)
	}
	n := len(cn.peers) + 1
	cn.mu.Unlock()
	if cn.o.OnNodes != nil {
		cn.o.OnNodes(n)
	}
}

// touch records that from is alive and reports whether it was unknown.
func (cn *clusterNode) touch(from string) bool {
	cn.mu.Lock()
	p := cn.peers[from]
	isNew := p == nil
	if isNew {
		p = &peerNode{apps: map[string]*nodeAppState{}}
		cn.peers[from] = p
	}
	p.seen = cn.hub.now()
	n := len(cn.peers) + 1
	cn.mu.Unlock()
	if isNew {
		cn.log.Info("cluster: node joined", zap.String("peer", from), zap.Int("nodes", n))
		if cn.o.OnNodes != nil {
			cn.o.OnNodes(n)
		}
	}
	return isNew
}

// handle receives one envelope from another node (the broker's single delivery goroutine).
func (cn *clusterNode) handle(appID, from string, b []byte) {
	if cn.stopped.Load() {
		return
	}
	env, err := decodeEnvelope(b)
	if err != nil {
		if major, ok := isNewerEnvelope(err); ok {
			cn.refuseNewer(from, major)
			return
		}
		cn.warn("cluster: dropped a bad envelope", zap.String("peer", from), zap.Error(err))
		return
	}
	if cn.touch(from) && env.Kind != envHello && env.Kind != envSync && env.Kind != envBye {
		// A node we did not know (or had dropped): it needs our state and we need its.
		cn.outMu.Lock()
		cn.needHello, cn.needSync = true, true
		cn.outMu.Unlock()
		cn.signal()
	}
	if appID == sysApp {
		switch env.Kind {
		case envHello:
			cn.outMu.Lock()
			cn.needSync = true
			cn.outMu.Unlock()
			cn.signal()
		case envSync:
			cn.applySync(from, env.Apps)
		case envBye:
			cn.log.Info("cluster: node left", zap.String("peer", from))
			cn.dropPeer(from, false) // its sockets' leaves came before, with their webhooks
		}
		return
	}
	a := cn.hub.byID[appID]
	if a == nil {
		return
	}
	switch env.Kind {
	case envPublish:
		// Not under the channel's sequencer turn: a local publish waiting on the history store
		// must not stall every other node's messages.
		a.deliverOrdered(env.Msg, nil, env.Except)
	case envJoin:
		cn.applyMembers(a, from, env.Channel, map[string]json.RawMessage{env.User: env.Info}, nil)
	case envLeave:
		cn.applyMembers(a, from, env.Channel, nil, []string{env.User})
	case envCounts:
		cn.mu.Lock()
		chans := make([]string, 0, len(env.Counts))
		if p := cn.peers[from]; p != nil {
			st := p.app(appID)
			for ch, n := range env.Counts {
				if n == 0 {
					delete(st.Counts, ch)
				} else {
					st.Counts[ch] = n
				}
				chans = append(chans, ch)
			}
		}
		cn.mu.Unlock()
		cn.refreshRemoteSubs(a, chans)
	case envTerminate:
		cn.hub.terminateLocal(a, env.User)
	case envReconnect:
		cn.hub.closeUser(a, env.User, errForceReconnect)
	case envHistory:
		a.historyChanged(env.Channel, *env.History)
	case envSummary:
		a.summaryFromPeer(env)
	case envUpdate:
		cn.applyUpdate(a, from, env.Channel, env.User, env.Info)
	}
}

type newerKey struct {
	peer  string
	major int
}

// refuseNewer drops an envelope of a newer major format version from peer: counted every
// time, logged once per peer and version (the peer sends many).
func (cn *clusterNode) refuseNewer(peer string, major int) {
	cn.refused.Add(1)
	if cn.o.OnRefusedEnvelope != nil {
		cn.o.OnRefusedEnvelope(peer, major)
	}
	cn.newerMu.Lock()
	k := newerKey{peer, major}
	first := !cn.newer[k] && len(cn.newer) < 1024
	if first {
		if cn.newer == nil {
			cn.newer = map[newerKey]bool{}
		}
		cn.newer[k] = true
	}
	cn.newerMu.Unlock()
	if first {
		cn.log.Warn("cluster: a node sends envelopes of a newer format this node cannot read; dropping them (upgrade this node)",
			zap.String("peer", peer), zap.Int("format_major", major), zap.Int("own_major", envFormatMajor))
	}
}

// applySync replaces what is known of node from with its whole state.
func (cn *clusterNode) applySync(from string, apps map[string]*nodeAppState) {
	cn.mu.Lock()
	p := cn.peers[from]
	if p == nil {
		cn.mu.Unlock()
		return
	}
	type change struct {
		app, ch string
		set     map[string]json.RawMessage
		del     []string
	}
	var changes []change
	seen := map[string]bool{}
	counted := map[string][]string{} // app → channels whose count may have changed
	for _, old := range []map[string]*nodeAppState{p.apps, apps} {
		for appID, st := range old {
			for ch := range st.Counts {
				counted[appID] = append(counted[appID], ch)
			}
		}
	}
	for appID, st := range apps {
		seen[appID] = true
		old := p.app(appID)
		old.Counts = st.Counts
		if old.Counts == nil {
			old.Counts = map[string]int{}
		}
		for ch, us := range st.Members {
			changes = append(changes, change{app: appID, ch: ch, set: us})
		}
		for ch, us := range old.Members {
			var del []string
			for u := range us {
				if _, ok := st.Members[ch][u]; !ok {
					del = append(del, u)
				}
			}
			if len(del) > 0 {
				changes = append(changes, change{app: appID, ch: ch, del: del})
			}
		}
	}
	for appID, old := range p.apps {
		if seen[appID] {
			continue
		}
		old.Counts = map[string]int{}
		for ch, us := range old.Members {
			del := make([]string, 0, len(us))
			for u := range us {
				del = append(del, u)
			}
			changes = append(changes, change{app: appID, ch: ch, del: del})
		}
	}
	cn.mu.Unlock()
	for _, c := range changes {
		if a := cn.hub.byID[c.app]; a != nil {
			cn.applyMembers(a, from, c.ch, c.set, c.del)
		}
	}
	for appID, chans := range counted {
		if a := cn.hub.byID[appID]; a != nil {
			cn.refreshRemoteSubs(a, chans)
		}
	}
}

// applyMembers records that node from now holds the members set (user → info) and no
// longer holds del on channel, and updates the local channel: member_added /
// member_removed go to local subscribers for users who joined or left the cluster. It
// returns those users.
func (cn *clusterNode) applyMembers(a *appState, from, channel string, set map[string]json.RawMessage, del []string) (added, removed []string) {
	s := a.shardFor(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	type userState struct {
		info          json.RawMessage
		before, after int // nodes other than this one holding the user
	}
	users := map[string]*userState{}
	cn.mu.Lock()
	p := cn.peers[from]
	if p == nil {
		cn.mu.Unlock()
		return nil, nil
	}
	for u, info := range set {
		users[u] = &userState{info: info}
	}
	for _, u := range del {
		if _, ok := users[u]; !ok {
			users[u] = &userState{}
		}
	}
	for u, us := range users {
		us.before = cn.remoteHoldersLocked(a.cfg.ID, channel, u)
	}
	st := p.app(a.cfg.ID)
	ms := st.Members[channel]
	if ms == nil && len(set) > 0 {
		ms = map[string]json.RawMessage{}
		st.Members[channel] = ms
	}
	for u, info := range set {
		ms[u] = info
	}
	for _, u := range del {
		delete(ms, u)
	}
	if len(ms) == 0 {
		delete(st.Members, channel)
	}
	for u, us := range users {
		us.after = cn.remoteHoldersLocked(a.cfg.ID, channel, u)
	}
	cn.mu.Unlock()

	ch := s.channels[channel]
	if ch == nil || ch.members == nil {
		for u, us := range users {
			switch {
			case us.before == 0 && us.after > 0:
				added = append(added, u)
			case us.before > 0 && us.after == 0:
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
		case m == nil && us.after > 0:
			m = &member{info: us.info, remote: us.after}
			ch.addMember(u, m)
			added = append(added, u)
			info := m.info
			ch.fanoutSystem(func(v protocol.Version) []byte { return protocol.MemberAdded(v, channel, u, info) }, nil)
		case m != nil:
			m.remote = us.after
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

// applyUpdate records a member's new user_info from node from and sends
// presence_update to this node's V2 subscribers of the channel.
func (cn *clusterNode) applyUpdate(a *appState, from, channel, user string, info json.RawMessage) {
	cn.mu.Lock()
	if p := cn.peers[from]; p != nil {
		if ms := p.app(a.cfg.ID).Members[channel]; ms != nil {
			if _, ok := ms[user]; ok {
				ms[user] = info
			}
		}
	}
	cn.mu.Unlock()
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

// clusterPresenceUpdate tells the other nodes a member replaced its user_info. Callers hold
// the channel's lock.
func (a *appState) clusterPresenceUpdate(channel, userID string, info json.RawMessage) {
	if cn := a.hub.cl.Load(); cn != nil {
		cn.queue(a.cfg.ID, envelope{Kind: envUpdate, Channel: channel, User: userID, Info: info})
	}
}

// remoteSubsLocked sums the other nodes' subscriptions of channel. Callers hold cn.mu.
func (cn *clusterNode) remoteSubsLocked(app, channel string) int {
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
func (cn *clusterNode) refreshRemoteSubs(a *appState, chans []string) {
	for _, name := range chans {
		ch := a.lookup(name)
		if ch == nil {
			continue
		}
		cn.mu.Lock()
		n := cn.remoteSubsLocked(a.cfg.ID, name)
		cn.mu.Unlock()
		ch.mu.Lock()
		if ch.remoteSubs != n {
			ch.remoteSubs = n
			a.subscriptionCountChanged(ch)
		}
		ch.mu.Unlock()
	}
}

// remoteHoldersLocked counts the other nodes holding user on channel. Callers hold cn.mu.
func (cn *clusterNode) remoteHoldersLocked(app, channel, user string) int {
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

// The hooks below are called by the hub; each does nothing on a node without a cluster.

// forward publishes a message this node delivered to the other nodes. On a broker that is
// down or refuses it the message stays local, which is logged and counted; after a failed
// publish the next failPause of messages stay local without waiting on the broker.
func (a *appState) forward(m *protocol.Message, exceptSocketID string) {
	cn := a.hub.cl.Load()
	if cn == nil || cn.stopped.Load() {
		return
	}
	if !cn.b.Healthy() || cn.hub.now().UnixNano() < cn.failedUntil.Load() {
		if cn.o.OnLocalOnly != nil {
			cn.o.OnLocalOnly(a.cfg.ID)
		}
		return
	}
	if err := cn.send(a.cfg.ID, &envelope{Kind: envPublish, Msg: m, Except: exceptSocketID}); err != nil {
		cn.failedUntil.Store(cn.hub.now().Add(failPause).UnixNano())
		cn.warn("cluster: message delivered on this node only", zap.String("app_id", a.cfg.ID), zap.String("channel", m.Channel), zap.Error(err))
		if cn.o.OnLocalOnly != nil {
			cn.o.OnLocalOnly(a.cfg.ID)
		}
	}
}

// clusterSeed gives a channel just created on this node the presence members other nodes
// hold and their subscription count. Callers hold the channel's shard lock (write).
func (a *appState) clusterSeed(ch *channel) {
	cn := a.hub.cl.Load()
	if cn == nil {
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	ch.remoteSubs = cn.remoteSubsLocked(a.cfg.ID, ch.name)
	if ch.members == nil {
		return
	}
	for _, p := range cn.peers {
		st := p.apps[a.cfg.ID]
		if st == nil {
			continue
		}
		for u, info := range st.Members[ch.name] {
			m := ch.members[u]
			if m == nil {
				m = &member{info: info}
				ch.addMember(u, m)
			}
			m.remote++
		}
	}
}

// clusterJoined tells the other nodes this node now holds a presence member. Callers hold
// the channel's lock.
func (a *appState) clusterJoined(channel, userID string, info json.RawMessage) {
	if cn := a.hub.cl.Load(); cn != nil {
		cn.queue(a.cfg.ID, envelope{Kind: envJoin, Channel: channel, User: userID, Info: info})
	}
}

// clusterLeft tells the other nodes this node no longer holds a presence member. Callers
// hold the channel's lock.
func (a *appState) clusterLeft(channel, userID string) {
	if cn := a.hub.cl.Load(); cn != nil {
		cn.queue(a.cfg.ID, envelope{Kind: envLeave, Channel: channel, User: userID})
	}
}

// clusterCount tells the other nodes a channel's local subscription count changed from
// before to n. Callers hold the channel's lock.
func (a *appState) clusterCount(channel string, n, before int) {
	if cn := a.hub.cl.Load(); cn != nil {
		cn.count(a.cfg.ID, channel, n, before)
	}
}

// occupiedElsewhere reports whether another live node has subscribers on channel.
func (a *appState) occupiedElsewhere(channel string) bool {
	cn := a.hub.cl.Load()
	if cn == nil {
		return false
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for _, p := range cn.peers {
		if st := p.apps[a.cfg.ID]; st != nil && st.Counts[channel] > 0 {
			return true
		}
	}
	return false
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
	cn := a.hub.cl.Load()
	if cn == nil {
		return local
	}
	byName := make(map[string]int, len(local))
	for i, c := range local {
		byName[c.Name] = i
	}
	users := map[string]map[string]struct{}{}
	cn.mu.Lock()
	for _, p := range cn.peers {
		st := p.apps[a.cfg.ID]
		if st == nil {
			continue
		}
		for name, n := range st.Counts {
			if n <= 0 || !strings.HasPrefix(name, prefix) {
				continue
			}
			i, ok := byName[name]
			if !ok {
				i = len(local)
				byName[name] = i
				local = append(local, ChannelInfo{Name: name, Occupied: true})
			}
			local[i].SubscriptionCount += n
			if protocol.Classify(name).Type == protocol.Presence {
				if users[name] == nil {
					users[name] = map[string]struct{}{}
				}
			}
		}
	}
	for name, set := range users {
		for _, p := range cn.peers {
			if st := p.apps[a.cfg.ID]; st != nil {
				for u := range st.Members[name] {
					set[u] = struct{}{}
				}
			}
		}
	}
	cn.mu.Unlock()
	for name, set := range users {
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
	cn := a.hub.cl.Load()
	if cn == nil {
		return info
	}
	cn.mu.Lock()
	for _, p := range cn.peers {
		if st := p.apps[a.cfg.ID]; st != nil {
			info.SubscriptionCount += st.Counts[info.Name]
		}
	}
	cn.mu.Unlock()
	info.Occupied = info.SubscriptionCount > 0
	if protocol.Classify(info.Name).Type == protocol.Presence {
		info.UserCount = len(a.clusterUsers(info.Name, nil))
	}
	return info
}

// clusterUsers returns the presence user ids of channel on every node, sorted; local holds
// this node's.
func (a *appState) clusterUsers(channel string, local []string) []string {
	cn := a.hub.cl.Load()
	if cn == nil {
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
	cn.mu.Lock()
	for _, p := range cn.peers {
		if st := p.apps[a.cfg.ID]; st != nil {
			for u := range st.Members[channel] {
				set[u] = struct{}{}
			}
		}
	}
	cn.mu.Unlock()
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// clusterTerminate asks the other nodes to close the user's connections too.
func (a *appState) clusterTerminate(userID string) {
	if cn := a.hub.cl.Load(); cn != nil {
		cn.queue(a.cfg.ID, envelope{Kind: envTerminate, User: userID})
	}
}

// clusterReconnect asks the other nodes to force the user's connections to reconnect too.
func (a *appState) clusterReconnect(userID string) {
	if cn := a.hub.cl.Load(); cn != nil {
		cn.queue(a.cfg.ID, envelope{Kind: envReconnect, User: userID})
	}
}

// clusterHistory tells the other nodes that a channel's history was reset or purged.
func (a *appState) clusterHistory(channel string, hc historyChange) {
	if cn := a.hub.cl.Load(); cn != nil {
		cn.queue(a.cfg.ID, envelope{Kind: envHistory, Channel: channel, History: &hc})
	}
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
