package annotations

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Options tune a Service. The zero value works.
type Options struct {
	// Logger receives store failures. Default: no logging.
	Logger *zap.Logger
	// Observer, when set, is told about every stored annotation event (webhooks).
	Observer Observer
}

// Service is the annotations feature of one hub: it implements channels.AnnotationFeature
// and answers the HTTP API.
type Service struct {
	node  *channels.AnnotationNode
	store Store // nil: the history store keeps no annotations
	log   *zap.Logger
	obs   Observer

	mu      sync.Mutex
	pending map[summaryKey]bool              // summaries due
	sent    map[string]map[summaryKey]uint64 // per app, the version of the last summary delivered per message
}

var _ channels.AnnotationFeature = (*Service)(nil)

// Attach attaches the annotations feature over store (nil: none; every request is refused
// as disabled) to hub and returns it.
func Attach(hub *channels.Hub, store Store, opts Options) *Service {
	s := &Service{store: store, log: opts.Logger, obs: opts.Observer}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	var f channels.AnnotationFeature // none without a store: nothing to send on subscribe
	if store != nil {
		f = s
	}
	s.node = hub.AttachAnnotations(f)
	return s
}

// storeTimeout bounds one store call made for a request or a summary.
const storeTimeout = 5 * time.Second

type summaryKey struct{ app, channel, serial string }

// maxSentSummaries bounds the versions remembered per app; past it they are forgotten (a
// late stale summary could then go out once, to be followed by the next change's).
const maxSentSummaries = 16384

// check refuses annotation requests where the hub keeps no annotations or the channel has
// no mutable messages, and bad message serials.
func (s *Service) check(appID, channel, messageSerial string) *channels.HistoryError {
	if herr := s.node.CheckMessage(appID, channel, messageSerial); herr != nil {
		return herr
	}
	if s.store == nil {
		return channels.NewHistoryError(422, "feature_disabled", "The history store keeps no annotations")
	}
	return nil
}

func messageNotFound(channel, serial string) *channels.HistoryError {
	return channels.NewHistoryError(404, "not_found", "Message "+protocol.Truncate(serial, 128)+" not found on channel "+protocol.Truncate(channel, 200))
}

// Publish stores an annotation on a mutable message, delivers it and schedules the
// message's summary. It answers with the stored annotation (its serial set).
func (s *Service) Publish(ctx context.Context, appID string, req Request) (protocol.Annotation, *channels.HistoryError) {
	app, ok := s.node.App(appID)
	if !ok {
		return protocol.Annotation{}, channels.NewHistoryError(404, "app_not_found", "Unknown app")
	}
	ch, ann := req.Channel, req.Annotation
	if herr := s.check(appID, ch, req.MessageSerial); herr != nil {
		return ann, herr
	}
	if _, err := protocol.ParseAnnotationType(ann.Type); err != nil {
		return ann, channels.NewHistoryError(400, "invalid_input", err.Error())
	}
	if limit := app.MaxEventPayloadKB * 1024; len(ann.Data)+len(ann.Name)+len(ann.ClientID)+len(ann.Encoding) > limit {
		return ann, channels.NewHistoryError(413, "payload_too_large", "annotation data is larger than "+strconv.Itoa(app.MaxEventPayloadKB)+" KB")
	}
	if len(ann.Name) > protocol.MaxAnnotationTypeLen || len(ann.ClientID) > protocol.MaxAnnotationTypeLen || len(ann.Encoding) > 64 {
		return ann, channels.NewHistoryError(400, "invalid_input", "name and client_id must be at most 256 bytes, encoding at most 64")
	}
	if req.SocketID != "" {
		user, caps, herr := s.node.Actor(appID, ch, req.SocketID)
		if herr != nil {
			return ann, herr
		}
		if ann.ClientID != "" && ann.ClientID != user {
			return ann, channels.NewHistoryError(401, "unauthorized", "client_id does not match the identity of socket "+req.SocketID)
		}
		if !caps.Allows(protocol.OpPublish, ch) || !caps.Allows(protocol.OpAnnotationPublish, ch) {
			return ann, channels.NewHistoryError(403, "forbidden", fmt.Sprintf("Socket %s may not annotate messages on channel %s: its capability token must grant publish and %s",
				req.SocketID, protocol.Truncate(ch, 200), protocol.OpAnnotationPublish))
		}
		if user != "" {
			ann.ClientID = user
		}
	}
	ann.Action, ann.MessageSerial, ann.ID = protocol.AnnotationCreate, req.MessageSerial, protocol.NewUUID()
	ann.TimestampMs = s.node.Now().UnixMilli()
	if err := ann.Validate(); err != nil {
		return ann, channels.NewHistoryError(400, "invalid_input", err.Error())
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	err := s.store.PublishAnnotation(sctx, appID, ch, &ann)
	cancel()
	if herr := s.storeError(appID, ch, req.MessageSerial, err); herr != nil {
		return ann, herr
	}
	s.changed(appID, ch, &ann)
	if s.obs != nil {
		s.obs.AnnotationCreated(appID, ch, ann.MessageSerial, ann.Serial, ann.Type)
	}
	return ann, nil
}

// notPermitted is a delete the socket's capability token does not allow.
type notPermitted struct{ msg string }

func (e *notPermitted) Error() string { return e.msg }

// Delete deletes the annotation with serial target from a message. Without a socket the
// signed request may delete any annotation; with one, its capability token must grant
// annotation-delete-any, or annotation-delete-own and the annotation be its client's. A
// repeated delete answers duplicate true and delivers nothing.
func (s *Service) Delete(ctx context.Context, appID, channel, messageSerial, target, socketID string) (protocol.Annotation, bool, *channels.HistoryError) {
	if _, ok := s.node.App(appID); !ok {
		return protocol.Annotation{}, false, channels.NewHistoryError(404, "app_not_found", "Unknown app")
	}
	if herr := s.check(appID, channel, messageSerial); herr != nil {
		return protocol.Annotation{}, false, herr
	}
	if _, ok := protocol.ParseAnnotationSerial(target); !ok {
		return protocol.Annotation{}, false, channels.NewHistoryError(400, "invalid_input", "annotation_serial is not an annotation serial")
	}
	authorize := func(protocol.Annotation) error { return nil }
	if socketID != "" {
		user, caps, herr := s.node.Actor(appID, channel, socketID)
		if herr != nil {
			return protocol.Annotation{}, false, herr
		}
		authorize = func(create protocol.Annotation) error {
			anyOK := caps.Allows(protocol.OpAnnotationDeleteAny, channel)
			ownOK := caps.Allows(protocol.OpAnnotationDeleteOwn, channel) && user != "" && user == create.ClientID
			switch {
			case anyOK && user == "":
				return &notPermitted{"annotation-delete-any requires an identified client"}
			case !anyOK && !ownOK:
				return &notPermitted{fmt.Sprintf("Socket %s may not delete this annotation on channel %s: annotation-delete-any, or annotation-delete-own on its own annotation, must be granted",
					socketID, protocol.Truncate(channel, 200))}
			}
			return nil
		}
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	del, dup, err := s.store.DeleteAnnotation(sctx, appID, channel, messageSerial, target, s.node.Now().UnixMilli(), authorize)
	cancel()
	if errors.As(err, new(*notPermitted)) {
		return del, false, channels.NewHistoryError(403, "forbidden", err.Error())
	}
	if herr := s.storeError(appID, channel, messageSerial, err); herr != nil {
		return del, false, herr
	}
	if dup {
		return del, true, nil
	}
	s.changed(appID, channel, &del)
	if s.obs != nil {
		s.obs.AnnotationDeleted(appID, channel, messageSerial, del.Serial, target, del.Type)
	}
	return del, false, nil
}

// List returns a page of a message's annotation events in serial order, after the cursor
// (a previous page's nextCursor), of one type when typ is set. With a socket, its
// capability token must grant subscribe and annotation-subscribe.
func (s *Service) List(ctx context.Context, appID, channel, messageSerial, typ, cursor string, limit int, socketID string) (*Page, *channels.HistoryError) {
	if _, ok := s.node.App(appID); !ok {
		return nil, channels.NewHistoryError(404, "app_not_found", "Unknown app")
	}
	if herr := s.check(appID, channel, messageSerial); herr != nil {
		return nil, herr
	}
	if limit <= 0 || limit > channels.MaxHistoryPage {
		return nil, channels.NewHistoryError(400, "invalid_input", "limit must be 1 to "+strconv.Itoa(channels.MaxHistoryPage))
	}
	if typ != "" {
		if _, err := protocol.ParseAnnotationType(typ); err != nil {
			return nil, channels.NewHistoryError(400, "invalid_input", err.Error())
		}
	}
	if cursor != "" {
		if _, ok := protocol.ParseAnnotationSerial(cursor); !ok {
			return nil, channels.NewHistoryError(400, "invalid_input", "cursor is not an annotation serial")
		}
	}
	if socketID != "" {
		_, caps, herr := s.node.Actor(appID, channel, socketID)
		if herr != nil {
			return nil, herr
		}
		if !caps.Allows(protocol.OpSubscribe, channel) || !caps.Allows(protocol.OpAnnotationSubscribe, channel) {
			return nil, channels.NewHistoryError(403, "forbidden", "annotation-subscribe capability is required for channel "+protocol.Truncate(channel, 200))
		}
	}
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	items, more, err := s.store.ReadAnnotations(sctx, appID, channel, messageSerial, Query{Type: typ, After: cursor, Limit: limit})
	cancel()
	if herr := s.storeError(appID, channel, messageSerial, err); herr != nil {
		return nil, herr
	}
	if items == nil {
		items = []protocol.Annotation{}
	}
	p := &Page{Channel: channel, MessageSerial: messageSerial, Limit: limit, HasMore: more && len(items) > 0, Items: items}
	if p.HasMore {
		c := items[len(items)-1].Serial
		p.NextCursor = &c
	}
	return p, nil
}

func (s *Service) storeError(appID, channel, messageSerial string, err error) *channels.HistoryError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, channels.ErrMessageNotFound):
		return messageNotFound(channel, messageSerial)
	case errors.Is(err, ErrNotFound):
		return channels.NewHistoryError(404, "not_found", "Annotation not found on message "+protocol.Truncate(messageSerial, 128))
	}
	s.log.Warn("annotations: store failed", zap.String("app_id", appID), zap.String("channel", channel), zap.Error(err))
	return channels.NewHistoryError(503, "persistence_unavailable", "History store unavailable: retry later")
}

// changed delivers a stored annotation event and schedules its message's summary.
func (s *Service) changed(appID, channel string, ann *protocol.Annotation) {
	s.node.Deliver(appID, protocol.AnnotationMessage(channel, ann))
	s.scheduleSummary(summaryKey{appID, channel, ann.MessageSerial})
}
