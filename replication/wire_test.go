package replication

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
			b, err := encodeEnvelope(&tc.env)
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
		`{"k":"asum","c":"c","m":{"Event":"sockudo_internal:message","Channel":"c","Data":"e30="},"a":{"s":"m1","v":3}}`,
		// Versioned (1.1), a future minor with unknown members, future majors, bad versions.
		`{"v":1,"vn":1,"k":"pub","m":{"Event":"e","Channel":"c","Data":"IngiCg==","StreamID":"s","Serial":9}}`,
		`{"v":1,"vn":7,"k":"join","c":"presence-a","u":"u","i":"e30=","z":{"new":[1,2]},"m2":"x"}`,
		`{"v":2,"k":"pub","m":"an opaque v2 message"}`, `{"v":2,"vn":0,"k":"hb"}`, `{"v":"2","k":"hb"}`, `{"v":-1,"k":"hb"}`,
		`{"vn":3,"k":"hb"}`, `{"v":1,"k":"hist","c":"c","h":{"r":true,"s":"s2"}}`,
		`{"v":1,"k":"sync","s":{"a":{"n":{"c":1},"m":{"presence-c":{"u":{"name":"x"}}}},"b":null}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		again, err := encodeEnvelope(e)
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
	raw, _ := encodeEnvelope(env)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeEnvelope(env); err != nil {
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

var updateGolden = flag.Bool("update", false, "rewrite the golden files of testdata")

// goldenEnvelopes is one envelope of every kind, with every member it can carry set.
func goldenEnvelopes() map[string]*envelope {
	msg := &protocol.Message{Event: "price", Channel: "market:spot", Data: []byte(`"{\"bid\":1}"`), Name: "n", UserID: "u1",
		Tags: map[string]string{"market": "spot", "a": "b"}, MessageID: "6f1c0e7a-2b7e-4c1e-9b1a-0d3f5e7c9a11", StreamID: "st-1",
		Serial: 42, Extras: []byte(`{"echo":false}`), Ephemeral: true, NoDelta: true, PublishedAtMs: 1700000000000,
		Mutable: &protocol.Mutable{Action: protocol.ActionAppend, MessageSerial: "ms-1", HistorySerial: 41,
			Version: protocol.VersionMeta{Serial: "v-1", ClientID: "c1", TimestampMs: 1700000000001, Description: "d", Metadata: []byte(`{"k":1}`)},
			Full:    []byte(`"whole"`)}}
	return map[string]*envelope{
		envPublish:   {Kind: envPublish, Msg: msg, Except: "123.456"},
		envJoin:      {Kind: envJoin, Channel: "presence-room", User: "u1", Info: []byte(`{"name":"Ann"}`)},
		envLeave:     {Kind: envLeave, Channel: "presence-room", User: "u1"},
		envCounts:    {Kind: envCounts, Counts: map[string]int{"b": 0, "a": 3}},
		envTerminate: {Kind: envTerminate, User: "u1"},
		envReconnect: {Kind: envReconnect, User: "u1"},
		envHistory:   {Kind: envHistory, Channel: "orders", History: &historyChange{Reset: true, Stream: "st-2", Cut: 7}},
		envUpdate:    {Kind: envUpdate, Channel: "presence-room", User: "u1", Info: []byte(`{"name":"Bo"}`)},
		envHello:     {Kind: envHello},
		envHeartbeat: {Kind: envHeartbeat},
		envSync: {Kind: envSync, Apps: map[string]*nodeAppState{"app-id": {Counts: map[string]int{"orders": 2, "presence-room": 1},
			Members: map[string]map[string]json.RawMessage{"presence-room": {"u1": json.RawMessage(`{"name":"Ann"}`)}}}}},
		envBye:     {Kind: envBye},
		envSummary: {Kind: envSummary, Msg: &protocol.Message{Event: "sockudo_internal:summary", Channel: "chat:x", Data: []byte(`{}`)}, Channel: "chat:x", Summary: &summaryEnvelope{MessageSerial: "ms-1", Version: 3}},
	}
}

// TestEnvelopeGolden: the bytes of every envelope kind are those of
// testdata/envelope_<kind>.golden. A failure means the node-to-node format changed: keep
// the old member names readable (rolling upgrades), bump envFormatMinor for an addition or
// envFormatMajor for a change old nodes would misread, then run with -update.
func TestEnvelopeGolden(t *testing.T) {
	for kind, env := range goldenEnvelopes() {
		t.Run(kind, func(t *testing.T) {
			b, err := encodeEnvelope(env)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "envelope_"+kind+".golden")
			if *updateGolden {
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b) + "\n"; got != string(want) {
				t.Fatalf("envelope %s encoding changed:\n got %s\nwant %s", kind, got, want)
			}
			// And the golden bytes decode back to the envelope.
			got, err := decodeEnvelope(bytes.TrimSpace(want))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, env) {
				t.Fatalf("golden %s decodes to\n%+v\nwant %+v", kind, got, env)
			}
		})
	}
}

// legacyEnvelope is the envelope as nodes before the versioned format sent it:
// encoding/json of the envelope with protocol.Message's Go field names and no "v".
type legacyEnvelope struct {
	Kind    string                   `json:"k"`
	Msg     *protocol.Message        `json:"m,omitempty"`
	Except  string                   `json:"x,omitempty"`
	Channel string                   `json:"c,omitempty"`
	User    string                   `json:"u,omitempty"`
	Info    []byte                   `json:"i,omitempty"`
	Counts  map[string]int           `json:"n,omitempty"`
	Apps    map[string]*nodeAppState `json:"s,omitempty"`
	History *historyChange           `json:"h,omitempty"`
	Summary *summaryEnvelope         `json:"a,omitempty"`
}

// TestEnvelopeFormatVersions: every kind in the previous (unversioned) format decodes to
// the same envelope as the current one, and the previous decoder (plain encoding/json of
// the legacy struct) reads the current bytes to the same values — both directions of a
// rolling upgrade. A future minor's unknown members are ignored; a future major is refused
// as newer, whatever its members.
func TestEnvelopeFormatVersions(t *testing.T) {
	for kind, env := range goldenEnvelopes() {
		t.Run(kind, func(t *testing.T) {
			old := legacyEnvelope{Kind: env.Kind, Msg: env.Msg, Except: env.Except, Channel: env.Channel, User: env.User, Info: env.Info,
				Counts: env.Counts, Apps: env.Apps, History: env.History, Summary: env.Summary}
			b, err := json.Marshal(&old)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEnvelope(b)
			if err != nil {
				t.Fatalf("previous format refused: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, env) {
				t.Fatalf("previous format decodes to\n%+v\nwant %+v", got, env)
			}
			cur, _ := encodeEnvelope(env)
			var back legacyEnvelope
			if err := json.Unmarshal(cur, &back); err != nil {
				t.Fatalf("an old node cannot read the current format: %v", err)
			}
			if !reflect.DeepEqual(back, old) {
				t.Fatalf("an old node reads the current format as\n%+v\nwant %+v", back, old)
			}
			// A future minor: more members at every level.
			minor := strings.Replace(string(cur), `"vn":1,`, `"vn":9,"zz":{"new":true},`, 1)
			minor = strings.Replace(minor, `"Event":`, `"Priority":5,"Event":`, 1)
			got, err = decodeEnvelope([]byte(minor))
			if err != nil || !reflect.DeepEqual(got, env) {
				t.Fatalf("future minor %s: %+v, %v", minor, got, err)
			}
			// A future major: refused as newer, even when its members have other types.
			for _, major := range []string{strings.Replace(string(cur), `"v":1,`, `"v":2,`, 1), `{"v":2,"k":7,"m":"opaque"}`} {
				if _, err := decodeEnvelope([]byte(major)); err == nil {
					t.Fatalf("future major accepted: %s", major)
				} else if v, ok := isNewerEnvelope(err); !ok || v != 2 {
					t.Fatalf("future major: %v, want refused as newer", err)
				}
			}
		})
	}
}
