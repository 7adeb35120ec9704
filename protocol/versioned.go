package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Action is what one version of a mutable message did (ws-protocol §5).
type Action string

// The actions of mutable messages.
const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
	ActionAppend Action = "append"
)

// EventMessagePrefix starts the V2 events of mutations: sockudo:message.update|delete|append.
const EventMessagePrefix = "sockudo:message."

// Reserved extras.headers keys of mutable-message frames.
const (
	HeaderAction        = "sockudo_action"
	HeaderMessageSerial = "sockudo_message_serial"
	HeaderVersionSerial = "sockudo_version_serial"
	HeaderVersionTimeMs = "sockudo_version_timestamp_ms"
	HeaderHistorySerial = "sockudo_history_serial"
)

// MaxSerialLen bounds a message or version serial string; MaxOpIDLen an op_id.
const (
	MaxSerialLen = 128
	MaxOpIDLen   = 64
)

// VersionMeta describes one version: its serial and who made it, when and why.
type VersionMeta struct {
	Serial      string
	ClientID    string
	TimestampMs int64
	Description string
	// Metadata is any JSON value the mutation carried (nil when none).
	Metadata []byte
}

// Mutable marks a Message that is one delivery of a mutable (versioned) message: its
// create or a later update, delete or append. The V2 frame carries it as the reserved
// extras.headers; V1 never receives mutations and gets a create as a plain event.
type Mutable struct {
	Action        Action
	MessageSerial string
	// HistorySerial is the channel serial of the message's create.
	HistorySerial uint64
	Version       VersionMeta
	// Full, on an append delivered live, is the whole accumulated data after it (the frame
	// form for append_mode=full subscribers). Not stored: replays rebuild it.
	Full []byte
}

// VersionedMessage is the latest aggregate of a mutable message: what history shows and
// what the next mutation applies to.
type VersionedMessage struct {
	Channel       string
	MessageSerial string
	HistorySerial uint64
	StreamID      string
	// Event is the message's event name (the create's, unless an update replaced it).
	Event string
	// Data is the current data as raw JSON; nil when absent (cleared).
	Data []byte
	// Extras is the current extras object as JSON, without the reserved headers.
	Extras []byte
	Tags   map[string]string
	// UserID is the actor of the latest version when known.
	UserID string
	// OriginalClientID is the client id given at create, if any.
	OriginalClientID string
	LatestAction     Action
	LatestVersion    VersionMeta
	// LatestDeliverySerial is the channel serial of the latest version's delivery.
	LatestDeliverySerial uint64
	// LatestMessageID is the message_id of that delivery.
	LatestMessageID string
	CreatedAtMs     int64
}

// MessageVersion is one stored version of a mutable message. For an append, Data is the
// appended fragment; for every other action it is the complete resulting data.
type MessageVersion struct {
	MessageSerial  string
	HistorySerial  uint64
	DeliverySerial uint64
	Action         Action
	Event          string
	Data           []byte
	Extras         []byte
	Version        VersionMeta
	MessageID      string
	StreamID       string
	// OpKey identifies the operation for op_id idempotency ("" without op_id);
	// Fingerprint is a digest of the operation, to tell a retry from a conflicting reuse.
	OpKey       string
	Fingerprint string
}

// MutationPlan is everything one mutation writes atomically: the new aggregate, the version
// row and the delivery appended to the channel stream. The store fills in the delivery's
// Serial and StreamID, and with them Next.LatestDeliverySerial and Version.DeliverySerial.
type MutationPlan struct {
	Next     VersionedMessage
	Version  MessageVersion
	Delivery *Message
}

// Mutation is one requested update, delete or append, already parsed and validated for
// shape. A nil field was not given; a JSON null counts as not given.
type Mutation struct {
	Action Action
	// Name replaces the event name (update only).
	Name *string
	// Data replaces the data (update, delete) or is the fragment, a JSON string (append).
	Data []byte
	// Extras replaces the extras object.
	Extras []byte
	// ClearName, ClearData and ClearExtras remove those fields (clear_fields).
	ClearName, ClearData, ClearExtras bool
	ClientID, Description             string
	Metadata                          []byte
	OpID                              string
	// UserID is the actor's user id (from a bound socket), sent as user_id.
	UserID string
}

// Errors of Apply.
var (
	ErrAppendNotString = errors.New("append requires string message data")
	ErrEmptyFragment   = errors.New("append data must be a non-empty string")
	ErrFragmentType    = errors.New("append data must be a string")
)

// Apply returns the aggregate after op, made as version ver (ws-protocol §5.4): update and
// delete patch shallowly (given fields replace, cleared ones go); an append concatenates the
// fragment op.Data (a JSON string) onto string data or absent data. v is not changed.
func (v *VersionedMessage) Apply(op *Mutation, ver VersionMeta) (VersionedMessage, error) {
	next := *v
	next.LatestAction, next.LatestVersion, next.UserID = op.Action, ver, op.UserID
	switch op.Action {
	case ActionUpdate, ActionDelete:
		if op.ClearName {
			next.Event = ""
		} else if op.Name != nil && op.Action == ActionUpdate {
			next.Event = *op.Name
		}
		if op.ClearData {
			next.Data = nil
		} else if op.Data != nil {
			next.Data = op.Data
		}
		if op.ClearExtras {
			next.Extras = nil
		} else if op.Extras != nil {
			next.Extras = op.Extras
		}
	case ActionAppend:
		frag, ok := jsonString(op.Data)
		if !ok {
			return next, ErrFragmentType
		}
		if frag == "" && !TerminalAppend(op.Extras) {
			return next, ErrEmptyFragment
		}
		data, err := AppendData(v.Data, op.Data)
		if err != nil {
			return next, err
		}
		next.Data = data
		if op.Extras != nil {
			next.Extras = op.Extras
		}
	default:
		return next, fmt.Errorf("unknown action %q", op.Action)
	}
	return next, nil
}

// AppendData applies the append rule to raw JSON data: absent (or null) data becomes the
// fragment frag (a JSON string), string data gets it concatenated, any other data is
// ErrAppendNotString.
func AppendData(cur, frag []byte) ([]byte, error) {
	f, ok := jsonString(frag)
	if !ok {
		return nil, ErrFragmentType
	}
	if len(cur) == 0 || string(cur) == "null" {
		return Str(f), nil
	}
	c, ok := jsonString(cur)
	if !ok {
		return nil, ErrAppendNotString
	}
	return AppendJSONString(make([]byte, 0, len(cur)+len(frag)), c+f), nil
}

// TerminalAppend reports whether extras mark the end of an AI stream
// (extras.ai.codec.status or extras.ai.transport.status is complete or cancelled), the one
// case where an append may carry an empty fragment.
func TerminalAppend(extras []byte) bool {
	if len(extras) == 0 {
		return false
	}
	var x struct {
		AI struct {
			Codec     struct{ Status string } `json:"codec"`
			Transport struct{ Status string } `json:"transport"`
		} `json:"ai"`
	}
	if json.Unmarshal(extras, &x) != nil {
		return false
	}
	terminal := func(s string) bool { return s == "complete" || s == "cancelled" }
	return terminal(x.AI.Codec.Status) || terminal(x.AI.Transport.Status)
}

// jsonString decodes raw as a JSON string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// ValidSerial reports whether s can be a message or version serial: 1 to 128 bytes, no
// whitespace or control characters.
func ValidSerial(s string) bool {
	if s == "" || len(s) > MaxSerialLen {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// FormatSerial builds a serial in Sockudo's format, {unix ms, 20 digits}:{node}:{counter,
// 20 digits}, so that serials minted later sort later.
func FormatSerial(ms int64, node string, counter uint64) string {
	b := make([]byte, 0, 42+len(node))
	b = appendPadded(b, uint64(max(ms, 0)))
	b = append(b, ':')
	b = append(b, node...)
	b = append(b, ':')
	b = appendPadded(b, counter)
	return string(b)
}

func appendPadded(b []byte, n uint64) []byte {
	s := strconv.FormatUint(n, 10)
	for i := len(s); i < 20; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// SerialMs returns the millisecond part of a serial in FormatSerial's format (0 if none).
func SerialMs(s string) int64 {
	head, _, ok := strings.Cut(s, ":")
	if !ok || len(head) != 20 {
		return 0
	}
	n, err := strconv.ParseInt(head, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// NextVersionSerial mints a version serial for a message whose latest version is prev, at
// nowMs: always greater than prev, so a message's versions sort in the order they were
// applied even when clocks of several nodes disagree. It returns the serial and its time.
func NextVersionSerial(prev string, nowMs int64, node string, counter uint64) (string, int64) {
	s := FormatSerial(nowMs, node, counter)
	if s > prev {
		return s, nowMs
	}
	ms := max(SerialMs(prev), nowMs) + 1
	return FormatSerial(ms, node, counter), ms
}

// AppendExtras appends the extras member value of a mutable message's frame: extras with
// the reserved headers of mu added to extras.headers (replacing any of the same names).
func AppendExtras(dst, extras []byte, mu *Mutable) []byte {
	if len(extras) == 0 || string(extras) == "{}" {
		return appendReservedHeaders(dst, mu)
	}
	var obj map[string]json.RawMessage
	if len(extras) > 0 {
		_ = json.Unmarshal(extras, &obj)
	}
	var headers map[string]json.RawMessage
	if h, ok := obj["headers"]; ok {
		_ = json.Unmarshal(h, &headers)
	}
	if obj == nil {
		obj = map[string]json.RawMessage{}
	}
	if headers == nil {
		headers = map[string]json.RawMessage{}
	}
	headers[HeaderAction] = Str("message." + string(mu.Action))
	headers[HeaderMessageSerial] = Str(mu.MessageSerial)
	headers[HeaderVersionSerial] = Str(mu.Version.Serial)
	headers[HeaderVersionTimeMs] = strconv.AppendInt(nil, mu.Version.TimestampMs, 10)
	headers[HeaderHistorySerial] = strconv.AppendUint(nil, mu.HistorySerial, 10)
	obj["headers"] = appendObject(nil, headers)
	return appendObject(dst, obj)
}

// appendReservedHeaders appends AppendExtras' value for a message without extras of its own
// (the common case, and every message of a history page): {"headers":{…}} with the reserved
// headers in sorted order, written directly instead of through maps and a sort.
func appendReservedHeaders(dst []byte, mu *Mutable) []byte {
	// Sorted: sockudo_action, sockudo_history_serial, sockudo_message_serial,
	// sockudo_version_serial, sockudo_version_timestamp_ms.
	dst = append(dst, `{"headers":{"`+HeaderAction+`":"message.`...)
	at := len(dst)
	dst = AppendJSONString(dst, string(mu.Action)) // "action": drop its opening quote
	copy(dst[at:], dst[at+1:])
	dst = dst[:len(dst)-1]
	dst = append(dst, `,"`+HeaderHistorySerial+`":`...)
	dst = strconv.AppendUint(dst, mu.HistorySerial, 10)
	dst = append(dst, `,"`+HeaderMessageSerial+`":`...)
	dst = AppendJSONString(dst, mu.MessageSerial)
	dst = append(dst, `,"`+HeaderVersionSerial+`":`...)
	dst = AppendJSONString(dst, mu.Version.Serial)
	dst = append(dst, `,"`+HeaderVersionTimeMs+`":`...)
	dst = strconv.AppendInt(dst, mu.Version.TimestampMs, 10)
	return append(dst, "}}"...)
}

// appendObject appends a JSON object of raw JSON values with sorted keys.
func appendObject(dst []byte, m map[string]json.RawMessage) []byte {
	return appendSorted(dst, m, func(dst []byte, v json.RawMessage) []byte { return append(dst, v...) })
}

// MutationEvent is the V2 event of a delivery: the original name for a create delivered
// live, sockudo:message.<action> otherwise.
func MutationEvent(a Action) string { return EventMessagePrefix + string(a) }

// AppendVersioned appends a VersionedRealtimeMessage (http-api §3.3): the V2 frame of m
// plus action, message_serial, history_serial, delivery_serial and version. m must carry
// Mutable.
func AppendVersioned(dst []byte, m *Message) []byte {
	dst = m.AppendV2(dst)
	dst = dst[:len(dst)-1]
	mu := m.Mutable
	dst = append(dst, `,"action":`...)
	dst = AppendJSONString(dst, string(mu.Action))
	dst = append(dst, `,"message_serial":`...)
	dst = AppendJSONString(dst, mu.MessageSerial)
	dst = append(dst, `,"history_serial":`...)
	dst = strconv.AppendUint(dst, mu.HistorySerial, 10)
	dst = append(dst, `,"delivery_serial":`...)
	dst = strconv.AppendUint(dst, m.Serial, 10)
	dst = append(dst, `,"version":{"serial":`...)
	dst = AppendJSONString(dst, mu.Version.Serial)
	if mu.Version.ClientID != "" {
		dst = append(dst, `,"client_id":`...)
		dst = AppendJSONString(dst, mu.Version.ClientID)
	}
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendInt(dst, mu.Version.TimestampMs, 10)
	if mu.Version.Description != "" {
		dst = append(dst, `,"description":`...)
		dst = AppendJSONString(dst, mu.Version.Description)
	}
	if len(mu.Version.Metadata) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, mu.Version.Metadata...)
	}
	return append(dst, "}}"...)
}

// Delivery builds the message that delivers version ver of aggregate v: the create as its
// own event on live delivery (asCreate), every other version (and every replayed
// substitution) as sockudo:message.<action> with the original event as name.
func (v *VersionedMessage) Delivery(action Action, data []byte, messageID string, asCreate bool) *Message {
	m := &Message{Channel: v.Channel, Data: data, Tags: v.Tags, MessageID: messageID, Extras: v.Extras,
		UserID: v.UserID, PublishedAtMs: v.LatestVersion.TimestampMs,
		Mutable: &Mutable{Action: action, MessageSerial: v.MessageSerial, HistorySerial: v.HistorySerial, Version: v.LatestVersion}}
	if asCreate {
		m.Event = v.Event
	} else {
		m.Event, m.Name = MutationEvent(action), v.Event
	}
	if action == ActionAppend {
		m.Mutable.Full = v.Data
	}
	return m
}

// Summary is the message as history shows it: the latest aggregate delivered as
// sockudo:message.<latest action>, at the latest delivery serial.
func (v *VersionedMessage) Summary() *Message {
	m := v.Delivery(v.LatestAction, v.Data, v.LatestMessageID, false)
	m.Mutable.Full = nil
	m.Serial, m.StreamID = v.LatestDeliverySerial, v.StreamID
	return m
}

// IsMutation reports whether m is an update, delete or append delivery (not a create).
func (m *Message) IsMutation() bool { return m.Mutable != nil && m.Mutable.Action != ActionCreate }

// FilterEvent is the event name filters match: the original name of a mutation.
func (m *Message) FilterEvent() string {
	if m.Mutable != nil && m.Name != "" {
		return m.Name
	}
	return m.Event
}

// MarshalMutable encodes the Mutable of a stored delivery (without Full) as JSON.
func MarshalMutable(mu *Mutable) []byte {
	if mu == nil {
		return nil
	}
	b, _ := json.Marshal(storedMutable{Action: mu.Action, MessageSerial: mu.MessageSerial, HistorySerial: mu.HistorySerial,
		VersionSerial: mu.Version.Serial, ClientID: mu.Version.ClientID, TimestampMs: mu.Version.TimestampMs,
		Description: mu.Version.Description, Metadata: json.RawMessage(mu.Version.Metadata)})
	return b
}

// UnmarshalMutable decodes what MarshalMutable wrote (nil for empty input).
func UnmarshalMutable(b []byte) (*Mutable, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var s storedMutable
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("mutable: %w", err)
	}
	return &Mutable{Action: s.Action, MessageSerial: s.MessageSerial, HistorySerial: s.HistorySerial,
		Version: VersionMeta{Serial: s.VersionSerial, ClientID: s.ClientID, TimestampMs: s.TimestampMs,
			Description: s.Description, Metadata: []byte(s.Metadata)}}, nil
}

type storedMutable struct {
	Action        Action          `json:"action"`
	MessageSerial string          `json:"message_serial"`
	HistorySerial uint64          `json:"history_serial"`
	VersionSerial string          `json:"version_serial"`
	ClientID      string          `json:"client_id,omitempty"`
	TimestampMs   int64           `json:"timestamp_ms"`
	Description   string          `json:"description,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}
