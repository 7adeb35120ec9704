package history

import (
	"context"
	"sync"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
)

// The presence events of Memory (presencehistory.Store): per channel a stream id, the
// next serial, the retained events in serial order and the current members (for dropping a
// repeated edge). Retention is applied on every append and read.

type memPresence struct {
	mu      sync.Mutex
	streams map[streamKey]*memPresenceStream
}

type memPresenceStream struct {
	id      string
	next    uint64
	events  []presencehistory.Event
	bytes   int64
	members map[string]struct{}
	// retention is the one the last append applied: Sweep applies it again.
	retention presencehistory.Retention
}

func (m *Memory) presenceStream(app, channel string, create bool) *memPresenceStream {
	if m.presence.streams == nil {
		if !create {
			return nil
		}
		m.presence.streams = map[streamKey]*memPresenceStream{}
	}
	k := streamKey{app, channel}
	s := m.presence.streams[k]
	if s == nil && create {
		s = &memPresenceStream{id: protocol.NewUUID(), next: 1, members: map[string]struct{}{}}
		m.presence.streams[k] = s
	}
	return s
}

// trim drops what r no longer retains. Callers hold m.presence.mu.
func (s *memPresenceStream) trim(r presencehistory.Retention, nowMs int64) {
	drop := 0
	bytes := s.bytes
	for drop < len(s.events) {
		e := &s.events[drop]
		left := len(s.events) - drop
		if (r.Window > 0 && e.PublishedAtMs < nowMs-r.Window.Milliseconds()) ||
			(r.MaxEvents > 0 && left > r.MaxEvents) || (r.MaxBytes > 0 && bytes > r.MaxBytes) {
			bytes -= int64(len(e.Payload))
			drop++
			continue
		}
		break
	}
	if drop > 0 {
		s.events = append(s.events[:0:0], s.events[drop:]...)
		s.bytes = bytes
	}
}

func (s *memPresenceStream) retained() presencehistory.Retained {
	r := presencehistory.Retained{StreamID: s.id, NextSerial: s.next, Events: int64(len(s.events)), Bytes: s.bytes}
	if n := len(s.events); n > 0 {
		r.OldestSerial, r.OldestMs = s.events[0].Serial, s.events[0].PublishedAtMs
		r.NewestSerial, r.NewestMs = s.events[n-1].Serial, s.events[n-1].PublishedAtMs
	}
	return r
}

// AppendPresence implements presencehistory.Store.
func (m *Memory) AppendPresence(_ context.Context, appID, channel string, events []presencehistory.Event, r presencehistory.Retention) ([]presencehistory.Event, error) {
	m.presence.mu.Lock()
	defer m.presence.mu.Unlock()
	s := m.presenceStream(appID, channel, true)
	var out []presencehistory.Event
	for _, e := range events {
		if !applyMember(s.members, e) {
			continue
		}
		e.StreamID, e.Serial = s.id, s.next
		s.next++
		e.UserInfo = append([]byte(nil), e.UserInfo...)
		e.Payload = presencehistory.EncodePayload(&e)
		s.events = append(s.events, e)
		s.bytes += int64(len(e.Payload))
		out = append(out, e)
	}
	s.retention = r
	s.trim(r, m.opts.Now().UnixMilli())
	return out, nil
}

// sweepPresence applies each presence stream's retention and frees the streams left with no
// event and no member (their channel's next event starts a new stream). Memory.Sweep calls it.
func (m *Memory) sweepPresence(nowMs int64) {
	m.presence.mu.Lock()
	defer m.presence.mu.Unlock()
	for k, s := range m.presence.streams {
		s.trim(s.retention, nowMs)
		if len(s.events) == 0 && len(s.members) == 0 {
			delete(m.presence.streams, k)
		}
	}
}

// applyMember updates members with e and reports whether e changes them (else it repeats a
// member's state and is dropped). member_updated always counts.
func applyMember(members map[string]struct{}, e presencehistory.Event) bool {
	_, present := members[e.UserID]
	switch e.Event {
	case channels.PresenceMemberAdded:
		if present {
			return false
		}
		members[e.UserID] = struct{}{}
	case channels.PresenceMemberRemoved:
		if !present {
			return false
		}
		delete(members, e.UserID)
	}
	return true
}

// ReadPresence implements presencehistory.Store.
func (m *Memory) ReadPresence(_ context.Context, appID, channel string, q presencehistory.Read) (presencehistory.Page, error) {
	m.presence.mu.Lock()
	defer m.presence.mu.Unlock()
	s := m.presenceStream(appID, channel, false)
	if s == nil {
		return presencehistory.Page{}, nil
	}
	s.trim(q.Retention, m.opts.Now().UnixMilli())
	page := presencehistory.Page{Retained: s.retained()}
	match := func(e *presencehistory.Event) bool {
		switch {
		case q.StartSerial != 0 && e.Serial < q.StartSerial, q.EndSerial != 0 && e.Serial > q.EndSerial,
			q.StartMs != 0 && e.PublishedAtMs < q.StartMs, q.EndMs != 0 && e.PublishedAtMs > q.EndMs:
			return false
		case q.After != 0 && !q.Newest && e.Serial <= q.After, q.After != 0 && q.Newest && e.Serial >= q.After:
			return false
		}
		return true
	}
	n := len(s.events)
	for i := 0; i < n; i++ {
		j := i
		if q.Newest {
			j = n - 1 - i
		}
		e := &s.events[j]
		if !match(e) {
			continue
		}
		if len(page.Items) == q.Limit {
			page.HasMore = true
			break
		}
		page.Items = append(page.Items, *e)
	}
	return page, nil
}

// PresenceStream implements presencehistory.Store.
func (m *Memory) PresenceStream(_ context.Context, appID, channel string, r presencehistory.Retention) (presencehistory.Retained, error) {
	m.presence.mu.Lock()
	defer m.presence.mu.Unlock()
	s := m.presenceStream(appID, channel, false)
	if s == nil {
		return presencehistory.Retained{NextSerial: 1}, nil
	}
	s.trim(r, m.opts.Now().UnixMilli())
	return s.retained(), nil
}

// ResetPresence implements presencehistory.Store.
func (m *Memory) ResetPresence(_ context.Context, appID, channel string) (presencehistory.Retained, presencehistory.Retained, error) {
	m.presence.mu.Lock()
	defer m.presence.mu.Unlock()
	var before presencehistory.Retained
	if s := m.presenceStream(appID, channel, false); s != nil {
		before = s.retained()
	}
	s := &memPresenceStream{id: protocol.NewUUID(), next: 1, members: map[string]struct{}{}}
	m.presenceStream(appID, channel, true)
	m.presence.streams[streamKey{appID, channel}] = s
	return before, s.retained(), nil
}

// PresenceSource implements presencehistory.Store.
func (m *Memory) PresenceSource() string { return "in_memory" }
