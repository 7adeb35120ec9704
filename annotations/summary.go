package annotations

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// scheduleSummary makes the message's summary go out after SummaryWindow, once for every
// change made meanwhile.
func (s *Service) scheduleSummary(k summaryKey) {
	s.mu.Lock()
	if s.pending[k] {
		s.mu.Unlock()
		return
	}
	if s.pending == nil {
		s.pending = map[summaryKey]bool{}
	}
	s.pending[k] = true
	s.mu.Unlock()
	s.node.AfterFunc(SummaryWindow, func() { s.sendSummary(k, 0) })
}

// summaryRetries is how many more times a summary is tried (one window later, then two,
// then four) when the store fails to read it.
const summaryRetries = 3

// sendSummary computes a message's summary from the store and delivers it here and, with
// its version, on the other nodes. A failed read is tried again after another window.
func (s *Service) sendSummary(k summaryKey, attempt int) {
	s.mu.Lock()
	delete(s.pending, k)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	events, err := s.allAnnotations(ctx, k)
	cancel()
	if err != nil {
		if errors.Is(err, channels.ErrMessageNotFound) {
			return
		}
		if attempt < summaryRetries {
			s.mu.Lock()
			retry := !s.pending[k] // a change meanwhile already scheduled one
			if retry {
				s.pending[k] = true
			}
			s.mu.Unlock()
			if retry {
				s.node.AfterFunc(SummaryWindow<<attempt, func() { s.sendSummary(k, attempt+1) })
			}
			return
		}
		s.log.Warn("annotations: summary not sent: store failed", zap.String("app_id", k.app), zap.String("channel", k.channel), zap.Error(err))
		return
	}
	if len(events) == 0 {
		return
	}
	version, _ := protocol.ParseAnnotationSerial(events[len(events)-1].Serial)
	m := s.summaryMessage(k, events)
	if s.deliverSummary(k, version, m) {
		s.node.ForwardSummary(k.app, k.channel, k.serial, version, m)
	}
}

// summaryMessage is the summary frame of a message's events, fitted to the app's event
// payload limit as Sockudo fits it: when the full summary is larger, the client ids listed
// per summary are clipped to 64, then halved until it fits (totals stay exact, "clipped"
// says some ids were left out).
func (s *Service) summaryMessage(k summaryKey, events []protocol.Annotation) *protocol.Message {
	app, _ := s.node.App(k.app)
	max := app.MaxEventPayloadKB * 1024
	m := protocol.SummaryMessage(k.channel, k.serial, protocol.Summarize(events))
	for limit := 64; max > 0 && len(m.Data) > max && limit >= 0; limit-- {
		m = protocol.SummaryMessage(k.channel, k.serial, protocol.SummarizeClipped(events, limit))
		if limit > 0 {
			limit = limit/2 + 1 // with the loop's decrement: 64, 32, 16, …, 1, 0
		}
	}
	return m
}

// allAnnotations reads every annotation event of a message, in serial order.
func (s *Service) allAnnotations(ctx context.Context, k summaryKey) ([]protocol.Annotation, error) {
	var out []protocol.Annotation
	after := ""
	for {
		page, more, err := s.store.ReadAnnotations(ctx, k.app, k.channel, k.serial, Query{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Serial
	}
}

// deliverSummary delivers a summary of version to this node's subscribers unless one of
// the same or a newer version went out already; it reports whether it went out.
func (s *Service) deliverSummary(k summaryKey, version uint64, m *protocol.Message) bool {
	s.mu.Lock()
	if prev, ok := s.sent[k.app][k]; ok && prev >= version {
		s.mu.Unlock()
		return false
	}
	if s.sent == nil {
		s.sent = map[string]map[summaryKey]uint64{}
	}
	if len(s.sent[k.app]) >= maxSentSummaries || s.sent[k.app] == nil {
		s.sent[k.app] = map[summaryKey]uint64{}
	}
	s.sent[k.app][k] = version
	s.mu.Unlock()
	s.node.DeliverLocal(k.app, m)
	return true
}

// RemoteSummary implements channels.AnnotationFeature: a summary another node computed
// is delivered here unless one of the same message at least as new went out already.
func (s *Service) RemoteSummary(appID, channel, messageSerial string, version uint64, m *protocol.Message) {
	s.deliverSummary(summaryKey{appID, channel, messageSerial}, version, m)
}

// MaxSnapshotSummaries caps the summaries a new V2 subscription receives: those of the
// channel's most recently annotated messages.
const MaxSnapshotSummaries = 20

// Subscribed implements channels.AnnotationFeature: it sends a new V2 subscription of a
// channel with annotations the current summaries of its most recently annotated messages,
// as Sockudo does on subscribe, so a client that joins or reconnects shows the counts
// without waiting for a change. It reads the store in the subscribing connection's
// goroutine (as a rewind does), after the channel's locks are released; a summary older
// than one already delivered live on this node is not sent.
func (s *Service) Subscribed(appID, channel string, send func(frame []byte)) {
	if s.store == nil || !s.node.Annotatable(appID, channel) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	serials, err := s.store.AnnotatedMessages(ctx, appID, channel, MaxSnapshotSummaries)
	if err != nil {
		s.log.Warn("annotations: no summaries for a new subscription: store failed", zap.String("app_id", appID), zap.String("channel", channel), zap.Error(err))
		return
	}
	for _, serial := range serials {
		k := summaryKey{appID, channel, serial}
		events, err := s.allAnnotations(ctx, k)
		if err != nil || len(events) == 0 {
			continue
		}
		version, _ := protocol.ParseAnnotationSerial(events[len(events)-1].Serial)
		frame := s.summaryMessage(k, events).AppendV2(nil)
		s.mu.Lock()
		if prev, ok := s.sent[k.app][k]; !ok || prev <= version {
			send(frame)
		}
		s.mu.Unlock()
	}
}
