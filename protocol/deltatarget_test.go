package protocol_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

const tickData = `{\"symbol\":\"BTC-USD\",\"price\":\"67012.25\",\"ts\":1765000000123}`

// TestDeltaTarget: the lean text a delta rebuilds holds event, channel and the data the
// clients' plain path surfaces; messages whose data a delta cannot surface the same way have
// none (they go out full).
func TestDeltaTarget(t *testing.T) {
	for _, tt := range []struct {
		name, text, want string // want "" = no target
	}{
		{"json string data is decoded",
			`{"event":"tick","channel":"t","data":"` + tickData + `","message_id":"m","stream_id":"s","serial":7,"extras":{"headers":{"sockudo_history_serial":7}}}`,
			`{"event":"tick","channel":"t","data":{"symbol":"BTC-USD","price":"67012.25","ts":1765000000123}}`},
		{"binary client text order", `{"event":"e","channel":"c","message_id":"m","data":"[1,2]"}`, `{"event":"e","channel":"c","data":[1,2]}`},
		{"plain string stays", `{"event":"e","channel":"c","data":"hello"}`, `{"event":"e","channel":"c","data":"hello"}`},
		{"number string", `{"event":"e","channel":"c","data":"42"}`, `{"event":"e","channel":"c","data":42}`},
		{"whitespace around json", `{"event":"e","channel":"c","data":" {\"a\":1} "}`, `{"event":"e","channel":"c","data":{"a":1}}`},
		{"no-break space is not JSON whitespace", `{"event":"e","channel":"c","data":"\u00a0{\"a\":1}"}`, `{"event":"e","channel":"c","data":"\u00a0{\"a\":1}"}`},
		{"object data", `{"event":"e","channel":"c","data":{"a":"b"}}`, `{"event":"e","channel":"c","data":{"a":"b"}}`},
		{"safe serial in data", `{"event":"e","channel":"c","data":"{\"serial\":9007199254740991}"}`, `{"event":"e","channel":"c","data":{"serial":9007199254740991}}`},
		{"no event", `{"channel":"c","data":"x"}`, `{"channel":"c","data":"x"}`},
		{"unsafe serial in string data", `{"event":"e","channel":"c","data":"{\"message_serial\":9007199254740993}"}`, ""},
		{"unsafe serial in object data", `{"event":"e","channel":"c","data":{"serial":-18446744073709551615}}`, ""},
		{"surrogate escape", `{"event":"e","channel":"c","data":"\ud83d\ude00"}`, ""},
		{"empty string", `{"event":"e","channel":"c","data":""}`, ""},
		{"zero string", `{"event":"e","channel":"c","data":"0"}`, ""},
		{"negative zero", `{"event":"e","channel":"c","data":"-0.0e5"}`, ""},
		{"false string", `{"event":"e","channel":"c","data":"false"}`, ""},
		{"null string", `{"event":"e","channel":"c","data":"null"}`, ""},
		{"empty json string", `{"event":"e","channel":"c","data":"\"\""}`, ""},
		{"null", `{"event":"e","channel":"c","data":null}`, ""},
		{"zero", `{"event":"e","channel":"c","data":0}`, ""},
		{"no data", `{"event":"e","channel":"c"}`, ""},
		{"not json", `{"event":`, ""},
		{"not an object", `[1]`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := protocol.DeltaTarget([]byte(tt.text))
			if tt.want == "" {
				if ok {
					t.Fatalf("target %s, want none", got)
				}
				return
			}
			if !ok || string(got) != tt.want {
				t.Fatalf("target %s (%v), want %s", got, ok, tt.want)
			}
			checkSurfaced(t, []byte(tt.text), got)
		})
	}
}

// checkSurfaced fails unless the clients surface the same data from target rebuilt by a
// delta as from the full frame text.
func checkSurfaced(t *testing.T, text, target []byte) {
	t.Helper()
	if !json.Valid(target) {
		t.Fatalf("target %q is not JSON", target)
	}
	plain, err := protocol.ClientData(text, false)
	if err != nil {
		t.Skip("Go cannot decode the text as JavaScript would:", err)
	}
	got, err := protocol.ClientData(target, true)
	if err != nil {
		t.Skip("Go cannot decode the target as JavaScript would (a number beyond float64):", err)
	}
	if !reflect.DeepEqual(got, plain) {
		t.Fatalf("a delta to %s surfaces %#v, the full frame %s surfaces %#v", target, got, text, plain)
	}
}

// FuzzDeltaTarget: whatever the frame text, a target is JSON from which the clients surface
// what they surface from the full frame.
func FuzzDeltaTarget(f *testing.F) {
	for _, s := range []string{
		`{"event":"tick","channel":"t","data":"` + tickData + `","serial":7}`,
		`{"event":"e","channel":"c","data":"hello"}`,
		`{"event":"e","channel":"c","data":"0"}`,
		`{"event":"e","channel":"c","data":{"serial":12345678901234567890}}`,
		`{"data":"\"{\\\"a\\\":1}\""}`,
		`{"data":" [ ] "}`,
		`{"data":"1e400"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		target, ok := protocol.DeltaTarget(text)
		if !ok {
			return
		}
		checkSurfaced(t, text, target)
	})
}
