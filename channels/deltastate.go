package channels

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/pushwire/pushwire/protocol"
)

// Delta compression (ws-protocol §4): V2 subscribers that opt in receive, after a full
// frame, sockudo:delta frames that turn their previous frame into the new one.

// Delta algorithm names on the wire.
const (
	DeltaFossil = "fossil"
	DeltaVCDIFF = "xdelta3"
)

// DeltaEncoder computes a delta turning base into target with the named algorithm
// ("fossil" or "xdelta3"). delta.Encode implements it.
type DeltaEncoder func(algorithm string, base, target []byte) ([]byte, error)

// Delta state limits.
const (
	// MaxDeltaGroups caps the conflation groups kept per subscription (oldest evicted).
	MaxDeltaGroups = 100
	// DefaultDeltaFullInterval is the most consecutive deltas per group before a full frame.
	DefaultDeltaFullInterval = 100
)

// deltaSub is one subscription's delta state: a base per conflation group ("" when the
// channel has no conflation key). Fan-outs of one channel may run concurrently, so it has
// its own lock, held from choosing a frame until it is queued.
type deltaSub struct {
	algorithm string
	mu        sync.Mutex
	// implied is set once the client's default algorithm (the last one the connection
	// announced in delta_compression_enabled) is this one: its delta frames then leave
	// "algorithm" out, as both clients fall back to that default. It is set only after the
	// announcement is queued and cleared, under the channel lock, before another algorithm
	// is announced (Conn.prepareDeltaAnnouncement; held frames are never deltas, see
	// frameFor), so no frame without "algorithm" can follow an
	// announcement of a different one.
	implied bool
	groups  map[string]*deltaGroup
	order   []string // group keys, oldest first
}

type deltaGroup struct {
	base        []byte // the text the client keeps for the last message sent
	baseSeq     uint64
	next        uint64
	consecutive int // deltas since the last full frame (0: base is a full frame's text)
	// unpaid is set once a delta between lean targets was not smaller than the full frame:
	// from then on a delta from a full frame's text must be smaller than the full frame too.
	unpaid bool
}

func newDeltaSub(algorithm string) *deltaSub {
	return &deltaSub{algorithm: algorithm, groups: map[string]*deltaGroup{}}
}

func (d *deltaSub) setImplied(v bool) {
	d.mu.Lock()
	d.implied = v
	d.mu.Unlock()
}

// reset forgets every base: the next message of each group is full, from sequence 0.
func (d *deltaSub) reset() {
	d.mu.Lock()
	d.resetLocked()
	d.mu.Unlock()
}

// resetLocked is reset for a caller holding d.mu.
func (d *deltaSub) resetLocked() {
	clear(d.groups)
	d.order = d.order[:0]
}

// deltaFanout shares the work of one publish among the delta subscribers of one wire
// dialect (protocol.Wire.Index): one delta per distinct (base, algorithm) and one frame per
// distinct (base, sequence) or full sequence, each encoded once in the dialect's form.
//
// The delta turns the text the client keeps for its previous message into the text it keeps
// for this one. A full frame leaves its own text (markers stripped): on JSON the frame
// itself; a binary client keeps its own JSON rendering of the decoded envelope
// (protocol.ClientText), so full is that rendering, and the base a full frame leaves is the
// client's rendering of it with the markers stripped the way the client strips them. A delta
// rebuilds the lean target (protocol.DeltaTarget: event, channel and data only), which the
// client then keeps as its base: the message's serial, ids, timestamps and extras, read by
// no client from a rebuilt text, are never in a delta; a message whose data no delta can
// surface as the plain frame does (no target) goes out full. When the rendering cannot be
// predicted (fullOK false) the subscriber gets full frames and keeps no base, so no delta is
// ever computed against a text the client does not hold.
type deltaFanout struct {
	m         *protocol.Message
	wire      protocol.Wire
	json      []byte // the V2 JSON frame without markers
	encoded   []byte // json in the wire's form
	full      []byte // the client's text of json: the base a full frame leaves
	fullOK    bool
	target    []byte // what a delta rebuilds: protocol.DeltaTarget of full (nil: no delta)
	key       string // conflation value
	conflate  bool   // the channel has a conflation path: deltas name their base_index
	encode    DeltaEncoder
	interval  int
	force     bool
	positions bool // delta frames carry message_id, stream_id and serial (config delta_positions)

	deltas map[deltaKey][]byte // computed deltas (nil: not smaller / failed)
	frames map[frameKey][]byte
	fulls  map[uint64]fullFrame
}

// fullFrame is a full frame of one sequence in the wire's form and the base it leaves
// (nil: none the server can rely on).
type fullFrame struct {
	frame, base []byte
}

type deltaKey struct {
	base *byte
	n    int
	alg  string
}

type frameKey struct {
	deltaKey
	seq, baseSeq uint64
	implied      bool
}

// frameFor picks and records what subscriber state d receives for this message. Callers
// hold d.mu until the frame is queued, so frames leave in sequence order. held is
// set while the subscription's live frames are held back (hold.go): those are always full
// frames, as a resume may drop them (recovery.go resets the delta state then) and they
// may go out after a later announcement of another algorithm.
//
// On a channel with a conflation path, a message without a conflation value goes out as
// the plain frame, without markers, and leaves every base as it was: the clients keep the
// bases of such a channel per conflation value, and a full frame without __conflation_key
// would become their single legacy base, which no delta of the server refers to (found by
// FuzzDeltaStream; sockudo-js then asks for a resync on the next delta of that group).
func (f *deltaFanout) frameFor(d *deltaSub, held bool) []byte {
	if f.conflate && f.key == "" {
		return f.encoded
	}
	g := d.groups[f.key]
	if g == nil {
		if len(d.order) >= MaxDeltaGroups {
			delete(d.groups, d.order[0])
			d.order = append(d.order[:0], d.order[1:]...)
		}
		g = &deltaGroup{}
		d.groups[f.key] = g
		d.order = append(d.order, f.key)
	}
	seq := g.next
	var frame, base []byte
	if g.base != nil && (f.interval <= 0 || g.consecutive < f.interval) && !f.force && !held && f.encode != nil && f.target != nil {
		frame = f.deltaFrame(d.algorithm, d.implied, g.base, g.baseSeq, seq)
		// A delta goes out when smaller than the full frame. The first one after a full
		// frame may be up to twice its size: it turns the whole frame's text (data as a
		// JSON string) into the lean target (data as JSON), which can cost more than the
		// frame when the frame is small (binary formats without extras), and every later
		// delta, between lean targets, pays it back — unless those have not paid here.
		limit := len(f.encoded)
		if g.consecutive == 0 && !g.unpaid {
			limit *= 2
		}
		if len(frame) >= limit {
			if g.consecutive > 0 && frame != nil {
				g.unpaid = true
			}
			frame = nil
		}
	}
	if frame != nil {
		g.consecutive++
		base = f.target
	} else {
		ff := f.fullFrame(seq)
		frame, base = ff.frame, ff.base
		g.consecutive = 0
	}
	g.base, g.baseSeq, g.next = base, seq, seq+1
	return frame
}

// fullFrame is the V2 frame with __delta_seq (and __conflation_key) spliced in as the last
// keys, so that stripping them gives back exactly the base bytes, in the wire's form, with
// the base the client keeps for it.
func (f *deltaFanout) fullFrame(seq uint64) fullFrame {
	if ff, ok := f.fulls[seq]; ok {
		return ff
	}
	b := make([]byte, 0, len(f.json)+48+len(f.key))
	b = append(b, f.json[:len(f.json)-1]...)
	b = append(b, `,"__delta_seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if f.key != "" {
		b = append(b, `,"__conflation_key":`...)
		b = protocol.AppendJSONString(b, f.key)
	}
	b = append(b, '}')
	ff := fullFrame{frame: b, base: f.full}
	if f.wire.Binary() {
		ff.frame = protocol.MustEncode(f.wire.Form(), b)
		countEncoding()
		ff.base = nil
		if text, ok := protocol.ClientText(f.wire, b); ok && f.fullOK {
			if base := protocol.StripDeltaMarkers(text); bytes.Equal(base, f.full) {
				ff.base = f.full // shared, so the next publish computes one delta for all
			} else {
				ff.base = base
			}
		}
	}
	if f.fulls == nil {
		f.fulls = map[uint64]fullFrame{}
	}
	f.fulls[seq] = ff
	return ff
}

// deltaFrame returns the sockudo:delta frame from base (sequence baseSeq) to this message,
// or nil when no delta could be computed.
//
// The frame carries only what the clients read (sockudo-js core/delta/manager.ts,
// sockudo_flutter delta_compression.dart): event, delta and seq always (Flutter drops a
// delta without seq); algorithm unless implied (both fall back to the announced default);
// conflation_key and base_index only on channels with a conflation path (without one both
// keep a single base per channel and never read base_index); with delta_positions the
// message's message_id, stream_id and serial beside data, where both clients read their
// recovery position and dedup id.
func (f *deltaFanout) deltaFrame(alg string, implied bool, base []byte, baseSeq, seq uint64) []byte {
	k := deltaKey{unsafe.SliceData(base), len(base), alg}
	fk := frameKey{k, seq, baseSeq, implied}
	if b, ok := f.frames[fk]; ok {
		return b
	}
	d, ok := f.deltas[k]
	if !ok {
		var err error
		if d, err = f.encode(alg, base, f.target); err != nil {
			d = nil
		}
		if f.deltas == nil {
			f.deltas = map[deltaKey][]byte{}
		}
		f.deltas[k] = d
	}
	var frame []byte
	if d != nil {
		frame = make([]byte, 0, 128+base64.StdEncoding.EncodedLen(len(d))+len(f.m.Event)+len(f.m.Channel)+len(f.m.MessageID)+len(f.m.StreamID))
		frame = append(frame, `{"event":"sockudo:delta","channel":`...)
		frame = protocol.AppendJSONString(frame, f.m.Channel)
		frame = append(frame, `,"data":{"event":`...)
		frame = protocol.AppendJSONString(frame, f.m.Event)
		frame = append(frame, `,"delta":"`...)
		frame = base64.StdEncoding.AppendEncode(frame, d)
		frame = append(frame, `","seq":`...)
		frame = strconv.AppendUint(frame, seq, 10)
		if !implied {
			frame = append(frame, `,"algorithm":`...)
			frame = protocol.AppendJSONString(frame, alg)
		}
		if f.key != "" {
			frame = append(frame, `,"conflation_key":`...)
			frame = protocol.AppendJSONString(frame, f.key)
		}
		if f.conflate {
			frame = append(frame, `,"base_index":`...)
			frame = strconv.AppendUint(frame, baseSeq, 10)
		}
		frame = append(frame, '}')
		if f.positions {
			// Read by the clients from the outer frame: the recovery position and the dedup id.
			if f.m.MessageID != "" {
				frame = append(frame, `,"message_id":`...)
				frame = protocol.AppendJSONString(frame, f.m.MessageID)
			}
			if f.m.StreamID != "" {
				frame = append(frame, `,"stream_id":`...)
				frame = protocol.AppendJSONString(frame, f.m.StreamID)
			}
			if f.m.Serial != 0 {
				frame = append(frame, `,"serial":`...)
				frame = strconv.AppendUint(frame, f.m.Serial, 10)
			}
		}
		frame = append(frame, '}')
		if f.wire.Binary() {
			frame = protocol.MustEncode(f.wire.Form(), frame)
			countEncoding()
		}
	}
	if f.frames == nil {
		f.frames = map[frameKey][]byte{}
	}
	f.frames[fk] = frame
	return frame
}

// conflationValue extracts the conflation key of a message by a dotted path: a top-level
// frame key (event, channel, name, user_id) or a path inside data (an object, or a string
// holding JSON). Values containing a quote are not used.
func conflationValue(m *protocol.Message, path string) string {
	if path == "" {
		return ""
	}
	switch path {
	case "event":
		return m.Event
	case "name":
		return m.Name
	case "user_id":
		return m.UserID
	}
	raw := bytes.TrimSpace(m.Data)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		raw = []byte(s)
	}
	var cur any
	if json.Unmarshal(raw, &cur) != nil {
		return ""
	}
	for _, seg := range strings.Split(strings.TrimPrefix(path, "data."), ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = obj[seg]
	}
	var v string
	switch x := cur.(type) {
	case string:
		v = x
	case float64, bool:
		b, _ := json.Marshal(x)
		v = string(b)
	default:
		return ""
	}
	if strings.ContainsRune(v, '"') || len(v) > 256 {
		return ""
	}
	return v
}

// deltaFor is the delta algorithm of a new subscription ("" for none): its own setting, else
// the connection-wide one; never on V1, encrypted channels, or apps with delta off.
func (c *Conn) deltaFor(req SubscribeRequest, class protocol.ChannelClass) string {
	if !c.v2 || class.Type == protocol.Encrypted || !c.app.cfg.DeltaOn() {
		return ""
	}
	if req.DeltaSet {
		return req.Delta
	}
	return c.deltaAll
}

// EnableDelta handles sockudo:enable_delta_compression {"algorithms":[…]}: every
// subscription of the connection (present and future, encrypted ones excepted) gets delta
// frames, from a fresh state, with the first algorithm of the client's list (in its order
// of preference) that the server supports; the answer, delta_compression_enabled, names it.
// Without a list the server's default (fossil) is used; a list of unknown algorithms only
// is refused (protocol.ParseDeltaAlgorithms) and changes nothing.
func (c *Conn) EnableDelta(data json.RawMessage) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "Delta compression needs a protocol 2 connection"}
	}
	if !c.app.cfg.DeltaOn() {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "Delta compression is disabled for this app"}
	}
	algs, err := protocol.ParseDeltaAlgorithms(data)
	if err != nil {
		return err
	}
	alg := DeltaFossil
	if len(algs) > 0 {
		alg = algs[0]
	}
	c.deltaAll = alg
	c.deltaAnnounced = ""
	fresh := map[*deltaSub]bool{}
	for name := range c.channels.names() {
		if protocol.Classify(name).Type == protocol.Encrypted || kindOf(name) != kindChannel {
			continue
		}
		if ch := c.app.lookup(name); ch != nil {
			ch.mu.Lock()
			if s := ch.subs[c]; s != nil {
				s.delta = newDeltaSub(alg) // algorithm named until the announcement is queued
				fresh[s.delta] = true
			}
			ch.mu.Unlock()
		}
	}
	c.sub.Send(protocol.DeltaEnabled("", alg))
	c.deltaAnnounced = alg
	for d := range fresh {
		d.setImplied(true)
	}
	return nil
}

// prepareDeltaAnnouncement is called before announcing alg in delta_compression_enabled:
// when it differs from the algorithm announced last, every delta subscription of the
// connection names its algorithm again from now on, each switched under its channel's lock
// so that no frame leaving the algorithm out is queued after the new announcement.
func (c *Conn) prepareDeltaAnnouncement(alg string) {
	if c.deltaAnnounced == "" || c.deltaAnnounced == alg {
		return
	}
	c.deltaAnnounced = ""
	for name := range c.channels.names() {
		if kindOf(name) != kindChannel {
			continue
		}
		if ch := c.app.lookup(name); ch != nil {
			ch.mu.Lock()
			if s := ch.subs[c]; s != nil && s.delta != nil {
				s.delta.setImplied(false)
			}
			ch.mu.Unlock()
		}
	}
}

// DeltaSyncError handles sockudo:delta_sync_error {"channel":…}: the client lost its base,
// so the subscription's state is reset and its next message is a full frame.
func (c *Conn) DeltaSyncError(data json.RawMessage, frameChannel string) *protocol.Error {
	var w struct {
		Channel string `json:"channel"`
	}
	_ = protocol.DecodeData(data, &w)
	name := w.Channel
	if name == "" {
		name = frameChannel
	}
	if !c.channels.has(name) {
		return protocol.Errorf(protocol.CodeGeneric, "delta_sync_error: not subscribed to %q", protocol.Truncate(name, 200))
	}
	if ch := c.app.lookup(name); ch != nil {
		ch.mu.RLock()
		if s := ch.subs[c]; s != nil && s.delta != nil {
			s.delta.reset()
		}
		ch.mu.RUnlock()
	}
	return nil
}
