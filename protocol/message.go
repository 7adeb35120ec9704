package protocol

import (
	"sort"
	"strconv"
)

// Message is one channel message as the publish pipeline, the history stores and the brokers
// see it. Its wire forms are AppendV1 (Pusher: event, channel, data, user_id) and AppendV2
// (the Sockudo envelope, keys in the fixed order of ws-protocol §0).
type Message struct {
	Event   string
	Channel string
	// Data is the data member as raw JSON: a JSON string for HTTP publishes (double-encoded),
	// whatever the sender used for client events.
	Data []byte
	// Name is the original event name on mutable-message frames (V2 only).
	Name string
	// UserID is the publisher's user id on presence client events.
	UserID string
	// Tags are V2 filter metadata, sent as a top-level string map with sorted keys.
	Tags map[string]string
	// MessageID is a UUIDv4 identifying the logical message (V2 de-duplication).
	MessageID string
	// StreamID identifies the channel's serial stream; it changes only on a stream reset.
	StreamID string
	// Serial is the channel serial (from 1) when the channel keeps history; 0 when none.
	Serial uint64
	// Extras is the extras object as canonical JSON (headers, ephemeral, idempotencyKey,
	// echo, ...), nil when absent. V1 never receives it.
	Extras []byte
	// Ephemeral messages skip history, the replay buffer and webhooks.
	Ephemeral bool
	// NoDelta makes delta subscribers receive this message as a full frame (the publisher
	// sent "delta": false).
	NoDelta bool
	// PublishedAtMs is the publish time in Unix milliseconds (stored, not sent).
	PublishedAtMs int64
	// Mutable, when set, makes this a delivery of a mutable message: V2 frames carry its
	// reserved extras.headers, and V1 sockets receive only creates.
	Mutable *Mutable
}

// AppendV1 appends the Pusher protocol 7 form: {"event","channel","data","user_id"}, with
// every V2 field left out.
func (m *Message) AppendV1(dst []byte) []byte {
	return OutFrame{Event: m.Event, Channel: m.Channel, Data: m.Data, UserID: m.UserID}.Append(dst)
}

// AppendV2 appends the V2 envelope: event, channel, data, name, user_id, tags, message_id,
// stream_id, serial, extras — absent members omitted, tag keys sorted.
func (m *Message) AppendV2(dst []byte) []byte { return m.appendV2(dst, m.Data) }

// AppendV2Full appends the V2 form for an append_mode=full subscriber: an append carries
// the whole accumulated data instead of the fragment. Other messages are as AppendV2.
func (m *Message) AppendV2Full(dst []byte) []byte {
	if m.Mutable != nil && m.Mutable.Action == ActionAppend && m.Mutable.Full != nil {
		return m.appendV2(dst, m.Mutable.Full)
	}
	return m.appendV2(dst, m.Data)
}

// HasFullForm reports whether AppendV2Full differs from AppendV2.
func (m *Message) HasFullForm() bool {
	return m.Mutable != nil && m.Mutable.Action == ActionAppend && m.Mutable.Full != nil
}

func (m *Message) appendV2(dst, data []byte) []byte {
	dst = append(dst, `{"event":`...)
	dst = AppendJSONString(dst, m.Event)
	if m.Channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendJSONString(dst, m.Channel)
	}
	if len(data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	if m.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = AppendJSONString(dst, m.Name)
	}
	if m.UserID != "" {
		dst = append(dst, `,"user_id":`...)
		dst = AppendJSONString(dst, m.UserID)
	}
	if len(m.Tags) > 0 {
		dst = append(dst, `,"tags":`...)
		dst = AppendTags(dst, m.Tags)
	}
	if m.MessageID != "" {
		dst = append(dst, `,"message_id":`...)
		dst = AppendJSONString(dst, m.MessageID)
	}
	if m.StreamID != "" {
		dst = append(dst, `,"stream_id":`...)
		dst = AppendJSONString(dst, m.StreamID)
	}
	if m.Serial != 0 {
		dst = append(dst, `,"serial":`...)
		dst = strconv.AppendUint(dst, m.Serial, 10)
	}
	if m.Mutable != nil {
		dst = append(dst, `,"extras":`...)
		dst = AppendExtras(dst, m.Extras, m.Mutable)
	} else if len(m.Extras) > 0 {
		dst = append(dst, `,"extras":`...)
		dst = append(dst, m.Extras...)
	}
	return append(dst, '}')
}

// Append appends the form for version v.
func (m *Message) Append(v Version, dst []byte) []byte {
	if v == V2 {
		return m.AppendV2(dst)
	}
	return m.AppendV1(dst)
}

// Size is an upper-bound estimate of the encoded length, for buffer sizing.
func (m *Message) Size() int {
	n := 160 + len(m.Event) + len(m.Channel) + len(m.Data) + len(m.Name) + len(m.UserID) + len(m.Extras)
	if m.Mutable != nil {
		n += 200 + len(m.Mutable.MessageSerial) + len(m.Mutable.Version.Serial)
	}
	for k, v := range m.Tags {
		n += len(k) + len(v) + 6
	}
	return n + n/8
}

// AppendTags appends a string map as a JSON object with sorted keys.
func AppendTags(dst []byte, tags map[string]string) []byte {
	return appendSorted(dst, tags, AppendJSONString)
}

// appendSorted appends m as a JSON object with sorted keys, each value by appendValue.
func appendSorted[V any](dst []byte, m map[string]V, appendValue func([]byte, V) []byte) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendValue(dst, m[k])
	}
	return append(dst, '}')
}

// Position is a client's place in a channel's stream: the last serial it holds.
type Position struct {
	StreamID      string `json:"stream_id"`
	Serial        uint64 `json:"serial"`
	LastMessageID string `json:"last_message_id,omitempty"`
}

// Direction orders a history read.
type Direction uint8

const (
	// NewestFirst reads from the newest message backwards (the default).
	NewestFirst Direction = iota
	// OldestFirst reads from the oldest message forwards.
	OldestFirst
)

// String is the wire spelling: "newest_first" or "oldest_first".
func (d Direction) String() string {
	if d == OldestFirst {
		return "oldest_first"
	}
	return "newest_first"
}

// HistoryQuery selects messages of one channel. Bounds are inclusive; zero means open.
// Cursors are resolved by the caller into tighter serial bounds.
type HistoryQuery struct {
	Direction   Direction
	Limit       int // at least 1; stores may cap it
	StartSerial uint64
	EndSerial   uint64
	StartMs     int64
	EndMs       int64
	// MessagesOnly skips the update, delete and append deliveries of mutable messages
	// (history listings show messages; resume replays every delivery).
	MessagesOnly bool
}

// HistoryPage is one page of a history read, in the query's direction.
type HistoryPage struct {
	Items []Message
	// HasMore reports that further messages match the query beyond this page.
	HasMore bool
}

// StreamState describes what a store retains for one channel.
type StreamState struct {
	// StreamID is the channel's current stream ("" when the channel never had a message).
	StreamID string
	// HeadSerial is the last serial handed out in this stream, even when retention has
	// since dropped that message (0 when none was).
	HeadSerial uint64
	// OldestSerial and NewestSerial bound the retained messages (0 when none are retained).
	OldestSerial uint64
	NewestSerial uint64
	// OldestMs and NewestMs are the publish times of those messages.
	OldestMs int64
	NewestMs int64
	// Retained counts the retained messages, RetainedBytes their stored size.
	Retained      int64
	RetainedBytes int64
}
