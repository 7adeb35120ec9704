package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func exprMessage() *Message {
	return &Message{
		Event: "order.updated", Channel: "orders", Data: []byte(`{"total":125,"items":["a","b"]}`),
		Tags: map[string]string{"region": "eu"}, MessageID: "m-1", StreamID: "s-1", Serial: 7,
		Extras: []byte(`{"headers":{"priority":"high","n":3,"sockudo_action":"x"},"idempotencyKey":"k"}`),
	}
}

func TestExpressionMatch(t *testing.T) {
	http := exprMessage()
	http.Data = []byte(`"{\"total\":125}"`) // an HTTP publish: data travels as a string
	tests := []struct {
		expr string
		m    *Message
		want bool
	}{
		{"data.total >= `100`", exprMessage(), true},
		{"data.total >= `200`", exprMessage(), false},
		{"data.total >= `100` && headers.priority == `\"high\"`", exprMessage(), true},
		{"headers.priority == 'low'", exprMessage(), false},
		{"headers.n > `2`", exprMessage(), true},
		{"headers.sockudo_action", exprMessage(), false}, // reserved headers are hidden
		{"extras", exprMessage(), false},                 // extras are not projected
		{"idempotencyKey", exprMessage(), false},
		{"event == 'order.updated' && channel == 'orders'", exprMessage(), true},
		{"tags.region == 'eu'", exprMessage(), true},
		{"messageId == 'm-1' && streamId == 's-1' && serial == `7`", exprMessage(), true},
		{"contains(data.items, 'b')", exprMessage(), true},
		{"length(data.items) == `2`", exprMessage(), true},
		{"action", exprMessage(), false},
		{"userId", exprMessage(), false},
		{"name", exprMessage(), false},
		// As Sockudo evaluates it, an HTTP publish's data is a string: data.total is null.
		{"data.total", http, false},
		{"type(data) == 'string'", http, true},
		// Truthiness: numbers (even 0) are true; "", [], {} and null are false.
		{"`0`", exprMessage(), true},
		{"''", exprMessage(), false},
		{"`[]`", exprMessage(), false},
		{"`{}`", exprMessage(), false},
		// Evaluation errors fail closed.
		{"abs('x')", exprMessage(), false},
	}
	for _, tt := range tests {
		e, err := CompileExpression(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if got := e.Match(FilterDocument(tt.m)); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.expr, got, tt.want)
		}
	}
}

func TestExpressionMutableAction(t *testing.T) {
	m := exprMessage()
	m.Mutable = &Mutable{Action: ActionUpdate}
	e, _ := CompileExpression("action == 'update'")
	if !e.Match(FilterDocument(m)) {
		t.Fatal("action not projected")
	}
}

func TestExpressionRefused(t *testing.T) {
	deepSub := strings.Repeat("a.", 40) + "a"
	wide := "[" + strings.Repeat("a, ", 300) + "a]"
	tests := []struct{ raw, want string }{
		{`""`, "must not be empty"},
		{`"a =="`, "does not compile"},
		{`"foo(`, "must be a JMESPath string"},
		{`"` + strings.Repeat("a", MaxExpressionBytes+1) + `"`, "the limit is 4096"},
		{`"` + deepSub + `"`, "too deep"},
		{`"` + wide + `"`, "too large"},
		{`"pad_left('a', ` + "`1000000000`" + `)"`, `unknown function "pad_left"`},
		{`"nope(a)"`, `unknown function "nope"`},
		{`"let $x = a in $x"`, "let expression"},
		{`"$.event"`, "root node"},
		{`{"language":"jsonata","source":"a"}`, `language "jsonata" is not supported`},
		{`{"language":"jmespath"}`, "must not be empty"},
		{`{"source":7}`, "source must be a non-empty string"},
		{`{"source":"a","extra":1}`, `member "extra"`},
		{`7`, "must be a JMESPath string"},
		{`[]`, "must be a JMESPath string"},
	}
	for _, tt := range tests {
		e, err := ParseExpressionOption(json.RawMessage(tt.raw))
		if err == nil {
			t.Errorf("%.60s: accepted %v", tt.raw, e)
			continue
		}
		if err.Code != CodeChannelError || !strings.HasPrefix(err.Message, "invalid filter: filter.expression") || !strings.Contains(err.Message, tt.want) {
			t.Errorf("%.60s: %d %q, want 4300 mentioning %q", tt.raw, err.Code, err.Message, tt.want)
		}
	}
}

func TestExpressionOptionForms(t *testing.T) {
	for _, raw := range []string{`"data.total > ` + "`1`" + `"`, `{"language":"jmespath","source":"data.total > ` + "`1`" + `"}`, `{"source":"data.total > ` + "`1`" + `"}`} {
		e, err := ParseExpressionOption(json.RawMessage(raw))
		if err != nil || e == nil || !e.Match(FilterDocument(exprMessage())) {
			t.Errorf("%s: %v %v", raw, e, err)
		}
	}
	if e, err := ParseExpressionOption(json.RawMessage("null")); e != nil || err != nil {
		t.Errorf("null: %v %v", e, err)
	}
}

func TestFilterExpressionANDedWithEventsAndTags(t *testing.T) {
	f, err := ParseFilter(nil, json.RawMessage(`{"events":["order.updated"],"tags":{"key":"region","cmp":"eq","val":"eu"},"expression":"data.total > `+"`100`"+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, m *Message, want bool) {
		t.Helper()
		doc := NewLazyDocument(m)
		if got := f.MatchMessage(m, &doc); got != want {
			t.Errorf("%s: got %v want %v", name, got, want)
		}
	}
	check("all match", exprMessage(), true)
	m := exprMessage()
	m.Event = "order.created"
	check("event", m, false)
	m = exprMessage()
	m.Tags = map[string]string{"region": "us"}
	check("tags", m, false)
	m = exprMessage()
	m.Data = []byte(`{"total":5}`)
	check("expression", m, false)
	if !f.HasExpression() {
		t.Error("HasExpression false")
	}
}

func TestExpressionDocumentBound(t *testing.T) {
	m := exprMessage()
	m.Data = []byte(`"` + strings.Repeat("x", MaxFilterDocumentBytes) + `"`)
	e, _ := CompileExpression("`true`")
	if e.Match(FilterDocument(m)) {
		t.Fatal("an over-size message must fail closed")
	}
}

func TestExpressionCostBound(t *testing.T) {
	items := make([]string, 2000)
	for i := range items {
		items[i] = `"` + strings.Repeat("y", 20) + `"`
	}
	m := exprMessage()
	m.Data = []byte(`{"items":[` + strings.Join(items, ",") + `]}`)
	// A 1 KB separator joined over 2000 items would build 2 MB: refused, fails closed.
	e, err := CompileExpression("length(join('" + strings.Repeat("s", 1000) + "', data.items)) > `0`")
	if err != nil {
		t.Fatal(err)
	}
	if e.Match(FilterDocument(m)) {
		t.Fatal("over-budget evaluation must fail closed")
	}
	e, _ = CompileExpression("length(join(',', data.items)) > `0`")
	if !e.Match(FilterDocument(m)) {
		t.Fatal("in-budget join refused")
	}
}

func TestExpressionNoDocumentWithoutExpression(t *testing.T) {
	f, _ := ParseFilter(json.RawMessage(`{"key":"region","cmp":"eq","val":"eu"}`), nil)
	m := exprMessage()
	doc := NewLazyDocument(m)
	if !f.MatchMessage(m, &doc) || doc.built {
		t.Fatal("a tags-only filter must not project the message")
	}
	allocs := testing.AllocsPerRun(100, func() { f.MatchMessage(m, &doc) })
	if allocs != 0 {
		t.Fatalf("tags-only MatchMessage allocates %v", allocs)
	}
}

func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{
		`"data.total >= ` + "`100`" + ` && headers.priority == ` + "`\"high\"`" + `"`,
		`{"language":"jmespath","source":"tags.region == 'eu'"}`,
		`"sort_by(data.items, &price)[0].name"`, `"a[?b > ` + "`1`" + `].c | [0]"`,
		`"join(',', data[*].x)"`, `"let $x = a in $x"`, `"$"`, `"a.(b"`, `{"source":1}`, `7`,
		`"map(&length(@), data.items)"`, `"{a: event, b: [channel, name]}"`, `"data[::-1]"`,
	} {
		f.Add(s)
	}
	doc := FilterDocument(exprMessage())
	f.Fuzz(func(t *testing.T, raw string) {
		e, err := ParseExpressionOption(json.RawMessage(raw))
		if err != nil {
			if e != nil || err.Code != CodeChannelError {
				t.Fatalf("error %v with expression %v", err, e)
			}
			return
		}
		if e == nil {
			return
		}
		e.Match(doc)
		e.Match(FilterDocument(&Message{Event: "e", Data: []byte(`[1,"a",{"b":null}]`)}))
	})
}

func BenchmarkExpressionMatch(b *testing.B) {
	e, err := CompileExpression("data.total >= `100` && headers.priority == 'high'")
	if err != nil {
		b.Fatal(err)
	}
	m := exprMessage()
	b.Run("project+eval", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Match(FilterDocument(m))
		}
	})
	doc := FilterDocument(m)
	b.Run("eval", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Match(doc)
		}
	})
}
