package protocol_test

import (
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

// A presence subscribe frame exactly as pusher-js 8 sends it.
var subscribeFrame = []byte(`{"event":"pusher:subscribe","data":{"auth":"app-key:afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c","channel_data":"{\"user_id\":\"10\",\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-room"}}`)

func BenchmarkParseFrame(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(subscribeFrame)))
	for b.Loop() {
		f, err := protocol.ParseFrame(subscribeFrame)
		if err != nil || f.Event != "pusher:subscribe" {
			b.Fatalf("ParseFrame = %+v, %v", f, err)
		}
	}
}

func BenchmarkEncodeFrame(b *testing.B) {
	b.Run("OutFrame", func(b *testing.B) {
		data := protocol.Str(`{"symbol":"ACME","bid":101.25,"ask":101.5,"ts":1767312245123}`)
		f := protocol.OutFrame{Event: "price.updated", Channel: "prices", Data: data}
		b.ReportAllocs()
		for b.Loop() {
			if out := f.Bytes(); len(out) == 0 {
				b.Fatal("empty frame")
			}
		}
	})
	b.Run("ConnectionEstablished", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if out := protocol.ConnectionEstablished(protocol.V1, "123456789.987654321", 120); len(out) == 0 {
				b.Fatal("empty frame")
			}
		}
	})
}

// v2Publish is a typical V2 broadcast frame: HTTP-published data, tags, identity, serial and
// the headers of a mutable message.
var v2Publish = []byte(`{"event":"order.created","channel":"orders","data":"{\"id\":\"ord_123\",\"total\":4200,\"items\":[{\"sku\":\"A-1\",\"qty\":2}]}","tags":{"region":"eu","status":"paid"},"message_id":"3f5c1c0e-9d55-4a4e-8c0b-1a2b3c4d5e6f","stream_id":"8a7b6c5d-1111-2222-3333-444455556666","serial":42,"extras":{"headers":{"sockudo_action":"message.create","sockudo_history_serial":42,"tenant":"acme"}}}`)

var benchForms = []struct {
	name string
	form protocol.Form
}{{"msgpack", protocol.FormMsgpack}, {"protobuf", protocol.FormProtobuf}, {"protobuf-flutter", protocol.FormProtobufFlutter}}

// BenchmarkWireEncode transcodes the V2 JSON frame into each binary form (done once per form
// per publish, or once per frame for one socket).
func BenchmarkWireEncode(b *testing.B) {
	for _, f := range benchForms {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(v2Publish)))
			for b.Loop() {
				if _, err := protocol.Encode(f.form, v2Publish); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWireDecode decodes an inbound subscribe in each binary form (BenchmarkParseFrame
// is the JSON one).
func BenchmarkWireDecode(b *testing.B) {
	for _, f := range benchForms {
		b.Run(f.name, func(b *testing.B) {
			msg, err := protocol.Encode(f.form, subscribeFrame)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if fr, err := protocol.DecodeBinary(f.form, msg); err != nil || fr.Event != "pusher:subscribe" {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClientText renders the text a binary client keeps (a delta base), per wire.
func BenchmarkClientText(b *testing.B) {
	for _, w := range []struct {
		name string
		wire protocol.Wire
	}{{"msgpack-js", protocol.Wire{Format: protocol.FormatMsgpack}}, {"protobuf-js", protocol.Wire{Format: protocol.FormatProtobuf}},
		{"protobuf-flutter", protocol.Wire{Format: protocol.FormatProtobuf, Client: protocol.ClientFlutter}}} {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := protocol.ClientText(w.wire, v2Publish); !ok {
					b.Fatal("not predictable")
				}
			}
		})
	}
}
