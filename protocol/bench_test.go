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
