package history

import (
	"context"
	"sort"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Annotations of a Memory store live with their mutable message (memVersioned), so they
// go when it goes (retention, reset); their serials come from the stream's annSeq, under
// the stream lock, so serial order is the order they were stored in.

var _ annotations.Store = (*Memory)(nil)

// PublishAnnotation implements annotations.Store.
func (m *Memory) PublishAnnotation(_ context.Context, appID, channel string, a *protocol.Annotation) error {
	s := m.stream(appID, channel)
	if s == nil {
		return channels.ErrMessageNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := m.live(s, a.MessageSerial, m.opts.Now())
	if v == nil {
		return channels.ErrMessageNotFound
	}
	s.annSeq++
	a.Serial = protocol.FormatAnnotationSerial(s.annSeq)
	c := *a
	c.Data = clone(a.Data)
	v.annotations = append(v.annotations, c)
	return nil
}

// DeleteAnnotation implements annotations.Store.
func (m *Memory) DeleteAnnotation(_ context.Context, appID, channel, messageSerial, target string, timestampMs int64,
	authorize func(protocol.Annotation) error) (protocol.Annotation, bool, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return protocol.Annotation{}, false, channels.ErrMessageNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := m.live(s, messageSerial, m.opts.Now())
	if v == nil {
		return protocol.Annotation{}, false, channels.ErrMessageNotFound
	}
	anns := v.annotations
	i := sort.Search(len(anns), func(i int) bool { return anns[i].Serial >= target })
	if i == len(anns) || anns[i].Serial != target || anns[i].Action != protocol.AnnotationCreate {
		return protocol.Annotation{}, false, annotations.ErrNotFound
	}
	create := anns[i]
	if err := authorize(create); err != nil {
		return protocol.Annotation{}, false, err
	}
	for j := i + 1; j < len(anns); j++ {
		if anns[j].Action == protocol.AnnotationDelete && anns[j].ID == create.ID {
			return anns[j], true, nil
		}
	}
	s.annSeq++
	del := protocol.Annotation{ID: create.ID, Action: protocol.AnnotationDelete, Serial: protocol.FormatAnnotationSerial(s.annSeq),
		MessageSerial: messageSerial, Type: create.Type, Name: create.Name, ClientID: create.ClientID, Count: create.Count, TimestampMs: timestampMs}
	v.annotations = append(v.annotations, del)
	return del, false, nil
}

// ReadAnnotations implements annotations.Store.
func (m *Memory) ReadAnnotations(_ context.Context, appID, channel, messageSerial string, q annotations.Query) ([]protocol.Annotation, bool, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return nil, false, channels.ErrMessageNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := m.live(s, messageSerial, m.opts.Now())
	if v == nil {
		return nil, false, channels.ErrMessageNotFound
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxReadLimit {
		limit = MaxReadLimit
	}
	anns := v.annotations
	i := 0
	if q.After != "" {
		i = sort.Search(len(anns), func(i int) bool { return anns[i].Serial > q.After })
	}
	var out []protocol.Annotation
	for ; i < len(anns); i++ {
		if q.Type != "" && anns[i].Type != q.Type {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		c := anns[i]
		c.Data = clone(c.Data)
		out = append(out, c)
	}
	return out, false, nil
}

// AnnotatedMessages implements annotations.Store.
func (m *Memory) AnnotatedMessages(_ context.Context, appID, channel string, limit int) ([]string, error) {
	s := m.stream(appID, channel)
	if s == nil {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := m.opts.Now()
	type annotated struct{ serial, last string }
	var found []annotated
	for _, serial := range s.created {
		if v := m.live(s, serial, now); v != nil && len(v.annotations) > 0 {
			found = append(found, annotated{serial, v.annotations[len(v.annotations)-1].Serial})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].last > found[j].last })
	out := make([]string, 0, min(limit, len(found)))
	for i := 0; i < len(found) && i < limit; i++ {
		out = append(out, found[i].serial)
	}
	return out, nil
}
