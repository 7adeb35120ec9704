package channels

import (
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pushwire/pushwire/protocol"
)

// channel is one occupied channel of an app. It exists while it has subscribers.
type channel struct {
	name  string
	class protocol.ChannelClass

	mu sync.RWMutex
	// subs maps each subscribed connection to its subscription.
	subs map[*Conn]*subscription
	// members holds presence members by user id (presence channels only); change it only
	// with addMember and removeMember, which keep ids in step.
	members map[string]*member
	// ids is members' keys in sorted order, for the subscription ack's member list (built
	// on every join, so it is kept sorted rather than sorted each time).
	ids []string
	// countPending is set while a coalesced subscription_count send is scheduled.
	countPending bool
	// remoteSubs counts the channel's subscriptions on the other cluster nodes (cluster.go).
	remoteSubs int
	// roll is the append rollup of subscribers that asked for one (rollup.go); nil until
	// the first such subscriber.
	roll *rollup
}

// subscription is one connection's membership of a channel.
type subscription struct {
	// userID is the presence user id held ("" off presence channels).
	userID string
	// filter, when set, limits what a V2 subscriber receives.
	filter MessageFilter
	// hold, when set, keeps live messages back for a moment after a V2 subscription to a
	// history channel, so a resume that follows replays the gap before them (see hold.go).
	hold *heldQueue
	// replay, while set and active, queues live frames while a replay to the connection is
	// read from the history store without the channel's turn (replay.go).
	replay atomic.Pointer[replayQueue]
	// delta, when set, is the subscription's delta-compression state (V2 opt-in).
	delta *deltaSub
	// rollFrom is the first batch of its append rollup group the subscription takes part in
	// (rollup.go).
	rollFrom atomic.Uint64
	// annotations: the subscription's modes include ANNOTATION_SUBSCRIBE (annotation_hooks.go; package annotations).
	annotations bool
}

// MessageFilter decides whether a V2 subscriber receives a message; *protocol.Filter
// implements it. MatchMessage runs once per subscriber in a fan-out: without an expression
// it must not allocate, and an expression reads the message document from doc, which the
// fan-out shares so that each message is projected at most once.
type MessageFilter interface {
	MatchMessage(m *protocol.Message, doc *protocol.LazyDocument) bool
}

// passes applies a subscription filter to one message outside a fan-out (rewind, resume).
func passes(f MessageFilter, m *protocol.Message) bool {
	if f == nil {
		return true
	}
	doc := protocol.NewLazyDocument(m)
	return f.MatchMessage(m, &doc)
}

type member struct {
	info  json.RawMessage
	conns int
	// remote counts the other cluster nodes holding the member (cluster.go).
	remote int
	// leftHere is the member_removed this node owes the presence history: its last
	// connection of the member left while another node still held the user, so the member
	// leaves when that node's hold ends, which may itself have been a leave that counted on
	// this node's hold (presence_hooks.go). nil when none.
	leftHere *PresenceChange
}

// addMember records a new presence member.
func (ch *channel) addMember(id string, m *member) {
	ch.members[id] = m
	i, found := slices.BinarySearch(ch.ids, id)
	if !found {
		ch.ids = slices.Insert(ch.ids, i, id)
	}
}

// removeMember forgets a presence member.
func (ch *channel) removeMember(id string) {
	delete(ch.members, id)
	if i, found := slices.BinarySearch(ch.ids, id); found {
		ch.ids = slices.Delete(ch.ids, i, i+1)
	}
}

func newChannel(name string, class protocol.ChannelClass) *channel {
	ch := &channel{name: name, class: class, subs: map[*Conn]*subscription{}}
	if class.Type == protocol.Presence {
		ch.members = map[string]*member{}
	}
	return ch
}

// fanout delivers a message to the channel's subscribers: each wire form (V1, V2) is encoded
// at most once and shared. V2 subscribers with a filter get only matching messages. The
// sender of a client event gets it back only on V2 with echo on; exceptSocketID (HTTP
// socket_id) is excluded on both versions. Callers hold ch.mu (read).
// v1 and v2, when not nil, are the already encoded forms.
//
// Mutations of mutable messages (update, delete, append) go to V2 subscribers only; an
// append_mode=full subscriber gets an append with the whole accumulated data.
func (ch *channel) fanout(m *protocol.Message, sender *Conn, exceptSocketID string, v1, v2 []byte) {
	ch.fanoutTo(m, sender, exceptSocketID, v1, v2, nil, everyWindow)
}

// fanoutTo is fanout leaving out the V2 subscribers for which skip, when set, is true
// (asked after the subscriber's filter passed; wildcard.go), and reaching only the
// subscribers whose append rollup group is in to (rollup.go).
func (ch *channel) fanoutTo(m *protocol.Message, sender *Conn, exceptSocketID string, v1, v2 []byte, skip func(*Conn) bool, to windowSet) {
	// One delta state per wire dialect (connections of one dialect keep the same base text),
	// one encoding per binary form of the V2 frame and of its append_mode=full variant.
	var df, dfFull [protocol.NumWires]*deltaFanout
	var v2Forms, fullForms formCache
	var v2Full []byte
	mutation, fullForm, rolled := m.IsMutation() || m.IsAnnotationFrame(), m.HasFullForm(), ch.roll != nil
	rawAnnotation := m.Event == protocol.AnnotationEvent
	// Annotation frames bypass delta state: clients keep no delta base of internal events.
	noDelta := m.IsAnnotationFrame()
	var doc *protocol.LazyDocument // built on the first filtered subscriber
	for c, s := range ch.subs {
		if rolled && to&(1<<ch.rollupMember(c, s)) == 0 {
			continue
		}
		if c == sender && !(c.v2 && c.echo) || exceptSocketID != "" && c.socketID == exceptSocketID {
			continue
		}
		if !c.v2 {
			if mutation {
				continue
			}
			if v1 == nil {
				v1 = m.AppendV1(make([]byte, 0, m.Size()))
			}
			c.sub.Send(v1)
			continue
		}
		if rawAnnotation && !s.annotations {
			continue
		}
		if s.filter != nil {
			if doc == nil {
				d := protocol.NewLazyDocument(m)
				doc = &d
			}
			if !s.filter.MatchMessage(m, doc) {
				continue
			}
		}
		if skip != nil && skip(c) {
			continue
		}
		var frame []byte
		var dmu *sync.Mutex // the delta state's lock, when held
		w := c.wire.Index()
		rq := s.replay.Load()
		held := s.hold.holding() || rq.active()
		if fullForm && c.appendFull {
			if v2Full == nil {
				v2Full = m.AppendV2Full(make([]byte, 0, m.Size()+len(m.Mutable.Full)))
				countEncoding()
			}
			if s.delta != nil {
				if dfFull[w] == nil {
					dfFull[w] = ch.newDeltaFanout(m, v2Full, fullForms.frameFor(c, v2Full), c)
				}
				dmu = &s.delta.mu
				dmu.Lock()
				frame = dfFull[w].frameFor(s.delta, held)
			} else {
				frame = fullForms.frameFor(c, v2Full)
			}
		} else {
			if v2 == nil {
				v2 = m.AppendV2(make([]byte, 0, m.Size()))
				countEncoding()
			}
			if s.delta != nil && !noDelta {
				if df[w] == nil {
					df[w] = ch.newDeltaFanout(m, v2, v2Forms.frameFor(c, v2), c)
				}
				dmu = &s.delta.mu
				dmu.Lock()
				frame = df[w].frameFor(s.delta, held)
			} else {
				frame = v2Forms.frameFor(c, v2)
			}
		}
		if (rq == nil || !rq.add(m.Serial, frame)) && (s.hold == nil || !s.hold.add(m.Serial, frame)) {
			c.sub.SendEncoded(frame)
		}
		if dmu != nil {
			// Held from frameFor until queued: concurrent fan-outs of the channel reach the
			// subscriber in the order their delta sequences were given out.
			dmu.Unlock()
		}
	}
}

// newDeltaFanout starts the delta work of one publish for the connections of c's wire
// dialect: full is the V2 JSON frame, encoded the same frame in c's form.
func (ch *channel) newDeltaFanout(m *protocol.Message, full, encoded []byte, c *Conn) *deltaFanout {
	app := c.app
	path := app.cfg.DeltaConflationPath(ch.name)
	f := &deltaFanout{m: m, wire: c.wire, json: full, encoded: encoded,
		key: conflationValue(m, path), conflate: path != "",
		encode: app.hub.deltaEncoder, interval: app.cfg.DeltaFullInterval, force: m.NoDelta,
		positions: app.cfg.DeltaPositions}
	f.full, f.fullOK = protocol.ClientText(c.wire, full)
	if f.fullOK {
		f.target, _ = protocol.DeltaTarget(f.full)
	}
	return f
}

// formCache holds one JSON frame's binary encodings, each made at most once per fan-out.
type formCache [protocol.NumForms][]byte

// frameFor returns jsonFrame in c's wire form.
func (fc *formCache) frameFor(c *Conn, jsonFrame []byte) []byte {
	if !c.wire.Binary() {
		return jsonFrame
	}
	f := c.wire.Form()
	if fc[f] == nil {
		fc[f] = protocol.MustEncode(f, jsonFrame)
		countEncoding()
	}
	return fc[f]
}

// encodings counts the wire encodings fan-outs made (V2 JSON builds and binary
// transcodings), for the benchmarks and tests that prove one encoding per form per publish.
var encodings atomic.Int64

func countEncoding() { encodings.Add(1) }

// fanoutSystem sends a system frame, built once per protocol version and encoded once per
// binary form in use, to every subscriber but except. Callers hold ch.mu.
func (ch *channel) fanoutSystem(build func(protocol.Version) []byte, except *Conn) {
	var forms [3][]byte
	var bin formCache
	for c, s := range ch.subs {
		if c == except {
			continue
		}
		v := c.sub.Version()
		if forms[v] == nil {
			forms[v] = build(v)
		}
		frame := bin.frameFor(c, forms[v])
		if rq := s.replay.Load(); rq == nil || !rq.add(0, frame) {
			c.sub.SendEncoded(frame)
		}
	}
}

// presenceData is the double-encoded payload of a presence subscription_succeeded:
// {"presence":{"ids":[...],"hash":{...},"count":n}}. Callers hold ch.mu.
func (ch *channel) presenceData() []byte {
	ids := ch.ids
	size := 48
	for _, id := range ids {
		size += 2*len(id) + len(ch.members[id].info) + 8 // quoted twice, separators (escapes may grow it)
	}
	b := append(make([]byte, 0, size), `{"presence":{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendJSONString(b, id)
	}
	b = append(b, `],"hash":{`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendJSONString(b, id)
		b = append(b, ':')
		b = append(b, ch.members[id].info...)
	}
	b = append(b, `},"count":`...)
	b = strconv.AppendInt(b, int64(len(ids)), 10)
	return append(b, `}}`...)
}
