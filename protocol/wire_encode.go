package protocol

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pushwire/pushwire/protocol/wirepb"
)

// Encode transcodes a V2 JSON frame (any frame pushwire builds: ws-protocol §0 members only)
// into form. FormJSON returns frame itself. The error means frame was not such a frame.
//
// The data member becomes a tagged string (MessagePack ["string", s], protobuf string_value)
// when it is a JSON string, else tagged JSON text (["json", text], json_value) holding the
// member's raw JSON; extras carry headers (each value tagged string, number or bool),
// ephemeral, idempotency_key, echo and the AI maps. MessagePack frames are the positional
// 15-element array both Sockudo clients decode; protobuf frames are wirepb.Envelope, or
// wirepb.FlutterEnvelope for FormProtobufFlutter.
func Encode(form Form, frame []byte) ([]byte, error) {
	switch form {
	case FormJSON:
		return frame, nil
	case FormMsgpack, FormProtobuf, FormProtobufFlutter:
	default:
		return nil, fmt.Errorf("protocol: unknown form %d", form)
	}
	e, err := parseEnvelope(frame)
	if err != nil {
		return nil, err
	}
	x, hasX, err := e.parseExtras()
	if err != nil {
		return nil, err
	}
	if form == FormMsgpack {
		return e.msgpack(x, hasX)
	}
	var m proto.Message = &wirepb.Envelope{}
	if form == FormProtobufFlutter {
		m = &wirepb.FlutterEnvelope{}
	}
	e.fillProto(m.ProtoReflect(), x, hasX)
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// MustEncode is Encode for frames pushwire built itself: should one ever fail to transcode,
// the client gets an encoded error frame saying so instead.
func MustEncode(form Form, frame []byte) []byte {
	b, err := Encode(form, frame)
	if err != nil {
		b, _ = Encode(form, ErrorFrame(V2, &Error{Code: CodeGeneric, Message: "Internal error: frame could not be encoded"}))
	}
	return b
}

// msgpack encodes the positional array [event, channel, data, name, user_id, tags, sequence,
// conflation_key, message_id, stream_id, serial, idempotency_key, extras, __delta_seq,
// __conflation_key], nil for absent members.
func (e *envelope) msgpack(x wireExtras, hasX bool) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(64 + len(e.data) + len(e.extras) + len(e.event) + len(e.channel))
	enc := msgpack.NewEncoder(&buf)
	w := mpWriter{enc: enc}
	w.arrayLen(15)
	w.optString(e.event, e.hasEvent)
	w.optString(e.channel, e.hasChannel)
	if e.data == nil {
		w.nil()
	} else {
		s, isString := e.wireData()
		w.arrayLen(2)
		if isString {
			w.str("string")
		} else {
			w.str("json")
		}
		w.str(s)
	}
	w.optString(e.name, e.hasName)
	w.optString(e.userID, e.hasUserID)
	if e.hasTags {
		w.mapLen(len(e.tags))
		for _, t := range e.tags {
			w.str(t.k)
			w.str(t.v)
		}
	} else {
		w.nil()
	}
	w.nil() // sequence
	w.nil() // conflation_key
	w.optString(e.messageID, e.hasMessageID)
	w.optString(e.streamID, e.hasStrID)
	w.optUint(e.serial, e.hasSerial)
	w.nil() // idempotency_key: never sent
	if hasX {
		w.extras(x)
	} else {
		w.nil()
	}
	w.optUint(e.deltaSeq, e.hasDeltaSeq)
	w.optString(e.conflationKey, e.hasConflationKey)
	if w.err != nil {
		return nil, w.err
	}
	return buf.Bytes(), nil
}

// mpWriter keeps the first encoding error so the encoder reads straight.
type mpWriter struct {
	enc *msgpack.Encoder
	err error
}

func (w *mpWriter) do(err error) {
	if w.err == nil {
		w.err = err
	}
}
func (w *mpWriter) nil()               { w.do(w.enc.EncodeNil()) }
func (w *mpWriter) str(s string)       { w.do(w.enc.EncodeString(s)) }
func (w *mpWriter) arrayLen(n int)     { w.do(w.enc.EncodeArrayLen(n)) }
func (w *mpWriter) mapLen(n int)       { w.do(w.enc.EncodeMapLen(n)) }
func (w *mpWriter) bool(b bool)        { w.do(w.enc.EncodeBool(b)) }
func (w *mpWriter) float(f float64)    { w.do(w.enc.EncodeFloat64(f)) }
func (w *mpWriter) uint(u uint64)      { w.do(w.enc.EncodeUint(u)) }
func (w *mpWriter) tagged(kind string) { w.arrayLen(2); w.str(kind) }

func (w *mpWriter) optString(s string, ok bool) {
	if ok {
		w.str(s)
	} else {
		w.nil()
	}
}

func (w *mpWriter) optUint(u uint64, ok bool) {
	if ok {
		w.uint(u)
	} else {
		w.nil()
	}
}

func (w *mpWriter) kvMap(m []kv) {
	w.mapLen(len(m))
	for _, p := range m {
		w.str(p.k)
		w.str(p.v)
	}
}

// extras encodes the extras map: headers, ephemeral, idempotency_key, echo, ai (present
// members only, in that order), header values tagged ["string"|"number"|"bool", v].
func (w *mpWriter) extras(x wireExtras) {
	n := 0
	for _, ok := range [...]bool{len(x.headers) > 0, x.ephemeral != nil, x.idempotencyKey != nil, x.echo != nil, x.hasAI} {
		if ok {
			n++
		}
	}
	w.mapLen(n)
	if len(x.headers) > 0 {
		w.str("headers")
		w.mapLen(len(x.headers))
		for _, h := range x.headers {
			w.str(h.k)
			switch h.kind {
			case 'n':
				w.tagged("number")
				w.float(h.n)
			case 'b':
				w.tagged("bool")
				w.bool(h.b)
			default:
				w.tagged("string")
				w.str(h.s)
			}
		}
	}
	if x.ephemeral != nil {
		w.str("ephemeral")
		w.bool(*x.ephemeral)
	}
	if x.idempotencyKey != nil {
		w.str("idempotency_key")
		w.str(*x.idempotencyKey)
	}
	if x.echo != nil {
		w.str("echo")
		w.bool(*x.echo)
	}
	if x.hasAI {
		w.str("ai")
		w.mapLen(btoi(x.hasTransport) + btoi(x.hasCodec))
		if x.hasTransport {
			w.str("transport")
			w.kvMap(x.aiTransport)
		}
		if x.hasCodec {
			w.str("codec")
			w.kvMap(x.aiCodec)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fillProto sets m's fields (by name: Envelope and FlutterEnvelope share them) from e.
func (e *envelope) fillProto(m protoreflect.Message, x wireExtras, hasX bool) {
	fields := m.Descriptor().Fields()
	setStr := func(name protoreflect.Name, s string, ok bool) {
		if ok {
			m.Set(fields.ByName(name), protoreflect.ValueOfString(s))
		}
	}
	setUint := func(name protoreflect.Name, u uint64, ok bool) {
		if ok {
			m.Set(fields.ByName(name), protoreflect.ValueOfUint64(u))
		}
	}
	setStr("event", e.event, e.hasEvent)
	setStr("channel", e.channel, e.hasChannel)
	if e.data != nil {
		d := &wirepb.Data{}
		if s, isString := e.wireData(); isString {
			d.Kind = &wirepb.Data_StringValue{StringValue: s}
		} else {
			d.Kind = &wirepb.Data_JsonValue{JsonValue: s}
		}
		m.Set(fields.ByName("data"), protoreflect.ValueOfMessage(d.ProtoReflect()))
	}
	setStr("name", e.name, e.hasName)
	setStr("user_id", e.userID, e.hasUserID)
	if len(e.tags) > 0 {
		tags := m.Mutable(fields.ByName("tags")).Map()
		for _, t := range e.tags {
			tags.Set(protoreflect.ValueOfString(t.k).MapKey(), protoreflect.ValueOfString(t.v))
		}
	}
	setStr("message_id", e.messageID, e.hasMessageID)
	setStr("stream_id", e.streamID, e.hasStrID)
	setUint("serial", e.serial, e.hasSerial)
	if hasX {
		m.Set(fields.ByName("extras"), protoreflect.ValueOfMessage(protoExtras(x).ProtoReflect()))
	}
	setUint("delta_sequence", e.deltaSeq, e.hasDeltaSeq)
	setStr("delta_conflation_key", e.conflationKey, e.hasConflationKey)
}

func protoExtras(x wireExtras) *wirepb.Extras {
	px := &wirepb.Extras{Ephemeral: x.ephemeral, IdempotencyKey: x.idempotencyKey, Echo: x.echo}
	if len(x.headers) > 0 {
		px.Headers = make(map[string]*wirepb.ExtrasValue, len(x.headers))
		for _, h := range x.headers {
			v := &wirepb.ExtrasValue{}
			switch h.kind {
			case 'n':
				v.Kind = &wirepb.ExtrasValue_NumberValue{NumberValue: h.n}
			case 'b':
				v.Kind = &wirepb.ExtrasValue_BoolValue{BoolValue: h.b}
			default:
				v.Kind = &wirepb.ExtrasValue_StringValue{StringValue: h.s}
			}
			px.Headers[h.k] = v
		}
	}
	if x.hasAI {
		px.Ai = &wirepb.AiExtras{Transport: kvToMap(x.aiTransport), Codec: kvToMap(x.aiCodec)}
	}
	return px
}

func kvToMap(m []kv) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for _, p := range m {
		out[p.k] = p.v
	}
	return out
}

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER: serials above it reach clients as
// strings.
const maxSafeInteger = 1<<53 - 1
