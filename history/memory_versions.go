package history

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// memVersioned is one mutable message of a Memory stream: its aggregate and every version
// in the order applied (which is version-serial order).
type memVersioned struct {
	agg      protocol.VersionedMessage
	versions []protocol.MessageVersion
	// annotations are the message's annotation events in serial order
	// (memory_annotations.go).
	annotations []protocol.Annotation
}

// opRef locates the version an op key made.
type opRef struct {
	serial string
	index  int
}

// evict drops mutable messages beyond max (oldest created first) and those not changed
// since cutoffMs. Callers hold s.mu.
func (s *memStream) evict(max int, cutoffMs int64) {
	keep := s.created[:0]
	over := len(s.created) - max
	for i, serial := range s.created {
		v := s.versioned[serial]
		if v == nil {
			continue
		}
		if i < over || v.agg.LatestVersion.TimestampMs < cutoffMs {
			s.forget(serial)
			continue
		}
		keep = append(keep, serial)
	}
	clear(s.created[len(keep):])
	s.created = keep
}

// forget drops a mutable message. Callers hold s.mu.
func (s *memStream) forget(serial string) {
	v := s.versioned[serial]
	if v == nil {
		return
	}
	for i := range v.versions {
		if k := v.versions[i].OpKey; k != "" {
			delete(s.ops, k)
		}
	}
	delete(s.versioned, serial)
}

// live returns a mutable message unless it is unknown or was not changed within MaxAge.
// Callers hold s.mu.
func (m *Memory) live(s *memStream, serial string, now time.Time) *memVersioned {
	v := s.versioned[serial]
	if v == nil || v.agg.LatestVersion.TimestampMs < now.Add(-m.opts.MaxAge).UnixMilli() {
		return nil
	}
	return v
}

// Create implements channels.Versions.
func (m *Memory) Create(_ context.Context, appID string, msg *protocol.Message, agg protocol.VersionedMessage) error {
	if msg.Mutable == nil {
		return fmt.Errorf("history: create %s: message is not mutable", msg.Channel)
	}
	now := m.opts.Now()
	s := m.writable(appID, msg.Channel, now)
	defer s.mu.Unlock()
	if s.versioned[msg.Mutable.MessageSerial] != nil {
		return fmt.Errorf("history: create %s: message serial %s already exists", msg.Channel, msg.Mutable.MessageSerial)
	}
	// The create's history serial is its own serial: known once appended, and part of the
	// stored delivery.
	msg.Mutable.HistorySerial = s.head + 1
	m.appendLocked(s, msg, now)
	agg.HistorySerial, agg.StreamID, agg.LatestDeliverySerial = msg.Serial, msg.StreamID, msg.Serial
	agg.LatestMessageID, agg.LatestAction = msg.MessageID, protocol.ActionCreate
	if s.versioned == nil {
		s.versioned, s.ops = map[string]*memVersioned{}, map[string]opRef{}
	}
	s.created = append(s.created, agg.MessageSerial)
	if len(s.created) > m.opts.MaxMessagesPerChannel || len(s.created)%64 == 0 {
		s.evict(m.opts.MaxMessagesPerChannel, now.Add(-m.opts.MaxAge).UnixMilli())
	}
	s.versioned[agg.MessageSerial] = &memVersioned{agg: cloneAggregate(agg), versions: []protocol.MessageVersion{{
		MessageSerial: agg.MessageSerial, HistorySerial: msg.Serial, DeliverySerial: msg.Serial, Action: protocol.ActionCreate,
		Event: agg.Event, Data: clone(agg.Data), Extras: clone(agg.Extras), Version: agg.LatestVersion,
		MessageID: msg.MessageID, StreamID: msg.StreamID,
	}}}
	return nil
}

// Mutate implements channels.Versions.
func (m *Memory) Mutate(_ context.Context, appID, channel, serial, opKey, fingerprint string,
	plan func(protocol.VersionedMessage) (protocol.MutationPlan, error)) (protocol.MutationPlan, bool, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return protocol.MutationPlan{}, false, channels.ErrMessageNotFound
	}
	now := m.opts.Now()
	m.mu.Lock()
	if m.streams[s.key] == s {
		m.touchLocked(s, now.UnixMilli())
	}
	m.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now.Add(-m.opts.MaxAge).UnixMilli())
	v := m.live(s, serial, now)
	if v == nil {
		return protocol.MutationPlan{}, false, channels.ErrMessageNotFound
	}
	if opKey != "" {
		if ref, ok := s.ops[opKey]; ok {
			prev := s.versioned[ref.serial].versions[ref.index]
			if prev.Fingerprint != fingerprint {
				return protocol.MutationPlan{}, false, channels.ErrOperationConflict
			}
			return protocol.MutationPlan{Next: cloneAggregate(v.agg), Version: cloneVersion(prev)}, true, nil
		}
	}
	p, err := plan(cloneAggregate(v.agg))
	if err != nil {
		return protocol.MutationPlan{}, false, err
	}
	m.appendLocked(s, p.Delivery, now)
	p.Next.LatestDeliverySerial, p.Next.StreamID, p.Next.LatestMessageID = p.Delivery.Serial, p.Delivery.StreamID, p.Delivery.MessageID
	p.Version.DeliverySerial, p.Version.StreamID, p.Version.MessageID = p.Delivery.Serial, p.Delivery.StreamID, p.Delivery.MessageID
	p.Version.OpKey, p.Version.Fingerprint = opKey, fingerprint
	v.agg = cloneAggregate(p.Next)
	v.versions = append(v.versions, cloneVersion(p.Version))
	if opKey != "" {
		s.ops[opKey] = opRef{serial, len(v.versions) - 1}
	}
	return p, false, nil
}

// Message implements channels.Versions.
func (m *Memory) Message(_ context.Context, appID, channel, serial string) (protocol.VersionedMessage, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return protocol.VersionedMessage{}, channels.ErrMessageNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := m.live(s, serial, m.opts.Now())
	if v == nil {
		return protocol.VersionedMessage{}, channels.ErrMessageNotFound
	}
	return cloneAggregate(v.agg), nil
}

// Latest implements channels.Versions.
func (m *Memory) Latest(_ context.Context, appID, channel string, serials []string) (map[string]protocol.VersionedMessage, error) {
	out := map[string]protocol.VersionedMessage{}
	s := m.stream(appID, channel)
	if s == nil {
		return out, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := m.opts.Now()
	for _, serial := range serials {
		if v := m.live(s, serial, now); v != nil {
			out[serial] = cloneAggregate(v.agg)
		}
	}
	return out, nil
}

// ReadVersions implements channels.Versions.
func (m *Memory) ReadVersions(_ context.Context, appID, channel, serial string, q channels.VersionQuery) ([]protocol.MessageVersion, bool, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return nil, false, channels.ErrMessageNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := m.live(s, serial, m.opts.Now())
	if v == nil {
		return nil, false, channels.ErrMessageNotFound
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxReadLimit {
		limit = MaxReadLimit
	}
	vs := v.versions
	var out []protocol.MessageVersion
	if q.Direction == protocol.OldestFirst {
		i := 0
		if q.After != "" {
			i = sort.Search(len(vs), func(i int) bool { return vs[i].Version.Serial > q.After })
		}
		for ; i < len(vs) && len(out) < limit; i++ {
			out = append(out, cloneVersion(vs[i]))
		}
		return out, i < len(vs), nil
	}
	i := len(vs) - 1
	if q.After != "" {
		i = sort.Search(len(vs), func(i int) bool { return vs[i].Version.Serial >= q.After }) - 1
	}
	for ; i >= 0 && len(out) < limit; i-- {
		out = append(out, cloneVersion(vs[i]))
	}
	return out, i >= 0, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func cloneAggregate(a protocol.VersionedMessage) protocol.VersionedMessage {
	a.Data, a.Extras, a.LatestVersion.Metadata = clone(a.Data), clone(a.Extras), clone(a.LatestVersion.Metadata)
	if a.Tags != nil {
		t := make(map[string]string, len(a.Tags))
		for k, v := range a.Tags {
			t[k] = v
		}
		a.Tags = t
	}
	return a
}

func cloneVersion(v protocol.MessageVersion) protocol.MessageVersion {
	v.Data, v.Extras, v.Version.Metadata = clone(v.Data), clone(v.Extras), clone(v.Version.Metadata)
	return v
}
