package channels

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

// TestEnvelopeRoundTrip: every envelope kind survives encoding, and a publish keeps every
// field the V1 and V2 frames are built from, so each node builds the same bytes.
func TestEnvelopeRoundTrip(t *testing.T) {
	full := &protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x\u0000 y"`), Name: "n", UserID: "u",
		Tags: map[string]string{"a": "b"}, MessageID: "m", StreamID: "s", Serial: 7, Extras: []byte(`{"echo":false}`),
		NoDelta: true, PublishedAtMs: 42, Mutable: &protocol.Mutable{Action: protocol.ActionAppend, MessageSerial: "ms",
			HistorySerial: 3, Version: protocol.VersionMeta{Serial: "v", ClientID: "c", TimestampMs: 9, Metadata: []byte(`{"k":1}`)},
			Full: []byte(`"whole"`)}}
	tests := []struct {
		name string
		env  envelope
	}{
		{"publish", envelope{Kind: envPublish, Msg: full, Except: "1.2"}},
		{"publish raw data", envelope{Kind: envPublish, Msg: &protocol.Message{Event: "client-x", Channel: "private-a", Data: []byte(`{ "spaced" : [1, 2] }`)}}},
		{"join", envelope{Kind: envJoin, Channel: "presence-a", User: "u", Info: []byte(`{"n":1}`)}},
		{"leave", envelope{Kind: envLeave, Channel: "presence-a", User: "u"}},
		{"counts", envelope{Kind: envCounts, Counts: map[string]int{"a": 1, "b": 0}}},
		{"terminate", envelope{Kind: envTerminate, User: "u"}},
		{"reconnect", envelope{Kind: envReconnect, User: "u"}},
		{"history reset", envelope{Kind: envHistory, Channel: "c", History: &historyChange{Reset: true, Stream: "s"}}},
		{"history purge", envelope{Kind: envHistory, Channel: "c", History: &historyChange{Stream: "s", Cut: 9}}},
		{"hello", envelope{Kind: envHello}},
		{"heartbeat", envelope{Kind: envHeartbeat}},
		{"bye", envelope{Kind: envBye}},
		{"sync", envelope{Kind: envSync, Apps: map[string]*nodeAppState{"app": {Counts: map[string]int{"a": 2},
			Members: map[string]map[string]json.RawMessage{"presence-a": {"u": json.RawMessage(`{"x":1}`)}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(&tc.env)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.env) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, tc.env)
			}
			if tc.env.Msg != nil {
				for _, enc := range []func(*protocol.Message, []byte) []byte{(*protocol.Message).AppendV1, (*protocol.Message).AppendV2, (*protocol.Message).AppendV2Full} {
					if a, b := enc(tc.env.Msg, nil), enc(got.Msg, nil); string(a) != string(b) {
						t.Errorf("frame differs after the round trip:\n%s\n%s", a, b)
					}
				}
			}
		})
	}
}

func TestDecodeEnvelopeRefuses(t *testing.T) {
	for _, in := range []string{``, `null`, `[]`, `{"k":"nope"}`, `{"k":"pub"}`, `{"k":"pub","m":{"Channel":"c"}}`,
		`{"k":"join","c":"x"}`, `{"k":"leave","u":"x"}`, `{"k":"term"}`, `{"k":"recon"}`, `{"k":"hist","c":"x"}`, `{"k":"hist","h":{"r":true}}`, `{"k":"cnt","n":{"a":-1}}`,
		`{"k":"asum","c":"c","m":{"Event":"e","Channel":"c"}}`, `{"k":"asum","c":"c","a":{"s":"m","v":1}}`, `{"k":"asum","c":"d","m":{"Event":"e","Channel":"c"},"a":{"v":1}}`,
		`{"k":"sync","s":{"a":{"n":{"":1}}}}`, `{"k":"sync","s":{"a":{"m":{"c":{"":{}}}}}}`} {
		if _, err := decodeEnvelope([]byte(in)); err == nil {
			t.Errorf("decodeEnvelope(%s) accepted", in)
		}
	}
}

// FuzzDecodeEnvelope: no input panics the decoder, and what it accepts encodes and decodes
// to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{`{"k":"pub","m":{"Event":"e","Channel":"c","Data":"Ik0i","Serial":3,"Mutable":{"Action":"append","Full":"IngiCg=="}}}`,
		`{"k":"join","c":"presence-a","u":"u","i":"e30="}`, `{"k":"cnt","n":{"a":1}}`, `{"k":"sync","s":{"a":{"n":{"c":1},"m":{"c":{"u":{}}}}}}`,
		`{"k":"hb"}`, `{"k":"bye"}`, `{"k":"term","u":"x"}`,
		`{"k":"asum","c":"c","m":{"Event":"sockudo_internal:message","Channel":"c","Data":"e30="},"a":{"s":"m1","v":3}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := decodeEnvelope(again)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", again, err)
		}
		if e.Msg != nil && string(e.Msg.AppendV2(nil)) != string(e2.Msg.AppendV2(nil)) {
			t.Fatalf("V2 frame changed on a round trip")
		}
	})
}

// BenchmarkEnvelope measures what a publish costs on its way between nodes: encoding on
// the publishing node, decoding on each receiver.
func BenchmarkEnvelope(b *testing.B) {
	m := &protocol.Message{Event: "price", Channel: "market:spot", Data: protocol.Str(`{"asset":"BTC","bid":64123.5,"ask":64124.1}`),
		Tags: map[string]string{"market": "spot"}, MessageID: protocol.NewUUID(), StreamID: protocol.NewUUID(), Serial: 123456, PublishedAtMs: 1}
	env := &envelope{Kind: envPublish, Msg: m}
	raw, _ := json.Marshal(env)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(env); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEnvelope(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
