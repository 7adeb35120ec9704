package channels_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// connectV2 opens a V2 connection of the default app with these options.
func connectV2(t testing.TB, h *channels.Hub, opts channels.ConnOptions) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	s := channelstest.NewV2(nextSocketID())
	c, err := h.ConnectWith(appKey, s, opts)
	if err != nil {
		t.Fatalf("ConnectWith: %v", err)
	}
	return c, s
}

func decodeV2(t testing.TB, frame string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(frame), &m); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	return m
}

func mustFilter(t testing.TB, tags, filter string) *protocol.Filter {
	t.Helper()
	var a, b json.RawMessage
	if tags != "" {
		a = json.RawMessage(tags)
	}
	if filter != "" {
		b = json.RawMessage(filter)
	}
	f, err := protocol.ParseFilter(a, b)
	if err != nil {
		t.Fatalf("ParseFilter: %v", err)
	}
	return f
}

func TestV2FanoutSharesOneEncodingPerVersion(t *testing.T) {
	h, _ := newHub(t, nil)
	const ch = "orders"
	var v1s, v2s []*channelstest.Sub
	for i := range 3 {
		c, s := connect(t, h)
		mustSubscribe(t, c, s, ch, "")
		s.Take()
		v1s = append(v1s, s)
		c2, s2 := connectV2(t, h, channels.ConnOptions{Echo: true})
		req := subReq(s2, ch, "")
		if i == 2 {
			req.Filter = mustFilter(t, `{"key":"region","cmp":"eq","val":"us"}`, "")
		}
		if err := c2.Subscribe(req); err != nil {
			t.Fatal(err)
		}
		s2.Take()
		v2s = append(v2s, s2)
	}
	err := h.Publish(appID, channels.Event{Name: "order.paid", Channels: []string{ch}, Data: `{"id":1}`,
		Tags: map[string]string{"region": "eu"}, Extras: []byte(`{"headers":{"tenant":"acme"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	wantV1 := `{"event":"order.paid","channel":"orders","data":"{\"id\":1}"}`
	var first1, first2 []byte
	for i, s := range v1s {
		raw := s.RawFrames()
		if len(raw) != 1 || string(raw[0]) != wantV1 {
			t.Fatalf("V1 subscriber %d got %q, want %s", i, s.Frames(), wantV1)
		}
		if first1 == nil {
			first1 = raw[0]
		} else if &raw[0][0] != &first1[0] {
			t.Errorf("V1 subscribers got separate encodings")
		}
	}
	for i, s := range v2s[:2] {
		raw := s.RawFrames()
		if len(raw) != 1 {
			t.Fatalf("V2 subscriber %d got %q", i, s.Frames())
		}
		m := decodeV2(t, string(raw[0]))
		if string(m["tags"]) != `{"region":"eu"}` || string(m["extras"]) != `{"headers":{"tenant":"acme"}}` || len(m["message_id"]) != 38 {
			t.Fatalf("V2 frame %s", raw[0])
		}
		if first2 == nil {
			first2 = raw[0]
		} else if &raw[0][0] != &first2[0] {
			t.Errorf("V2 subscribers got separate encodings")
		}
	}
	if got := v2s[2].Frames(); len(got) != 0 {
		t.Errorf("filtered V2 subscriber (region=us) got %q", got)
	}
}

func TestV2ClientEventEcho(t *testing.T) {
	h, _ := newHub(t, nil)
	const ch = "private-room"
	echo, es := connectV2(t, h, channels.ConnOptions{Echo: true})
	quiet, qs := connectV2(t, h, channels.ConnOptions{Echo: false})
	v1, vs := connect(t, h)
	for _, p := range []struct {
		c *channels.Conn
		s *channelstest.Sub
	}{{echo, es}, {quiet, qs}, {v1, vs}} {
		mustSubscribe(t, p.c, p.s, ch, "")
		p.s.Take()
	}
	send := func(c *channels.Conn) {
		t.Helper()
		if err := c.ClientEvent(protocol.Frame{Event: "client-x", Channel: ch, Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	send(echo)
	if got := es.Take(); len(got) != 1 || !strings.Contains(got[0], `"message_id"`) {
		t.Errorf("echo sender got %q", got)
	}
	if got := qs.Take(); len(got) != 1 {
		t.Errorf("quiet receiver got %q", got)
	}
	wantFrames(t, "V1 receiver", vs, `{"event":"client-x","channel":"private-room","data":{}}`)
	send(quiet)
	wantFrames(t, "quiet sender", qs)
	es.Take()
	vs.Take()
	send(v1)
	wantFrames(t, "V1 sender", vs)
}

func TestV2PresenceUpdate(t *testing.T) {
	h, _ := newHub(t, nil)
	const ch = "presence-agents"
	a, as := connectV2(t, h, channels.ConnOptions{})
	b, bs := connectV2(t, h, channels.ConnOptions{})
	v, vs := connect(t, h)
	mustSubscribe(t, a, as, ch, member("agent-1", `{"s":"idle"}`))
	mustSubscribe(t, b, bs, ch, member("agent-2", ""))
	mustSubscribe(t, v, vs, ch, member("watcher", ""))
	as.Take()
	bs.Take()
	vs.Take()
	if err := a.PresenceUpdate(json.RawMessage(`{"channel":"`+ch+`","data":{"s":"busy"}}`), ""); err != nil {
		t.Fatal(err)
	}
	want := `{"event":"sockudo_internal:presence_update","channel":"presence-agents","data":"{\"user_id\":\"agent-1\",\"user_info\":{\"s\":\"busy\"}}"}`
	wantFrames(t, "sender", as, want)
	wantFrames(t, "V2 member", bs, want)
	wantFrames(t, "V1 member", vs)
	// Frame-level channel, data as a JSON string.
	if err := a.PresenceUpdate(json.RawMessage(`"{\"data\":{\"s\":\"away\"}}"`), ch); err != nil {
		t.Fatal(err)
	}
	if got := bs.Take(); len(got) != 1 || !strings.Contains(got[0], `away`) {
		t.Errorf("got %q", got)
	}
	wantCode(t, "V1", v.PresenceUpdate(json.RawMessage(`{"channel":"`+ch+`","data":{}}`), ""), protocol.CodeGeneric)
	wantCode(t, "too big", a.PresenceUpdate(json.RawMessage(`{"channel":"`+ch+`","data":{"x":"`+strings.Repeat("a", 1100)+`"}}`), ""), protocol.CodeChannelError)
	wantCode(t, "not a member", a.PresenceUpdate(json.RawMessage(`{"channel":"presence-other","data":{}}`), ""), protocol.CodeChannelError)
	wantCode(t, "not presence", a.PresenceUpdate(json.RawMessage(`{"channel":"private-x","data":{}}`), ""), protocol.CodeChannelError)
	var err *protocol.Error
	for range channels.MaxPresenceUpdatesPerSecond + 1 {
		err = a.PresenceUpdate(json.RawMessage(`{"channel":"`+ch+`","data":{}}`), "")
	}
	wantCode(t, "rate", err, protocol.CodeClientEventRefused)
}

func testToken(t testing.TB, clk *testkit.Clock, client string, grants map[string][]string, ttl time.Duration) *protocol.TokenClaims {
	t.Helper()
	raw, err := protocol.SignCapabilityToken(appKey, secret, protocol.TokenRequest{ClientID: client, JTI: protocol.NewUUID(), Capability: grants, IssuedAt: clk.Now(), TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	claims, perr := protocol.ParseCapabilityToken(raw, appKey, secret, clk.Now())
	if perr != nil {
		t.Fatal(perr)
	}
	return claims
}

func TestV2TokenGrantsAndRevocation(t *testing.T) {
	h, clk := newHub(t, nil)
	tok := testToken(t, clk, "u1", map[string][]string{"private-a:*": {"subscribe"}, "presence-p": {"subscribe"}}, time.Hour)
	c, s := connectV2(t, h, channels.ConnOptions{Token: tok})
	mustSubscribe(t, c, s, "private-a:1", "")
	wantCode(t, "ungranted", c.Subscribe(subReq(s, "private-b", "")), protocol.CodeUnauthorized)
	wantCode(t, "presence without presence grant", c.Subscribe(subReq(s, "presence-p", member("u1", ""))), protocol.CodeUnauthorized)
	wantCode(t, "publish", c.ClientEvent(protocol.Frame{Event: "client-x", Channel: "private-a:1"}), protocol.CodeClientEventRefused)
	s.Take()
	// terminate_connections reaches a token's client id.
	n, err := h.Revoke(appID, channels.Revocation{ClientID: "u1", Until: clk.Now().Add(time.Hour)})
	if err != nil || n != 1 {
		t.Fatalf("Revoke = %d, %v", n, err)
	}
	wantFrames(t, "revoked", s, `{"event":"sockudo:token_expired","data":{"code":40160,"reason":"revoked"}}`)
	if cl := s.Closed(); cl == nil || cl.Code != protocol.CodeUnauthorized {
		t.Fatalf("closed with %v", cl)
	}
	c.Disconnect()
	if _, err := h.ConnectWith(appKey, channelstest.NewV2(nextSocketID()), channels.ConnOptions{Token: tok}); err == nil || !strings.Contains(err.Message, "revoked") {
		t.Fatalf("reconnect with a revoked token: %v", err)
	}
	clk.Add(2 * time.Hour)
	if _, err := h.ConnectWith(appKey, channelstest.NewV2(nextSocketID()), channels.ConnOptions{Token: tok}); err != nil {
		t.Fatalf("after the revocation ended: %v", err)
	}
}

func TestV2TokenExpiryAndRefresh(t *testing.T) {
	const grace = 50 * time.Millisecond
	app := config.DefaultApp()
	app.ApplyDefaults()
	clk := testkit.NewClock(testEpoch)
	h := channels.New([]config.App{app}, channels.Options{TokenRefreshGrace: grace, Now: clk.Now, AfterFunc: hubTimers(clk)})
	grants := map[string][]string{"*": {"subscribe"}}
	// Refreshed in time: stays open.
	c, s := connectV2(t, h, channels.ConnOptions{Token: testToken(t, clk, "u", grants, 10*time.Millisecond)})
	if f := s.Take(); len(f) != 0 {
		t.Fatalf("frames before expiry: %q", f)
	}
	clk.Add(10 * time.Millisecond)
	if got := s.Take(); len(got) != 1 || got[0] != `{"event":"sockudo:token_expired","data":{"code":40142,"reason":"expired"}}` {
		t.Fatalf("at expiry got %q", got)
	}
	wantCode(t, "other client", c.RefreshToken(testToken(t, clk, "v", grants, time.Hour)), protocol.CodeUnauthorized)
	if err := c.RefreshToken(testToken(t, clk, "u", grants, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f := s.Take(); len(f) != 1 || !strings.HasPrefix(f[0], `{"event":"sockudo:auth_success","data":{"client_id":"u","jti":`) {
		t.Fatalf("got %q", f)
	}
	clk.Add(3 * grace) // past the grace: the refreshed token keeps it open
	if cl := s.Closed(); cl != nil {
		t.Fatalf("closed after a refresh: %v", cl)
	}
	// Not refreshed: closed with 4009 when the grace ends, not before.
	_, s2 := connectV2(t, h, channels.ConnOptions{Token: testToken(t, clk, "w", grants, 10*time.Millisecond)})
	clk.Add(10 * time.Millisecond)
	clk.Add(grace - time.Nanosecond)
	if cl := s2.Closed(); cl != nil {
		t.Fatalf("closed within the grace: %v", cl)
	}
	clk.Add(time.Nanosecond)
	if cl := s2.Closed(); cl == nil || cl.Code != protocol.CodeUnauthorized || cl.Message != "capability token expired" {
		t.Fatalf("closed with %v", cl)
	}
}

// BenchmarkFilteredFanout10k publishes to 10,000 V2 subscribers, half of them filtering on
// a tag: the V2 frame is encoded once (allocations do not grow with subscribers).
func BenchmarkFilteredFanout10k(b *testing.B) {
	h := benchHub(b, nil)
	f := mustFilter(b, `{"op":"and","nodes":[{"key":"market","cmp":"eq","val":"spot"},{"key":"price","cmp":"gte","val":"100"}]}`, "")
	for i := range 10_000 {
		s := newBenchSub(i)
		s.v = protocol.V2
		c := benchConnect(b, h, s)
		req := channels.SubscribeRequest{Channel: "prices"}
		if i%2 == 0 {
			req.Filter = f
		}
		if err := c.Subscribe(req); err != nil {
			b.Fatal(err)
		}
	}
	ev := channels.Event{Name: "tick", Channels: []string{"prices"}, Data: `{"bid":101.5,"ask":101.7}`,
		Tags: map[string]string{"market": "spot", "price": "101.5"}}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Publish(appID, ev); err != nil {
			b.Fatal(err)
		}
	}
}
