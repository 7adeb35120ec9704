package protocol

// Complementary tests for the subscription-filter parser in subfilter.go (subfilter_test.go
// holds the first tables): every comparison against an absent key, value coercion, whole
// refusal messages with their paths, the limits at and just past their boundaries, how the
// parts of a filter are ANDed, and Match without allocation and under concurrency.

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// rawOrNil turns "" into an absent member.
func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func mustFilter(t testing.TB, tagsFilter, filter string) *Filter {
	t.Helper()
	f, err := ParseFilter(rawOrNil(tagsFilter), rawOrNil(filter))
	if err != nil {
		t.Fatalf("ParseFilter(%.80s, %.80s): %v", tagsFilter, filter, err)
	}
	return f
}

func TestFilterOperatorsPresentAndAbsent(t *testing.T) {
	tags := map[string]string{"s": "alpha-beta", "n": "-12.5", "e": "", "big": "1e3"}
	tests := []struct {
		node            string
		present, absent bool // against tags, and against a message without the key
		note            string
	}{
		{`{"key":"s","cmp":"eq","val":"alpha-beta"}`, true, false, ""},
		{`{"key":"s","cmp":"neq","val":"alpha-beta"}`, false, true, "neq is true when the key is absent"},
		{`{"key":"s","cmp":"in","vals":["x","alpha-beta"]}`, true, false, ""},
		{`{"key":"s","cmp":"nin","vals":["alpha-beta"]}`, false, true, "nin is true when the key is absent"},
		{`{"key":"s","cmp":"ex"}`, true, false, ""},
		{`{"key":"s","cmp":"nex"}`, false, true, ""},
		{`{"key":"s","cmp":"sw","val":"alpha"}`, true, false, ""},
		{`{"key":"s","cmp":"ew","val":"-beta"}`, true, false, ""},
		{`{"key":"s","cmp":"ct","val":"a-b"}`, true, false, ""},
		{`{"key":"n","cmp":"gt","val":-13}`, true, false, ""},
		{`{"key":"n","cmp":"gte","val":"-12.5"}`, true, false, ""},
		{`{"key":"n","cmp":"lt","val":0}`, true, false, ""},
		{`{"key":"n","cmp":"lte","val":-12.5}`, true, false, ""},
		{`{"key":"big","cmp":"gt","val":999}`, true, false, "exponent notation is numeric"},
		{`{"key":"big","cmp":"eq","val":"1e3"}`, true, false, ""},
		{`{"key":"big","cmp":"eq","val":"1000"}`, false, false, "eq is a string comparison"},
		{`{"key":"e","cmp":"ex"}`, true, false, "an empty value is present"},
		{`{"key":"e","cmp":"eq","val":""}`, true, false, ""},
		{`{"key":"e","cmp":"sw","val":""}`, true, false, ""},
		{`{"key":"e","cmp":"gte","val":0}`, false, false, "an empty value is not numeric"},
		{`{"key":"s","cmp":"sw","val":"beta"}`, false, false, ""},
		{`{"key":"s","cmp":"ew","val":"alpha"}`, false, false, ""},
		{`{"key":"s","cmp":"ct","val":"gamma"}`, false, false, ""},
		{`{"key":"s","cmp":"lt","val":1}`, false, false, "a non-numeric tag is false for every numeric comparison"},
		{`{"key":"s","cmp":"gte","val":1}`, false, false, ""},
		{`{"key":"n","cmp":"gt","val":"ten"}`, false, false, "a non-numeric filter value is false"},
		{`{"key":"n","cmp":"lte","val":"ten"}`, false, false, ""},
	}
	for _, tt := range tests {
		f := mustFilter(t, tt.node, "")
		if got := f.Match("ev", tags); got != tt.present {
			t.Errorf("%s: Match(tags) = %v, want %v %s", tt.node, got, tt.present, tt.note)
		}
		if got := f.Match("ev", map[string]string{"other": "x"}); got != tt.absent {
			t.Errorf("%s: Match(key absent) = %v, want %v", tt.node, got, tt.absent)
		}
		if got := f.Match("ev", nil); got != tt.absent {
			t.Errorf("%s: Match(nil tags) = %v, want %v", tt.node, got, tt.absent)
		}
	}
}

func TestFilterValueCoercion(t *testing.T) {
	tests := []struct {
		node string
		tag  string
		want bool
	}{
		{`{"key":"k","cmp":"eq","val":100}`, "100", true},
		{`{"key":"k","cmp":"eq","val":-7}`, "-7", true},
		{`{"key":"k","cmp":"eq","val":true}`, "true", true},
		{`{"key":"k","cmp":"eq","val":false}`, "false", true},
		{`{"key":"k","cmp":"eq","val":true}`, "1", false},
		{`{"key":"k","cmp":"in","vals":["a",2,true]}`, "2", true},
		{`{"key":"k","cmp":"in","vals":["a",2,true]}`, "true", true},
		{`{"key":"k","cmp":"in","vals":[]}`, "a", false},
		{`{"key":"k","cmp":"nin","vals":[]}`, "a", true},
		{`{"key":"k","cmp":"sw","val":12}`, "123", true},
		{`{"key":"k","cmp":"eq","val":"caf\u00e9"}`, "café", true},
		{`{"key":"k","cmp":"eq","val":"Spot"}`, "spot", false}, // case-sensitive
	}
	for _, tt := range tests {
		if got := mustFilter(t, tt.node, "").Match("e", map[string]string{"k": tt.tag}); got != tt.want {
			t.Errorf("%s against %q: %v, want %v", tt.node, tt.tag, got, tt.want)
		}
	}
}

func TestFilterRefusalMessages(t *testing.T) {
	leaf := `{"key":"a","cmp":"ex"}`
	nest := func(levels int) string { // levels FilterNode levels: not-wrappers around a leaf
		s := leaf
		for range levels - 1 {
			s = `{"op":"not","nodes":[` + s + `]}`
		}
		return s
	}
	deepPath := "tags_filter" + strings.Repeat(".nodes[0]", MaxFilterDepth)
	wide := func(children int) string {
		return `{"op":"or","nodes":[` + strings.TrimSuffix(strings.Repeat(leaf+",", children), ",") + `]}`
	}
	strs := func(n int, s string) string { return strings.TrimSuffix(strings.Repeat(`"`+s+`",`, n), ",") }
	long := strings.Repeat("k", MaxFilterItemBytes+1)
	bigTags := `{"key":"a","cmp":"eq","val":"` + strings.Repeat("v", MaxFilterBytes) + `"}`
	bigFilter := `{"events":[` + strs(2000, "evt-name") + `]}`
	tests := []struct{ name, tags, filter, msg string }{
		{"tags_filter a string", `"x"`, "", "tags_filter must be an object"},
		{"tags_filter an array", `[{"key":"a","cmp":"ex"}]`, "", "tags_filter must be an object"},
		{"tags_filter not JSON", `{"key":`, "", "tags_filter must be an object"},
		{"tags_filter too big", bigTags, "", "tags_filter is " + strconv.Itoa(len(bigTags)) + " bytes, the limit is 16384"},
		{"too deep", nest(MaxFilterDepth + 1), "", deepPath + " is too deep: at most 16 levels"},
		{"far too deep", nest(100), "", "tags_filter is too deep: at most 16 levels"},
		{"too many nodes", wide(MaxFilterNodes), "", "tags_filter.nodes[255] has too many nodes: at most 256"},
		{"unknown cmp, nested path", `{"op":"and","nodes":[` + leaf + `,{"op":"or","nodes":[{"key":"b","cmp":"foo","val":"x"}]}]}`, "",
			`tags_filter.nodes[1].nodes[0].cmp "foo" is not one of eq, neq, in, nin, ex, nex, sw, ew, ct, gt, gte, lt, lte`},
		{"missing cmp", `{"key":"a","val":"x"}`, "", `tags_filter.cmp "" is not one of eq, neq, in, nin, ex, nex, sw, ew, ct, gt, gte, lt, lte`},
		{"cmp not a string", `{"key":"a","cmp":1}`, "", "tags_filter.cmp must be a string"},
		{"key not a string", `{"key":1,"cmp":"ex"}`, "", "tags_filter.key must be a string"},
		{"key missing", `{"cmp":"ex"}`, "", "tags_filter.key must be 1..256 bytes"},
		{"key too long", `{"key":"` + long + `","cmp":"ex"}`, "", "tags_filter.key must be 1..256 bytes"},
		{"val missing", `{"key":"a","cmp":"sw"}`, "", "tags_filter.val is required for sw"},
		{"val null", `{"key":"a","cmp":"lte","val":null}`, "", "tags_filter.val is required for lte"},
		{"val an array", `{"key":"a","cmp":"eq","val":["x"]}`, "", "tags_filter.val must be a string, number or boolean"},
		{"val too long", `{"key":"a","cmp":"eq","val":"` + long + `"}`, "", "tags_filter.val is longer than 256 bytes"},
		{"vals missing", `{"key":"a","cmp":"nin"}`, "", "tags_filter.vals is required for nin and must be an array"},
		{"vals a string", `{"key":"a","cmp":"in","vals":"x"}`, "", "tags_filter.vals is required for in and must be an array"},
		{"vals item an object", `{"key":"a","cmp":"in","vals":["x",{}]}`, "", "tags_filter.vals[1] must be a string, number or boolean"},
		{"vals item too long", `{"key":"a","cmp":"in","vals":["x","` + long + `"]}`, "", "tags_filter.vals[1] is longer than 256 bytes"},
		{"too many vals", `{"key":"a","cmp":"in","vals":[` + strs(MaxFilterVals+1, "v") + `]}`, "", "tags_filter.vals has 257 values, the limit is 256"},
		{"unknown leaf member", `{"key":"a","cmp":"ex","value":"x"}`, "", "tags_filter.value is not a filter node member (op, nodes, key, cmp, val, vals)"},
		{"op not a string", `{"op":1,"nodes":[]}`, "", "tags_filter.op must be a string"},
		{"unknown op", `{"op":"nand","nodes":[` + leaf + `]}`, "", `tags_filter.op "nand" is not one of and, or, not`},
		{"leaf member on a branch", `{"op":"and","nodes":[` + leaf + `],"key":"a"}`, "", "tags_filter.key is not allowed on an and node"},
		{"nodes missing", `{"op":"or"}`, "", "tags_filter.nodes must be an array of filter nodes"},
		{"nodes an object", `{"op":"or","nodes":{}}`, "", "tags_filter.nodes must be an array of filter nodes"},
		{"empty or", `{"op":"or","nodes":[]}`, "", "tags_filter.nodes of an or node must not be empty"},
		{"empty not", `{"op":"not","nodes":[]}`, "", "tags_filter.nodes of a not node must hold exactly one node, got 0"},
		{"child not an object", `{"op":"and","nodes":[` + leaf + `,"x"]}`, "", "tags_filter.nodes[1] must be an object"},
		{"filter a number", "", `5`, "filter must be an object"},
		{"filter too big", "", bigFilter, "filter is " + strconv.Itoa(len(bigFilter)) + " bytes, the limit is 16384"},
		{"filter node refused", "", `{"key":"a","cmp":"gt"}`, "filter.val is required for gt"},
		{"filter node nested path", "", `{"op":"not","nodes":[{"key":"","cmp":"ex"}]}`, "filter.nodes[0].key must be 1..256 bytes"},
		{"events not strings", "", `{"events":[1,2]}`, "filter.events must be an array of event names"},
		{"too many events", "", `{"events":[` + strs(MaxFilterEvents+1, "e") + `]}`, "filter.events has 257 names, the limit is 256"},
		{"tags not an object", "", `{"tags":5}`, "filter.tags must be an object"},
		{"tags refused", "", `{"events":["e"],"tags":{"op":"or","nodes":[{"key":"a","cmp":"in","vals":[[]]}]}}`, "filter.tags.nodes[0].vals[0] must be a string, number or boolean"},
		{"expression does not compile", "", `{"expression":"tags.market == "}`, "filter.expression does not compile: SyntaxError: Incomplete expression"},
		{"expression language", "", `{"expression":{"language":"jsonata","source":"event == 'x'"}}`, `filter.expression language "jsonata" is not supported: only "jmespath"`},
		{"unknown compound member", "", `{"event":["x"]}`, "filter.event is not a filter member (events, tags, expression)"},
		{"tags_filter checked first", `{"key":"a"}`, `{"events":"x"}`, `tags_filter.cmp "" is not one of eq, neq, in, nin, ex, nex, sw, ew, ct, gt, gte, lt, lte`},
	}
	for _, tt := range tests {
		f, err := ParseFilter(rawOrNil(tt.tags), rawOrNil(tt.filter))
		if err == nil {
			t.Errorf("%s: accepted (%v)", tt.name, f)
			continue
		}
		if want := "invalid filter: " + tt.msg; f != nil || err.Code != CodeChannelError || err.Message != want {
			t.Errorf("%s:\n got %d %q\nwant 4300 %q", tt.name, err.Code, err.Message, want)
		}
	}
}

func TestFilterLimitsAccepted(t *testing.T) {
	leaf := `{"key":"a","cmp":"ex"}`
	deep := leaf
	for range MaxFilterDepth - 1 {
		deep = `{"op":"not","nodes":[` + deep + `]}`
	}
	// 16 levels: 15 nots around a leaf. An odd count of nots inverts ex.
	if f := mustFilter(t, deep, ""); f.Match("e", map[string]string{"a": "1"}) || !f.Match("e", nil) {
		t.Error("16-level filter evaluated wrongly")
	}
	wide := `{"op":"and","nodes":[` + strings.TrimSuffix(strings.Repeat(leaf+",", MaxFilterNodes-1), ",") + `]}`
	if f := mustFilter(t, wide, ""); !f.Match("e", map[string]string{"a": ""}) {
		t.Error("256-node filter evaluated wrongly")
	}
	long := strings.Repeat("k", MaxFilterItemBytes)
	vals := `"` + long + `"` + strings.Repeat(`,"v"`, MaxFilterVals-1)
	if f := mustFilter(t, `{"key":"`+long+`","cmp":"in","vals":[`+vals+`]}`, ""); !f.Match("e", map[string]string{long: long}) {
		t.Error("256-byte key and value, 256 vals: no match")
	}
	events := `"e0"` + strings.Repeat(`,"e1"`, MaxFilterEvents-1)
	if f := mustFilter(t, "", `{"events":[`+events+`]}`); !f.Match("e1", nil) || f.Match("e2", nil) {
		t.Error("256 events evaluated wrongly")
	}
}

func TestFilterPartsAreANDed(t *testing.T) {
	// tags_filter, the FilterNode form of filter, and the compound form's events and tags.
	f := mustFilter(t, `{"key":"a","cmp":"eq","val":"1"}`, `{"key":"b","cmp":"eq","val":"2"}`)
	for tags, want := range map[[2]string]bool{{"1", "2"}: true, {"1", "x"}: false, {"x", "2"}: false} {
		if got := f.Match("e", map[string]string{"a": tags[0], "b": tags[1]}); got != want {
			t.Errorf("tags_filter AND filter node on %v: %v, want %v", tags, got, want)
		}
	}
	f = mustFilter(t, `{"key":"a","cmp":"ex"}`, `{"events":["trade"],"tags":{"key":"b","cmp":"ex"},"expression":null}`)
	both := map[string]string{"a": "", "b": ""}
	if !f.Match("trade", both) || f.Match("quote", both) || f.Match("trade", map[string]string{"a": ""}) || f.Match("trade", map[string]string{"b": ""}) {
		t.Error("tags_filter AND events AND tags evaluated wrongly")
	}
	// Absent parts impose nothing; a filter with nothing in it is no filter.
	for _, tt := range [][2]string{{"null", ""}, {"", "null"}, {"", `{}`}, {"", `{"events":null,"tags":null,"expression":null}`}, {" null ", ""}} {
		if f, err := ParseFilter(rawOrNil(tt[0]), rawOrNil(tt[1])); f != nil || err != nil {
			t.Errorf("%q %q: got %v, %v; want no filter", tt[0], tt[1], f, err)
		}
	}
	// Events only, no tag condition: any tags pass.
	f = mustFilter(t, "", `{"events":["a","b"]}`)
	if !f.Match("a", nil) || !f.Match("b", map[string]string{"x": "y"}) || f.Match("c", nil) || f.Match("", nil) {
		t.Error("events-only filter evaluated wrongly")
	}
}

// TestFilterMatchDoesNotAllocate covers every comparison on the fan-out path (tag values that
// parse as numbers where a numeric comparison reads them).
func TestFilterMatchDoesNotAllocate(t *testing.T) {
	f := mustFilter(t, "", `{"events":["tick","trade"],"tags":{"op":"and","nodes":[
		{"op":"or","nodes":[{"key":"m","cmp":"eq","val":"spot"},{"key":"m","cmp":"neq","val":"x"}]},
		{"op":"not","nodes":[{"key":"a","cmp":"in","vals":["DOGE","SHIB"]}]},
		{"key":"a","cmp":"nin","vals":["X"]},{"key":"a","cmp":"ex"},{"key":"zz","cmp":"nex"},
		{"key":"m","cmp":"sw","val":"sp"},{"key":"m","cmp":"ew","val":"ot"},{"key":"m","cmp":"ct","val":"po"},
		{"key":"p","cmp":"gt","val":1},{"key":"p","cmp":"gte","val":"100"},{"key":"p","cmp":"lt","val":1e9},{"key":"p","cmp":"lte","val":64000.5}]}}`)
	tags := map[string]string{"m": "spot", "a": "BTC", "p": "64000.5"}
	if !f.Match("tick", tags) {
		t.Fatal("no match")
	}
	if n := testing.AllocsPerRun(200, func() { f.Match("tick", tags); f.Match("other", tags) }); n != 0 {
		t.Errorf("Match allocates %v times per call", n)
	}
}

func TestFilterMatchConcurrent(t *testing.T) {
	f := mustFilter(t, `{"op":"or","nodes":[{"key":"a","cmp":"in","vals":["1","2"]},{"key":"b","cmp":"gte","val":5}]}`, `{"events":["e"]}`)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			tags := map[string]string{"a": "3", "b": "7"}
			for i := range 2000 {
				if want := g%2 == 0 || i%2 == 0; f.Match(map[bool]string{true: "e", false: "x"}[want], tags) != want {
					t.Error("concurrent Match disagrees")
					return
				}
			}
		})
	}
	wg.Wait()
}
