package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFilterMatch(t *testing.T) {
	tags := map[string]string{"market": "spot", "asset": "BTC", "price": "64000.5", "note": "hello world"}
	tests := []struct {
		node string
		want bool
	}{
		{`{"key":"market","cmp":"eq","val":"spot"}`, true},
		{`{"key":"market","cmp":"eq","val":"futures"}`, false},
		{`{"key":"market","cmp":"neq","val":"futures"}`, true},
		{`{"key":"missing","cmp":"neq","val":"x"}`, true},
		{`{"key":"missing","cmp":"eq","val":"x"}`, false},
		{`{"key":"asset","cmp":"in","vals":["ETH","BTC"]}`, true},
		{`{"key":"asset","cmp":"in","vals":["ETH"]}`, false},
		{`{"key":"asset","cmp":"nin","vals":["DOGE","SHIB"]}`, true},
		{`{"key":"missing","cmp":"nin","vals":["DOGE"]}`, true},
		{`{"key":"asset","cmp":"ex"}`, true},
		{`{"key":"missing","cmp":"ex"}`, false},
		{`{"key":"missing","cmp":"nex"}`, true},
		{`{"key":"note","cmp":"sw","val":"hello"}`, true},
		{`{"key":"note","cmp":"ew","val":"world"}`, true},
		{`{"key":"note","cmp":"ct","val":"o w"}`, true},
		{`{"key":"note","cmp":"ct","val":"xyz"}`, false},
		{`{"key":"price","cmp":"gt","val":64000}`, true},
		{`{"key":"price","cmp":"gte","val":"64000.5"}`, true},
		{`{"key":"price","cmp":"lt","val":64000}`, false},
		{`{"key":"price","cmp":"lte","val":1e5}`, true},
		{`{"key":"note","cmp":"gt","val":1}`, false},      // not numeric: false
		{`{"key":"price","cmp":"gt","val":"abc"}`, false}, // filter value not numeric: false
		{`{"key":"market","cmp":"eq","val":true}`, false}, // coerced to "true"
		{`{"op":"and","nodes":[{"key":"market","cmp":"eq","val":"spot"},{"key":"asset","cmp":"eq","val":"BTC"}]}`, true},
		{`{"op":"and","nodes":[{"key":"market","cmp":"eq","val":"spot"},{"key":"asset","cmp":"eq","val":"ETH"}]}`, false},
		{`{"op":"or","nodes":[{"key":"asset","cmp":"eq","val":"ETH"},{"key":"asset","cmp":"eq","val":"BTC"}]}`, true},
		{`{"op":"not","nodes":[{"key":"asset","cmp":"eq","val":"BTC"}]}`, false},
	}
	for _, tt := range tests {
		f, err := ParseFilter(json.RawMessage(tt.node), nil)
		if err != nil {
			t.Errorf("%s: %v", tt.node, err)
			continue
		}
		if got := f.Match("e", tags); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.node, got, tt.want)
		}
		// The same node as filter (not tags_filter) behaves the same.
		if f2, err := ParseFilter(nil, json.RawMessage(tt.node)); err != nil || f2.Match("e", tags) != tt.want {
			t.Errorf("%s as filter: %v", tt.node, err)
		}
	}
}

func TestFilterCompound(t *testing.T) {
	f, err := ParseFilter(nil, json.RawMessage(`{"events":["trade","tick"],"tags":{"key":"m","cmp":"eq","val":"spot"}}`))
	if err != nil {
		t.Fatal(err)
	}
	spot := map[string]string{"m": "spot"}
	if !f.Match("trade", spot) || f.Match("order", spot) || f.Match("tick", map[string]string{"m": "x"}) {
		t.Error("compound filter matched wrongly")
	}
	// tags_filter and filter together are ANDed.
	f, err = ParseFilter(json.RawMessage(`{"key":"a","cmp":"ex"}`), json.RawMessage(`{"events":["e"]}`))
	if err != nil || f.Match("e", map[string]string{}) || !f.Match("e", map[string]string{"a": ""}) || f.Match("x", map[string]string{"a": ""}) {
		t.Errorf("combined filter: %v", err)
	}
	for _, none := range [][2]string{{"", ""}, {"null", "null"}, {"", `{"events":[]}`}} {
		var a, b json.RawMessage
		if none[0] != "" {
			a = json.RawMessage(none[0])
		}
		if none[1] != "" {
			b = json.RawMessage(none[1])
		}
		if f, err := ParseFilter(a, b); f != nil || err != nil {
			t.Errorf("%q: got %v, %v; want no filter", none, f, err)
		}
	}
	var nilFilter *Filter
	if !nilFilter.Match("x", nil) {
		t.Error("nil filter must match")
	}
}

func TestFilterRefused(t *testing.T) {
	deep := `{"key":"a","cmp":"ex"}`
	for range MaxFilterDepth {
		deep = `{"op":"not","nodes":[` + deep + `]}`
	}
	wide := `{"op":"or","nodes":[` + strings.Repeat(`{"key":"a","cmp":"ex"},`, MaxFilterNodes) + `{"key":"a","cmp":"ex"}]}`
	tests := []struct{ tags, filter, want string }{
		{`"x"`, "", "tags_filter must be an object"},
		{`{"key":"a","cmp":"like","val":"x"}`, "", `tags_filter.cmp "like" is not one of eq, neq`},
		{`{"key":"","cmp":"eq","val":"x"}`, "", "tags_filter.key must be 1..256 bytes"},
		{`{"cmp":"eq","val":"x"}`, "", "tags_filter.key must be"},
		{`{"key":"a","cmp":"eq"}`, "", "tags_filter.val is required for eq"},
		{`{"key":"a","cmp":"in"}`, "", "tags_filter.vals is required for in"},
		{`{"key":"a","cmp":"eq","val":{"x":1}}`, "", "tags_filter.val must be a string, number or boolean"},
		{`{"key":"a","cmp":"eq","val":"x","extra":1}`, "", "tags_filter.extra is not a filter node member"},
		{`{"op":"xor","nodes":[]}`, "", `tags_filter.op "xor" is not one of and, or, not`},
		{`{"op":"and","nodes":[]}`, "", "tags_filter.nodes of an and node must not be empty"},
		{`{"op":"not","nodes":[{"key":"a","cmp":"ex"},{"key":"b","cmp":"ex"}]}`, "", "exactly one node, got 2"},
		{`{"op":"and","nodes":[{"key":"a","cmp":"ex"},{"key":"b","cmp":"zz"}]}`, "", `tags_filter.nodes[1].cmp "zz"`},
		{`{"op":"and","nodes":{"a":1}}`, "", "tags_filter.nodes must be an array"},
		{deep, "", "too deep"},
		{wide, "", "too many nodes"},
		{`{"key":"a","cmp":"in","vals":[` + strings.Repeat(`"v",`, MaxFilterVals) + `"v"]}`, "", "257 values"},
		{"", `[1]`, "filter must be an object"},
		{"", `{"events":"trade"}`, "filter.events must be an array"},
		{"", `{"expression":"tags.a == "}`, "filter.expression does not compile"},
		{"", `{"expression":{"language":"jsonata","source":"a"}}`, `language "jsonata" is not supported`},
		{"", `{"colour":"red"}`, "filter.colour is not a filter member"},
		{"", `{"tags":{"key":"a","cmp":"bad"}}`, `filter.tags.cmp "bad"`},
		{"", `{"key":"a","cmp":"eq","val":"` + strings.Repeat("v", 17000) + `"}`, "the limit is 16384"},
	}
	for _, tt := range tests {
		var a, b json.RawMessage
		if tt.tags != "" {
			a = json.RawMessage(tt.tags)
		}
		if tt.filter != "" {
			b = json.RawMessage(tt.filter)
		}
		f, err := ParseFilter(a, b)
		if err == nil {
			t.Errorf("%s %s: accepted (%v)", tt.tags, tt.filter, f)
			continue
		}
		if err.Code != CodeChannelError || !strings.HasPrefix(err.Message, "invalid filter: ") || !strings.Contains(err.Message, tt.want) {
			t.Errorf("%.60s %.60s: error %d %q, want 4300 mentioning %q", tt.tags, tt.filter, err.Code, err.Message, tt.want)
		}
	}
}

func BenchmarkFilterMatch(b *testing.B) {
	f, err := ParseFilter(json.RawMessage(`{"op":"and","nodes":[{"key":"market","cmp":"eq","val":"spot"},{"op":"not","nodes":[{"key":"asset","cmp":"in","vals":["DOGE","SHIB"]}]},{"key":"price","cmp":"gte","val":"100"}]}`), nil)
	if err != nil {
		b.Fatal(err)
	}
	tags := map[string]string{"market": "spot", "asset": "BTC", "price": "64000"}
	odd := map[string]string{"market": "spot", "asset": "BTC", "price": "N/A"}
	if n := testing.AllocsPerRun(100, func() { f.Match("tick", odd); f.Match("tick", map[string]string(nil)) }); n != 0 {
		b.Fatalf("Match allocates %v times on a non-numeric tag", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !f.Match("tick", tags) {
			b.Fatal("no match")
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	f.Add(`{"key":"a","cmp":"eq","val":"b"}`, `{"events":["e"]}`)
	f.Add(`{"op":"and","nodes":[{"key":"p","cmp":"gte","val":1.5},{"op":"not","nodes":[{"key":"x","cmp":"in","vals":["a",2,true]}]}]}`, "")
	f.Add("", `{"tags":{"key":"a","cmp":"ct","val":"z"}}`)
	f.Add(`[`, `{`)
	f.Add("", `{"events":["e"],"expression":"data.a[?@ == 'b'] | length(@) > `+"`0`"+`"}`)
	f.Fuzz(func(t *testing.T, tags, filter string) {
		var a, b json.RawMessage
		if tags != "" {
			a = json.RawMessage(tags)
		}
		if filter != "" {
			b = json.RawMessage(filter)
		}
		fl, err := ParseFilter(a, b)
		if err != nil {
			if fl != nil || err.Code != CodeChannelError {
				t.Fatalf("error %v with filter %v", err, fl)
			}
			return
		}
		fl.Match("e", map[string]string{"a": "b", "p": "2"})
		fl.Match("", nil)
		m := &Message{Event: "e", Channel: "c", Data: []byte(`{"a":[1,"b",null]}`), Tags: map[string]string{"a": "b"}}
		doc := NewLazyDocument(m)
		fl.MatchMessage(m, &doc)
	})
}
