package annotations

import (
	"context"
	"errors"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// SummaryWindow is how long annotation changes of one message are gathered into one summary.
const SummaryWindow = 100 * time.Millisecond

// Store stores annotation events; the history stores implement it beside
// channels.Versions, and history/historytest.RunAnnotations is the suite they pass.
type Store interface {
	// PublishAnnotation stores a create for the live mutable message a.MessageSerial of
	// channel (channels.ErrMessageNotFound when there is none), assigning a.Serial: the channel's
	// next annotation serial (protocol.FormatAnnotationSerial), in commit order.
	PublishAnnotation(ctx context.Context, appID, channel string, a *protocol.Annotation) error
	// DeleteAnnotation stores the delete of the create with serial target of message
	// messageSerial (channels.ErrMessageNotFound, ErrNotFound when there is no such create
	// of that message). authorize is called with the create and may refuse (its error is
	// returned). The delete copies the create's id, type, name, client id and count and gets
	// the next serial; when the create was already deleted its existing delete is returned
	// with duplicate true.
	DeleteAnnotation(ctx context.Context, appID, channel, messageSerial, target string, timestampMs int64,
		authorize func(create protocol.Annotation) error) (del protocol.Annotation, duplicate bool, err error)
	// ReadAnnotations returns a message's annotation events in serial order after q.After
	// (exclusive), of type q.Type when set, at most q.Limit, and whether more follow
	// (channels.ErrMessageNotFound when the message is not live).
	ReadAnnotations(ctx context.Context, appID, channel, messageSerial string, q Query) ([]protocol.Annotation, bool, error)
	// AnnotatedMessages returns the serials of the channel's live mutable messages that
	// have annotation events, the most recently annotated first, at most limit.
	AnnotatedMessages(ctx context.Context, appID, channel string, limit int) ([]string, error)
}

// Query selects a page of a message's annotation events.
type Query struct {
	Type  string
	After string
	Limit int
}

// ErrNotFound: no annotation create with that serial on that message.
var ErrNotFound = errors.New("annotation not found")

// Observer is told about every stored annotation event (the annotation_created and
// annotation_deleted webhooks; webhook.Sender implements it).
type Observer interface {
	AnnotationCreated(appID, channel, messageSerial, annotationSerial, annotationType string)
	AnnotationDeleted(appID, channel, messageSerial, annotationSerial, deletedSerial, annotationType string)
}

// Request is the publish of one annotation from the HTTP API.
type Request struct {
	Channel       string
	MessageSerial string
	Annotation    protocol.Annotation
	// SocketID, when set, binds the publish to that V2 connection: its identity becomes the
	// client id and its capability token must grant publish and annotation-publish.
	SocketID string
}

// Page is one page of a message's annotation events (GET .../annotations).
type Page struct {
	Channel       string                `json:"channel"`
	MessageSerial string                `json:"messageSerial"`
	Limit         int                   `json:"limit"`
	HasMore       bool                  `json:"hasMore"`
	NextCursor    *string               `json:"nextCursor"`
	Items         []protocol.Annotation `json:"items"`
}
