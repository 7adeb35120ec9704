package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
)

// Options tune Start. The zero value works. Heartbeat, NodeTimeout, CountInterval and
// ResyncInterval run on the hub's clock (channels.Options.Now and AfterFunc), so tests move
// it by hand; PublishTimeout is an I/O deadline in real time.
type Options struct {
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
	// major version is newer than this node reads (wire.go).
	OnRefusedEnvelope func(peer string, major int)
}

// failPause is how long messages stay local after a message publish failed.
const failPause = time.Second

// sysApp is the broker app id of node-level envelopes (hello, heartbeat, sync). No pushwire
// app id can be this (app ids come from configuration and are printable).
const sysApp = "\x00pushwire-node"

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

// Node connects a hub to the other nodes of its cluster through a Broker; it is the hub's
// channels.Cluster.
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
// Lock order: shard → channel → Node.mu (the hub takes its locks before calling in); outMu
// is a leaf.
type Node struct {
	local *channels.LocalNode
	b     Broker
	id    string
	o     Options
	log   *zap.Logger
	// ord puts serial messages back in order, per app (order.go).
	ord map[string]*orderer

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

// Start connects hub to the other nodes of its cluster through b: from then on publishes,
// presence, subscription counts and terminations are shared (see Node). Call it once,
// before serving clients; Stop ends it.
func Start(ctx context.Context, hub *channels.Hub, b Broker, o Options) (*Node, error) {
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
	cn := &Node{
		b: b, id: b.NodeID(), o: o,
		peers:  map[string]*peerNode{},
		counts: map[string]map[string]int{},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	local, err := hub.AttachCluster(cn)
	if err != nil {
		return nil, err
	}
	cn.local = local
	cn.log = local.Logger().With(zap.String("node", b.NodeID()))
	cn.ord = map[string]*orderer{}
	for _, app := range local.Apps() {
		cn.ord[app] = &orderer{app: app, local: local, hist: local.History(), log: local.Logger()}
	}
	if err := b.Start(ctx, cn.handle); err != nil {
		local.Detach()
		return nil, fmt.Errorf("replication: start cluster broker: %w", err)
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
	return cn, nil
}

// Stop sends what is still queued (the leaves of sockets closed at shutdown), tells the
// other nodes this one is leaving, and stops the node's goroutines. The caller closes the
// broker afterwards.
func (cn *Node) Stop() {
	if !cn.stopped.CompareAndSwap(false, true) {
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

// RefusedEnvelopes returns how many envelopes this node dropped because their format's
// major version is newer than it reads.
func (cn *Node) RefusedEnvelopes() int64 { return cn.refused.Load() }

// Nodes returns the number of live nodes this node knows, itself included.
func (cn *Node) Nodes() int {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return len(cn.peers) + 1
}

func (cn *Node) signal() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// warn logs at most one warning per second (the broker failing floods otherwise).
func (cn *Node) warn(msg string, fields ...zap.Field) {
	now := time.Now().UnixNano()
	last := cn.lastWarn.Load()
	if now-last < int64(time.Second) || !cn.lastWarn.CompareAndSwap(last, now) {
		return
	}
	cn.log.Warn(msg, fields...)
}

// queue adds a state envelope to the outgoing queue. Callers may hold hub locks.
func (cn *Node) queue(app string, env envelope) {
	cn.outMu.Lock()
	cn.out = append(cn.out, outItem{app: app, env: env})
	cn.outMu.Unlock()
	cn.signal()
}

// count records a channel's new local subscription count; a channel becoming occupied or
// vacated is sent at once, other changes gather for CountInterval.
func (cn *Node) count(app, channel string, n, before int) {
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
func (cn *Node) sender() {
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
func (cn *Node) flush() { cn.flushItems(true) }

func (cn *Node) flushItems(withCounts bool) {
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

func (cn *Node) send(app string, env *envelope) error {
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
func (cn *Node) snapshot() map[string]*nodeAppState {
	snap := cn.local.Snapshot()
	out := make(map[string]*nodeAppState, len(snap))
	for id, st := range snap {
		out[id] = &nodeAppState{Counts: st.Counts, Members: st.Members}
	}
	return out
}

// monitor sends heartbeats, drops silent nodes, follows the broker's health and schedules
// the periodic resync.
func (cn *Node) monitor() {
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
			now := cn.local.Now()
			cn.expire(now)
			for _, o := range cn.ord {
				o.sweep(now)
			}
		}
	}
}

// healthInterval is how often the monitor polls the broker's health.
const healthInterval = 250 * time.Millisecond

// clockTicker is time.Ticker on the hub's clock (channels.Options.AfterFunc): a tick is dropped when
// the last one was not taken yet. Its owner stops it; no tick comes after stop returns.
type clockTicker struct {
	c       chan struct{}
	mu      sync.Mutex
	t       channels.Timer
	stopped bool
}

func (cn *Node) ticker(d time.Duration) *clockTicker {
	tk := &clockTicker{c: make(chan struct{}, 1)}
	var arm func()
	arm = func() {
		tk.t = cn.local.AfterFunc(d, func() {
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
func (cn *Node) checkBroker() {
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
func (cn *Node) expire(now time.Time) {
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
func (cn *Node) leaderWithout(dead string) bool {
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
func (cn *Node) dropPeer(id string, webhooks bool) {
	cn.mu.Lock()
	p := cn.peers[id]
	cn.mu.Unlock()
	if p == nil {
		return
	}
	notify := webhooks && cn.up.Load()
	for appID := range p.apps {
		if !cn.local.HasApp(appID) {
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
			_, removed := cn.applyMembers(appID, id, ch, nil, users)
			if notify && len(removed) > 0 && cn.leaderWithout(id) {
				sort.Strings(removed)
				cn.local.MembersOrphaned(appID, ch, id, removed)
			}
		}
		cn.mu.Lock()
		st.Counts = map[string]int{}
		cn.mu.Unlock()
		gone := make([]string, 0, len(counts))
		for ch := range counts {
			gone = append(gone, ch)
		}
		cn.refreshRemoteSubs(appID, gone)
		if notify && cn.leaderWithout(id) {
			cn.local.ChannelsOrphaned(appID, gone)
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
func (cn *Node) touch(from string) bool {
	cn.mu.Lock()
	p := cn.peers[from]
	isNew := p == nil
	if isNew {
		p = &peerNode{apps: map[string]*nodeAppState{}}
		cn.peers[from] = p
	}
	p.seen = cn.local.Now()
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
func (cn *Node) handle(appID, from string, b []byte) {
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
	if !cn.local.HasApp(appID) {
		return
	}
	switch env.Kind {
	case envPublish:
		// Not under the channel's sequencer turn: a local publish waiting on the history store
		// must not stall every other node's messages.
		cn.ord[appID].deliver(env.Msg, nil, env.Except)
	case envJoin:
		cn.applyMembers(appID, from, env.Channel, map[string]json.RawMessage{env.User: env.Info}, nil)
	case envLeave:
		cn.applyMembers(appID, from, env.Channel, nil, []string{env.User})
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
		cn.refreshRemoteSubs(appID, chans)
	case envTerminate:
		cn.local.CloseUser(appID, env.User, false)
	case envReconnect:
		cn.local.CloseUser(appID, env.User, true)
	case envHistory:
		h := env.History
		cn.local.HistoryChanged(appID, env.Channel, channels.HistoryChange{Reset: h.Reset, Stream: h.Stream, Cut: h.Cut})
	case envSummary:
		cn.local.DeliverSummary(appID, env.Channel, env.Summary.MessageSerial, env.Summary.Version, env.Msg)
	case envUpdate:
		cn.applyUpdate(appID, from, env.Channel, env.User, env.Info)
	}
}

type newerKey struct {
	peer  string
	major int
}

// refuseNewer drops an envelope of a newer major format version from peer: counted every
// time, logged once per peer and version (the peer sends many).
func (cn *Node) refuseNewer(peer string, major int) {
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
func (cn *Node) applySync(from string, apps map[string]*nodeAppState) {
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
		cn.applyMembers(c.app, from, c.ch, c.set, c.del)
	}
	for appID, chans := range counted {
		cn.refreshRemoteSubs(appID, chans)
	}
}

// applyMembers records that node from now holds the members set (user → info) and no
// longer holds del on channel of app, and updates the local channel: member_added /
// member_removed go to local subscribers for users who joined or left the cluster. It
// returns those users.
func (cn *Node) applyMembers(app, from, channel string, set map[string]json.RawMessage, del []string) (added, removed []string) {
	// The replica changes under the channel's shard lock (UpdateMembers), so a channel
	// created meanwhile is seeded (Seed) from the replica either before or after the change.
	return cn.local.UpdateMembers(app, channel, func() map[string]channels.RemoteMember {
		cn.mu.Lock()
		defer cn.mu.Unlock()
		p := cn.peers[from]
		if p == nil {
			return nil
		}
		users := map[string]channels.RemoteMember{}
		for u, info := range set {
			users[u] = channels.RemoteMember{Info: info}
		}
		for _, u := range del {
			if _, ok := users[u]; !ok {
				users[u] = channels.RemoteMember{}
			}
		}
		for u, us := range users {
			us.Before = cn.remoteHoldersLocked(app, channel, u)
			users[u] = us
		}
		st := p.app(app)
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
			us.After = cn.remoteHoldersLocked(app, channel, u)
			users[u] = us
		}
		return users
	})
}

// applyUpdate records a member's new user_info from node from and sends
// presence_update to this node's V2 subscribers of the channel.
func (cn *Node) applyUpdate(app, from, channel, user string, info json.RawMessage) {
	cn.mu.Lock()
	if p := cn.peers[from]; p != nil {
		if ms := p.app(app).Members[channel]; ms != nil {
			if _, ok := ms[user]; ok {
				ms[user] = info
			}
		}
	}
	cn.mu.Unlock()
	cn.local.PresenceUpdated(app, channel, user, info)
}
