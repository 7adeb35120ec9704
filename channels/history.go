package channels

import (
	"context"
	"errors"

	"github.com/pushwire/pushwire/protocol"
)

// History stores the messages of channels that keep history and hands out their serials.
// history.Memory and history.Postgres implement it; history/historytest is the conformance
// suite both pass. Methods are safe for concurrent use.
type History interface {
	// Append stores msg as the next message of its channel. It sets msg.Serial to the next
	// serial of the channel's stream (1 for the first message) and msg.StreamID to the
	// stream's id, creating the stream on first use. Serials of one channel are allocated
	// atomically: two Appends, from any node sharing the store, never get the same serial.
	Append(ctx context.Context, appID string, msg *protocol.Message) error
	// Read returns one page of the channel's retained messages matching q.
	Read(ctx context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error)
	// State reports the channel's stream and retained range.
	State(ctx context.Context, appID, channel string) (protocol.StreamState, error)
}

// PipelinedHistory is a History that takes appends without waiting for them to be stored,
// so one channel can have many in flight (history.Postgres group-commits them). The
// publish path finds it by type assertion.
type PipelinedHistory interface {
	History
	// AppendAsync queues msg after every earlier append of its channel through this
	// handle and returns at once. The returned channel receives exactly one value once msg
	// is stored — nil, with msg.Serial and msg.StreamID set — or the error. Appends queued
	// for one channel get their serials in queue order. ctx matters only until the store
	// sends msg.
	AppendAsync(ctx context.Context, appID string, msg *protocol.Message) <-chan error
}

// PipelinedVersions is Versions whose creates can be queued like PipelinedHistory's
// appends, in the same per-channel order (history.Postgres group-commits both).
type PipelinedVersions interface {
	// CreateAsync is Versions.Create, queued after every earlier append or create of the
	// channel through this handle; the channel receives the outcome once stored.
	CreateAsync(ctx context.Context, appID string, m *protocol.Message, agg protocol.VersionedMessage) <-chan error
}

// ErrHistoryUnavailable wraps store failures (a database down): callers deliver live and
// report persistence_unavailable rather than guessing.
var ErrHistoryUnavailable = errors.New("history unavailable")

// Versions keeps mutable messages: their versions and latest aggregate, next to the channel
// stream their deliveries are appended to. history.Memory and history.Postgres implement it
// (history/historytest runs one suite on both). Every method is safe for concurrent use, and
// the mutations of one message are applied in one total order across every node sharing
// the store.
type Versions interface {
	// Create appends the create delivery m (m.Mutable set, action create) to its channel
	// stream like History.Append, setting m.Serial, m.StreamID and m.Mutable.HistorySerial,
	// and records the message's first version and aggregate in the same step.
	Create(ctx context.Context, appID string, m *protocol.Message, agg protocol.VersionedMessage) error
	// Mutate applies one mutation to the message messageSerial of channel, atomically and in
	// order with every other mutation of it: it loads the aggregate (ErrMessageNotFound when
	// there is none), returns the stored version when opKey (non-empty) was already applied
	// (duplicate true; ErrOperationConflict when its fingerprint differs), else calls plan
	// with the aggregate, appends plan's delivery to the stream (filling its serial), stores
	// the version and the new aggregate. plan must be pure: it may run more than once.
	Mutate(ctx context.Context, appID, channel, messageSerial, opKey, fingerprint string,
		plan func(cur protocol.VersionedMessage) (protocol.MutationPlan, error)) (res protocol.MutationPlan, duplicate bool, err error)
	// Message returns the latest aggregate (ErrMessageNotFound when unknown).
	Message(ctx context.Context, appID, channel, messageSerial string) (protocol.VersionedMessage, error)
	// Latest returns the aggregates of the given messages that exist, by message serial.
	Latest(ctx context.Context, appID, channel string, messageSerials []string) (map[string]protocol.VersionedMessage, error)
	// ReadVersions returns one page of a message's versions in version order, after the
	// version serial cursor (exclusive, "" from the start), and whether more follow.
	ReadVersions(ctx context.Context, appID, channel, messageSerial string, q VersionQuery) ([]protocol.MessageVersion, bool, error)
}

// VersionQuery selects a page of versions.
type VersionQuery struct {
	Direction protocol.Direction
	Limit     int
	// After is the last version serial of the previous page ("" = from the start).
	After string
}

// Errors of Versions.
var (
	// ErrMessageNotFound: no mutable message with that serial on that channel of that app.
	ErrMessageNotFound = errors.New("message not found")
	// ErrOperationConflict: the op_id was already used with a different operation.
	ErrOperationConflict = errors.New("idempotency key was already used with a different payload")
)
