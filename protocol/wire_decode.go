package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pushwire/pushwire/protocol/wirepb"
)

// DecodeBinary decodes one inbound binary message of a connection speaking form into the
// Frame a JSON text message would give: event, channel, and data as raw JSON (a tagged
// string becomes a JSON string, tagged JSON text is checked and kept, structured data
// becomes an object). Other envelope members are checked for their type and otherwise
// ignored, as they are in JSON frames.
//
// MessagePack: the positional array of up to 15 members (ws-protocol §0 order) or a map
// keyed by member name; data tagged as ["string", s], ["json", text], ["structured", …]
// (an array or a {"kind","value"} map). Protobuf: wirepb.Envelope, or FlutterEnvelope for
// FormProtobufFlutter. Malformed input, a member of the wrong type, an unknown member or
// field, trailing bytes and binary data are each a 4000 error saying what is wrong.
func DecodeBinary(form Form, msg []byte) (Frame, *Error) {
	var (
		f   Frame
		err error
	)
	switch form {
	case FormMsgpack:
		f, err = decodeMsgpack(msg)
	case FormProtobuf:
		f, err = decodeProto(msg, &wirepb.Envelope{})
	case FormProtobufFlutter:
		f, err = decodeProto(msg, &wirepb.FlutterEnvelope{})
	default:
		return Frame{}, &Error{Code: CodeGeneric, Message: "Binary frames are not supported on a format=json connection: send JSON text frames"}
	}
	if err != nil {
		return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid " + formName(form) + " frame: " + Truncate(err.Error(), 200)}
	}
	if f.Event == "" {
		return Frame{}, &Error{Code: CodeGeneric, Message: "Invalid " + formName(form) + " frame: missing event name"}
	}
	return f, nil
}

func formName(form Form) string {
	if form == FormMsgpack {
		return "MessagePack"
	}
	return "protobuf"
}

// msgpackFields are the envelope members in positional order.
var msgpackFields = [...]string{"event", "channel", "data", "name", "user_id", "tags", "sequence",
	"conflation_key", "message_id", "stream_id", "serial", "idempotency_key", "extras", "__delta_seq", "__conflation_key"}

func decodeMsgpack(msg []byte) (Frame, error) {
	var f Frame
	r := bytes.NewReader(msg)
	d := msgpack.NewDecoder(r)
	c, err := d.PeekCode()
	if err != nil {
		return f, fmt.Errorf("empty or truncated message")
	}
	member := func(name string) error {
		switch name {
		case "event", "channel":
			s, ok, err := mpString(d)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if ok && name == "event" {
				f.Event = s
			} else if ok {
				f.Channel = s
			}
		case "data":
			data, err := mpData(d)
			if err != nil {
				return fmt.Errorf("data: %w", err)
			}
			f.Data = data
		case "name", "user_id", "conflation_key", "message_id", "stream_id", "idempotency_key",
			"__conflation_key", "delta_conflation_key":
			if _, _, err := mpString(d); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case "sequence", "serial", "__delta_seq", "delta_sequence":
			if err := mpUint(d); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case "tags":
			if err := mpStringMap(d); err != nil {
				return fmt.Errorf("tags: %w", err)
			}
		case "extras":
			c, err := d.PeekCode()
			if err != nil {
				return err
			}
			if c != msgpcode.Nil && !isMap(c) && !isArray(c) {
				return fmt.Errorf("extras must be a map")
			}
			if err := d.Skip(); err != nil {
				return fmt.Errorf("extras: %w", err)
			}
		default:
			return fmt.Errorf("unknown member %q", Truncate(name, 32))
		}
		return nil
	}
	switch {
	case isArray(c):
		n, err := d.DecodeArrayLen()
		if err != nil {
			return f, err
		}
		if n > len(msgpackFields) {
			return f, fmt.Errorf("the envelope array has %d elements; it has %d members", n, len(msgpackFields))
		}
		for i := 0; i < n; i++ {
			if err := member(msgpackFields[i]); err != nil {
				return f, err
			}
		}
	case isMap(c):
		n, err := d.DecodeMapLen()
		if err != nil {
			return f, err
		}
		for i := 0; i < n; i++ {
			k, ok, err := mpString(d)
			if err != nil || !ok {
				return f, fmt.Errorf("envelope map keys must be strings")
			}
			if err := member(k); err != nil {
				return f, err
			}
		}
	default:
		return f, fmt.Errorf("expected the envelope array (or a map), got %s", mpKind(c))
	}
	if r.Len() > 0 {
		return f, fmt.Errorf("%d trailing bytes after the envelope", r.Len())
	}
	return f, nil
}

func isArray(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}
func isMap(c byte) bool { return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32 }

// mpKind names a MessagePack value's type by its first byte, for error messages.
func mpKind(c byte) string {
	switch {
	case c == msgpcode.Nil:
		return "nil"
	case c == msgpcode.True || c == msgpcode.False:
		return "a boolean"
	case msgpcode.IsString(c):
		return "a string"
	case msgpcode.IsBin(c):
		return "binary"
	case isArray(c):
		return "an array"
	case isMap(c):
		return "a map"
	case c == msgpcode.Float || c == msgpcode.Double:
		return "a float"
	case msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64):
		return "an integer"
	case msgpcode.IsExt(c):
		return "an extension"
	}
	return "an invalid value"
}

// mpString reads a string or nil (ok false).
func mpString(d *msgpack.Decoder) (string, bool, error) {
	c, err := d.PeekCode()
	if err != nil {
		return "", false, err
	}
	if c == msgpcode.Nil {
		return "", false, d.DecodeNil()
	}
	if !msgpcode.IsString(c) {
		return "", false, fmt.Errorf("expected a string, got %s", mpKind(c))
	}
	s, err := d.DecodeString()
	if err == nil && !utf8.ValidString(s) {
		return "", false, fmt.Errorf("strings must be valid UTF-8")
	}
	return s, err == nil, err
}

// mpUint reads a non-negative integer or nil.
func mpUint(d *msgpack.Decoder) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	if c == msgpcode.Nil {
		return d.DecodeNil()
	}
	if !(c <= msgpcode.PosFixedNumHigh || c >= msgpcode.Uint8 && c <= msgpcode.Int64) {
		return fmt.Errorf("expected an integer, got %s", mpKind(c))
	}
	_, err = d.DecodeUint64()
	return err
}

// mpStringMap reads a map of strings to strings, or nil.
func mpStringMap(d *msgpack.Decoder) error {
	_, err := mpStringMapValue(d)
	return err
}

func mpStringMapValue(d *msgpack.Decoder) ([]kv, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	if c == msgpcode.Nil {
		return nil, d.DecodeNil()
	}
	if !isMap(c) {
		return nil, fmt.Errorf("expected a map, got %s", mpKind(c))
	}
	n, err := d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	var out []kv
	for i := 0; i < n; i++ {
		k, ok, err := mpString(d)
		if err != nil || !ok {
			return nil, fmt.Errorf("map keys must be strings")
		}
		v, ok, err := mpString(d)
		if err != nil || !ok {
			return nil, fmt.Errorf("value of %q must be a string", Truncate(k, 32))
		}
		out = append(out, kv{k, v})
	}
	return out, nil
}

// mpData reads the tagged data member: nil, [kind, value] or {"kind":…, "value":…}.
func mpData(d *msgpack.Decoder) (json.RawMessage, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	var kind string
	switch {
	case c == msgpcode.Nil:
		return nil, d.DecodeNil()
	case isArray(c):
		n, err := d.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		if n != 2 {
			return nil, fmt.Errorf(`expected a tagged pair ["string"|"json"|"structured", value], got %d elements`, n)
		}
		k, ok, err := mpString(d)
		if err != nil || !ok {
			return nil, fmt.Errorf("the tag must be a string")
		}
		kind = k
	case isMap(c):
		n, err := d.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		if n != 2 {
			return nil, fmt.Errorf(`expected {"kind","value"}`)
		}
		k, ok, err := mpString(d)
		if err != nil || !ok || k != "kind" {
			return nil, fmt.Errorf(`expected {"kind","value"} with kind first`)
		}
		if kind, ok, err = mpString(d); err != nil || !ok {
			return nil, fmt.Errorf("the kind must be a string")
		}
		if k, ok, err = mpString(d); err != nil || !ok || k != "value" {
			return nil, fmt.Errorf(`expected {"kind","value"}`)
		}
	default:
		return nil, fmt.Errorf(`expected a tagged pair ["string"|"json"|"structured", value], got %s`, mpKind(c))
	}
	switch kind {
	case "string":
		s, ok, err := mpString(d)
		if err != nil || !ok {
			return nil, fmt.Errorf("a string value must be a string")
		}
		return Str(s), nil
	case "json":
		s, ok, err := mpString(d)
		if err != nil || !ok {
			return nil, fmt.Errorf("a json value must be a string of JSON text")
		}
		return jsonText(s)
	case "structured":
		return mpStructured(d)
	case "binary":
		return nil, errBinaryData
	}
	return nil, fmt.Errorf("unknown data kind %q", Truncate(kind, 32))
}

var errBinaryData = fmt.Errorf("binary data is not supported: send a string or JSON")

// jsonText checks tagged JSON text and returns it as the data's raw JSON.
func jsonText(s string) (json.RawMessage, error) {
	b := bytes.TrimSpace([]byte(s))
	if !json.Valid(b) || !utf8.Valid(b) {
		return nil, fmt.Errorf("json value is not valid JSON")
	}
	return b, nil
}

// mpStructured reads structured data, [channel_data, channel, user_data, extra] or a map of
// those names, into a JSON object; extra's values are JSON text (kept as strings when not).
func mpStructured(d *msgpack.Decoder) (json.RawMessage, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	s := structured{}
	names := [...]string{"channel_data", "channel", "user_data", "extra"}
	field := func(name string) error {
		switch name {
		case "channel_data", "channel", "user_data":
			v, ok, err := mpString(d)
			if err != nil {
				return fmt.Errorf("structured %s: %w", name, err)
			}
			if ok {
				s.set(name, v)
			}
		case "extra":
			m, err := mpStringMapValue(d)
			if err != nil {
				return fmt.Errorf("structured extra: %w", err)
			}
			s.extra = m
		default:
			return fmt.Errorf("unknown structured member %q", Truncate(name, 32))
		}
		return nil
	}
	switch {
	case isArray(c):
		n, _ := d.DecodeArrayLen()
		if n > len(names) {
			return nil, fmt.Errorf("structured data has %d elements; it has 4", n)
		}
		for i := 0; i < n; i++ {
			if err := field(names[i]); err != nil {
				return nil, err
			}
		}
	case isMap(c):
		n, _ := d.DecodeMapLen()
		for i := 0; i < n; i++ {
			k, ok, err := mpString(d)
			if err != nil || !ok {
				return nil, fmt.Errorf("structured keys must be strings")
			}
			if err := field(k); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("structured data must be an array or a map, got %s", mpKind(c))
	}
	return s.json(), nil
}

// structured collects structured data for its JSON form.
type structured struct {
	keys, vals []string
	extra      []kv
}

func (s *structured) set(k, v string) { s.keys, s.vals = append(s.keys, k), append(s.vals, v) }

// json is {"channel_data":…,"channel":…,"user_data":…, extra members…}: an extra value that
// is JSON text is embedded as JSON, any other as a string.
func (s *structured) json() json.RawMessage {
	b := []byte{'{'}
	seen := map[string]bool{}
	add := func(k string, raw []byte) {
		if seen[k] {
			return
		}
		seen[k] = true
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, k)
		b = append(b, ':')
		b = append(b, raw...)
	}
	for i, k := range s.keys {
		add(k, Str(s.vals[i]))
	}
	for _, e := range s.extra {
		if v := bytes.TrimSpace([]byte(e.v)); json.Valid(v) && utf8.Valid(v) {
			add(e.k, v)
		} else {
			add(e.k, Str(e.v))
		}
	}
	return append(b, '}')
}

// protoEnvelope is what decodeProto needs of Envelope and FlutterEnvelope.
type protoEnvelope interface {
	proto.Message
	GetEvent() string
	GetChannel() string
	GetData() *wirepb.Data
}

func decodeProto(msg []byte, m protoEnvelope) (Frame, error) {
	var f Frame
	if err := proto.Unmarshal(msg, m); err != nil {
		return f, fmt.Errorf("malformed: %v", protoErrText(err))
	}
	if err := unknownFields(m.ProtoReflect()); err != nil {
		return f, err
	}
	f.Event, f.Channel = m.GetEvent(), m.GetChannel()
	if d := m.GetData(); d != nil {
		switch k := d.Kind.(type) {
		case *wirepb.Data_StringValue:
			f.Data = Str(k.StringValue)
		case *wirepb.Data_JsonValue:
			raw, err := jsonText(k.JsonValue)
			if err != nil {
				return f, fmt.Errorf("data: %w", err)
			}
			f.Data = raw
		case *wirepb.Data_Structured:
			s := structured{}
			st := k.Structured
			if st.ChannelData != nil {
				s.set("channel_data", st.GetChannelData())
			}
			if st.Channel != nil {
				s.set("channel", st.GetChannel())
			}
			if st.UserData != nil {
				s.set("user_data", st.GetUserData())
			}
			for _, ek := range sortedKeys(st.Extra) {
				s.extra = append(s.extra, kv{ek, st.Extra[ek]})
			}
			f.Data = s.json()
		case *wirepb.Data_BinaryValue:
			return f, fmt.Errorf("data: %w", errBinaryData)
		}
	}
	return f, nil
}

// protoErrText shortens the protobuf library's error (its text is not stable; keep the
// gist).
func protoErrText(err error) string {
	s := err.Error()
	if i := bytes.Index([]byte(s), []byte("proto: ")); i >= 0 {
		s = s[i+len("proto: "):]
	}
	return s
}

// unknownFields fails on a field number the schema does not have, at any depth.
func unknownFields(m protoreflect.Message) error {
	if u := m.GetUnknown(); len(u) > 0 {
		num, _, _ := protowire.ConsumeTag(u)
		return fmt.Errorf("unknown field %d in %s", num, m.Descriptor().Name())
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = unknownFields(mv.Message())
					return err == nil
				})
			}
		case fd.Message() != nil && !fd.IsList():
			err = unknownFields(v.Message())
		}
		return err == nil
	})
	return err
}
