package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Binary wire formats (ws-protocol §3.9). A V2 connection chooses one with format= in its
// URL; its frames then travel as binary WebSocket messages both ways. Every frame pushwire
// builds is JSON first (the V2 envelope, ws-protocol §0); a binary connection receives that
// envelope transcoded member by member (Encode), and a binary inbound message is decoded
// into the same Frame a JSON one gives (DecodeBinary).

// Format is a wire encoding a connection negotiated.
type Format uint8

const (
	// FormatJSON is text frames holding the JSON envelope (the default, and V1's only one).
	FormatJSON Format = iota
	// FormatMsgpack is MessagePack: the envelope as a positional 15-element array.
	FormatMsgpack
	// FormatProtobuf is protobuf (wirepb.Envelope, or wirepb.FlutterEnvelope for
	// sockudo_flutter).
	FormatProtobuf
)

// String is the format's canonical query-parameter spelling.
func (f Format) String() string {
	switch f {
	case FormatMsgpack:
		return "messagepack"
	case FormatProtobuf:
		return "protobuf"
	}
	return "json"
}

// ParseFormat reads the format query parameter (case-insensitive, trimmed): "" or "json",
// "messagepack" or "msgpack", "protobuf" or "proto".
func ParseFormat(q string) (Format, bool) {
	switch strings.ToLower(strings.TrimSpace(q)) {
	case "", "json":
		return FormatJSON, true
	case "messagepack", "msgpack":
		return FormatMsgpack, true
	case "protobuf", "proto":
		return FormatProtobuf, true
	}
	return FormatJSON, false
}

// Client is the client library at the other end, as far as the wire cares: it picks
// sockudo_flutter's protobuf field numbers and decides what text the client keeps as a
// delta base (ClientText).
type Client uint8

const (
	// ClientJS is sockudo-js (client=js) and every client that is not sockudo_flutter.
	ClientJS Client = iota
	// ClientFlutter is sockudo_flutter, whose URL always says client=flutter.
	ClientFlutter
)

// ParseClient maps the client query parameter to a Client: "flutter" is sockudo_flutter,
// anything else behaves as sockudo-js.
func ParseClient(q string) Client {
	if strings.EqualFold(strings.TrimSpace(q), "flutter") {
		return ClientFlutter
	}
	return ClientJS
}

// Wire is a connection's wire format and client.
type Wire struct {
	Format Format
	Client Client
}

// Binary reports whether frames travel as binary WebSocket messages.
func (w Wire) Binary() bool { return w.Format != FormatJSON }

// Form is one distinct byte encoding of a frame: JSON, MessagePack, protobuf with the
// Sockudo server's field numbers, protobuf with sockudo_flutter's.
type Form uint8

// Forms.
const (
	FormJSON Form = iota
	FormMsgpack
	FormProtobuf
	FormProtobufFlutter
	// NumForms is the number of forms, for arrays indexed by Form.
	NumForms
)

// Form is the byte encoding the connection receives.
func (w Wire) Form() Form {
	switch w.Format {
	case FormatMsgpack:
		return FormMsgpack
	case FormatProtobuf:
		if w.Client == ClientFlutter {
			return FormProtobufFlutter
		}
		return FormProtobuf
	}
	return FormJSON
}

// NumWires bounds Wire.Index, for arrays indexed by it.
const NumWires = 5

// Index is a small distinct number per Wire (0 for JSON), for arrays indexed by Wire:
// connections with the same Index keep the same delta base text.
func (w Wire) Index() int {
	if w.Format == FormatJSON {
		return 0
	}
	return int(w.Format)*2 + int(w.Client) - 2 + 1
}

// envelope is a V2 JSON frame taken apart: what Encode and ClientText work from. Absent
// members are the zero value with their has* flag (or nil raw value) unset.
type envelope struct {
	event, channel         string
	hasEvent, hasChannel   bool
	data                   json.RawMessage // raw JSON, nil when absent
	name, userID           string
	hasName, hasUserID     bool
	tags                   []kv // in frame order
	hasTags                bool
	messageID, streamID    string
	hasMessageID, hasStrID bool
	serial                 uint64
	hasSerial              bool
	extras                 json.RawMessage // raw JSON object, nil when absent
	deltaSeq               uint64
	hasDeltaSeq            bool
	conflationKey          string
	hasConflationKey       bool
}

type kv struct{ k, v string }

// errFrame is what Encode returns for input that is not a pushwire V2 JSON frame.
var errFrame = errors.New("protocol: not a V2 JSON frame")

// parseEnvelope takes a JSON frame apart. Unknown members are an error: every frame
// pushwire builds has only the members of ws-protocol §0.
func parseEnvelope(frame []byte) (envelope, error) {
	var e envelope
	err := eachMember(frame, func(k string, v json.RawMessage) error {
		var err error
		switch k {
		case "event":
			e.hasEvent = true
			e.event, err = jsonStr(v)
		case "channel":
			e.hasChannel = true
			e.channel, err = jsonStr(v)
		case "data":
			if string(v) != "null" {
				e.data = v
			}
		case "name":
			e.hasName = true
			e.name, err = jsonStr(v)
		case "user_id":
			e.hasUserID = true
			e.userID, err = jsonStr(v)
		case "tags":
			e.hasTags = true
			err = eachMember(v, func(tk string, tv json.RawMessage) error {
				s, err := jsonStr(tv)
				if err != nil {
					return err
				}
				e.tags = append(e.tags, kv{tk, s})
				return nil
			})
		case "message_id":
			e.hasMessageID = true
			e.messageID, err = jsonStr(v)
		case "stream_id":
			e.hasStrID = true
			e.streamID, err = jsonStr(v)
		case "serial":
			e.hasSerial = true
			e.serial, err = strconv.ParseUint(string(v), 10, 64)
		case "extras":
			if string(v) != "null" {
				e.extras = v
			}
		case "__delta_seq":
			e.hasDeltaSeq = true
			e.deltaSeq, err = strconv.ParseUint(string(v), 10, 64)
		case "__conflation_key":
			e.hasConflationKey = true
			e.conflationKey, err = jsonStr(v)
		default:
			return fmt.Errorf("unknown member %q", Truncate(k, 32))
		}
		if err != nil {
			return fmt.Errorf("member %s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return e, fmt.Errorf("%w: %w", errFrame, err)
	}
	return e, nil
}

// eachMember calls fn with each member of the JSON object raw, in order, values raw. raw is
// checked first; the walk itself is a plain scan (no decoder, no allocation per member).
func eachMember(raw []byte, fn func(k string, v json.RawMessage) error) error {
	if !json.Valid(raw) {
		return errors.New("invalid JSON")
	}
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipWS(raw, i+1)
	if raw[i] == '}' {
		return nil
	}
	for {
		kEnd := skipValue(raw, i)
		var k string
		if bytes.IndexByte(raw[i+1:kEnd-1], '\\') < 0 {
			k = string(raw[i+1 : kEnd-1])
		} else if err := json.Unmarshal(raw[i:kEnd], &k); err != nil {
			return err
		}
		i = skipWS(raw, kEnd)
		i = skipWS(raw, i+1) // ':'
		vEnd := skipValue(raw, i)
		if err := fn(k, raw[i:vEnd:vEnd]); err != nil {
			return err
		}
		i = skipWS(raw, vEnd)
		if raw[i] == '}' {
			return nil
		}
		i = skipWS(raw, i+1) // ','
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the (valid) JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; b[i] != '"'; i++ {
			if b[i] == '\\' {
				i++
			}
		}
		return i + 1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++
	}
	return i
}

// jsonStr decodes a JSON string value, without a decoder when it holds no escapes.
func jsonStr(v []byte) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

// wireData is the data member as the binary formats carry it: a string (a JSON string's
// content), or JSON text for any other value.
func (e *envelope) wireData() (s string, isString bool) {
	d := bytes.TrimSpace(e.data)
	if len(d) > 0 && d[0] == '"' {
		_ = json.Unmarshal(d, &s)
		return s, true
	}
	return string(d), false
}

// wireExtras is the extras object as the binary formats carry it: headers (string, number
// or boolean values), ephemeral, idempotency_key (the JSON form's idempotencyKey), echo and
// the AI transport's string maps. Other members (push, ref, ...) have no place in either
// binary schema and are left out, as Sockudo does.
type wireExtras struct {
	headers                []header
	ephemeral, echo        *bool
	idempotencyKey         *string
	hasAI                  bool
	aiTransport, aiCodec   []kv
	hasTransport, hasCodec bool
}

type header struct {
	k    string
	kind byte // 's' string, 'n' number, 'b' bool
	s    string
	n    float64
	b    bool
}

func (x *wireExtras) empty() bool {
	return len(x.headers) == 0 && x.ephemeral == nil && x.echo == nil && x.idempotencyKey == nil && !x.hasAI
}

// parseExtras reads the extras member; ok is false when there is nothing to carry.
func (e *envelope) parseExtras() (wireExtras, bool, error) {
	var x wireExtras
	if e.extras == nil {
		return x, false, nil
	}
	err := eachMember(e.extras, func(k string, v json.RawMessage) error {
		switch k {
		case "headers":
			if string(v) == "null" {
				return nil
			}
			return eachMember(v, func(hk string, hv json.RawMessage) error {
				h := header{k: hk}
				switch {
				case len(hv) > 0 && hv[0] == '"':
					h.kind = 's'
					_ = json.Unmarshal(hv, &h.s)
				case string(hv) == "true" || string(hv) == "false":
					h.kind, h.b = 'b', string(hv) == "true"
				default:
					f, err := strconv.ParseFloat(string(hv), 64)
					if err != nil {
						h.kind, h.s = 's', string(hv) // not flat: carried as its JSON text
					} else {
						h.kind, h.n = 'n', f
					}
				}
				x.headers = append(x.headers, h)
				return nil
			})
		case "ephemeral", "echo":
			var b bool
			if json.Unmarshal(v, &b) != nil {
				return nil
			}
			if k == "echo" {
				x.echo = &b
			} else {
				x.ephemeral = &b
			}
		case "idempotencyKey", "idempotency_key":
			var s string
			if json.Unmarshal(v, &s) == nil {
				x.idempotencyKey = &s
			}
		case "ai":
			if string(v) == "null" {
				return nil
			}
			x.hasAI = true
			return eachMember(v, func(ak string, av json.RawMessage) error {
				if ak != "transport" && ak != "codec" || string(av) == "null" {
					return nil
				}
				var m []kv
				err := eachMember(av, func(mk string, mv json.RawMessage) error {
					s := string(mv)
					if len(mv) > 0 && mv[0] == '"' {
						_ = json.Unmarshal(mv, &s)
					}
					m = append(m, kv{mk, s})
					return nil
				})
				if ak == "transport" {
					x.aiTransport, x.hasTransport = m, len(m) > 0
				} else {
					x.aiCodec, x.hasCodec = m, len(m) > 0
				}
				return err
			})
		}
		return nil
	})
	if err != nil {
		return x, false, fmt.Errorf("%w: extras: %w", errFrame, err)
	}
	return x, !x.empty(), nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
