package protocol

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseAnnotationType(t *testing.T) {
	for in, want := range map[string]Summarizer{
		"reaction:distinct.v1": SummarizeDistinct, "r:unique.v1": SummarizeUnique, "poll:multiple.v1": SummarizeMultiple,
		"read:flag.v1": SummarizeFlag, "views:total.v1": SummarizeTotal, "a:b:total.v1": "", "ns.x:total.v1": SummarizeTotal,
	} {
		got, err := ParseAnnotationType(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q accepted as %+v", in, got)
			}
			continue
		}
		if err != nil || got.Summarizer != want || got.Version != 1 {
			t.Errorf("%q: %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", " ", "reaction", "reaction:", ":distinct.v1", "reaction:distinct", "reaction:distinct.v2",
		"reaction:distinct.v", "reaction:distinct.v+1", "reaction:distinct.v01x", "reaction:sum.v1", "re action:total.v1",
		"reaction:total.v1\n", "r:" + strings.Repeat("x", 300) + ".v1", "reaction:Distinct.v1"} {
		if _, err := ParseAnnotationType(in); !errors.Is(err, ErrAnnotationType) {
			t.Errorf("%q: %v, want ErrAnnotationType", in, err)
		}
	}
}

func TestAnnotationSerial(t *testing.T) {
	for _, n := range []uint64{1, 9, 10, 1 << 40, 1<<64 - 1} {
		s := FormatAnnotationSerial(n)
		if got, ok := ParseAnnotationSerial(s); !ok || got != n {
			t.Errorf("%d → %q → %d %v", n, s, got, ok)
		}
	}
	if !(FormatAnnotationSerial(9) < FormatAnnotationSerial(10)) {
		t.Error("serials do not sort numerically")
	}
	for _, s := range []string{"", "1", "00000000000000000000:a", "0000000000000000001x:a", "00000000000000000001", "00000000000000000001:b",
		"99999999999999999999:a", "-0000000000000000001:a", "+0000000000000000001:a"} {
		if n, ok := ParseAnnotationSerial(s); ok {
			t.Errorf("%q accepted as %d", s, n)
		}
	}
}

func TestAnnotationJSON(t *testing.T) {
	a := Annotation{ID: "id1", Action: AnnotationCreate, Serial: "s1", MessageSerial: "m1", Type: "r:distinct.v1", Name: "like",
		ClientID: "u\"1", Count: 2, Data: json.RawMessage(`{"x":[1]}`), Encoding: "json", TimestampMs: 17}
	want := `{"action":"annotation.create","id":"id1","serial":"s1","messageSerial":"m1","type":"r:distinct.v1","name":"like","clientId":"u\"1","count":2,"data":{"x":[1]},"encoding":"json","timestamp":17}`
	if got := string(a.AppendJSON(nil)); got != want {
		t.Fatalf("create:\n got %s\nwant %s", got, want)
	}
	d := Annotation{ID: "id1", Action: AnnotationDelete, Serial: "s2", MessageSerial: "m1", Type: "r:total.v1", TimestampMs: 18}
	if got := string(d.AppendJSON(nil)); got != `{"action":"annotation.delete","serial":"s2","messageSerial":"m1","type":"r:total.v1","timestamp":18}` {
		t.Fatalf("delete: %s", got)
	}
	m := SummaryMessage("chat", "m1", []TypeSummary{{"a:total.v1", json.RawMessage(`{"total":1}`)}, {"b:flag.v1", json.RawMessage(`{"total":0,"clientIds":[],"clipped":false}`)}})
	if got := string(m.AppendV2(nil)); got != `{"event":"sockudo_internal:message","channel":"chat","data":{"action":"message.summary","serial":"m1","annotations":{"summary":{"a:total.v1":{"total":1},"b:flag.v1":{"total":0,"clientIds":[],"clipped":false}}}},"extras":{"ephemeral":true}}` {
		t.Fatalf("summary frame %s", got)
	}
}

// Sockudo's summarizer semantics, case by case.
func TestSummarize(t *testing.T) {
	n := 0
	ev := func(act AnnotationAction, id, typ, name, client string, count uint64) Annotation {
		n++
		return Annotation{ID: id, Action: act, Serial: FormatAnnotationSerial(uint64(n)), Type: typ, Name: name, ClientID: client, Count: count}
	}
	c, d := AnnotationCreate, AnnotationDelete
	events := []Annotation{
		ev(c, "1", "r:distinct.v1", "like", "a", 0), ev(c, "2", "r:distinct.v1", "laugh", "a", 0), ev(c, "3", "r:distinct.v1", "like", "b", 0),
		ev(d, "3", "r:distinct.v1", "like", "b", 0),
		ev(c, "4", "v:unique.v1", "yes", "a", 0), ev(c, "5", "v:unique.v1", "no", "a", 0), ev(c, "6", "v:unique.v1", "yes", "b", 0),
		ev(c, "7", "p:multiple.v1", "x", "a", 2), ev(c, "8", "p:multiple.v1", "x", "a", 0), ev(c, "9", "p:multiple.v1", "x", "", 4),
		ev(c, "10", "p:multiple.v1", "y", "b", 1), ev(d, "10", "p:multiple.v1", "y", "b", 1),
		ev(c, "11", "f:flag.v1", "", "a", 0), ev(c, "12", "f:flag.v1", "", "a", 0), ev(c, "13", "f:flag.v1", "", "c", 0),
		ev(c, "14", "t:total.v1", "", "", 0), ev(c, "15", "t:total.v1", "", "", 0), ev(d, "14", "t:total.v1", "", "", 0),
	}
	got := map[string]string{}
	for _, s := range Summarize(events) {
		got[s.Type] = string(s.Summary)
	}
	want := map[string]string{
		"r:distinct.v1": `{"laugh":{"total":1,"clientIds":["a"],"clipped":false},"like":{"total":1,"clientIds":["a"],"clipped":false}}`,
		"v:unique.v1":   `{"no":{"total":1,"clientIds":["a"],"clipped":false},"yes":{"total":1,"clientIds":["b"],"clipped":false}}`,
		"p:multiple.v1": `{"x":{"total":7,"clientCounts":{"a":3},"totalUnidentified":4,"clipped":false,"totalClientIds":1},"y":{"total":0,"clientCounts":{},"totalUnidentified":0,"clipped":false,"totalClientIds":0}}`,
		"f:flag.v1":     `{"total":2,"clientIds":["a","c"],"clipped":false}`,
		"t:total.v1":    `{"total":1}`,
	}
	for typ, w := range want {
		if got[typ] != w {
			t.Errorf("%s:\n got %s\nwant %s", typ, got[typ], w)
		}
	}
	// A repeated serial counts once; a delete seen before its create cancels it.
	dup := []Annotation{{ID: "a", Action: c, Serial: "1", Type: "t:total.v1"}, {ID: "a", Action: c, Serial: "1", Type: "t:total.v1"},
		{ID: "b", Action: d, Serial: "2", Type: "t:total.v1"}, {ID: "b", Action: c, Serial: "3", Type: "t:total.v1"}}
	if s := Summarize(dup); len(s) != 1 || string(s[0].Summary) != `{"total":1}` {
		t.Errorf("duplicates and early deletes: %s", s)
	}
}

// FuzzParseAnnotationType: no input panics; what is accepted is short, has no whitespace
// and names a known summarizer at version 1.
func FuzzParseAnnotationType(f *testing.F) {
	for _, s := range []string{"reaction:distinct.v1", "a:total.v1", "x:y:flag.v1", "r:unique.v65536", "r:multiple.v0001", "r:.v1", "r:total.v1\u00a0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAnnotationType(s)
		if err != nil {
			return
		}
		if len(s) > MaxAnnotationTypeLen || strings.ContainsAny(s, " \t\n\r") || a.Version != 1 || a.Namespace == "" ||
			!strings.HasSuffix(s, ":"+string(a.Summarizer)+".v"+s[strings.LastIndex(s, ".v")+2:]) {
			t.Fatalf("%q accepted as %+v", s, a)
		}
	})
}

// FuzzParseAnnotationSerial: an accepted serial formats back to itself.
func FuzzParseAnnotationSerial(f *testing.F) {
	for _, s := range []string{FormatAnnotationSerial(1), FormatAnnotationSerial(1 << 63), "00000000000000000000:a", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseAnnotationSerial(s)
		if ok && FormatAnnotationSerial(n) != s {
			t.Fatalf("%q parsed as %d, which formats as %q", s, n, FormatAnnotationSerial(n))
		}
	})
}

// FuzzSummarize: any event sequence summarizes without panicking into valid JSON objects.
func FuzzSummarize(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x10\x21\x32"))
	types := []string{"r:distinct.v1", "r:unique.v1", "r:multiple.v1", "r:flag.v1", "r:total.v1", "r:bad.v1"}
	f.Fuzz(func(t *testing.T, b []byte) {
		var events []Annotation
		for i, x := range b {
			act := AnnotationCreate
			if x&0x80 != 0 {
				act = AnnotationDelete
			}
			events = append(events, Annotation{ID: string(rune('a' + x%5)), Action: act, Serial: FormatAnnotationSerial(uint64(len(b) - i)),
				Type: types[int(x>>4&7)%len(types)], Name: []string{"", "x", "y"}[x%3], ClientID: []string{"", "u", "v"}[x/3%3], Count: uint64(x % 4)})
		}
		full, clipped := Summarize(events), SummarizeClipped(events, len(b)%3)
		if len(full) != len(clipped) {
			t.Fatalf("%d types, %d clipped", len(full), len(clipped))
		}
		for i, s := range full {
			var v, c map[string]any
			if err := json.Unmarshal(s.Summary, &v); err != nil {
				t.Fatalf("%s: %s: %v", s.Type, s.Summary, err)
			}
			if err := json.Unmarshal(clipped[i].Summary, &c); err != nil || len(c) != len(v) {
				t.Fatalf("%s clipped: %s: %v", s.Type, clipped[i].Summary, err)
			}
		}
	})
}

func TestSummarizeClipped(t *testing.T) {
	var events []Annotation
	for i, c := range []string{"d", "a", "c", "b"} {
		events = append(events, Annotation{ID: c, Action: AnnotationCreate, Serial: FormatAnnotationSerial(uint64(i + 1)), Type: "r:distinct.v1", Name: "x", ClientID: c},
			Annotation{ID: c + "m", Action: AnnotationCreate, Serial: FormatAnnotationSerial(uint64(i + 10)), Type: "p:multiple.v1", Name: "y", ClientID: c, Count: 2})
	}
	got := map[string]string{}
	for _, s := range SummarizeClipped(events, 2) {
		got[s.Type] = string(s.Summary)
	}
	if want := `{"x":{"total":4,"clientIds":["a","b"],"clipped":true}}`; got["r:distinct.v1"] != want {
		t.Errorf("distinct clipped to 2: %s", got["r:distinct.v1"])
	}
	if want := `{"y":{"total":8,"clientCounts":{"a":2,"b":2},"totalUnidentified":0,"clipped":true,"totalClientIds":4}}`; got["p:multiple.v1"] != want {
		t.Errorf("multiple clipped to 2: %s", got["p:multiple.v1"])
	}
	for _, s := range SummarizeClipped(events, 4) {
		if strings.Contains(string(s.Summary), `"clipped":true`) {
			t.Errorf("a limit that fits clipped: %s", s.Summary)
		}
	}
}

// BenchmarkSummarize: what one summary of a message with n annotation events costs (the
// hub recomputes it from the store once per window after a change).
func BenchmarkSummarize(b *testing.B) {
	for _, n := range []int{100, 10000} {
		var events []Annotation
		for i := range n {
			events = append(events, Annotation{ID: strconv.Itoa(i), Action: AnnotationCreate, Serial: FormatAnnotationSerial(uint64(i + 1)),
				Type: "reaction:distinct.v1", Name: []string{"like", "love", "laugh"}[i%3], ClientID: "user-" + strconv.Itoa(i%(n/2+1))})
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Summarize(events)
			}
		})
	}
}
