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

// ErrHistoryUnavailable wraps store failures (a database down): callers deliver live and
// report persistence_unavailable rather than guessing.
var ErrHistoryUnavailable = errors.New("history unavailable")
