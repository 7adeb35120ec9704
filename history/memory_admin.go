package history

import (
	"context"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Reset implements channels.HistoryAdmin: the channel's messages and mutable messages are
// dropped and a new stream (new id, serials from 1) starts.
func (m *Memory) Reset(_ context.Context, appID, channel string) (channels.HistoryReset, error) {
	prev := ""
	if s := m.stream(appID, channel); s != nil {
		s.mu.Lock()
		prev = s.id
		s.mu.Unlock()
	}
	s := m.writable(appID, channel, m.opts.Now())
	defer s.mu.Unlock()
	before := m.stateLocked(s)
	clear(s.msgs) // the ring keeps its size
	s.start, s.n, s.bytes, s.head = 0, 0, 0, 0
	s.versioned, s.created, s.ops = nil, nil, nil
	s.id = protocol.NewUUID()
	return channels.HistoryReset{PreviousStreamID: prev, NewStreamID: s.id, PurgedMessages: before.Retained,
		PurgedBytes: before.RetainedBytes, State: m.stateLocked(s)}, nil
}

// Purge implements channels.HistoryAdmin: the channel's oldest messages, and the mutable
// messages they created, are dropped.
func (m *Memory) Purge(_ context.Context, appID, channel string, p channels.PurgeRequest) (channels.HistoryPurge, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return channels.HistoryPurge{Cut: 1}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before := m.stateLocked(s)
	cut := s.head + 1
	switch p.Mode {
	case channels.PurgeBeforeSerial:
		cut = min(cut, p.BeforeSerial)
	case channels.PurgeBeforeTime:
		for i := range s.n {
			if msg := s.at(i); msg.PublishedAtMs >= p.BeforeMs {
				cut = msg.Serial
				break
			}
		}
	}
	for s.n > 0 && s.at(0).Serial < cut {
		s.dropOldest()
	}
	for serial, v := range s.versioned {
		if v.agg.HistorySerial < cut {
			s.forget(serial)
		}
	}
	if len(s.versioned) < len(s.created) {
		keep := s.created[:0]
		for _, serial := range s.created {
			if s.versioned[serial] != nil {
				keep = append(keep, serial)
			}
		}
		clear(s.created[len(keep):])
		s.created = keep
	}
	after := m.stateLocked(s)
	return channels.HistoryPurge{Cut: max(cut, 1), PurgedMessages: before.Retained - after.Retained,
		PurgedBytes: before.RetainedBytes - after.RetainedBytes, State: after}, nil
}
