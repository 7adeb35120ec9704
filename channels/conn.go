package channels

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Conn is the hub's record of one connection: its subscriptions, its signed-in user and its
// client-event budget. The server calls Subscribe, Unsubscribe, ClientEvent, SignIn and
// finally Disconnect from the connection's read side (one goroutine at a time, in order), never
// concurrently; "reader goroutine" below means that read side.
type Conn struct {
	app      *appState
	sub      Subscriber
	socketID string

	// wire is the connection's wire format (V2 format=; JSON for V1), fixed at connect.
	wire protocol.Wire

	// v2 and echo are fixed at connect: the connection speaks V2, and (V2 only) receives
	// its own client events back. appendFull (V2) is append_mode=full: appends to mutable
	// messages arrive with the whole accumulated data.
	v2, echo, appendFull bool
	// rollIdx (V2) is the index of the connection's append_rollup_window in
	// protocol.RollupWindows; 0 = none (rollup.go). Fixed at connect.
	rollIdx int

	// channels maps each subscribed channel to the presence user id held there ("" off
	// presence). Only the reader goroutine touches it.
	channels chanSet
	rlStart  time.Time // client-event rate window start (reader goroutine only)
	rlCount  int
	puStart  time.Time // presence_update rate window start (reader goroutine only)
	puCount  int
	// attach holds each V2 history subscription's attach serial (reader goroutine only).
	attach map[string]uint64
	// deltaAll is the delta algorithm of every subscription after
	// sockudo:enable_delta_compression ("" until then; reader goroutine only).
	deltaAll string
	// deltaAnnounced is the algorithm the client takes when a delta frame names none: the
	// last one announced in delta_compression_enabled ("" before any, or while another is
	// being announced; reader goroutine only).
	deltaAnnounced string
	// wildcards counts the connection's wildcard subscriptions (reader goroutine only).
	wildcards int
	// pending holds resume positions of channels not subscribed yet (pending.go).
	pending pendingResume
	// pace is ConnOptions.Pace (pace.go), fixed at connect.
	pace func(n int) bool
	// batch defers hold starts to the end of the transport's current read (hold.go).
	batch frameBatch
	// leaveCause says why the connection's presence memberships end (presence_hooks.go).
	leaveCause atomic.Int32

	mu         sync.Mutex
	user       string // signed-in user id
	authorized bool   // signed in or holds an authorized subscription
	gone       bool
	authTimer  Timer
	token      *protocol.TokenClaims // V2 capability token, nil when none
	tokenTimer Timer
}

// ErrAppNotFound is returned by Connect for an unknown app.
var ErrAppNotFound = &protocol.Error{Code: protocol.CodeAppNotFound, Message: "App not found"}

// Connect registers a new connection of the app with this key. It refuses unknown keys
// (4001), disabled apps (4003) and apps over their connection quota (4004).
func (h *Hub) Connect(appKey string, sub Subscriber) (*Conn, *protocol.Error) {
	return h.ConnectWith(appKey, sub, ConnOptions{Echo: true})
}

// ConnOptions are the per-connection settings a client chose in its URL.
type ConnOptions struct {
	// Echo (V2 only) sends the connection's own client events back to it (echo_messages).
	Echo bool
	// Token is the connection's verified capability token (V2), nil when none.
	Token *protocol.TokenClaims
	// AppendFull (V2) is append_mode=full: message.append frames carry the whole string
	// instead of the fragment.
	AppendFull bool
	// Wire (V2) is the connection's wire format and client: fan-outs hand it frames in that
	// form (Subscriber.SendEncoded), and delta bases are the text that client keeps.
	Wire protocol.Wire
	// RollupWindow (V2) is append_rollup_window, one of protocol.RollupWindows: appends to one
	// mutable message within it reach the connection as one frame. 0 = every append at once.
	RollupWindow time.Duration
	// Pace, when set, is asked before each channel a sockudo:resume works on and may block
	// until the server lets it go on; false stops the resume unanswered (the connection is
	// going away). Called holding nothing (pace.go). Nil: no pacing.
	Pace func(n int) bool
}

// ConnectWith is Connect with the client's connection options. A token's grants limit what
// the connection may do from then on, and its expiry is enforced (see RefreshToken).
func (h *Hub) ConnectWith(appKey string, sub Subscriber, opts ConnOptions) (*Conn, *protocol.Error) {
	app, ok := h.byKey[appKey]
	if !ok {
		return nil, protocol.Errorf(protocol.CodeAppNotFound, "App key %s does not exist", protocol.Truncate(appKey, 64))
	}
	if !app.cfg.IsEnabled() {
		return nil, &protocol.Error{Code: protocol.CodeAppDisabled, Message: "Application is disabled"}
	}
	if n := app.conns.Add(1); app.cfg.MaxConnections > 0 && n > int64(app.cfg.MaxConnections) {
		app.conns.Add(-1)
		return nil, &protocol.Error{Code: protocol.CodeOverQuota, Message: "Application is over its connection quota"}
	}
	if opts.Token != nil && app.revoked(opts.Token) {
		app.conns.Add(-1)
		return nil, errTokenRevoked
	}
	c := &Conn{app: app, sub: sub, socketID: sub.SocketID(), pace: opts.Pace}
	c.v2 = sub.Version() == protocol.V2
	c.echo = c.v2 && opts.Echo
	c.appendFull = c.v2 && opts.AppendFull
	if c.v2 {
		c.wire = opts.Wire
		c.rollIdx = rollupIndex(opts.RollupWindow)
	}
	if opts.Token != nil {
		c.token = opts.Token
		c.markAuthorized()
		c.armTokenExpiry(opts.Token)
		app.trackToken(c, opts.Token)
	}
	if t := app.cfg.UserAuthenticationTimeout.D(); t > 0 && app.cfg.UserAuthentication() && opts.Token == nil {
		c.authTimer = app.hub.afterFunc(t, c.authTimeout)
	}
	return c, nil
}

// App returns the connection's app id.
func (c *Conn) App() string { return c.app.cfg.ID }

func (c *Conn) authTimeout() {
	c.mu.Lock()
	ok := c.authorized || c.gone
	c.mu.Unlock()
	if !ok {
		c.sub.Close(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "Connection not authorized within timeout."})
	}
}

func (c *Conn) markAuthorized() {
	c.mu.Lock()
	c.authorized = true
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	c.mu.Unlock()
}

// Subscribe authorizes and performs a subscription, sending the acknowledgement (and, for
// presence, member_added to the others first; for cache channels, the cached event or
// cache_miss after). A returned error means nothing changed; the caller reports it.
func (c *Conn) Subscribe(req SubscribeRequest) *protocol.Error {
	app := c.app
	name := req.Channel
	kind := kindOf(name)
	class := protocol.Classify(name)
	switch kind {
	case kindMeta:
		base, _ := protocol.MetaChannelBase(name)
		if err := c.checkMeta(base); err != nil {
			return err
		}
		class = protocol.ChannelClass{Type: protocol.Public}
	case kindWildcard:
		if err := c.checkWildcard(name); err != nil {
			return err
		}
		class = protocol.ChannelClass{Type: protocol.Public}
	default:
		if err := protocol.ValidateChannelName(name, app.cfg.MaxChannelNameLength); err != nil {
			return err
		}
	}
	v := c.sub.Version()
	if err := c.allow(protocol.OpSubscribe, name); err != nil {
		return err
	}
	if class.Type == protocol.Presence {
		if err := c.allow(protocol.OpPresence, name); err != nil {
			return err
		}
	}
	if req.Annotations {
		if err := c.allowAnnotationSubscribe(name); err != nil {
			return err
		}
	}
	var userID string
	var info json.RawMessage
	switch class.Type {
	case protocol.User:
		if !app.cfg.UserAuthentication() {
			return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "User authentication is disabled for this app"}
		}
		id, _ := protocol.UserChannelID(name)
		c.mu.Lock()
		me := c.user
		c.mu.Unlock()
		if me == "" || me != id {
			return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Authentication error: " + name + " is only for the signed-in user " + protocol.Truncate(id, 64)}
		}
	case protocol.Private, protocol.Presence, protocol.Encrypted:
		presence := class.Type == protocol.Presence
		if req.Auth == "" {
			return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Authentication error: Channel requires authentication"}
		}
		if !protocol.VerifyAuth(app.cfg.Key, app.cfg.Secret, req.Auth, protocol.ChannelStringToSign(c.socketID, name, req.ChannelData, presence)) {
			return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Invalid signature: expected HMAC SHA256 hex digest of " + describeSigned(presence)}
		}
		if presence {
			var err *protocol.Error
			if userID, info, err = protocol.ParseChannelData(req.ChannelData, app.cfg.MaxPresenceMemberSizeKB); err != nil {
				return err
			}
		}
	}

	if kind == kindChannel && c.deltaAll == "" {
		if alg := c.deltaFor(req, class); alg != "" {
			c.prepareDeltaAnnouncement(alg) // before any channel lock is taken
		}
	}

	// A V2 subscription to a channel with history attaches at the stream's head: the
	// channel's sequencer turn is held until the subscription is in place and its ack queued,
	// so the position it announces is exact. A rewind, or the replay of a pending resume, is
	// read after the turn is released while the subscription's live frames wait in a replay
	// queue (replay.go), so no live message overtakes it.
	var pos *protocol.StreamState
	subscribed := false
	// resumed: a sockudo:resume that came first named this channel (pending.go); pr's
	// replay, the ack and the outcome go out once the turn is released.
	resumed := false
	var pr *pendingReplay
	// rq is the replay queue of a rewind or pending resume, put on the subscription (rsub)
	// under the turn; rewindThen runs after a rewind's frames.
	var rq *replayQueue
	var rsub *subscription
	rewindThen := func() {}
	if kind == kindChannel && c.v2 {
		defer func() {
			if subscribed {
				c.annotationSnapshots(name) // after the publish lock is released
			}
		}()
	}
	if c.v2 && app.hub.history != nil && kind == kindChannel && app.cfg.HistoryFor(name) {
		if req.Rewind != nil {
			if err := c.allow(protocol.OpHistory, name); err != nil {
				return err
			}
		}
		st, unlockTurn, err := app.lockedState(name)
		unlock := sync.OnceFunc(unlockTurn)
		defer unlock()
		switch {
		case err == nil:
			pos = &st
		case req.Rewind != nil:
			return &protocol.Error{Code: protocol.CodeChannelError, Message: "Rewind is not available: the history store is unavailable"}
		}
		defer func() {
			if !subscribed || rq == nil {
				return
			}
			unlock() // the store is read without the channel's turn
			if req.Rewind != nil {
				c.rewind(name, req.Rewind, filterOf(req.Filter), *pos, rq, rsub, rewindThen)
			} else {
				c.completePending(name, pr, rq, rsub, filterOf(req.Filter))
			}
		}()
		if req.Rewind != nil && !c.channels.has(name) {
			// A rewind asks for the last messages instead; a pending position is answered
			// after them.
			if e, ok := c.takePending(name); ok {
				rewindThen = func() { c.failPending(name, e, "subscribed_with_rewind") }
				defer func() {
					if !subscribed {
						c.restorePending(name, e)
					}
				}()
			}
		}
		if req.Rewind == nil && !c.channels.has(name) {
			var undo func()
			if pr, undo, resumed = c.resumeOnSubscribe(name, pos); resumed {
				defer func() {
					if !subscribed {
						undo() // refused after all: the position waits for the next subscribe
					}
				}()
			}
		}
	} else if req.Rewind != nil {
		return protocol.Errorf(protocol.CodeChannelError, "Rewind is not available: channel %s keeps no history", protocol.Truncate(name, 200))
	}
	ack := func(ch *channel) []byte {
		if pos == nil {
			return ackFrame(v, ch)
		}
		data := []byte("{}")
		if ch.class.Type == protocol.Presence {
			data = ch.presenceData()
		}
		return protocol.SubscriptionSucceededV2(name, attachData(data, pos.HeadSerial), pos.StreamID, pos.HeadSerial)
	}
	if pos != nil {
		if c.attach == nil {
			c.attach = map[string]uint64{}
		}
		c.attach[name] = pos.HeadSerial
		if req.Rewind != nil {
			// Its live frames wait from the ack until the rewind is sent.
			rq = c.newReplayQueue(func() { c.sub.Send(rewindOverflow); rewindThen() })
		}
	}
	if resumed {
		rq = c.newReplayQueue(func() { c.pendingOverflow(name, pr) })
	}

	s := app.shardFor(name)
	s.mu.Lock()
	ch := s.channels[name]
	created := ch == nil
	if created {
		if kind == kindWildcard && app.wild.size() >= app.cfg.MaxWildcardPatterns {
			s.mu.Unlock()
			return protocol.Errorf(protocol.CodeOverCapacity, "Wildcard subscription %q refused: the app already has %d wildcard patterns, the limit",
				protocol.Truncate(name, 64), app.cfg.MaxWildcardPatterns)
		}
		ch = newChannel(name, class)
		s.channels[name] = ch
		switch kind {
		case kindWildcard:
			app.wild.add(name)
		case kindMeta:
			app.metas.Add(1)
		default:
			app.clusterSeed(ch)
		}
	}
	ch.mu.Lock()
	if old, already := ch.subs[c]; already {
		// Re-subscribing: acknowledge again with the current state; only a new filter changes.
		old.filter, old.annotations = filterOf(req.Filter), req.Annotations
		c.sub.Send(ack(ch))
		if rq != nil {
			rsub = old
			old.replay.Store(rq)
		}
		subscribed = true
		ch.mu.Unlock()
		s.mu.Unlock()
		return nil
	}
	memberAdded := false
	if class.Type == protocol.Presence {
		m := ch.members[userID]
		if m == nil {
			if len(ch.members) >= app.cfg.MaxPresenceMembersPerChannel {
				dropIfEmpty(s, ch)
				ch.mu.Unlock()
				s.mu.Unlock()
				return protocol.Errorf(protocol.CodeOverCapacity, "Presence channel %s is full (%d members)", protocol.Truncate(name, 64), app.cfg.MaxPresenceMembersPerChannel)
			}
			m = &member{info: info}
			ch.addMember(userID, m)
			memberAdded = true
			ch.fanoutSystem(func(v protocol.Version) []byte { return protocol.MemberAdded(v, name, userID, info) }, nil)
			app.recordPresence(name, PresenceChange{Event: PresenceMemberAdded, Cause: CauseJoin, UserID: userID, ConnectionID: c.socketID, UserInfo: info})
		}
		m.conns++
		m.leftHere = nil
		if m.conns == 1 {
			app.clusterJoined(name, userID, info)
		}
	}
	sub := &subscription{userID: userID, filter: filterOf(req.Filter), annotations: req.Annotations}
	deltaAlg := ""
	if kind == kindChannel {
		deltaAlg = c.deltaFor(req, class)
	}
	if deltaAlg != "" {
		sub.delta = newDeltaSub(deltaAlg)
	}
	if pos != nil && req.Rewind == nil && !resumed {
		sub.hold = newHeldQueue(c.sub.SendEncoded) // fan-outs hold frames already encoded
		c.startHold(sub.hold)
	}
	if len(ch.subs) == 0 {
		app.occupied.Add(1)
	}
	if rq != nil {
		rsub = sub
		sub.replay.Store(rq)
	}
	ch.subs[c] = sub
	ch.joinRollup(c, sub)
	c.channels.set(name, userID)
	// send queues the frames that follow the ack; a pending resume sends them after its
	// replay, the ack and its outcome (completePending).
	send := c.sub.Send
	if resumed {
		pr.ack = ack(ch)
		send = func(b []byte) { pr.rest = append(pr.rest, b) }
	} else {
		c.sub.Send(ack(ch))
	}
	subscribed = true
	if deltaAlg != "" && c.deltaAll == "" {
		send(protocol.DeltaEnabled(name, deltaAlg))
		c.deltaAnnounced = deltaAlg
	}
	if deltaAlg != "" && deltaAlg == c.deltaAnnounced {
		sub.delta.implied = true // under ch.mu: no fan-out of this channel runs
	}
	cacheMiss := false
	if class.Cache {
		if ev, ok := app.cachedFrame(name, v); ok {
			send(ev)
		} else {
			cacheMiss = true
			send(protocol.CacheMiss(v, name))
		}
	}
	count := len(ch.subs)
	total := count + ch.remoteSubs
	if kind == kindChannel {
		app.subscriptionCountChanged(ch)
		app.clusterCount(name, count, count-1)
	}
	ch.mu.Unlock()
	s.mu.Unlock()
	if kind == kindWildcard {
		c.wildcards++
	}
	if kind != kindChannel {
		if t := app.tapping(); t != nil {
			t.Record(Activity{Kind: ActSubscribed, AppID: app.cfg.ID, Channel: name, SocketID: c.socketID})
		}
		return nil
	}
	if memberAdded {
		app.metaMember(name, protocol.MetaMemberAdded, userID)
	}
	app.metaCount(name, total, true)
	if userID != "" {
		app.addUserConn(userID, c)
	}
	if class.NeedsAuth() {
		c.markAuthorized()
	}
	if obs := app.hub.obs; obs != nil {
		id := app.cfg.ID
		if created && !app.occupiedElsewhere(name) {
			obs.ChannelOccupied(id, name)
		}
		if memberAdded {
			obs.MemberAdded(id, name, userID)
		}
		if class.Type != protocol.Presence {
			obs.SubscriptionCount(id, name, count)
		}
		if cacheMiss {
			obs.CacheMiss(id, name)
		}
	}
	if t := app.tapping(); t != nil {
		t.Record(Activity{Kind: ActSubscribed, AppID: app.cfg.ID, Channel: name, SocketID: c.socketID, UserID: userID})
	}
	return nil
}

func describeSigned(presence bool) string {
	if presence {
		return "socket_id:channel_name:channel_data"
	}
	return "socket_id:channel_name"
}

func ackFrame(v protocol.Version, ch *channel) []byte {
	data := []byte("{}")
	if ch.class.Type == protocol.Presence {
		data = ch.presenceData()
	}
	return protocol.SubscriptionSucceeded(v, ch.name, data)
}

// Unsubscribe leaves a channel; unknown channels are ignored (Pusher sends no reply).
func (c *Conn) Unsubscribe(name string) {
	ok := c.channels.del(name)
	delete(c.attach, name)
	if ok {
		if kindOf(name) == kindWildcard {
			c.wildcards--
		}
		c.leave(name)
	}
}

func (c *Conn) leave(name string) {
	app := c.app
	s := app.shardFor(name)
	s.mu.Lock()
	ch := s.channels[name]
	if ch == nil {
		s.mu.Unlock()
		return
	}
	ch.mu.Lock()
	before := len(ch.subs)
	userID, memberRemoved := ch.removeLocked(c)
	vacated := dropIfEmpty(s, ch)
	count := len(ch.subs)
	total := count + ch.remoteSubs
	if kind := kindOf(name); kind != kindChannel {
		if vacated && kind == kindWildcard {
			app.wild.remove(name)
		} else if vacated {
			app.metas.Add(-1)
		}
		ch.mu.Unlock()
		s.mu.Unlock()
		if t := app.tapping(); t != nil {
			t.Record(Activity{Kind: ActUnsubscribed, AppID: app.cfg.ID, Channel: name, SocketID: c.socketID})
		}
		return
	}
	if m := ch.members[userID]; userID != "" && (m == nil || m.conns <= 0) {
		app.clusterLeft(name, userID)
	}
	if count != before {
		app.clusterCount(name, count, before)
	}
	if !vacated {
		app.subscriptionCountChanged(ch)
	}
	ch.mu.Unlock()
	s.mu.Unlock()
	if memberRemoved {
		app.metaMember(name, protocol.MetaMemberRemoved, userID)
	}
	if count != before {
		app.metaCount(name, total, false)
	}
	if userID != "" {
		app.removeUserConn(userID, c)
	}
	if obs := app.hub.obs; obs != nil {
		id := app.cfg.ID
		if memberRemoved {
			obs.MemberRemoved(id, name, userID)
		}
		if ch.class.Type != protocol.Presence {
			obs.SubscriptionCount(id, name, count)
		}
		if vacated && !app.occupiedElsewhere(name) {
			obs.ChannelVacated(id, name)
		}
	}
	if t := app.tapping(); t != nil {
		t.Record(Activity{Kind: ActUnsubscribed, AppID: app.cfg.ID, Channel: name, SocketID: c.socketID, UserID: userID})
	}
}

// removeLocked removes c from the channel (ch.mu held), announcing member_removed when it
// was the user's last connection. It returns the presence user id it held and whether that
// member left.
func (ch *channel) removeLocked(c *Conn) (userID string, memberRemoved bool) {
	s, ok := ch.subs[c]
	if !ok {
		return "", false
	}
	userID = s.userID
	if s.hold != nil {
		s.hold.cancel()
	}
	if rq := s.replay.Load(); rq != nil {
		rq.cancel()
	}
	delete(ch.subs, c)
	if len(ch.subs) == 0 {
		c.app.occupied.Add(-1)
	}
	ch.leaveRollup(c)
	if m := ch.members[userID]; m != nil {
		if m.conns--; m.conns <= 0 && m.remote <= 0 {
			ch.removeMember(userID)
			memberRemoved = true
			ch.fanoutSystem(func(v protocol.Version) []byte { return protocol.MemberRemoved(v, ch.name, userID) }, nil)
			c.app.recordPresence(ch.name, PresenceChange{Event: PresenceMemberRemoved, Cause: c.presenceLeaveCause(), UserID: userID, ConnectionID: c.socketID})
		} else if m.conns <= 0 {
			m.leftHere = &PresenceChange{Event: PresenceMemberRemoved, Cause: c.presenceLeaveCause(), UserID: userID, ConnectionID: c.socketID}
		}
	}
	return userID, memberRemoved
}

// dropIfEmpty deletes an empty channel from its shard and reports whether it did. Callers
// hold s.mu (write) and ch.mu.
func dropIfEmpty(s *shard, ch *channel) bool {
	if len(ch.subs) == 0 && s.channels[ch.name] == ch {
		delete(s.channels, ch.name)
		return true
	}
	return false
}

// Disconnect removes the connection from every channel and index. Call it once, when the
// connection has ended.
func (c *Conn) Disconnect() {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return
	}
	c.gone = true
	user := c.user
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	if c.tokenTimer != nil {
		c.tokenTimer.Stop()
	}
	token := c.token
	c.mu.Unlock()
	c.dropPending()
	if token != nil {
		c.app.untrackToken(c, token)
	}
	for n := range c.channels.names() {
		c.leave(n)
	}
	c.channels.clear()
	if user != "" {
		c.app.signOut(user, c)
	}
	c.app.conns.Add(-1)
}

// filterOf is f as a MessageFilter: nil when there is none, so that a subscription without
// a filter is seen as such on the fan-out path.
func filterOf(f *protocol.Filter) MessageFilter {
	if f == nil {
		return nil
	}
	return f
}

// SubscribeRequest is the data of a subscribe frame (protocol.SubscribeRequest).
type SubscribeRequest = protocol.SubscribeRequest

// RewindSpec is a subscribe-time rewind (protocol.Rewind).
type RewindSpec = protocol.Rewind

// HistoryRequest is one read of a channel's history (protocol.HistoryRequest).
type HistoryRequest = protocol.HistoryRequest
