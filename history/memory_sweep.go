package history

import (
	"maps"
	"time"
)

// Memory streams expire on their own. Every write moves its stream to the tail of an expiry
// list (under Memory.mu, where the stream was looked up anyway), so the list runs from the
// least recently written stream to the most. Sweep walks it from the head while streams were
// last written more than MaxAge ago, applies age retention to each and drops the streams left
// with nothing (no message, no mutable message): their state is freed without the channel
// being touched again. A dropped channel's next message starts a new stream (new stream id,
// serials from 1), as after a restart; clients resuming across it see a stream reset. A
// stream that still holds something (a mutable message changed recently) goes back to the
// tail, so an empty stream is freed within two MaxAge at worst.
//
// Sweep takes the store lock for at most sweepBatch streams at a time. The background
// sweeper (one goroutine per store, owned by it and stopped by Close) calls it every
// MemoryOptions.SweepEvery.

// sweepBatch bounds the streams examined per hold of Memory.mu.
const sweepBatch = 256

// defaultSweepEvery is MaxAge/4 within [1s, 1m].
func defaultSweepEvery(maxAge time.Duration) time.Duration {
	return min(max(maxAge/4, time.Second), time.Minute)
}

// touchLocked moves s to the tail of the expiry list as written at nowMs. Callers hold m.mu.
func (m *Memory) touchLocked(s *memStream, nowMs int64) {
	if s.linked {
		m.unlinkLocked(s)
	}
	s.touchedMs = nowMs
	s.prev, s.next = m.tail, nil
	if m.tail != nil {
		m.tail.next = s
	} else {
		m.head = s
	}
	m.tail = s
	s.linked = true
}

// unlinkLocked takes s out of the expiry list. Callers hold m.mu.
func (m *Memory) unlinkLocked(s *memStream) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		m.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		m.tail = s.prev
	}
	s.prev, s.next, s.linked = nil, nil, false
}

// dropLocked forgets a dead stream. Callers hold m.mu.
func (m *Memory) dropLocked(s *memStream) {
	if m.streams[s.key] == s {
		delete(m.streams, s.key)
	}
	if s.linked {
		m.unlinkLocked(s)
	}
}

// Sweep applies age retention to the streams not written for MaxAge and frees those left
// empty. The background sweeper calls it; tests call it with an injected clock.
func (m *Memory) Sweep() {
	now := m.opts.Now()
	nowMs := now.UnixMilli()
	cutoffMs := now.Add(-m.opts.MaxAge).UnixMilli()
	m.sweepPresence(nowMs) // presence streams (memory_presence.go)
	batch := make([]*memStream, 0, sweepBatch)
	for {
		batch = batch[:0]
		m.mu.Lock()
		for s := m.head; s != nil && s.touchedMs < cutoffMs && len(batch) < sweepBatch; s = m.head {
			m.unlinkLocked(s)
			batch = append(batch, s)
		}
		m.mu.Unlock()
		if len(batch) == 0 {
			m.mu.Lock()
			if m.peak > 1024 && 4*len(m.streams) < m.peak {
				small := make(map[streamKey]*memStream, len(m.streams)) // maps.Clone keeps the size
				maps.Copy(small, m.streams)
				m.streams = small
				m.peak = len(m.streams)
			}
			m.mu.Unlock()
			return
		}
		for _, s := range batch {
			s.mu.Lock()
			s.expire(cutoffMs)
			if len(s.created) > 0 {
				s.evict(m.opts.MaxMessagesPerChannel, cutoffMs)
			}
			empty := s.n == 0 && len(s.versioned) == 0
			if empty {
				s.dead = true
			}
			s.mu.Unlock()
			m.mu.Lock()
			switch {
			case empty:
				m.dropLocked(s)
			case !s.linked: // not written meanwhile: look again in MaxAge
				m.touchLocked(s, nowMs)
			}
			m.mu.Unlock()
		}
	}
}

// sweepLoop runs Sweep every interval until Close.
func (m *Memory) sweepLoop(every time.Duration) {
	defer close(m.swept)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Close stops the background sweeper. The store stays usable (streams then expire only when
// their channel is read or written, or Sweep is called). Safe to call more than once.
func (m *Memory) Close() {
	m.closeOnce.Do(func() {
		if m.stop != nil {
			close(m.stop)
			<-m.swept
		}
	})
}

// Streams is the number of channels the store holds state for.
func (m *Memory) Streams() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}
