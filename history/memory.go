package history

import (
	"context"
	"sync"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// MemoryOptions bound a Memory store. The zero value gives the defaults.
type MemoryOptions struct {
	// MaxMessagesPerChannel caps the retained messages of one channel (oldest dropped
	// first). Default 1000.
	MaxMessagesPerChannel int
	// MaxAge drops messages older than this. Default 24h.
	MaxAge time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// SweepEvery is how often the background sweeper frees the streams not written for
	// MaxAge (memory_sweep.go). Default MaxAge/4 within [1s, 1m]; negative: no background
	// sweeper (call Sweep).
	SweepEvery time.Duration
}

// Defaults of MemoryOptions.
const (
	DefaultMemoryMessages = 1000
	DefaultMaxAge         = 24 * time.Hour
	// MaxReadLimit caps one page.
	MaxReadLimit = 1000
)

// Memory is an in-process history store. Its serials restart on a process restart (with a
// new stream id, so clients see a stream reset rather than wrong serials). Its streams expire
// on their own (memory_sweep.go); Close stops its background sweeper.
type Memory struct {
	opts MemoryOptions

	mu      sync.Mutex
	streams map[streamKey]*memStream
	// head and tail are the expiry list: streams from least to most recently written.
	head, tail *memStream
	// peak is the most streams held since the map was last rebuilt (Go maps keep their
	// buckets after deletes; Sweep rebuilds a map that shrank to a quarter).
	peak int

	stop      chan struct{}
	swept     chan struct{}
	closeOnce sync.Once

	presence memPresence // presence events (memory_presence.go)
}

type streamKey struct{ app, channel string }

type memStream struct {
	// key, prev, next, linked and touchedMs belong to the expiry list (Memory.mu).
	key        streamKey
	prev, next *memStream
	linked     bool
	touchedMs  int64

	mu sync.Mutex
	// dead is set (under mu) when the sweeper dropped the stream: a writer that finds it
	// looks the channel up again.
	dead bool
	id   string
	head uint64
	// msgs is a ring holding the retained messages in serial order: msgs[start:] then
	// msgs[:start] once it wrapped.
	msgs  []protocol.Message
	start int
	n     int
	bytes int64
	// versioned holds the stream's mutable messages (see memory_versions.go) and created
	// their serials in creation order. They are bounded apart from the stream, whose
	// retention counts every delivery: a message streamed in thousands of appends must
	// stay mutable. At most MaxMessagesPerChannel of them are kept, each until MaxAge
	// passes without a change.
	versioned map[string]*memVersioned
	created   []string
	// ops maps op keys to the versions they made.
	ops map[string]opRef
	// annSeq is the last annotation serial number given out (memory_annotations.go).
	annSeq uint64
}

// NewMemory returns an empty store.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.MaxMessagesPerChannel <= 0 {
		opts.MaxMessagesPerChannel = DefaultMemoryMessages
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = defaultSweepEvery(opts.MaxAge)
	}
	m := &Memory{opts: opts, streams: map[streamKey]*memStream{}}
	if opts.SweepEvery > 0 {
		m.stop, m.swept = make(chan struct{}), make(chan struct{})
		go m.sweepLoop(opts.SweepEvery)
	}
	return m
}

// stream returns the channel's stream, nil when it has none.
func (m *Memory) stream(app, channel string) *memStream {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.streams[streamKey{app, channel}]
}

// writable returns the channel's stream, created when missing, locked and moved to the tail
// of the expiry list as written at now.
func (m *Memory) writable(app, channel string, now time.Time) *memStream {
	k := streamKey{app, channel}
	for {
		m.mu.Lock()
		s := m.streams[k]
		if s == nil {
			// The ring starts empty: appendLocked grows it as messages come.
			s = &memStream{key: k, id: protocol.NewUUID()}
			m.streams[k] = s
			m.peak = max(m.peak, len(m.streams))
		}
		m.touchLocked(s, now.UnixMilli())
		m.mu.Unlock()
		s.mu.Lock()
		if !s.dead {
			return s
		}
		s.mu.Unlock()
		m.mu.Lock()
		m.dropLocked(s)
		m.mu.Unlock()
	}
}

func msgBytes(msg *protocol.Message) int64 {
	n := len(msg.Event) + len(msg.Channel) + len(msg.Data) + len(msg.Name) + len(msg.UserID) + len(msg.MessageID) + len(msg.Extras) + 64
	for k, v := range msg.Tags {
		n += len(k) + len(v)
	}
	return int64(n)
}

// at returns the i-th retained message (0 = oldest). Callers hold s.mu.
func (s *memStream) at(i int) *protocol.Message { return &s.msgs[(s.start+i)%len(s.msgs)] }

// dropOldest removes the oldest retained message. Callers hold s.mu.
func (s *memStream) dropOldest() {
	old := s.at(0)
	s.bytes -= msgBytes(old)
	*old = protocol.Message{}
	s.start = (s.start + 1) % len(s.msgs)
	s.n--
}

// expire drops messages older than the age limit. Callers hold s.mu.
func (s *memStream) expire(cutoffMs int64) {
	for s.n > 0 && s.at(0).PublishedAtMs < cutoffMs {
		s.dropOldest()
	}
}

// Append implements channels.History.
func (m *Memory) Append(_ context.Context, appID string, msg *protocol.Message) error {
	now := m.opts.Now()
	if msg.PublishedAtMs == 0 {
		msg.PublishedAtMs = now.UnixMilli()
	}
	s := m.writable(appID, msg.Channel, now)
	defer s.mu.Unlock()
	m.appendLocked(s, msg, now)
	return nil
}

// appendLocked stores msg as the stream's next message. Callers hold s.mu.
func (m *Memory) appendLocked(s *memStream, msg *protocol.Message, now time.Time) {
	s.expire(now.Add(-m.opts.MaxAge).UnixMilli())
	s.head++
	msg.Serial, msg.StreamID = s.head, s.id
	stored := *msg
	stored.Data = append([]byte(nil), msg.Data...)
	stored.Extras = append([]byte(nil), msg.Extras...)
	if msg.Tags != nil {
		stored.Tags = make(map[string]string, len(msg.Tags))
		for k, v := range msg.Tags {
			stored.Tags[k] = v
		}
	}
	if len(stored.Extras) == 0 {
		stored.Extras = nil
	}
	if msg.Mutable != nil {
		mu := *msg.Mutable
		mu.Full = nil
		stored.Mutable = &mu
	}
	max := m.opts.MaxMessagesPerChannel
	if s.n == max {
		s.dropOldest()
	}
	if s.n < len(s.msgs) {
		*s.at(s.n) = stored
	} else {
		// Grow the ring (it is full and below max): unroll into a larger slice.
		grown := make([]protocol.Message, s.n, min(max, 2*len(s.msgs)+1))
		for i := range s.n {
			grown[i] = *s.at(i)
		}
		s.msgs, s.start = append(grown, stored), 0
		s.msgs = s.msgs[:cap(s.msgs)]
	}
	s.n++
	s.bytes += msgBytes(&stored)
}

// Read implements channels.History.
func (m *Memory) Read(_ context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return protocol.HistoryPage{}, nil
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxReadLimit {
		limit = MaxReadLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(m.opts.Now().Add(-m.opts.MaxAge).UnixMilli())
	match := func(msg *protocol.Message) bool {
		return !(q.MessagesOnly && msg.IsMutation()) && (q.StartSerial == 0 || msg.Serial >= q.StartSerial) && (q.EndSerial == 0 || msg.Serial <= q.EndSerial) &&
			(q.StartMs == 0 || msg.PublishedAtMs >= q.StartMs) && (q.EndMs == 0 || msg.PublishedAtMs <= q.EndMs)
	}
	var page protocol.HistoryPage
	visit := func(i int) bool {
		msg := s.at(i)
		if !match(msg) {
			return true
		}
		if len(page.Items) == limit {
			page.HasMore = true
			return false
		}
		page.Items = append(page.Items, cloneMessage(msg))
		return true
	}
	// Retained serials are contiguous, so a serial bound is an index.
	lo, hi := 0, s.n-1
	if s.n > 0 {
		first := s.at(0).Serial
		if q.StartSerial > first {
			lo = int(min(q.StartSerial-first, uint64(s.n)))
		}
		if q.EndSerial != 0 {
			if q.EndSerial < first {
				hi = -1
			} else if d := q.EndSerial - first; d < uint64(s.n) {
				hi = int(d)
			}
		}
	}
	if q.Direction == protocol.OldestFirst {
		for i := lo; i <= hi && visit(i); i++ {
		}
	} else {
		for i := hi; i >= lo && visit(i); i-- {
		}
	}
	return page, nil
}

func cloneMessage(m *protocol.Message) protocol.Message {
	c := *m
	c.Data = append([]byte(nil), m.Data...)
	if m.Extras != nil {
		c.Extras = append([]byte(nil), m.Extras...)
	}
	if m.Tags != nil {
		c.Tags = make(map[string]string, len(m.Tags))
		for k, v := range m.Tags {
			c.Tags[k] = v
		}
	}
	if m.Mutable != nil {
		mu := *m.Mutable
		c.Mutable = &mu
	}
	return c
}

// State implements channels.History.
func (m *Memory) State(_ context.Context, appID, channel string) (protocol.StreamState, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return protocol.StreamState{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return m.stateLocked(s), nil
}

// stateLocked applies age retention and reports the stream's state. Callers hold s.mu.
func (m *Memory) stateLocked(s *memStream) protocol.StreamState {
	s.expire(m.opts.Now().Add(-m.opts.MaxAge).UnixMilli())
	st := protocol.StreamState{StreamID: s.id, HeadSerial: s.head, Retained: int64(s.n), RetainedBytes: s.bytes}
	if s.n > 0 {
		o, n := s.at(0), s.at(s.n-1)
		st.OldestSerial, st.OldestMs, st.NewestSerial, st.NewestMs = o.Serial, o.PublishedAtMs, n.Serial, n.PublishedAtMs
	}
	return st
}
