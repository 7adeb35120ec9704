package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Frame is an inbound client frame: {"event","channel","data"}.
type Frame struct {
	Event   string
	Channel string
	// Data is the raw JSON of the data member (nil when absent): an object, a string, or
	// any other JSON value, exactly as the client sent it.
	Data json.RawMessage
}

type wireFrame struct {
	Event   json.RawMessage `json:"event"`
	Channel json.RawMessage `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// ParseFrame decodes one inbound text frame. The error is a 4000 protocol error with a
// message that says what is wrong.
func ParseFrame(b []byte) (Frame, *Error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid message format: expected a JSON object"}
	}
	var w wireFrame
	if err := json.Unmarshal(b, &w); err != nil {
		return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid message format: " + jsonErrorText(err)}
	}
	var f Frame
	if len(w.Event) == 0 || string(w.Event) == "null" {
		return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid message format: missing event name"}
	}
	if err := json.Unmarshal(w.Event, &f.Event); err != nil {
		return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid message format: event must be a string"}
	}
	if f.Event == "" {
		return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid message format: missing event name"}
	}
	if len(w.Channel) > 0 && string(w.Channel) != "null" {
		if err := json.Unmarshal(w.Channel, &f.Channel); err != nil {
			return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid message format: channel must be a string"}
		}
	}
	if len(w.Data) > 0 {
		f.Data = w.Data
	}
	return f, nil
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "invalid JSON at offset " + strconv.FormatInt(se.Offset, 10)
	}
	return "invalid JSON"
}

// DecodeData decodes a frame's data into v. It accepts an object, or a JSON string whose
// content is the object (clients send either).
func DecodeData(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return errors.New("missing data")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		raw = []byte(s)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("data must be an object")
	}
	return json.Unmarshal(raw, v)
}

// StringOrRaw returns a JSON value as text: the content of a JSON string, or the raw JSON of
// any other value. It is how channel_data and user_data are read: the exact string signed.
func StringOrRaw(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	return string(raw), true
}

// OutFrame is a server frame. Keys are written in the fixed order event, channel, data,
// user_id, and absent ones are omitted.
type OutFrame struct {
	Event   string
	Channel string
	// Data is the data member as raw JSON; use Str to send a string (double-encoded JSON).
	// Nil (or empty) omits the member.
	Data   []byte
	UserID string
}

// Append appends the frame's JSON encoding to dst.
func (f OutFrame) Append(dst []byte) []byte {
	dst = append(dst, `{"event":`...)
	dst = AppendJSONString(dst, f.Event)
	if f.Channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendJSONString(dst, f.Channel)
	}
	if len(f.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, f.Data...)
	}
	if f.UserID != "" {
		dst = append(dst, `,"user_id":`...)
		dst = AppendJSONString(dst, f.UserID)
	}
	return append(dst, '}')
}

// Bytes returns the frame's JSON encoding.
func (f OutFrame) Bytes() []byte {
	return f.Append(make([]byte, 0, 48+len(f.Event)+len(f.Channel)+len(f.Data)+len(f.UserID)))
}

// Str returns s encoded as a JSON string value.
func Str(s string) []byte { return AppendJSONString(make([]byte, 0, len(s)+len(s)/8+8), s) }

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string to dst. Unlike encoding/json it does not escape
// <, > and &; invalid UTF-8 becomes U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ErrorData is the data object of an error frame: {"code":N,"message":"..."}.
func ErrorData(code int, message string) []byte {
	b := append([]byte(`{"code":`), strconv.Itoa(code)...)
	b = append(b, `,"message":`...)
	b = AppendJSONString(b, message)
	return append(b, '}')
}

// ErrorFrame is the pusher:error frame for err, in dialect v.
func ErrorFrame(v Version, err *Error) []byte {
	return OutFrame{Event: v.EventName(EventError), Data: ErrorData(err.Code, err.Message)}.Bytes()
}

// ConnectionEstablished is the handshake frame, data double-encoded:
// {"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}.
func ConnectionEstablished(v Version, socketID string, activityTimeoutSeconds int) []byte {
	inner := append([]byte(`{"socket_id":`), Str(socketID)...)
	inner = append(inner, `,"activity_timeout":`...)
	inner = strconv.AppendInt(inner, int64(activityTimeoutSeconds), 10)
	inner = append(inner, '}')
	return OutFrame{Event: v.EventName(EventConnectionEstablished), Data: Str(string(inner))}.Bytes()
}

// Pong is the reply to a client ping: {"event":"pusher:pong"}.
func Pong(v Version) []byte { return OutFrame{Event: v.EventName(EventPong)}.Bytes() }

// Ping is the server's liveness probe after inactivity: {"event":"pusher:ping"}.
func Ping(v Version) []byte { return OutFrame{Event: v.EventName(EventPing)}.Bytes() }

// SubscriptionSucceeded acknowledges a subscription; data is the double-encoded payload
// ("{}" or the presence object).
func SubscriptionSucceeded(v Version, channel string, data []byte) []byte {
	event := v.EventName(EventSubscriptionSucceeded)
	b := make([]byte, 0, 40+len(event)+len(channel)+len(data)+len(data)/8)
	b = OutFrame{Event: event, Channel: channel}.Append(b)
	b = append(b[:len(b)-1], `,"data":`...)
	// data is only read, during the call: no copy into a string (a presence channel's
	// member list can be large, and is sent on every join).
	b = AppendJSONString(b, unsafe.String(unsafe.SliceData(data), len(data)))
	return append(b, '}')
}

// SubscriptionError reports a refused subscription on the channel itself, in the shape
// pusher-js emits for an auth failure: data {"type","error","status","code"}.
func SubscriptionError(v Version, channel string, typ string, status int, err *Error) []byte {
	d := append([]byte(`{"type":`), Str(typ)...)
	d = append(d, `,"error":`...)
	d = AppendJSONString(d, err.Message)
	d = append(d, `,"status":`...)
	d = strconv.AppendInt(d, int64(status), 10)
	d = append(d, `,"code":`...)
	d = strconv.AppendInt(d, int64(err.Code), 10)
	d = append(d, '}')
	return OutFrame{Event: v.EventName(EventSubscriptionError), Channel: channel, Data: d}.Bytes()
}

// CacheMiss tells a new cache-channel subscriber that nothing is cached.
func CacheMiss(v Version, channel string) []byte {
	return OutFrame{Event: v.EventName(EventCacheMiss), Channel: channel, Data: Str("{}")}.Bytes()
}

// SigninSuccess confirms a sign-in; data is an object holding the signed user_data string.
func SigninSuccess(v Version, userData string) []byte {
	d := append([]byte(`{"user_data":`), Str(userData)...)
	d = append(d, '}')
	return OutFrame{Event: v.EventName(EventSigninSuccess), Data: d}.Bytes()
}

// WatchlistEvent is one entry of a watchlist_events frame.
type WatchlistEvent struct {
	Name    string   `json:"name"` // "online" or "offline"
	UserIDs []string `json:"user_ids"`
}

// WatchlistEvents is {"event":"pusher_internal:watchlist_events","data":{"events":[...]}}.
func WatchlistEvents(v Version, events []WatchlistEvent) []byte {
	// Nil slices would marshal as null, and pusher-js calls data.events.forEach.
	evs := make([]WatchlistEvent, len(events))
	for i, e := range events {
		if e.UserIDs == nil {
			e.UserIDs = []string{}
		}
		evs[i] = e
	}
	d, _ := json.Marshal(struct {
		Events []WatchlistEvent `json:"events"`
	}{evs})
	return OutFrame{Event: v.EventName(EventWatchlistEvents), Data: d}.Bytes()
}

// MemberAdded announces a new presence member: data "{\"user_id\":\"..\",\"user_info\":..}".
func MemberAdded(v Version, channel, userID string, userInfo json.RawMessage) []byte {
	inner := append([]byte(`{"user_id":`), Str(userID)...)
	inner = append(inner, `,"user_info":`...)
	if len(userInfo) == 0 {
		userInfo = json.RawMessage("{}")
	}
	inner = append(inner, userInfo...)
	inner = append(inner, '}')
	return OutFrame{Event: v.EventName(EventMemberAdded), Channel: channel, Data: Str(string(inner))}.Bytes()
}

// MemberRemoved announces a presence member's departure: data "{\"user_id\":\"..\"}".
func MemberRemoved(v Version, channel, userID string) []byte {
	inner := append([]byte(`{"user_id":`), Str(userID)...)
	inner = append(inner, '}')
	return OutFrame{Event: v.EventName(EventMemberRemoved), Channel: channel, Data: Str(string(inner))}.Bytes()
}
