package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pushwire/pushwire/protocol/wirepb"
)

// wireFrames are V2 frames of every kind pushwire sends, for the per-format golden files:
// the system frames of goldenFrames plus channel messages, mutations, deltas, history,
// resume and token frames.
func wireFrames() map[string][]byte {
	frames := map[string][]byte{}
	for _, g := range goldenFrames {
		frames[g.name] = g.build(V2)
	}
	msg := Message{Event: "order.created", Channel: "orders", Data: Str(`{"id":"ord_123","total":4200}`),
		Tags: map[string]string{"region": "eu", "status": "paid"}, MessageID: "3f5c1c0e-9d55-4a4e-8c0b-1a2b3c4d5e6f",
		StreamID: "8a7b6c5d-1111-2222-3333-444455556666", Serial: 42,
		Extras: []byte(`{"headers":{"tenant":"acme","priority":1,"ratio":0.25,"urgent":true},"ephemeral":false,"idempotencyKey":"abc-123","echo":false,"ai":{"transport":{"run-id":"r1"}},"push":{"x":1}}`)}
	frames["channel_event"] = msg.AppendV2(nil)
	client := Message{Event: "client-typing", Channel: "presence-chat", Data: []byte(`{"typing":true,"n":1.5}`), UserID: "10", MessageID: "9e0d"}
	frames["client_event_object_data"] = client.AppendV2(nil)
	mut := Message{Event: "sockudo:message.update", Name: "chat.message", Channel: "chat:room-1", Data: Str("hello world"),
		MessageID: "m-2", StreamID: "s-1", Serial: 8,
		Mutable: &Mutable{Action: ActionUpdate, MessageSerial: "00000001795:3f2a9c1e:00000000000000000001", HistorySerial: 7,
			Version: VersionMeta{Serial: "00000001796:3f2a9c1e:00000000000000000002", TimestampMs: 1710000000000}}}
	frames["message_update"] = mut.AppendV2(nil)
	full := msg.AppendV2(nil)
	frames["delta_full"] = append(full[:len(full)-1:len(full)-1], `,"__delta_seq":0,"__conflation_key":"BTC"}`...)
	frames["delta"] = []byte(`{"event":"sockudo:delta","channel":"market","data":{"event":"price.update","delta":"NU0KMDBAMzMsMkY6In0=","seq":3,"algorithm":"fossil","conflation_key":"BTC","base_index":2}}`)
	// The lean form on a channel without conflation, the algorithm implied (issue 19).
	frames["delta_lean"] = []byte(`{"event":"sockudo:delta","channel":"market","data":{"event":"price.update","delta":"NU0KMDBAMzMsMkY6In0=","seq":3}}`)
	frames["subscription_succeeded_attach"] = SubscriptionSucceededV2("orders", []byte(`{"attach_serial":0}`), "8a7b", 0)
	frames["presence_update"] = PresenceUpdate(V2, "presence-agents", "agent-1", []byte(`{"status":"thinking"}`))
	frames["token_expired"] = TokenExpired(V2, 40142, "expired")
	frames["auth_success"] = AuthSuccess(V2, "user-42", "6d1f", 1710007200)
	frames["rewind_complete"] = RewindComplete(V2, "orders", 10, 0, true, false, false)
	frames["resume_failed"] = ResumeFailed(V2, "orders", []byte(`{"code":"position_expired","reason":"recovery_window_exceeded"}`))
	frames["resume_success"] = ResumeSuccess(V2, []byte(`{"recovered":[{"channel":"orders","source":"hot","replayed":3}],"failed":[]}`))
	frames["channel_history"] = ChannelHistory(V2, "orders", []byte(`{"items":[{"serial":41,"message":{"event":"order.created","channel":"orders","data":"{}","serial":41}}],"direction":"newest_first","limit":100,"has_more":false,"next_cursor":null}`))
	frames["delta_compression_enabled"] = DeltaEnabled("ticker", "fossil")
	return frames
}

var wireExt = map[Form]string{FormMsgpack: ".msgpack", FormProtobuf: ".pb", FormProtobufFlutter: ".flutter.pb"}

// TestWireGolden: every frame kind, encoded in each binary form, matches its golden file
// (testdata/golden/wire; rewrite with -update), and decodes back to its event, channel and
// data.
func TestWireGolden(t *testing.T) {
	for name, frame := range wireFrames() {
		for form, ext := range wireExt {
			got, err := Encode(form, frame)
			if err != nil {
				t.Fatalf("%s %s: %v", name, ext, err)
			}
			path := filepath.Join("testdata", "golden", "wire", name+ext)
			if *updateGolden {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: %v (run go test ./protocol/ -update)", path, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: encoding changed:\n got %x\nwant %x", path, got, want)
			}
			f, perr := DecodeBinary(form, got)
			if perr != nil {
				t.Fatalf("%s: decoding our own frame: %v", path, perr)
			}
			var w struct {
				Event, Channel string
				Data           json.RawMessage
			}
			_ = json.Unmarshal(frame, &w)
			if f.Event != w.Event || f.Channel != w.Channel || !bytes.Equal(bytes.TrimSpace(f.Data), bytes.TrimSpace(w.Data)) {
				t.Errorf("%s: decoded %q %q %s, want %q %q %s", path, f.Event, f.Channel, f.Data, w.Event, w.Channel, w.Data)
			}
		}
	}
}

// TestEncodeMsgpackShape checks the positional array and the tagged members against an
// independent generic decode.
func TestEncodeMsgpackShape(t *testing.T) {
	b, err := Encode(FormMsgpack, wireFrames()["delta_full"])
	if err != nil {
		t.Fatal(err)
	}
	var arr []any
	if err := msgpack.Unmarshal(b, &arr); err != nil {
		t.Fatal(err)
	}
	if len(arr) != 15 {
		t.Fatalf("array of %d, want 15", len(arr))
	}
	want := map[int]any{0: "order.created", 1: "orders", 8: "3f5c1c0e-9d55-4a4e-8c0b-1a2b3c4d5e6f", 14: "BTC"}
	for i, v := range want {
		if arr[i] != v {
			t.Errorf("[%d] = %#v, want %#v", i, arr[i], v)
		}
	}
	if d, _ := arr[2].([]any); len(d) != 2 || d[0] != "string" || d[1] != `{"id":"ord_123","total":4200}` {
		t.Errorf("data = %#v", arr[2])
	}
	for _, i := range []int{3, 4, 6, 7, 11} {
		if arr[i] != nil {
			t.Errorf("[%d] = %#v, want nil", i, arr[i])
		}
	}
	x, _ := arr[12].(map[string]any)
	h, _ := x["headers"].(map[string]any)
	if p, _ := h["priority"].([]any); len(p) != 2 || p[0] != "number" || p[1] != 1.0 {
		t.Errorf("priority header = %#v", h["priority"])
	}
	if u, _ := h["urgent"].([]any); len(u) != 2 || u[0] != "bool" || u[1] != true {
		t.Errorf("urgent header = %#v", h["urgent"])
	}
	if x["idempotency_key"] != "abc-123" || x["ephemeral"] != false || x["push"] != nil {
		t.Errorf("extras = %#v", x)
	}
}

// TestEncodeProtobufLayouts: fields 10-15 sit where each layout numbers them.
func TestEncodeProtobufLayouts(t *testing.T) {
	frame := wireFrames()["delta_full"]
	for _, c := range []struct {
		form   Form
		fields map[protowire.Number]string
	}{
		{FormProtobuf, map[protowire.Number]string{10: "stream_id", 11: "serial", 13: "extras", 14: "delta_sequence", 15: "delta_conflation_key"}},
		{FormProtobufFlutter, map[protowire.Number]string{15: "stream_id", 10: "serial", 12: "extras", 13: "delta_sequence", 14: "delta_conflation_key"}},
	} {
		b, err := Encode(c.form, frame)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[protowire.Number]protowire.Type{}
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				t.Fatal("bad tag")
			}
			b = b[n:]
			m := protowire.ConsumeFieldValue(num, typ, b)
			b = b[m:]
			seen[num] = typ
		}
		for num, name := range c.fields {
			want := protowire.BytesType
			if name == "serial" || name == "delta_sequence" {
				want = protowire.VarintType
			}
			if seen[num] != want {
				t.Errorf("form %d: field %d (%s) has wire type %v, want %v", c.form, num, name, seen[num], want)
			}
		}
	}
	var env wirepb.Envelope
	b, _ := Encode(FormProtobuf, frame)
	if err := proto.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	if env.GetDeltaSequence() != 0 || env.DeltaSequence == nil || env.GetSerial() != 42 || env.GetTags()["region"] != "eu" ||
		env.GetExtras().GetHeaders()["priority"].GetNumberValue() != 1 || env.GetExtras().GetIdempotencyKey() != "abc-123" {
		t.Errorf("decoded %v", &env)
	}
}

// mp encodes v as MessagePack with map keys sorted (Go maps have no order).
func mp(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pb(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sp(s string) *string { return &s }

// TestDecodeBinary: what the clients send (sockudo-js and sockudo_flutter encoders' shapes)
// decodes to the Frame the JSON text would give; bad input is a clear 4000 error.
func TestDecodeBinary(t *testing.T) {
	nil13 := func(head ...any) []any { return append(head, make([]any, 15-len(head))...) }
	cases := []struct {
		name    string
		form    Form
		msg     []byte
		event   string
		channel string
		data    string
		err     string
	}{
		{name: "js subscribe", form: FormMsgpack, msg: mp(t, nil13("sockudo:subscribe", nil, []any{"json", `{"channel":"orders","auth":""}`})),
			event: "sockudo:subscribe", data: `{"channel":"orders","auth":""}`},
		{name: "flutter resume (string data)", form: FormMsgpack, msg: mp(t, nil13("sockudo:resume", nil, []any{"string", `{"channel_positions":{}}`})),
			event: "sockudo:resume", data: `"{\"channel_positions\":{}}"`},
		{name: "client event with channel", form: FormMsgpack, msg: mp(t, nil13("client-typing", "private-chat", []any{"json", `{"typing":true}`})),
			event: "client-typing", channel: "private-chat", data: `{"typing":true}`},
		{name: "map envelope", form: FormMsgpack, msg: mp(t, map[string]any{"event": "sockudo:ping", "data": map[string]any{"kind": "json", "value": "{}"}}),
			event: "sockudo:ping", data: `{}`},
		{name: "short array, extras map", form: FormMsgpack, msg: mp(t, []any{"sockudo:ping", nil, nil, nil, nil, nil, nil, nil, nil, nil, 7, nil, map[string]any{"headers": map[string]any{"a": []any{"number", 1}}}}),
			event: "sockudo:ping"},
		{name: "structured data", form: FormMsgpack, msg: mp(t, nil13("sockudo:subscribe", nil, []any{"structured", []any{"{\"user_id\":\"1\"}", "presence-x", nil, map[string]string{"auth": `"k:s"`, "n": "12", "raw": "not json"}}})),
			event: "sockudo:subscribe", data: `{"channel_data":"{\"user_id\":\"1\"}","channel":"presence-x","auth":"k:s","n":12,"raw":"not json"}`},
		{name: "empty", form: FormMsgpack, msg: nil, err: "empty or truncated"},
		{name: "not an envelope", form: FormMsgpack, msg: mp(t, "hello"), err: "expected the envelope array (or a map), got a string"},
		{name: "too many elements", form: FormMsgpack, msg: mp(t, make([]any, 16)), err: "16 elements"},
		{name: "event wrong type", form: FormMsgpack, msg: mp(t, nil13(42)), err: "event: expected a string, got an integer"},
		{name: "missing event", form: FormMsgpack, msg: mp(t, nil13(nil, "x")), err: "missing event name"},
		{name: "unknown member", form: FormMsgpack, msg: mp(t, map[string]any{"event": "x", "colour": "red"}), err: `unknown member "colour"`},
		{name: "untagged data", form: FormMsgpack, msg: mp(t, nil13("x", nil, "plain")), err: "expected a tagged pair"},
		{name: "bad json data", form: FormMsgpack, msg: mp(t, nil13("x", nil, []any{"json", "{nope"})), err: "json value is not valid JSON"},
		{name: "binary data", form: FormMsgpack, msg: mp(t, nil13("x", nil, []any{"binary", []byte{1, 2}})), err: "binary data is not supported"},
		{name: "unknown data kind", form: FormMsgpack, msg: mp(t, nil13("x", nil, []any{"avro", "x"})), err: `unknown data kind "avro"`},
		{name: "serial negative", form: FormMsgpack, msg: mp(t, []any{"x", nil, nil, nil, nil, nil, nil, nil, nil, nil, -1}), err: "serial: expected an integer"},
		{name: "tags not strings", form: FormMsgpack, msg: mp(t, []any{"x", nil, nil, nil, nil, map[string]any{"a": 1}}), err: `tags: value of "a" must be a string`},
		{name: "trailing bytes", form: FormMsgpack, msg: append(mp(t, nil13("x")), 0xc0), err: "1 trailing bytes"},
		{name: "truncated", form: FormMsgpack, msg: mp(t, nil13("sockudo:subscribe"))[:5], err: "Invalid MessagePack frame"},

		{name: "js protobuf subscribe", form: FormProtobuf, msg: pb(t, &wirepb.Envelope{Event: sp("sockudo:subscribe"), Data: &wirepb.Data{Kind: &wirepb.Data_JsonValue{JsonValue: `{"channel":"orders"}`}}}),
			event: "sockudo:subscribe", data: `{"channel":"orders"}`},
		{name: "flutter protobuf client event", form: FormProtobufFlutter, msg: pb(t, &wirepb.FlutterEnvelope{Event: sp("client-x"), Channel: sp("private-a"), StreamId: sp("s"), Extras: &wirepb.Extras{Echo: new(bool)}, Data: &wirepb.Data{Kind: &wirepb.Data_StringValue{StringValue: "hi"}}}),
			event: "client-x", channel: "private-a", data: `"hi"`},
		{name: "protobuf structured", form: FormProtobuf, msg: pb(t, &wirepb.Envelope{Event: sp("sockudo:subscribe"), Data: &wirepb.Data{Kind: &wirepb.Data_Structured{Structured: &wirepb.StructuredData{Channel: sp("orders"), Extra: map[string]string{"auth": `""`}}}}}),
			event: "sockudo:subscribe", data: `{"channel":"orders","auth":""}`},
		{name: "protobuf garbage", form: FormProtobuf, msg: []byte{0xff, 0xff, 0xff}, err: "Invalid protobuf frame: malformed"},
		{name: "protobuf unknown field", form: FormProtobuf, msg: protowire.AppendString(protowire.AppendTag(pb(t, &wirepb.Envelope{Event: sp("x")}), 16, protowire.BytesType), "?"), err: "unknown field 16 in Envelope"},
		{name: "protobuf unknown nested field", form: FormProtobuf, msg: append(pb(t, &wirepb.Envelope{Event: sp("x")}), protowire.AppendBytes(protowire.AppendTag(nil, 13, protowire.BytesType), protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))...), err: "unknown field 9 in Extras"},
		{name: "protobuf wrong wire type", form: FormProtobuf, msg: protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5), err: "Invalid protobuf frame"},
		{name: "protobuf binary data", form: FormProtobuf, msg: pb(t, &wirepb.Envelope{Event: sp("x"), Data: &wirepb.Data{Kind: &wirepb.Data_BinaryValue{BinaryValue: []byte{1}}}}), err: "binary data is not supported"},
		{name: "protobuf missing event", form: FormProtobuf, msg: pb(t, &wirepb.Envelope{Channel: sp("x")}), err: "missing event name"},
		{name: "flutter frame read as sockudo layout", form: FormProtobuf, msg: pb(t, &wirepb.FlutterEnvelope{Event: sp("x"), Extras: &wirepb.Extras{Headers: map[string]*wirepb.ExtrasValue{"a": {Kind: &wirepb.ExtrasValue_NumberValue{NumberValue: 1}}}}}), err: "Invalid protobuf frame"},
		{name: "json connection refuses binary", form: FormJSON, msg: []byte{0x90}, err: "not supported on a format=json connection"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := DecodeBinary(c.form, c.msg)
			if c.err != "" {
				if err == nil || err.Code != CodeGeneric || !strings.Contains(err.Message, c.err) {
					t.Fatalf("error = %v, want code 4000 containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Event != c.event || f.Channel != c.channel || string(f.Data) != c.data {
				t.Errorf("got %q %q %s, want %q %q %s", f.Event, f.Channel, f.Data, c.event, c.channel, c.data)
			}
		})
	}
}

// TestJSNumber: ECMAScript Number::toString and Dart double.toString.
func TestJSNumber(t *testing.T) {
	for _, c := range []struct {
		f        float64
		js, dart string
	}{
		{0, "0", "0.0"}, {1, "1", "1.0"}, {-1.5, "-1.5", "-1.5"}, {100, "100", "100.0"}, {0.1, "0.1", "0.1"},
		{1e21, "1e+21", "1e+21"}, {1.5e21, "1.5e+21", "1.5e+21"}, {1e20, "100000000000000000000", "100000000000000000000.0"},
		{0.000001, "0.000001", "0.000001"}, {1e-7, "1e-7", "1e-7"}, {1.25e-7, "1.25e-7", "1.25e-7"},
		{123456789012345680000, "123456789012345680000", "123456789012345680000.0"}, {67210.51, "67210.51", "67210.51"},
	} {
		if got := string(appendJSNumber(nil, c.f)); got != c.js {
			t.Errorf("js %v = %s, want %s", c.f, got, c.js)
		}
		tw := textWriter{ok: true}
		if got := string(tw.appendDartDouble(nil, c.f)); got != c.dart {
			t.Errorf("dart %v = %s, want %s", c.f, got, c.dart)
		}
	}
}

// TestClientTextStrip: the base a client keeps for a full frame (its text minus the markers)
// is its text of the frame without markers, in every dialect.
func TestClientTextStrip(t *testing.T) {
	frames := wireFrames()
	withMarkers, without := frames["delta_full"], frames["channel_event"]
	for _, w := range []Wire{{FormatMsgpack, ClientJS}, {FormatMsgpack, ClientFlutter}, {FormatProtobuf, ClientJS}, {FormatProtobuf, ClientFlutter}} {
		a, ok1 := ClientText(w, withMarkers)
		b, ok2 := ClientText(w, without)
		if !ok1 || !ok2 {
			t.Fatalf("%v: not predictable", w)
		}
		if got := StripDeltaMarkers(a); !bytes.Equal(got, b) {
			t.Errorf("%v:\n stripped %s\n want     %s", w, got, b)
		}
		if !json.Valid(a) {
			t.Errorf("%v: not JSON: %s", w, a)
		}
	}
}

// fuzzSeeds are inbound frames as the clients send them, plus a few broken ones.
func fuzzSeeds(t testing.TB, form Form) [][]byte {
	var seeds [][]byte
	for _, f := range wireFrames() {
		b, err := Encode(form, f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds, nil, []byte{0x90}, []byte{0x80}, []byte{0x0a, 0x01, 'x'})
}

// checkDecoded: a decoded frame survives a round trip through every form.
func checkDecoded(t *testing.T, f Frame) {
	if f.Event == "" {
		t.Fatal("decoded a frame without an event")
	}
	if f.Data != nil && !json.Valid(f.Data) {
		t.Fatalf("data is not JSON: %q", f.Data)
	}
	frame := OutFrame{Event: f.Event, Channel: f.Channel, Data: f.Data}.Bytes()
	for _, form := range []Form{FormMsgpack, FormProtobuf, FormProtobufFlutter} {
		b, err := Encode(form, frame)
		if err != nil {
			t.Fatalf("re-encode %s: %v", frame, err)
		}
		g, perr := DecodeBinary(form, b)
		if perr != nil {
			t.Fatalf("re-decode %s: %v", frame, perr)
		}
		if g.Event != f.Event || g.Channel != f.Channel {
			t.Fatalf("round trip %q %q -> %q %q", f.Event, f.Channel, g.Event, g.Channel)
		}
		for _, w := range []Wire{{form.format(), ClientJS}, {form.format(), ClientFlutter}} {
			if txt, ok := ClientText(w, frame); ok && !json.Valid(txt) {
				t.Fatalf("client text is not JSON: %s", txt)
			}
		}
	}
}

func (f Form) format() Format {
	switch f {
	case FormMsgpack:
		return FormatMsgpack
	case FormProtobuf, FormProtobufFlutter:
		return FormatProtobuf
	}
	return FormatJSON
}

func FuzzDecodeMsgpack(f *testing.F) {
	for _, s := range fuzzSeeds(f, FormMsgpack) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if fr, err := DecodeBinary(FormMsgpack, msg); err == nil {
			checkDecoded(t, fr)
		} else if err.Code != CodeGeneric {
			t.Fatalf("code %d", err.Code)
		}
	})
}

func FuzzDecodeProtobuf(f *testing.F) {
	for _, s := range fuzzSeeds(f, FormProtobuf) {
		f.Add(s, false)
	}
	for _, s := range fuzzSeeds(f, FormProtobufFlutter) {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, msg []byte, flutter bool) {
		form := FormProtobuf
		if flutter {
			form = FormProtobufFlutter
		}
		if fr, err := DecodeBinary(form, msg); err == nil {
			checkDecoded(t, fr)
		} else if err.Code != CodeGeneric {
			t.Fatalf("code %d", err.Code)
		}
	})
}
