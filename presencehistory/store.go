package presencehistory

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/pushwire/pushwire/channels"
)

// Event is one stored membership change of a presence channel.
type Event struct {
	Event         channels.PresenceEventKind
	Cause         channels.PresenceCause
	UserID        string
	ConnectionID  string          // the socket whose change it was ("" none: orphan cleanup)
	DeadNodeID    string          // the dead node of an orphan cleanup ("" otherwise)
	UserInfo      json.RawMessage // member_added and member_updated (nil otherwise)
	PublishedAtMs int64

	// Set by the store when it records the event.
	StreamID string
	Serial   uint64
	// Payload is the stored presence_event JSON (EncodePayload).
	Payload json.RawMessage
}

// eventOf is the event to record of a change the hub reported.
func eventOf(c channels.PresenceChange) Event {
	return Event{Event: c.Event, Cause: c.Cause, UserID: c.UserID, ConnectionID: c.ConnectionID, DeadNodeID: c.DeadNodeID,
		UserInfo: c.UserInfo, PublishedAtMs: c.AtMs}
}

// Retention bounds what a channel's presence stream retains: events older than Window,
// beyond the newest MaxEvents, or beyond MaxBytes of payload are dropped, oldest first.
// Zero fields are unbounded.
type Retention struct {
	Window    time.Duration
	MaxEvents int
	MaxBytes  int64
}

// Read selects one page of a channel's retained presence events. Bounds are inclusive;
// zero means open. After continues past a cursor's serial in the direction read.
type Read struct {
	Newest      bool // newest first (default oldest first)
	Limit       int
	StartSerial uint64
	EndSerial   uint64
	StartMs     int64
	EndMs       int64
	After       uint64 // 0 none
	Retention   Retention
}

// Retained describes a channel's presence stream and what it retains.
type Retained struct {
	StreamID     string // "" when the channel never had an event
	NextSerial   uint64
	Events       int64
	Bytes        int64
	OldestSerial uint64 // 0 when nothing is retained
	NewestSerial uint64
	OldestMs     int64
	NewestMs     int64
}

// Page is one page of events, and the stream as it was read.
type Page struct {
	Items    []Event
	HasMore  bool
	Retained Retained
}

// Store stores presence events. history.Memory and history.Postgres implement it;
// history/historytest.RunPresence is the conformance suite both pass. Methods are safe for
// concurrent use, from every node sharing the store.
type Store interface {
	// AppendPresence records events, in order, as the next events of the channel's presence
	// stream (creating it on first use): each recorded event gets its Serial (1 for the
	// first of a stream, then +1, across every node sharing the store), StreamID and
	// Payload, and is returned. An event repeating a member's state is dropped, not
	// recorded: member_added of a user already a member, member_removed of a user who is
	// not (two nodes reporting one change). On error nothing of events was recorded.
	AppendPresence(ctx context.Context, appID, channel string, events []Event, r Retention) ([]Event, error)
	// ReadPresence returns one page of the channel's retained events matching q.
	ReadPresence(ctx context.Context, appID, channel string, q Read) (Page, error)
	// PresenceStream reports the channel's stream and what it retains under r.
	PresenceStream(ctx context.Context, appID, channel string, r Retention) (Retained, error)
	// ResetPresence deletes every event of the channel and starts a new stream (serials from
	// 1), returning the stream before.
	ResetPresence(ctx context.Context, appID, channel string) (before Retained, after Retained, err error)
	// PresenceSource names the store in stream_state (authoritative_source).
	PresenceSource() string
}

// payload is the stored presence_event (Sockudo's shape).
type payload struct {
	StreamID      string                     `json:"stream_id"`
	Serial        uint64                     `json:"serial"`
	PublishedAtMs int64                      `json:"published_at_ms"`
	Event         channels.PresenceEventKind `json:"event"`
	Cause         channels.PresenceCause     `json:"cause"`
	UserID        string                     `json:"user_id"`
	ConnectionID  *string                    `json:"connection_id"`
	UserInfo      json.RawMessage            `json:"user_info"`
	DeadNodeID    *string                    `json:"dead_node_id"`
}

// EncodePayload returns the presence_event JSON of e (its StreamID and Serial set):
// {stream_id, serial, published_at_ms, event, cause, user_id, connection_id, user_info,
// dead_node_id}, null for what the event has not. Stores call it to fill Payload.
func EncodePayload(e *Event) json.RawMessage {
	p := payload{StreamID: e.StreamID, Serial: e.Serial, PublishedAtMs: e.PublishedAtMs, Event: e.Event, Cause: e.Cause,
		UserID: e.UserID, UserInfo: e.UserInfo}
	if e.ConnectionID != "" {
		p.ConnectionID = &e.ConnectionID
	}
	if e.DeadNodeID != "" {
		p.DeadNodeID = &e.DeadNodeID
	}
	if len(p.UserInfo) == 0 || !json.Valid(p.UserInfo) {
		p.UserInfo = json.RawMessage("null")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
