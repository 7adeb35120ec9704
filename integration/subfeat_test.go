package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestV2SubscriptionFeatures drives the subscription features sockudo-js and sockudo_flutter
// expose (issue 15 §3) with raw frames: JMESPath filter expressions, wildcard subscriptions,
// [meta] metachannels and the algorithm list of enable_delta_compression — and their refusals,
// after which the connection and its neighbours carry on.
func TestV2SubscriptionFeatures(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	groups := []struct {
		name string
		run  func(t *testing.T, s *testkit.Server)
	}{
		{"Expression", testV2Expression},
		{"ExpressionRefused", testV2ExpressionRefused},
		{"Wildcard", testV2Wildcard},
		{"WildcardRefused", testV2WildcardRefused},
		{"Metachannel", testV2Metachannel},
		{"DeltaAlgorithms", testV2DeltaAlgorithms},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, s)
		})
	}
}

func testV2Expression(t *testing.T, s *testkit.Server) {
	const ch = "v2-expr-orders"
	// The two forms sockudo-js and sockudo_flutter send, ANDed with events and tags.
	str := connectV2(t, s, v2Options{})
	str.subscribeV2(t, ch, map[string]any{"filter": map[string]any{
		"expression": "headers.priority == 'high' && type(data) == 'string'"}})
	obj := connectV2(t, s, v2Options{})
	obj.subscribeV2(t, ch, map[string]any{"filter": map[string]any{
		"events":     []string{"order.updated"},
		"tags":       map[string]any{"key": "region", "cmp": "eq", "val": "eu"},
		"expression": map[string]any{"language": "jmespath", "source": "contains(data, 'rush') || serial == `0`"}}})
	all := connectV2(t, s, v2Options{})
	all.subscribeV2(t, ch, nil)

	pubs := []struct {
		event, data, priority, region string
		str, obj                      bool
	}{
		{"order.updated", "rush 1", "high", "eu", true, true},
		{"order.updated", "slow 2", "high", "eu", true, false},
		{"order.created", "rush 3", "low", "eu", false, false},
		{"order.updated", "rush 4", "low", "us", false, false},
		{"order.updated", "rush 5", "", "eu", false, true},
	}
	for _, p := range pubs {
		body := map[string]any{"name": p.event, "channel": ch, "data": p.data, "tags": map[string]string{"region": p.region}}
		if p.priority != "" {
			body["extras"] = map[string]any{"headers": map[string]any{"priority": p.priority}}
		}
		publish(t, s, body)
	}
	for _, p := range pubs {
		if f := all.nextMessage(t); f.dataString() != p.data {
			t.Fatalf("unfiltered got %s, want %s", f.raw, p.data)
		}
		if p.str {
			if f := str.nextMessage(t); f.dataString() != p.data {
				t.Fatalf("string-expression subscriber got %s, want %s", f.raw, p.data)
			}
		}
		if p.obj {
			if f := obj.nextMessage(t); f.dataString() != p.data {
				t.Fatalf("compound subscriber got %s, want %s", f.raw, p.data)
			}
		}
	}
	str.expectQuiet(t)
	obj.expectQuiet(t)

	t.Run("client event data is the sender's JSON", func(t *testing.T) {
		const pch = "private-v2-expr-chat"
		a := connectV2(t, s, v2Options{})
		a.subscribeV2(t, pch, map[string]any{"filter": map[string]any{"expression": "data.n > `1`"}})
		b := connectV2(t, s, v2Options{})
		b.subscribeV2(t, pch, nil)
		for n := range 3 {
			b.sendEvent(t, "client-n", pch, map[string]int{"n": n})
		}
		if f := a.nextMessage(t); !strings.Contains(string(f.Data), `"n":2`) {
			t.Fatalf("got %s, want n=2", f.raw)
		}
		a.expectQuiet(t)
	})
}

func testV2ExpressionRefused(t *testing.T, s *testkit.Server) {
	const ch = "v2-expr-bad"
	neighbour := connectV2(t, s, v2Options{})
	neighbour.subscribeV2(t, ch, nil)
	c := connectV2(t, s, v2Options{})
	bad := []struct {
		expr any
		want string
	}{
		{"data.total >=", "does not compile"},
		{strings.Repeat("a", protocol.MaxExpressionBytes+1), "the limit is 4096"},
		{strings.Repeat("a.", 40) + "a", "too deep"},
		{"[" + strings.Repeat("a,", 300) + "a]", "too large"},
		{"pad_left(event, `1000000000`)", `unknown function "pad_left"`},
		{map[string]any{"language": "jsonata", "source": "a"}, `language "jsonata" is not supported`},
		{map[string]any{"language": "jmespath"}, "must not be empty"},
		{42, "must be a JMESPath string"},
	}
	for _, b := range bad {
		c.sendSubscribeV2(t, ch, map[string]any{"filter": map[string]any{"expression": b.expr}})
		if msg := c.expectV2Error(t, 4300); !strings.Contains(msg, "filter.expression") || !strings.Contains(msg, b.want) {
			t.Errorf("expression %.40v: message %q, want %q", b.expr, msg, b.want)
		}
		c.expectV2(t, "sockudo:subscription_error", ch)
	}
	c.pingV2(t) // still connected, and not subscribed:
	publish(t, s, map[string]any{"name": "e", "channel": ch, "data": "after"})
	if f := neighbour.nextMessage(t); f.dataString() != "after" {
		t.Fatalf("neighbour got %s", f.raw)
	}
	c.expectQuiet(t)
}

func testV2Wildcard(t *testing.T, s *testkit.Server) {
	id := protocol.NewUUID()
	pattern := "wildcard-" + id + "-*"
	c := connectV2(t, s, v2Options{})
	ack := c.subscribeV2(t, pattern, nil)
	if ack.raw != `{"event":"sockudo_internal:subscription_succeeded","channel":"`+pattern+`","data":"{}"}` {
		t.Fatalf("ack %s", ack.raw)
	}
	exact := connectV2(t, s, v2Options{})
	exact.subscribeV2(t, "wildcard-"+id+"-match", nil)
	// Both the exact channel and the pattern: one frame per message.
	both := connectV2(t, s, v2Options{})
	both.subscribeV2(t, "wildcard-"+id+"-match", nil)
	both.subscribeV2(t, pattern, nil)
	filtered := connectV2(t, s, v2Options{})
	filtered.subscribeV2(t, pattern, map[string]any{"filter": map[string]any{"expression": "channel == 'wildcard-" + id + "-b'"}})

	for _, p := range []struct{ ch, marker string }{
		{"wildcard-" + id + "-match", "match"},
		{"other-" + id + "-miss", "miss"},
		{"wildcard-" + id + "-b", "b"},
	} {
		publish(t, s, map[string]any{"name": "wildcard-event", "channel": p.ch, "data": `{"marker":"` + p.marker + `"}`})
	}
	for _, want := range []string{"wildcard-" + id + "-match", "wildcard-" + id + "-b"} {
		if f := c.nextMessage(t); f.Channel != want || f.Event != "wildcard-event" {
			t.Fatalf("wildcard subscriber got %s, want a message on %s", f.raw, want)
		}
	}
	// The exact subscription of a history channel holds live messages back for a moment
	// after its ack (hold.go), so across channels the order may differ; each comes once.
	got := map[string]int{}
	for range 2 {
		got[both.nextMessage(t).Channel]++
	}
	if got["wildcard-"+id+"-match"] != 1 || got["wildcard-"+id+"-b"] != 1 {
		t.Fatalf("exact+wildcard subscriber got %v", got)
	}
	if f := exact.nextMessage(t); f.Channel != "wildcard-"+id+"-match" {
		t.Fatalf("exact got %s", f.raw)
	}
	if f := filtered.nextMessage(t); f.Channel != "wildcard-"+id+"-b" {
		t.Fatalf("filtered wildcard got %s", f.raw)
	}
	for _, q := range []*v2Client{c, both, exact, filtered} {
		q.expectQuiet(t)
	}
	// After unsubscribing, nothing more.
	c.sendEvent(t, "sockudo:unsubscribe", "", map[string]string{"channel": pattern})
	c.pingV2(t) // the unsubscribe was handled
	publish(t, s, map[string]any{"name": "wildcard-event", "channel": "wildcard-" + id + "-x", "data": "{}"})
	if f := both.nextMessage(t); f.Channel != "wildcard-"+id+"-x" {
		t.Fatalf("remaining pattern subscriber got %s", f.raw)
	}
	c.expectQuiet(t)
}

func testV2WildcardRefused(t *testing.T, s *testkit.Server) {
	neighbour := connectV2(t, s, v2Options{})
	neighbour.subscribeV2(t, "v2-wild-ok-*", nil)
	c := connectV2(t, s, v2Options{})
	bad := []struct{ ch, want string }{
		{"a*b*", "exactly one '*'"},
		{"private-v2-*", "only supported for public channels"},
		{"presence-v2-*", "only supported for public channels"},
		{"room#*", "user-limited"},
		{"room,*", "invalid character"},
	}
	for _, b := range bad {
		c.sendSubscribeV2(t, b.ch, nil)
		if msg := c.expectV2Error(t, 4300); !strings.Contains(msg, b.want) {
			t.Errorf("%s: %q, want %q", b.ch, msg, b.want)
		}
		c.expectV2(t, "sockudo:subscription_error", b.ch)
	}
	// Over the per-connection limit (16 by default).
	for i := range 16 {
		c.subscribeV2(t, fmt.Sprintf("v2-wild-%d-*", i), nil)
	}
	c.sendSubscribeV2(t, "v2-wild-16-*", nil)
	if msg := c.expectV2Error(t, 4300); !strings.Contains(msg, "already holds 16 wildcard subscriptions") {
		t.Fatalf("limit message %q", msg)
	}
	c.expectV2(t, "sockudo:subscription_error", "v2-wild-16-*")
	c.pingV2(t)
	// V1 connections may not use wildcards.
	v1 := connect(t, s)
	v1.send(t, `{"event":"pusher:subscribe","data":{"channel":"v2-wild-*"}}`)
	if msg := v1.expectError(t, 4300); !strings.Contains(msg, "only supported on protocol V2") {
		t.Fatalf("V1 message %q", msg)
	}
	v1.expectSubscriptionError(t, "v2-wild-*", "SubscriptionError", 400)
	publish(t, s, map[string]any{"name": "e", "channel": "v2-wild-ok-1", "data": "x"})
	if f := neighbour.nextMessage(t); f.Channel != "v2-wild-ok-1" {
		t.Fatalf("neighbour got %s", f.raw)
	}
}

func testV2Metachannel(t *testing.T, s *testkit.Server) {
	base := "meta-room-" + protocol.NewUUID()
	m := connectV2(t, s, v2Options{})
	m.subscribeV2(t, "[meta]"+base, nil)
	member := connectV2(t, s, v2Options{})
	member.subscribeV2(t, base, nil)
	member2 := connect(t, s)
	member2.subscribe(t, base)
	member.sendEvent(t, "sockudo:unsubscribe", "", map[string]string{"channel": base})
	member2.close()
	want := []string{
		`{"event":"sockudo_internal:channel_occupied","channel":"[meta]` + base + `","data":{"channel":"` + base + `","subscription_count":1}}`,
		`{"event":"sockudo_internal:subscription_count","channel":"[meta]` + base + `","data":{"channel":"` + base + `","subscription_count":1}}`,
		`{"event":"sockudo_internal:subscription_count","channel":"[meta]` + base + `","data":{"channel":"` + base + `","subscription_count":2}}`,
		`{"event":"sockudo_internal:subscription_count","channel":"[meta]` + base + `","data":{"channel":"` + base + `","subscription_count":1}}`,
		`{"event":"sockudo_internal:channel_vacated","channel":"[meta]` + base + `","data":{"channel":"` + base + `","subscription_count":0}}`,
	}
	for _, w := range want {
		m.expect(t, w)
	}
	m.expectQuiet(t)

	t.Run("refused", func(t *testing.T) {
		c := connectV2(t, s, v2Options{})
		c.sendSubscribeV2(t, "[meta]private-room", nil)
		if msg := c.expectV2Error(t, 4009); !strings.Contains(msg, "capability token") {
			t.Fatalf("private metachannel: %q", msg)
		}
		c.expectV2(t, "sockudo:subscription_error", "[meta]private-room")
		c.sendSubscribeV2(t, "[meta]room*", nil)
		c.expectV2Error(t, 4300)
		c.expectV2(t, "sockudo:subscription_error", "[meta]room*")
		c.pingV2(t)
		v1 := connect(t, s)
		v1.send(t, `{"event":"pusher:subscribe","data":{"channel":"[meta]room"}}`)
		if msg := v1.expectError(t, 4300); !strings.Contains(msg, "only supported on protocol V2") {
			t.Fatalf("V1: %q", msg)
		}
	})
	t.Run("with a token granting the watched channel", func(t *testing.T) {
		const pch = "presence-v2-meta"
		tok := mintToken(t, "watcher", map[string][]string{pch: {"subscribe"}, "[meta]" + pch: {"subscribe"}}, time.Hour)
		w := connectV2(t, s, v2Options{token: tok})
		w.subscribeV2(t, "[meta]"+pch, nil)
		p := connectV2(t, s, v2Options{})
		p.sendSubscribeV2(t, pch, map[string]any{"channel_data": `{"user_id":"u-9"}`})
		p.expectV2(t, "sockudo_internal:subscription_succeeded", pch)
		f := w.expectV2(t, "sockudo_internal:member_added", "[meta]"+pch)
		var d struct {
			Channel string `json:"channel"`
			UserID  string `json:"user_id"`
		}
		if json.Unmarshal(f.Data, &d) != nil || d.Channel != pch || d.UserID != "u-9" {
			t.Fatalf("member_added %s", f.raw)
		}
		w.expectV2(t, "sockudo_internal:channel_occupied", "[meta]"+pch)
	})
}

func testV2DeltaAlgorithms(t *testing.T, s *testkit.Server) {
	c := connectV2(t, s, v2Options{})
	c.sendEvent(t, "sockudo:enable_delta_compression", "", map[string]any{"algorithms": []string{"zstd"}})
	if msg := c.expectV2Error(t, 4000); !strings.Contains(msg, `this server offers "fossil" and "xdelta3"`) {
		t.Fatalf("unknown-only list: %q", msg)
	}
	c.sendEvent(t, "sockudo:enable_delta_compression", "", map[string]any{"algorithms": []string{"xdelta3", "fossil"}})
	f := c.expectV2(t, "sockudo:delta_compression_enabled", "")
	if string(f.Data) != `{"enabled":true,"algorithm":"xdelta3"}` {
		t.Fatalf("answer %s", f.raw)
	}
	c.sendEvent(t, "sockudo:enable_delta_compression", "", map[string]any{"algorithms": []string{"fossil", "xdelta3"}})
	if f := c.expectV2(t, "sockudo:delta_compression_enabled", ""); string(f.Data) != `{"enabled":true,"algorithm":"fossil"}` {
		t.Fatalf("answer %s", f.raw)
	}
	c.pingV2(t)
}
