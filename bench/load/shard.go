package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// MaxPhases bounds the publishing phases of one run (the first rate plus the ramp).
const MaxPhases = 16

// Names of the benchmark events.
const (
	apiEvent    = "bench"
	clientEvent = "client-bench"
)

// subConn is one subscriber connection.
type subConn struct {
	id       int
	ws       *wsConn
	chans    []int // channel table indexes
	socketID string
	acks     chan error // one per subscription

	recv     [MaxPhases]atomic.Int64 // benchmark events received, by phase
	sent     [MaxPhases]atomic.Int64 // client events sent, by phase
	lastRecv [MaxPhases]atomic.Int64 // unix nanos of the last benchmark event, by phase
	members  atomic.Int64            // presence: other members this connection knows of
	done     atomic.Bool             // closed by us
}

// Shard is a set of subscriber connections served by one process.
type Shard struct {
	cfg    *Config
	lo, hi int     // connection indexes [lo, hi)
	rate   float64 // connections per second for this shard

	mu         sync.Mutex
	conns      []*subConn
	errSamples []string
	closeCodes map[string]int
	subs       map[int]int

	connectErrs   atomic.Int64
	subscribeErrs atomic.Int64
	disconnects   atomic.Int64
	serverErrors  atomic.Int64
	memberAdded   atomic.Int64
	memberRemoved atomic.Int64
	unknown       atomic.Int64 // benchmark payloads with a phase out of range

	handshake  Histogram
	subscribe  Histogram
	memberLat  Histogram
	latency    [MaxPhases]Histogram
	connectDur time.Duration
}

// NewShard prepares connections [lo, hi) of cfg, opened at rate per second.
func NewShard(cfg *Config, lo, hi int, rate float64) *Shard {
	return &Shard{cfg: cfg, lo: lo, hi: hi, rate: rate, closeCodes: map[string]int{}, subs: map[int]int{}}
}

func (s *Shard) noteError(err error) {
	msg := err.Error()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errSamples) < 5 {
		for _, e := range s.errSamples {
			if e == msg {
				return
			}
		}
		s.errSamples = append(s.errSamples, msg)
	}
}

// Connect opens and subscribes every connection of the shard at the shard's rate, and
// returns when all have succeeded or failed.
func (s *Shard) Connect(ctx context.Context) {
	start := time.Now()
	n := s.hi - s.lo
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(s.cfg.ConnectWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c, err := s.open(ctx, i)
				if err != nil {
					s.noteError(err)
					continue
				}
				s.mu.Lock()
				s.conns = append(s.conns, c)
				for _, ch := range c.chans {
					s.subs[ch]++
				}
				s.mu.Unlock()
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / s.rate)
pace:
	for k := range n {
		if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				break pace
			}
		}
		select {
		case jobs <- s.lo + k:
		case <-ctx.Done():
			break pace
		}
	}
	close(jobs)
	wg.Wait()
	s.connectDur = time.Since(start)
}

// open dials connection i, waits for connection_established, subscribes and waits for the
// acknowledgements.
func (s *Shard) open(ctx context.Context, i int) (*subConn, error) {
	cfg := s.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	t0 := time.Now()
	ws, err := dialWS(ctx, wsURL(cfg.URL, cfg.Key, cfg.Protocol), 4096)
	if err != nil {
		s.connectErrs.Add(1)
		return nil, fmt.Errorf("connect: %w", err)
	}
	fail := func(counter *atomic.Int64, err error) (*subConn, error) {
		counter.Add(1)
		ws.nc.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.nc.SetReadDeadline(dl)
	}
	_, msg, err := ws.ReadMessage()
	if err != nil {
		return fail(&s.connectErrs, fmt.Errorf("connect: waiting for connection_established: %w", err))
	}
	ev := frameEvent(msg)
	if !bytes.HasSuffix(ev, []byte(":connection_established")) {
		return fail(&s.connectErrs, fmt.Errorf("connect: got %.200s", msg))
	}
	socketID, err := socketIDOf(msg)
	if err != nil {
		return fail(&s.connectErrs, err)
	}
	_ = ws.nc.SetReadDeadline(time.Time{})
	s.handshake.Record(time.Since(t0))

	c := &subConn{id: i, ws: ws, chans: cfg.Channels(i), socketID: socketID}
	c.acks = make(chan error, len(c.chans))
	go s.readLoop(c)
	t1 := time.Now()
	for _, ch := range c.chans {
		frame := subscribeFrame(cfg, cfg.ChannelName(ch), socketID, i)
		if err := ws.WriteText(frame); err != nil {
			c.done.Store(true)
			return fail(&s.subscribeErrs, fmt.Errorf("subscribe: %w", err))
		}
	}
	for range c.chans {
		select {
		case err := <-c.acks:
			if err != nil {
				c.done.Store(true)
				return fail(&s.subscribeErrs, err)
			}
		case <-ctx.Done():
			c.done.Store(true)
			return fail(&s.subscribeErrs, errors.New("subscribe: no subscription_succeeded in time"))
		}
	}
	s.subscribe.Record(time.Since(t1))
	return c, nil
}

func socketIDOf(msg []byte) (string, error) {
	var env struct {
		Data string `json:"data"`
	}
	var d struct {
		SocketID string `json:"socket_id"`
	}
	if err := json.Unmarshal(msg, &env); err != nil {
		return "", fmt.Errorf("connect: bad connection_established: %w", err)
	}
	if err := json.Unmarshal([]byte(env.Data), &d); err != nil || d.SocketID == "" {
		return "", fmt.Errorf("connect: no socket_id in %.200s", msg)
	}
	return d.SocketID, nil
}

// subscribeFrame builds the subscribe frame of connection i, with the channel auth a backend
// would sign for private and presence channels. A presence member's user_info carries the
// time of the subscribe, so member_added latency can be measured like event latency.
func subscribeFrame(cfg *Config, channel, socketID string, i int) []byte {
	d := map[string]string{"channel": channel}
	switch {
	case strings.HasPrefix(channel, "presence-"):
		info := EncodePayload(time.Now().UnixNano(), 0, i, 0)
		cd, _ := json.Marshal(map[string]any{"user_id": "u" + strconv.Itoa(i), "user_info": map[string]string{"t": info}})
		d["channel_data"] = string(cd)
		d["auth"] = protocol.AuthToken(cfg.Key, cfg.Secret, protocol.ChannelStringToSign(socketID, channel, string(cd), true))
	case strings.HasPrefix(channel, "private-"):
		d["auth"] = protocol.AuthToken(cfg.Key, cfg.Secret, protocol.ChannelStringToSign(socketID, channel, "", false))
	}
	b, _ := json.Marshal(map[string]any{"event": systemPrefix(cfg.Protocol) + ":subscribe", "data": d})
	return b
}

func systemPrefix(version int) string {
	if version == 2 {
		return "sockudo"
	}
	return "pusher"
}

// readLoop consumes a connection's frames until it closes.
func (s *Shard) readLoop(c *subConn) {
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			if !c.done.Load() {
				s.disconnects.Add(1)
				code := "dropped"
				var ce *CloseError
				if errors.As(err, &ce) {
					code = strconv.Itoa(ce.Code)
				}
				s.mu.Lock()
				s.closeCodes[code]++
				s.mu.Unlock()
				s.noteError(fmt.Errorf("disconnected: %w", err))
			}
			// Unblock a subscriber still waiting for its acknowledgements.
			for range cap(c.acks) {
				select {
				case c.acks <- errors.New("subscribe: connection closed"):
				default:
				}
			}
			return
		}
		s.handle(c, msg)
	}
}

func (s *Shard) handle(c *subConn, msg []byte) {
	now := time.Now()
	ev := frameEvent(msg)
	switch {
	case string(ev) == apiEvent || string(ev) == clientEvent:
		ts, phase, _, ok := DecodePayload(msg)
		if !ok || phase < 0 || phase >= MaxPhases {
			s.unknown.Add(1)
			return
		}
		c.recv[phase].Add(1)
		c.lastRecv[phase].Store(now.UnixNano())
		s.latency[phase].Record(now.Sub(time.Unix(0, ts)))
	case bytes.HasSuffix(ev, []byte(":member_added")):
		c.members.Add(1)
		s.memberAdded.Add(1)
		if ts, _, _, ok := DecodePayload(msg); ok {
			s.memberLat.Record(now.Sub(time.Unix(0, ts)))
		}
	case bytes.HasSuffix(ev, []byte(":member_removed")):
		c.members.Add(-1)
		s.memberRemoved.Add(1)
	case bytes.HasSuffix(ev, []byte(":subscription_succeeded")):
		if bytes.HasPrefix(frameChannel(msg), []byte("presence-")) {
			c.members.Add(int64(presenceCount(msg) - 1))
		}
		select {
		case c.acks <- nil:
		default:
		}
	case bytes.HasSuffix(ev, []byte(":subscription_error")):
		select {
		case c.acks <- fmt.Errorf("subscribe: %.200s", msg):
		default:
		}
	case bytes.HasSuffix(ev, []byte(":ping")):
		_ = c.ws.WriteText([]byte(`{"event":"` + systemPrefix(s.cfg.Protocol) + `:pong","data":{}}`))
	case bytes.HasSuffix(ev, []byte(":error")):
		s.serverErrors.Add(1)
		s.noteError(fmt.Errorf("server error frame: %.200s", msg))
	}
}

// presenceCount reads presence.count from a presence subscription_succeeded frame.
func presenceCount(msg []byte) int {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(msg, &env) != nil {
		return 0
	}
	raw := []byte(env.Data)
	var str string
	if json.Unmarshal(env.Data, &str) == nil {
		raw = []byte(str)
	}
	var d struct {
		Presence struct {
			Count int `json:"count"`
		} `json:"presence"`
	}
	if json.Unmarshal(raw, &d) != nil {
		return 0
	}
	return d.Presence.Count
}

// ClientPhase makes every connection send client events to its first channel at rate per
// second for d, starting at a random offset within one interval.
func (s *Shard) ClientPhase(ctx context.Context, phase int, rate float64, d time.Duration) {
	s.mu.Lock()
	conns := append([]*subConn(nil), s.conns...)
	s.mu.Unlock()
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now().Add(time.Duration(rand.Int64N(int64(interval))))
			channel := s.cfg.ChannelName(c.chans[0])
			seq := 0
			for next.Before(end) {
				select {
				case <-time.After(time.Until(next)):
				case <-ctx.Done():
					return
				}
				frame, _ := json.Marshal(map[string]string{"event": clientEvent, "channel": channel, "data": EncodePayload(time.Now().UnixNano(), phase, seq, s.cfg.Payload)})
				if c.ws.WriteText(frame) == nil {
					c.sent[phase].Add(1)
				}
				seq++
				next = next.Add(interval)
			}
		}()
	}
	wg.Wait()
}

// ShardStats is the state of a shard, serialisable so worker processes can report it.
type ShardStats struct {
	Attempted       int            `json:"attempted"`
	Connected       int            `json:"connected"`
	ConnectErrors   int64          `json:"connect_errors"`
	SubscribeErrors int64          `json:"subscribe_errors"`
	Disconnects     int64          `json:"disconnects"`
	ServerErrors    int64          `json:"server_errors"`
	CloseCodes      map[string]int `json:"close_codes,omitempty"`
	Errors          []string       `json:"errors,omitempty"`
	ConnectSeconds  float64        `json:"connect_seconds"`
	Handshake       HistSnapshot   `json:"handshake"`
	Subscribe       HistSnapshot   `json:"subscribe"`
	Subs            map[int]int    `json:"subs"` // channel index → subscribed connections

	Phases []PhaseShard `json:"phases"`

	Members       int64        `json:"members"` // Σ other members known, over connections
	MemberAdded   int64        `json:"member_added"`
	MemberRemoved int64        `json:"member_removed"`
	MemberLatency HistSnapshot `json:"member_latency"`
	Unknown       int64        `json:"unknown"`
}

// PhaseShard is one phase as seen by one shard.
type PhaseShard struct {
	Received   int64         `json:"received"`
	ClientSent map[int]int64 `json:"client_sent,omitempty"` // channel index → client events sent
	Latency    HistSnapshot  `json:"latency"`
	LastRecv   int64         `json:"last_recv_unix_nano"`
}

// Stats snapshots the shard; phases holds the first n phases.
func (s *Shard) Stats(n int) ShardStats {
	s.mu.Lock()
	conns := append([]*subConn(nil), s.conns...)
	st := ShardStats{
		Attempted: s.hi - s.lo, Connected: len(s.conns),
		CloseCodes: copyMap(s.closeCodes), Errors: append([]string(nil), s.errSamples...),
		Subs: copyMap(s.subs),
	}
	s.mu.Unlock()
	st.ConnectErrors, st.SubscribeErrors = s.connectErrs.Load(), s.subscribeErrs.Load()
	st.Disconnects, st.ServerErrors = s.disconnects.Load(), s.serverErrors.Load()
	st.ConnectSeconds = s.connectDur.Seconds()
	st.Handshake, st.Subscribe = s.handshake.Snapshot(), s.subscribe.Snapshot()
	st.MemberAdded, st.MemberRemoved = s.memberAdded.Load(), s.memberRemoved.Load()
	st.MemberLatency, st.Unknown = s.memberLat.Snapshot(), s.unknown.Load()
	for p := range min(n, MaxPhases) {
		ps := PhaseShard{Latency: s.latency[p].Snapshot()}
		for _, c := range conns {
			ps.Received += c.recv[p].Load()
			ps.LastRecv = max(ps.LastRecv, c.lastRecv[p].Load())
			if k := c.sent[p].Load(); k != 0 {
				if ps.ClientSent == nil {
					ps.ClientSent = map[int]int64{}
				}
				ps.ClientSent[c.chans[0]] += k
			}
		}
		st.Phases = append(st.Phases, ps)
	}
	for _, c := range conns {
		st.Members += c.members.Load()
	}
	return st
}

func copyMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Close closes every connection with 1000.
func (s *Shard) Close() {
	s.mu.Lock()
	conns := s.conns
	s.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range conns {
		c.done.Store(true)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			_ = c.ws.Close(1000)
			<-sem
		}()
	}
	wg.Wait()
}
