package channels

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// Annotations on mutable messages (Sockudo's message annotations). A publish or delete is
// stored through Annotations (the history store), delivered at once to the channel's V2
// subscriptions with mode ANNOTATION_SUBSCRIBE as sockudo_internal:annotation, and marks
// the message's summary dirty: after SummaryWindow on the hub's clock the summary of every
// type of the message is computed from the store and sent to every V2 subscriber as
// sockudo_internal:message (action message.summary). Changes within one window make one
// summary.
//
// Across nodes the store is the truth: the node that made a change computes the summary
// from the (shared) store after its write committed and sends it to every node with the
// store's version of the message's annotations (its last annotation serial). A node
// delivers a summary only if its version is newer than the last it delivered for that
// message, so two nodes' summaries arriving in either order never leave a subscriber with
// a stale one, and equal summaries from several nodes go out once.

// SummaryWindow is how long annotation changes of one message are gathered into one summary.
const SummaryWindow = 100 * time.Millisecond

// Annotations stores annotation events; the history stores implement it beside Versions.
type Annotations interface {
	// PublishAnnotation stores a create for the live mutable message a.MessageSerial of
	// channel (ErrMessageNotFound when there is none), assigning a.Serial: the channel's
	// next annotation serial (protocol.FormatAnnotationSerial), in commit order.
	PublishAnnotation(ctx context.Context, appID, channel string, a *protocol.Annotation) error
	// DeleteAnnotation stores the delete of the create with serial target of message
	// messageSerial (ErrMessageNotFound, ErrAnnotationNotFound when there is no such create
	// of that message). authorize is called with the create and may refuse (its error is
	// returned). The delete copies the create's id, type, name, client id and count and gets
	// the next serial; when the create was already deleted its existing delete is returned
	// with duplicate true.
	DeleteAnnotation(ctx context.Context, appID, channel, messageSerial, target string, timestampMs int64,
		authorize func(create protocol.Annotation) error) (del protocol.Annotation, duplicate bool, err error)
	// ReadAnnotations returns a message's annotation events in serial order after q.After
	// (exclusive), of type q.Type when set, at most q.Limit, and whether more follow
	// (ErrMessageNotFound when the message is not live).
	ReadAnnotations(ctx context.Context, appID, channel, messageSerial string, q AnnotationQuery) ([]protocol.Annotation, bool, error)
	// AnnotatedMessages returns the serials of the channel's live mutable messages that
	// have annotation events, the most recently annotated first, at most limit.
	AnnotatedMessages(ctx context.Context, appID, channel string, limit int) ([]string, error)
}

// AnnotationQuery selects a page of a message's annotation events.
type AnnotationQuery struct {
	Type  string
	After string
	Limit int
}

// ErrAnnotationNotFound: no annotation create with that serial on that message.
var ErrAnnotationNotFound = errors.New("annotation not found")

// AnnotationObserver is an optional part of an Observer, told about every stored
// annotation event (the annotation_created and annotation_deleted webhooks).
type AnnotationObserver interface {
	AnnotationCreated(appID, channel, messageSerial, annotationSerial, annotationType string)
	AnnotationDeleted(appID, channel, messageSerial, annotationSerial, deletedSerial, annotationType string)
}

// AnnotationRequest is the publish of one annotation from the HTTP API.
type AnnotationRequest struct {
	Channel       string
	MessageSerial string
	Annotation    protocol.Annotation
	// SocketID, when set, binds the publish to that V2 connection: its identity becomes the
	// client id and its capability token must grant publish and annotation-publish.
	SocketID string
}

// AnnotationPage is one page of a message's annotation events (GET .../annotations).
type AnnotationPage struct {
	Channel       string                `json:"channel"`
	MessageSerial string                `json:"messageSerial"`
	Limit         int                   `json:"limit"`
	HasMore       bool                  `json:"hasMore"`
	NextCursor    *string               `json:"nextCursor"`
	Items         []protocol.Annotation `json:"items"`
}

// checkAnnotations refuses annotation requests where the hub keeps no annotations or the
// channel has no mutable messages, and bad message serials.
func (a *appState) checkAnnotations(channel, messageSerial string) *HistoryError {
	if herr := a.checkVersioned(channel, messageSerial); herr != nil {
		return herr
	}
	if a.hub.annotations == nil {
		return histErr(422, "feature_disabled", "The history store keeps no annotations")
	}
	return nil
}

func (h *Hub) annotationApp(appID string) (*appState, *HistoryError) {
	a, ok := h.byID[appID]
	if !ok {
		return nil, histErr(404, "app_not_found", "Unknown app")
	}
	return a, nil
}

func messageNotFound(channel, serial string) *HistoryError {
	return histErr(404, "not_found", "Message "+protocol.Truncate(serial, 128)+" not found on channel "+protocol.Truncate(channel, 200))
}

// PublishAnnotation stores an annotation on a mutable message, delivers it and schedules
// the message's summary. It answers with the stored annotation (its serial set).
func (h *Hub) PublishAnnotation(ctx context.Context, appID string, req AnnotationRequest) (protocol.Annotation, *HistoryError) {
	a, herr := h.annotationApp(appID)
	if herr != nil {
		return protocol.Annotation{}, herr
	}
	ch, ann := req.Channel, req.Annotation
	if herr := a.checkAnnotations(ch, req.MessageSerial); herr != nil {
		return ann, herr
	}
	if _, err := protocol.ParseAnnotationType(ann.Type); err != nil {
		return ann, histErr(400, "invalid_input", err.Error())
	}
	if limit := a.cfg.MaxEventPayloadKB * 1024; len(ann.Data)+len(ann.Name)+len(ann.ClientID)+len(ann.Encoding) > limit {
		return ann, histErr(413, "payload_too_large", "annotation data is larger than "+strconv.Itoa(a.cfg.MaxEventPayloadKB)+" KB")
	}
	if len(ann.Name) > protocol.MaxAnnotationTypeLen || len(ann.ClientID) > protocol.MaxAnnotationTypeLen || len(ann.Encoding) > 64 {
		return ann, histErr(400, "invalid_input", "name and client_id must be at most 256 bytes, encoding at most 64")
	}
	if req.SocketID != "" {
		conn, herr := a.annotationActor(ch, req.SocketID)
		if herr != nil {
			return ann, herr
		}
		user, caps := conn.identity()
		if ann.ClientID != "" && ann.ClientID != user {
			return ann, histErr(401, "unauthorized", "client_id does not match the identity of socket "+req.SocketID)
		}
		if !caps.Allows(protocol.OpPublish, ch) || !caps.Allows(protocol.OpAnnotationPublish, ch) {
			return ann, histErr(403, "forbidden", fmt.Sprintf("Socket %s may not annotate messages on channel %s: its capability token must grant publish and %s",
				req.SocketID, protocol.Truncate(ch, 200), protocol.OpAnnotationPublish))
		}
		if user != "" {
			ann.ClientID = user
		}
	}
	ann.Action, ann.MessageSerial, ann.ID = protocol.AnnotationCreate, req.MessageSerial, protocol.NewUUID()
	ann.TimestampMs = h.now().UnixMilli()
	if err := ann.Validate(); err != nil {
		return ann, histErr(400, "invalid_input", err.Error())
	}
	sctx, cancel := context.WithTimeout(ctx, historyTimeout)
	err := h.annotations.PublishAnnotation(sctx, appID, ch, &ann)
	cancel()
	if herr := a.annotationStoreError(ch, req.MessageSerial, err); herr != nil {
		return ann, herr
	}
	a.annotationChanged(ch, &ann)
	if ao, ok := h.obs.(AnnotationObserver); ok {
		ao.AnnotationCreated(appID, ch, ann.MessageSerial, ann.Serial, ann.Type)
	}
	return ann, nil
}

// DeleteAnnotation deletes the annotation with serial target from a message. Without a
// socket the signed request may delete any annotation; with one, its capability token must
// grant annotation-delete-any, or annotation-delete-own and the annotation be its client's.
// A repeated delete answers duplicate true and delivers nothing.
func (h *Hub) DeleteAnnotation(ctx context.Context, appID, channel, messageSerial, target, socketID string) (protocol.Annotation, bool, *HistoryError) {
	a, herr := h.annotationApp(appID)
	if herr != nil {
		return protocol.Annotation{}, false, herr
	}
	if herr := a.checkAnnotations(channel, messageSerial); herr != nil {
		return protocol.Annotation{}, false, herr
	}
	if _, ok := protocol.ParseAnnotationSerial(target); !ok {
		return protocol.Annotation{}, false, histErr(400, "invalid_input", "annotation_serial is not an annotation serial")
	}
	authorize := func(protocol.Annotation) error { return nil }
	if socketID != "" {
		conn, herr := a.annotationActor(channel, socketID)
		if herr != nil {
			return protocol.Annotation{}, false, herr
		}
		user, caps := conn.identity()
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
	sctx, cancel := context.WithTimeout(ctx, historyTimeout)
	del, dup, err := h.annotations.DeleteAnnotation(sctx, appID, channel, messageSerial, target, h.now().UnixMilli(), authorize)
	cancel()
	if errors.As(err, new(*notPermitted)) {
		return del, false, histErr(403, "forbidden", err.Error())
	}
	if herr := a.annotationStoreError(channel, messageSerial, err); herr != nil {
		return del, false, herr
	}
	if dup {
		return del, true, nil
	}
	a.annotationChanged(channel, &del)
	if ao, ok := h.obs.(AnnotationObserver); ok {
		ao.AnnotationDeleted(appID, channel, messageSerial, del.Serial, target, del.Type)
	}
	return del, false, nil
}

// ListAnnotations returns a page of a message's annotation events in serial order, after
// the cursor (a previous page's nextCursor), of one type when typ is set. With a socket,
// its capability token must grant subscribe and annotation-subscribe.
func (h *Hub) ListAnnotations(ctx context.Context, appID, channel, messageSerial, typ, cursor string, limit int, socketID string) (*AnnotationPage, *HistoryError) {
	a, herr := h.annotationApp(appID)
	if herr != nil {
		return nil, herr
	}
	if herr := a.checkAnnotations(channel, messageSerial); herr != nil {
		return nil, herr
	}
	if limit <= 0 || limit > MaxHistoryPage {
		return nil, histErr(400, "invalid_input", "limit must be 1 to "+strconv.Itoa(MaxHistoryPage))
	}
	if typ != "" {
		if _, err := protocol.ParseAnnotationType(typ); err != nil {
			return nil, histErr(400, "invalid_input", err.Error())
		}
	}
	if cursor != "" {
		if _, ok := protocol.ParseAnnotationSerial(cursor); !ok {
			return nil, histErr(400, "invalid_input", "cursor is not an annotation serial")
		}
	}
	if socketID != "" {
		conn, herr := a.annotationActor(channel, socketID)
		if herr != nil {
			return nil, herr
		}
		if _, caps := conn.identity(); !caps.Allows(protocol.OpSubscribe, channel) || !caps.Allows(protocol.OpAnnotationSubscribe, channel) {
			return nil, histErr(403, "forbidden", "annotation-subscribe capability is required for channel "+protocol.Truncate(channel, 200))
		}
	}
	sctx, cancel := context.WithTimeout(ctx, historyTimeout)
	items, more, err := h.annotations.ReadAnnotations(sctx, appID, channel, messageSerial, AnnotationQuery{Type: typ, After: cursor, Limit: limit})
	cancel()
	if herr := a.annotationStoreError(channel, messageSerial, err); herr != nil {
		return nil, herr
	}
	if items == nil {
		items = []protocol.Annotation{}
	}
	p := &AnnotationPage{Channel: channel, MessageSerial: messageSerial, Limit: limit, HasMore: more && len(items) > 0, Items: items}
	if p.HasMore {
		c := items[len(items)-1].Serial
		p.NextCursor = &c
	}
	return p, nil
}

// annotationActor finds the V2 connection a socket-bound annotation request acts as.
func (a *appState) annotationActor(channel, socketID string) (*Conn, *HistoryError) {
	if !protocol.ValidSocketID(socketID) {
		return nil, histErr(400, "invalid_input", "socket_id is not a valid socket id")
	}
	conn := a.connOn(channel, socketID)
	if conn == nil {
		return nil, histErr(401, "unauthorized", "Socket "+socketID+" is not connected to channel "+protocol.Truncate(channel, 200))
	}
	if !conn.v2 {
		return nil, histErr(401, "unauthorized", "Socket "+socketID+" does not speak protocol V2")
	}
	return conn, nil
}

func (a *appState) annotationStoreError(channel, messageSerial string, err error) *HistoryError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrMessageNotFound):
		return messageNotFound(channel, messageSerial)
	case errors.Is(err, ErrAnnotationNotFound):
		return histErr(404, "not_found", "Annotation not found on message "+protocol.Truncate(messageSerial, 128))
	}
	a.hub.log.Warn("annotations: store failed", zap.String("app_id", a.cfg.ID), zap.String("channel", channel), zap.Error(err))
	return histErr(503, "persistence_unavailable", "History store unavailable: retry later")
}

// annotationChanged delivers a stored annotation event and schedules its message's summary.
func (a *appState) annotationChanged(channel string, ann *protocol.Annotation) {
	a.deliver(protocol.AnnotationMessage(channel, ann), nil, "")
	a.scheduleSummary(channel, ann.MessageSerial)
}

// summaries is an app's summary state: the messages whose summary is due and the version
// of the last summary delivered per message.
type summaries struct {
	mu      sync.Mutex
	pending map[summaryKey]bool
	sent    map[summaryKey]uint64
}

type summaryKey struct{ channel, serial string }

// maxSentSummaries bounds the versions remembered; past it they are forgotten (a late
// stale summary could then go out once, to be followed by the next change's).
const maxSentSummaries = 16384

// scheduleSummary makes the message's summary go out after SummaryWindow, once for every
// change made meanwhile.
func (a *appState) scheduleSummary(channel, messageSerial string) {
	k := summaryKey{channel, messageSerial}
	a.sums.mu.Lock()
	if a.sums.pending[k] {
		a.sums.mu.Unlock()
		return
	}
	if a.sums.pending == nil {
		a.sums.pending = map[summaryKey]bool{}
	}
	a.sums.pending[k] = true
	a.sums.mu.Unlock()
	a.hub.afterFunc(SummaryWindow, func() { a.sendSummary(k, 0) })
}

// summaryRetries is how many more times a summary is tried (one window later, then two,
// then four) when the store fails to read it.
const summaryRetries = 3

// sendSummary computes a message's summary from the store and delivers it here and, with
// its version, on the other nodes. A failed read is tried again after another window.
func (a *appState) sendSummary(k summaryKey, attempt int) {
	a.sums.mu.Lock()
	delete(a.sums.pending, k)
	a.sums.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	events, err := a.allAnnotations(ctx, k.channel, k.serial)
	cancel()
	if err != nil {
		if errors.Is(err, ErrMessageNotFound) {
			return
		}
		if attempt < summaryRetries {
			a.sums.mu.Lock()
			retry := !a.sums.pending[k] // a change meanwhile already scheduled one
			if retry {
				a.sums.pending[k] = true
			}
			a.sums.mu.Unlock()
			if retry {
				a.hub.afterFunc(SummaryWindow<<attempt, func() { a.sendSummary(k, attempt+1) })
			}
			return
		}
		a.hub.log.Warn("annotations: summary not sent: store failed", zap.String("app_id", a.cfg.ID), zap.String("channel", k.channel), zap.Error(err))
		return
	}
	if len(events) == 0 {
		return
	}
	version, _ := protocol.ParseAnnotationSerial(events[len(events)-1].Serial)
	m := a.summaryMessage(k.channel, k.serial, events)
	if a.deliverSummary(k, version, m) {
		a.forwardSummary(k, version, m)
	}
}

// summaryMessage is the summary frame of a message's events, fitted to the app's event
// payload limit as Sockudo fits it: when the full summary is larger, the client ids listed
// per summary are clipped to 64, then halved until it fits (totals stay exact, "clipped"
// says some ids were left out).
func (a *appState) summaryMessage(channel, serial string, events []protocol.Annotation) *protocol.Message {
	max := a.cfg.MaxEventPayloadKB * 1024
	m := protocol.SummaryMessage(channel, serial, protocol.Summarize(events))
	for limit := 64; max > 0 && len(m.Data) > max && limit >= 0; limit-- {
		m = protocol.SummaryMessage(channel, serial, protocol.SummarizeClipped(events, limit))
		if limit > 0 {
			limit = limit/2 + 1 // with the loop's decrement: 64, 32, 16, …, 1, 0
		}
	}
	return m
}

// allAnnotations reads every annotation event of a message, in serial order.
func (a *appState) allAnnotations(ctx context.Context, channel, serial string) ([]protocol.Annotation, error) {
	var out []protocol.Annotation
	after := ""
	for {
		page, more, err := a.hub.annotations.ReadAnnotations(ctx, a.cfg.ID, channel, serial, AnnotationQuery{After: after, Limit: 1000})
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
func (a *appState) deliverSummary(k summaryKey, version uint64, m *protocol.Message) bool {
	a.sums.mu.Lock()
	if prev, ok := a.sums.sent[k]; ok && prev >= version {
		a.sums.mu.Unlock()
		return false
	}
	if a.sums.sent == nil || len(a.sums.sent) >= maxSentSummaries {
		a.sums.sent = map[summaryKey]uint64{}
	}
	a.sums.sent[k] = version
	a.sums.mu.Unlock()
	a.deliverLocal(m, nil, "")
	return true
}

// allowAnnotationSubscribe checks a subscription asking for raw annotations: V2, a channel
// with mutable messages, and a capability token granting annotation-subscribe (Sockudo
// refuses connections without a token).
func (c *Conn) allowAnnotationSubscribe(name string) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeChannelError, Message: "Annotation subscriptions are only supported on protocol V2"}
	}
	if c.app.hub.annotations == nil || !c.app.versionedFor(name) || c.app.hub.history == nil || !c.app.cfg.HistoryFor(name) {
		return protocol.Errorf(protocol.CodeChannelError, "Annotations are not enabled for channel %s", protocol.Truncate(name, 200))
	}
	_, caps := c.identity()
	if !caps.Allows(protocol.OpAnnotationSubscribe, name) {
		return protocol.Errorf(protocol.CodeUnauthorized, "Connection is not allowed to receive raw annotations for channel %s: its capability token must grant %s",
			protocol.Truncate(name, 200), protocol.OpAnnotationSubscribe)
	}
	return nil
}

// MaxSnapshotSummaries caps the summaries a new V2 subscription receives: those of the
// channel's most recently annotated messages.
const MaxSnapshotSummaries = 20

// annotationSnapshots sends a new V2 subscription of a channel with annotations the
// current summaries of its most recently annotated messages, as Sockudo does on subscribe,
// so a client that joins or reconnects shows the counts without waiting for a change. It
// reads the store in the subscribing connection's goroutine (as a rewind does), after the
// channel's locks are released; a summary older than one already delivered live on this
// node is not sent.
func (c *Conn) annotationSnapshots(channel string) {
	a := c.app
	if a.hub.annotations == nil || a.hub.history == nil || !a.cfg.HistoryFor(channel) || !a.versionedFor(channel) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	serials, err := a.hub.annotations.AnnotatedMessages(ctx, a.cfg.ID, channel, MaxSnapshotSummaries)
	if err != nil {
		a.hub.log.Warn("annotations: no summaries for a new subscription: store failed", zap.String("app_id", a.cfg.ID), zap.String("channel", channel), zap.Error(err))
		return
	}
	for _, serial := range serials {
		events, err := a.allAnnotations(ctx, channel, serial)
		if err != nil || len(events) == 0 {
			continue
		}
		version, _ := protocol.ParseAnnotationSerial(events[len(events)-1].Serial)
		frame := a.summaryMessage(channel, serial, events).AppendV2(nil)
		k := summaryKey{channel, serial}
		a.sums.mu.Lock()
		if prev, ok := a.sums.sent[k]; !ok || prev <= version {
			c.sub.Send(frame)
		}
		a.sums.mu.Unlock()
	}
}
