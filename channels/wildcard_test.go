package channels_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

func publish(t testing.TB, h *channels.Hub, channel, event, data string, tags map[string]string) {
	t.Helper()
	if err := h.Publish(appID, channels.Event{Name: event, Channels: []string{channel}, Data: data, Tags: tags}); err != nil {
		t.Fatalf("Publish(%s): %v", channel, err)
	}
}

// channelsOf returns the channel of each delivered frame of event.
func channelsOf(t testing.TB, frames []string, event string) []string {
	t.Helper()
	var out []string
	for _, f := range frames {
		m := decodeV2(t, f)
		var ev, ch string
		_ = json.Unmarshal(m["event"], &ev)
		_ = json.Unmarshal(m["channel"], &ch)
		if ev == event {
			out = append(out, ch)
		}
	}
	return out
}

func TestWildcardDelivery(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"ticker:*", []string{"ticker:btc", "ticker:", "ticker:a:b"}, []string{"tick:btc", "xticker:btc"}},
		{"wildcard-5f1c-*", []string{"wildcard-5f1c-match"}, []string{"other-5f1c-miss", "wildcard-5f1d-x"}},
		{"*-data", []string{"price-data", "-data"}, []string{"price-datum", "private-data", "presence-x-data"}},
		{"market-*-eu", []string{"market-btc-eu", "market--eu"}, []string{"market-btc-us", "market-eu"}},
		{"*", []string{"anything", "cache-x"}, []string{"private-x", "presence-x", "private-encrypted-x"}},
		{"pri*", []string{"prices"}, []string{"private-orders"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			h, _ := newHub(t, nil)
			c, s := connectV2(t, h, channels.ConnOptions{})
			if err := c.Subscribe(channels.SubscribeRequest{Channel: tt.pattern}); err != nil {
				t.Fatal(err)
			}
			ack := s.Take()
			if len(ack) != 1 || !strings.Contains(ack[0], `"event":"sockudo_internal:subscription_succeeded","channel":`+fmt.Sprintf("%q", tt.pattern)) {
				t.Fatalf("ack %v", ack)
			}
			for _, ch := range append(append([]string{}, tt.match...), tt.miss...) {
				if strings.HasPrefix(ch, "private-") || strings.HasPrefix(ch, "presence-") {
					// Not publishable without a subscriber; still must never reach the pattern.
				}
				publish(t, h, ch, "e", `{}`, nil)
			}
			got := channelsOf(t, s.Take(), "e")
			if strings.Join(got, ",") != strings.Join(tt.match, ",") {
				t.Fatalf("delivered on %v, want %v", got, tt.match)
			}
		})
	}
}

func TestWildcardOncePerConnection(t *testing.T) {
	h, _ := newHub(t, nil)
	c, s := connectV2(t, h, channels.ConnOptions{})
	for _, ch := range []string{"ticker:btc", "ticker:*", "*:btc"} {
		if err := c.Subscribe(channels.SubscribeRequest{Channel: ch}); err != nil {
			t.Fatal(err)
		}
	}
	other, os := connectV2(t, h, channels.ConnOptions{})
	if err := other.Subscribe(channels.SubscribeRequest{Channel: "*:btc"}); err != nil {
		t.Fatal(err)
	}
	s.Take()
	os.Take()
	publish(t, h, "ticker:btc", "e", `{}`, nil)
	if got := channelsOf(t, s.Take(), "e"); len(got) != 1 || got[0] != "ticker:btc" {
		t.Fatalf("subscriber of the channel and two patterns got %v, want one frame", got)
	}
	if got := channelsOf(t, os.Take(), "e"); len(got) != 1 {
		t.Fatalf("pattern subscriber got %v", got)
	}
	// Unsubscribing the pattern stops it; the index forgets a vacated pattern.
	other.Unsubscribe("*:btc")
	publish(t, h, "ticker:btc", "e", `{}`, nil)
	if got := os.Take(); len(got) != 0 {
		t.Fatalf("after unsubscribe: %v", got)
	}
}

func TestWildcardFiltersAreORed(t *testing.T) {
	h, _ := newHub(t, nil)
	c, s := connectV2(t, h, channels.ConnOptions{})
	if err := c.Subscribe(channels.SubscribeRequest{Channel: "ticker:btc", Filter: mustFilter(t, `{"key":"side","cmp":"eq","val":"buy"}`, "")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(channels.SubscribeRequest{Channel: "ticker:*", Filter: mustFilter(t, "", `{"expression":"tags.side == 'sell'"}`)}); err != nil {
		t.Fatal(err)
	}
	s.Take()
	publish(t, h, "ticker:btc", "e", `"buy"`, map[string]string{"side": "buy"})
	publish(t, h, "ticker:btc", "e", `"sell"`, map[string]string{"side": "sell"})
	publish(t, h, "ticker:btc", "e", `"hold"`, map[string]string{"side": "hold"})
	frames := s.Take()
	if len(frames) != 2 || !strings.Contains(frames[0], `buy`) || !strings.Contains(frames[1], `sell`) {
		t.Fatalf("frames %v", frames)
	}
}

func TestWildcardRefused(t *testing.T) {
	h, _ := newHub(t, func(a *config.App) { a.MaxWildcardSubscriptionsPerConnection, a.MaxWildcardPatterns = 2, 3 })
	c, _ := connectV2(t, h, channels.ConnOptions{})
	v1, _ := connect(t, h)
	checkRefusals(t, []refusal{
		{v1, "ticker:*", 4300, "only supported on protocol V2"},
		{c, "a*b*", 4300, "exactly one '*'"},
		{c, "private-*", 4300, "only supported for public channels"},
		{c, "presence-room-*", 4300, "only supported for public channels"},
		{c, "room#*", 4300, "user-limited"},
		{c, "room,*", 4300, "invalid character ','"},
		{c, strings.Repeat("a", 201) + "*", 4300, "longer than 200 bytes"},
	})
	for _, p := range []string{"a*", "b*"} {
		if err := c.Subscribe(channels.SubscribeRequest{Channel: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Subscribe(channels.SubscribeRequest{Channel: "c*"}); err == nil || err.Code != 4300 || !strings.Contains(err.Message, "already holds 2 wildcard subscriptions") {
		t.Fatalf("per-connection limit: %v", err)
	}
	if err := c.Subscribe(channels.SubscribeRequest{Channel: "a*"}); err != nil {
		t.Fatalf("re-subscribing a held pattern: %v", err)
	}
	c2, _ := connectV2(t, h, channels.ConnOptions{})
	if err := c2.Subscribe(channels.SubscribeRequest{Channel: "c*"}); err != nil {
		t.Fatal(err)
	}
	if err := c2.Subscribe(channels.SubscribeRequest{Channel: "d*"}); err == nil || err.Code != 4100 || !strings.Contains(err.Message, "already has 3 wildcard patterns") {
		t.Fatalf("per-app limit: %v", err)
	}
	if err := c2.Subscribe(channels.SubscribeRequest{Channel: "a*"}); err != nil {
		t.Fatalf("an existing pattern is not a new one: %v", err)
	}
	c.Unsubscribe("b*")
	c3, _ := connectV2(t, h, channels.ConnOptions{})
	if err := c3.Subscribe(channels.SubscribeRequest{Channel: "d*"}); err != nil {
		t.Fatalf("after a pattern was vacated: %v", err)
	}
	if err := c.Subscribe(channels.SubscribeRequest{Channel: "e*"}); err == nil || err.Code != 4100 {
		t.Fatalf("app limit again: %v", err)
	}
}

func metaEvents(t testing.TB, frames []string) []string {
	t.Helper()
	var out []string
	for _, f := range frames {
		m := decodeV2(t, f)
		var ev, ch string
		_ = json.Unmarshal(m["event"], &ev)
		_ = json.Unmarshal(m["channel"], &ch)
		out = append(out, ev+" "+ch+" "+string(m["data"]))
	}
	return out
}

func TestMetachannelLifecycle(t *testing.T) {
	h, _ := newHub(t, nil)
	mc, ms := connectV2(t, h, channels.ConnOptions{})
	if err := mc.Subscribe(channels.SubscribeRequest{Channel: "[meta]room"}); err != nil {
		t.Fatal(err)
	}
	if got := ms.Take(); len(got) != 1 || got[0] != `{"event":"sockudo_internal:subscription_succeeded","channel":"[meta]room","data":"{}"}` && !strings.HasPrefix(got[0], `{"event":"sockudo_internal:subscription_succeeded","channel":"[meta]room"`) {
		t.Fatalf("ack %v", got)
	}
	a, _ := connectV2(t, h, channels.ConnOptions{})
	b, _ := connect(t, h)
	mustSubscribe(t, a, nil, "room", "")
	mustSubscribe(t, b, nil, "room", "")
	a.Unsubscribe("room")
	b.Disconnect()
	want := []string{
		`sockudo_internal:channel_occupied [meta]room {"channel":"room","subscription_count":1}`,
		`sockudo_internal:subscription_count [meta]room {"channel":"room","subscription_count":1}`,
		`sockudo_internal:subscription_count [meta]room {"channel":"room","subscription_count":2}`,
		`sockudo_internal:subscription_count [meta]room {"channel":"room","subscription_count":1}`,
		`sockudo_internal:channel_vacated [meta]room {"channel":"room","subscription_count":0}`,
	}
	if got := metaEvents(t, ms.Take()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A publish on the watched channel does not reach the metachannel.
	publish(t, h, "room", "e", `{}`, nil)
	if got := ms.Take(); len(got) != 0 {
		t.Fatalf("publish reached the metachannel: %v", got)
	}
}

func TestMetachannelPresenceMembers(t *testing.T) {
	h, _ := newHub(t, nil)
	tok := testTokenFor(t, h, map[string][]string{"presence-room": {"subscribe", "presence"}, "[meta]presence-room": {"subscribe"}})
	mc, ms := connectV2(t, h, channels.ConnOptions{Token: tok})
	if err := mc.Subscribe(channels.SubscribeRequest{Channel: "[meta]presence-room"}); err != nil {
		t.Fatal(err)
	}
	ms.Take()
	p, ps := connectV2(t, h, channels.ConnOptions{})
	mustSubscribe(t, p, ps, "presence-room", member("u1", ""))
	if err := p.PresenceUpdate(json.RawMessage(`{"channel":"presence-room","data":{"s":"busy"}}`), ""); err != nil {
		t.Fatal(err)
	}
	p.Unsubscribe("presence-room")
	want := []string{
		`sockudo_internal:member_added [meta]presence-room {"channel":"presence-room","user_id":"u1"}`,
		`sockudo_internal:channel_occupied [meta]presence-room {"channel":"presence-room","subscription_count":1}`,
		`sockudo_internal:subscription_count [meta]presence-room {"channel":"presence-room","subscription_count":1}`,
		`sockudo_internal:presence_update [meta]presence-room {"channel":"presence-room","user_id":"u1"}`,
		`sockudo_internal:member_removed [meta]presence-room {"channel":"presence-room","user_id":"u1"}`,
		`sockudo_internal:channel_vacated [meta]presence-room {"channel":"presence-room","subscription_count":0}`,
	}
	if got := metaEvents(t, ms.Take()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMetachannelRefused(t *testing.T) {
	h, _ := newHub(t, nil)
	v1, _ := connect(t, h)
	c, _ := connectV2(t, h, channels.ConnOptions{})
	checkRefusals(t, []refusal{
		{v1, "[meta]room", 4300, "only supported on protocol V2"},
		{c, "[meta]room*", 4300, "must name one channel"},
		{c, "[meta][meta]room", 4300, "must name one channel"},
		{c, "[meta]ro om", 4300, "not allowed"},
		{c, "[meta]private-room", 4009, "needs a capability token"},
		{c, "[meta]presence-room", 4009, "needs a capability token"},
		{c, "[meta]", 4300, "not allowed"},
	})
	tok := testTokenFor(t, h, map[string][]string{"[meta]*": {"subscribe"}})
	tc, _ := connectV2(t, h, channels.ConnOptions{Token: tok})
	if err := tc.Subscribe(channels.SubscribeRequest{Channel: "[meta]private-room"}); err == nil || err.Code != 4009 {
		t.Fatalf("token without subscribe on the watched channel: %v", err)
	}
}

// testTokenFor is a capability token for client "c" with these grants.
func testTokenFor(t testing.TB, h *channels.Hub, grants map[string][]string) *protocol.TokenClaims {
	t.Helper()
	return testToken(t, testkit.NewClock(testEpoch), "c", grants, time.Hour)
}

// refusal is a subscribe that must fail with code and a message containing want.
type refusal struct {
	conn *channels.Conn
	ch   string
	code int
	want string
}

func checkRefusals(t *testing.T, tests []refusal) {
	t.Helper()
	for _, tt := range tests {
		err := tt.conn.Subscribe(channels.SubscribeRequest{Channel: tt.ch})
		if err == nil || err.Code != tt.code || !strings.Contains(err.Message, tt.want) {
			t.Errorf("%.40s: %v, want %d %q", tt.ch, err, tt.code, tt.want)
		}
	}
}
