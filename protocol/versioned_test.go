package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestApplyMutation(t *testing.T) {
	name := "chat.edited"
	base := VersionedMessage{Event: "chat.message", Data: []byte(`"hello"`), Extras: []byte(`{"headers":{"a":"1"}}`), LatestAction: ActionCreate}
	tests := []struct {
		name       string
		cur        VersionedMessage
		op         Mutation
		wantEvent  string
		wantData   string // "" = absent
		wantExtras string
		wantErr    error
	}{
		{"update replaces data only", base, Mutation{Action: ActionUpdate, Data: []byte(`"edited"`)}, "chat.message", `"edited"`, `{"headers":{"a":"1"}}`, nil},
		{"update replaces name and extras", base, Mutation{Action: ActionUpdate, Name: &name, Extras: []byte(`{"x":1}`)}, name, `"hello"`, `{"x":1}`, nil},
		{"update clears", base, Mutation{Action: ActionUpdate, ClearName: true, ClearData: true, ClearExtras: true}, "", "", "", nil},
		{"delete keeps data (tombstone)", base, Mutation{Action: ActionDelete}, "chat.message", `"hello"`, `{"headers":{"a":"1"}}`, nil},
		{"delete with null data", base, Mutation{Action: ActionDelete, ClearData: true}, "chat.message", "", `{"headers":{"a":"1"}}`, nil},
		{"delete ignores name", base, Mutation{Action: ActionDelete, Name: &name}, "chat.message", `"hello"`, `{"headers":{"a":"1"}}`, nil},
		{"append concatenates", base, Mutation{Action: ActionAppend, Data: []byte(`" world"`)}, "chat.message", `"hello world"`, `{"headers":{"a":"1"}}`, nil},
		{"append escapes", base, Mutation{Action: ActionAppend, Data: []byte(`" \"q\" \u00e9\n"`)}, "chat.message", `"hello \"q\" é\n"`, `{"headers":{"a":"1"}}`, nil},
		{"append replaces extras", base, Mutation{Action: ActionAppend, Data: []byte(`"!"`), Extras: []byte(`{"y":2}`)}, "chat.message", `"hello!"`, `{"y":2}`, nil},
		{"append to absent data", VersionedMessage{}, Mutation{Action: ActionAppend, Data: []byte(`"first"`)}, "", `"first"`, "", nil},
		{"append to null data", VersionedMessage{Data: []byte("null")}, Mutation{Action: ActionAppend, Data: []byte(`"first"`)}, "", `"first"`, "", nil},
		{"append to an object", VersionedMessage{Data: []byte(`{"n":1}`)}, Mutation{Action: ActionAppend, Data: []byte(`"x"`)}, "", "", "", ErrAppendNotString},
		{"append to a number", VersionedMessage{Data: []byte(`12`)}, Mutation{Action: ActionAppend, Data: []byte(`"x"`)}, "", "", "", ErrAppendNotString},
		{"append json-looking string as text", VersionedMessage{Data: []byte(`"{\"a\":1}"`)}, Mutation{Action: ActionAppend, Data: []byte(`"x"`)}, "", `"{\"a\":1}x"`, "", nil},
		{"empty fragment", base, Mutation{Action: ActionAppend, Data: []byte(`""`)}, "", "", "", ErrEmptyFragment},
		{"empty fragment ends an AI stream", base, Mutation{Action: ActionAppend, Data: []byte(`""`), Extras: []byte(`{"ai":{"transport":{"status":"complete"}}}`)},
			"chat.message", `"hello"`, `{"ai":{"transport":{"status":"complete"}}}`, nil},
		{"fragment not a string", base, Mutation{Action: ActionAppend, Data: []byte(`1`)}, "", "", "", ErrFragmentType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ver := VersionMeta{Serial: "v2", TimestampMs: 7}
			cur := tc.cur
			before := string(cur.Data)
			got, err := cur.Apply(&tc.op, ver)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if string(cur.Data) != before {
				t.Fatalf("Apply changed its receiver")
			}
			if err != nil {
				return
			}
			if got.Event != tc.wantEvent || string(got.Data) != tc.wantData || string(got.Extras) != tc.wantExtras {
				t.Errorf("got event %q data %s extras %s, want %q %s %s", got.Event, got.Data, got.Extras, tc.wantEvent, tc.wantData, tc.wantExtras)
			}
			if got.LatestAction != tc.op.Action || got.LatestVersion.Serial != ver.Serial || got.LatestVersion.TimestampMs != ver.TimestampMs {
				t.Errorf("latest %s %+v", got.LatestAction, got.LatestVersion)
			}
		})
	}
}

func TestNextVersionSerial(t *testing.T) {
	prev := FormatSerial(1_700_000_000_500, "node-b", 9)
	tests := []struct {
		name   string
		nowMs  int64
		node   string
		wantMs int64
	}{
		{"later clock", 1_700_000_000_600, "node-a", 1_700_000_000_600},
		{"same ms, node sorting after", 1_700_000_000_500, "node-c", 1_700_000_000_500},
		{"same ms, node sorting before", 1_700_000_000_500, "node-a", 1_700_000_000_501},
		{"clock behind", 1_700_000_000_100, "node-z", 1_700_000_000_501},
	}
	for _, tc := range tests {
		s, ms := NextVersionSerial(prev, tc.nowMs, tc.node, 1)
		if s <= prev || ms != tc.wantMs || SerialMs(s) != ms {
			t.Errorf("%s: %s (%d ms) after %s, want > and %d ms", tc.name, s, ms, prev, tc.wantMs)
		}
	}
	if s := FormatSerial(1_710_000_000_000, "node", 1); s != "00000001710000000000:node:00000000000000000001" {
		t.Errorf("FormatSerial = %s", s)
	}
}

func TestValidSerial(t *testing.T) {
	for s, want := range map[string]bool{
		"00000001710000000000:node:00000000000000000001": true,
		"x":                      true,
		"":                       false,
		"a b":                    false,
		"a\tb":                   false,
		"a\x00":                  false,
		strings.Repeat("a", 128): true,
		strings.Repeat("a", 129): false,
		"\xff":                   false,
	} {
		if got := ValidSerial(s); got != want {
			t.Errorf("ValidSerial(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestAppendExtras(t *testing.T) {
	mu := &Mutable{Action: ActionUpdate, MessageSerial: "m1", HistorySerial: 12, Version: VersionMeta{Serial: "v7", TimestampMs: 1710000001234}}
	tests := []struct{ extras, want string }{
		{"", `{"headers":{"sockudo_action":"message.update","sockudo_history_serial":12,"sockudo_message_serial":"m1","sockudo_version_serial":"v7","sockudo_version_timestamp_ms":1710000001234}}`},
		{`{"headers":{"k":"v","sockudo_action":"forged"},"echo":false}`, `{"echo":false,"headers":{"k":"v","sockudo_action":"message.update","sockudo_history_serial":12,"sockudo_message_serial":"m1","sockudo_version_serial":"v7","sockudo_version_timestamp_ms":1710000001234}}`},
	}
	for _, tc := range tests {
		if got := string(AppendExtras(nil, []byte(tc.extras), mu)); got != tc.want {
			t.Errorf("AppendExtras(%s)\n got %s\nwant %s", tc.extras, got, tc.want)
		}
	}
}

// TestAppendExtrasWithoutExtras: a message without extras of its own (every message of a
// busy history page) gets the same bytes as through the general path, which they are
// checked against (extras "{}" takes the fast path, `{ }` the general one), and the fast
// path allocates nothing but dst's growth (it built two maps and sorted their keys).
func TestAppendExtrasWithoutExtras(t *testing.T) {
	for _, mu := range []*Mutable{
		{Action: ActionCreate, MessageSerial: "00000001710000000000:node:00000000000000000001", HistorySerial: 1, Version: VersionMeta{Serial: "v", TimestampMs: 1}},
		{Action: ActionDelete, MessageSerial: "m\\\"q", HistorySerial: 1 << 60, Version: VersionMeta{Serial: "v<&>", TimestampMs: -5}},
	} {
		want := string(AppendExtras(nil, []byte(`{ }`), mu))
		for _, extras := range []string{"", "{}"} {
			if got := string(AppendExtras([]byte("x"), []byte(extras), mu)); got != "x"+want {
				t.Errorf("AppendExtras(%q)\n got %s\nwant x%s", extras, got, want)
			}
		}
		buf := make([]byte, 0, 1024)
		if n := testing.AllocsPerRun(100, func() { _ = AppendExtras(buf, nil, mu) }); n != 0 {
			t.Errorf("AppendExtras without extras: %.0f allocations", n)
		}
	}
}

// Golden frames of ws-protocol §5.3.
func TestMutationFrames(t *testing.T) {
	agg := VersionedMessage{Channel: "chat", MessageSerial: "00000001710000000000:node:00000000000000000001", HistorySerial: 12, StreamID: "s",
		Event: "chat.message", Data: []byte(`"hello, edited"`), UserID: "u1", LatestAction: ActionUpdate,
		LatestVersion: VersionMeta{Serial: "00000001710000001234:node:00000000000000000007", TimestampMs: 1710000001234, ClientID: "u1", Description: "typo"}}
	d := agg.Delivery(ActionUpdate, agg.Data, "id-1", false)
	d.StreamID, d.Serial = "s", 15
	const wantUpdate = `{"event":"sockudo:message.update","channel":"chat","data":"hello, edited","name":"chat.message","user_id":"u1","message_id":"id-1","stream_id":"s","serial":15,"extras":{"headers":{"sockudo_action":"message.update","sockudo_history_serial":12,"sockudo_message_serial":"00000001710000000000:node:00000000000000000001","sockudo_version_serial":"00000001710000001234:node:00000000000000000007","sockudo_version_timestamp_ms":1710000001234}}}`
	if got := string(d.AppendV2(nil)); got != wantUpdate {
		t.Errorf("update frame\n got %s\nwant %s", got, wantUpdate)
	}
	const wantVersioned = `{"event":"sockudo:message.update","channel":"chat","data":"hello, edited","name":"chat.message","user_id":"u1","message_id":"id-1","stream_id":"s","serial":15,"extras":{"headers":{"sockudo_action":"message.update","sockudo_history_serial":12,"sockudo_message_serial":"00000001710000000000:node:00000000000000000001","sockudo_version_serial":"00000001710000001234:node:00000000000000000007","sockudo_version_timestamp_ms":1710000001234}},"action":"update","message_serial":"00000001710000000000:node:00000000000000000001","history_serial":12,"delivery_serial":15,"version":{"serial":"00000001710000001234:node:00000000000000000007","client_id":"u1","timestamp_ms":1710000001234,"description":"typo"}}`
	if got := string(AppendVersioned(nil, d)); got != wantVersioned {
		t.Errorf("versioned message\n got %s\nwant %s", got, wantVersioned)
	}
	var v map[string]any
	if err := json.Unmarshal(AppendVersioned(nil, d), &v); err != nil {
		t.Fatal(err)
	}
	// An append: the fragment by default, the whole string for append_mode=full.
	agg.Data = []byte(`"hello world"`)
	ap := agg.Delivery(ActionAppend, []byte(`" world"`), "id-2", false)
	if !strings.Contains(string(ap.AppendV2(nil)), `"data":" world"`) || !strings.Contains(string(ap.AppendV2Full(nil)), `"data":"hello world"`) {
		t.Errorf("append forms: %s / %s", ap.AppendV2(nil), ap.AppendV2Full(nil))
	}
	// A create delivered live keeps its event name.
	cr := agg.Delivery(ActionCreate, agg.Data, "id-3", true)
	if cr.Event != "chat.message" || cr.Name != "" || cr.IsMutation() {
		t.Errorf("create delivery: %+v", cr)
	}
	if got := string(cr.AppendV1(nil)); got != `{"event":"chat.message","channel":"chat","data":"hello world","user_id":"u1"}` {
		t.Errorf("V1 form of a create: %s", got)
	}
}

func TestMutableRoundTrip(t *testing.T) {
	mu := &Mutable{Action: ActionAppend, MessageSerial: "m", HistorySerial: 3, Full: []byte(`"x"`),
		Version: VersionMeta{Serial: "v", ClientID: "c", TimestampMs: 5, Description: "d", Metadata: []byte(`{"a":[1]}`)}}
	got, err := UnmarshalMutable(MarshalMutable(mu))
	if err != nil {
		t.Fatal(err)
	}
	want := *mu
	want.Full = nil
	if got.Action != want.Action || got.MessageSerial != want.MessageSerial || got.HistorySerial != 3 || got.Version.Serial != "v" ||
		got.Version.ClientID != "c" || got.Version.TimestampMs != 5 || got.Version.Description != "d" || string(got.Version.Metadata) != `{"a":[1]}` || got.Full != nil {
		t.Errorf("round trip: %+v", got)
	}
	if m, err := UnmarshalMutable(nil); m != nil || err != nil {
		t.Errorf("empty: %v %v", m, err)
	}
	if _, err := UnmarshalMutable([]byte("{")); err == nil {
		t.Error("bad JSON decoded")
	}
}

// FuzzApplyAppend checks the append rule on arbitrary data: it never panics, refuses
// non-string data, and a string result is the old string plus the fragment.
func FuzzApplyAppend(f *testing.F) {
	f.Add([]byte(`"hello"`), " world")
	f.Add([]byte(`{"a":1}`), "x")
	f.Add([]byte(``), "")
	f.Add([]byte(`null`), "\u2028")
	f.Add([]byte(`"\ud800"`), "x")
	f.Fuzz(func(t *testing.T, data []byte, frag string) {
		v := VersionedMessage{Data: data}
		got, err := v.Apply(&Mutation{Action: ActionAppend, Data: Str(frag)}, VersionMeta{})
		if err != nil {
			return
		}
		var old, now string
		if len(data) > 0 && string(data) != "null" {
			if json.Unmarshal(data, &old) != nil {
				t.Fatalf("appended to non-string data %q", data)
			}
		}
		if err := json.Unmarshal(got.Data, &now); err != nil {
			t.Fatalf("result %q is not a JSON string: %v", got.Data, err)
		}
		var f2 string
		_ = json.Unmarshal(Str(frag), &f2)
		if now != old+f2 {
			t.Fatalf("%q + %q = %q", old, f2, now)
		}
	})
}

// FuzzUnmarshalMutable decodes stored version fields: no panic, and what decodes
// re-encodes to the same fields.
func FuzzUnmarshalMutable(f *testing.F) {
	f.Add(MarshalMutable(&Mutable{Action: ActionUpdate, MessageSerial: "m", Version: VersionMeta{Serial: "v", Metadata: []byte(`1`)}}))
	f.Add([]byte(`{"action":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		mu, err := UnmarshalMutable(b)
		if err != nil || mu == nil {
			return
		}
		again, err := UnmarshalMutable(MarshalMutable(mu))
		if err != nil || again.Action != mu.Action || again.MessageSerial != mu.MessageSerial || again.Version.Serial != mu.Version.Serial {
			t.Fatalf("round trip of %q: %+v vs %+v (%v)", b, again, mu, err)
		}
		_ = AppendExtras(nil, b, mu)
	})
}
