package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestV2 runs the protocol=2 groups against one server with the default app.
func TestV2(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	groups := []struct {
		name string
		run  func(t *testing.T, s *testkit.Server)
	}{
		{"Handshake", testV2Handshake},
		{"Matrix", testV1V2Matrix},
		{"Echo", testV2Echo},
		{"Filters", testV2Filters},
		{"PresenceUpdate", testV2PresenceUpdate},
		{"Idempotency", testV2Idempotency},
		{"Tokens", testV2Tokens},
		{"Revocation", testV2Revocation},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, s)
		})
	}
}

func testV2Handshake(t *testing.T, s *testkit.Server) {
	t.Run("prefixes both ways", func(t *testing.T) {
		c := connectV2(t, s, v2Options{})
		c.pingV2(t)
		// Inbound, the pusher: family is accepted on V2; the answer keeps the V2 prefix.
		c.send(t, `{"event":"pusher:ping","data":{}}`)
		c.expect(t, `{"event":"sockudo:pong"}`)
		c.sendEvent(t, "pusher:subscribe", "", map[string]string{"channel": "v2-hs-a"})
		c.expect(t, `{"event":"sockudo_internal:subscription_succeeded","channel":"v2-hs-a","data":"{\"attach_serial\":0}"}`)
		c.send(t, `{"event":"sockudo:subscribe","data":{"channel":"private-v2-hs"}}`)
		c.expectV2Error(t, 4009)
		c.expectV2(t, "sockudo:subscription_error", "private-v2-hs")
		c.send(t, `not json`)
		c.expectV2Error(t, 4000)
		// A V1 connection accepts sockudo: names inbound and answers with pusher: names.
		v1 := connect(t, s)
		v1.send(t, `{"event":"sockudo:ping","data":{}}`)
		v1.expect(t, `{"event":"pusher:pong"}`)
	})
	t.Run("only protocol=2 selects V2", func(t *testing.T) {
		for _, p := range []string{"7", "5", "99", "", "two", "2.0"} {
			u := strings.Replace(s.WSURL(testkit.AppKey), "protocol=7", "protocol="+p, 1)
			c := dial(t, u, dialOptions{})
			c.expectHandshake(t, 120)
			c.close()
		}
	})
	t.Run("query parameters", func(t *testing.T) {
		ok := []string{"format=JSON", "append_mode=full", "append_rollup_window=100", "echo_messages=true", "client=flutter&version=2.2.0"}
		for _, q := range ok {
			c := connectV2(t, s, v2Options{extra: q})
			c.close()
		}
		// The binary formats answer in binary (the handshake here; everything else in
		// server, channels and sdkcompat tests).
		for q, form := range map[string]protocol.Form{"format=msgpack": protocol.FormMsgpack, "format=protobuf": protocol.FormProtobuf,
			"format=proto&client=flutter": protocol.FormProtobufFlutter} {
			u := strings.Replace(v2URL(s, testkit.AppKey, v2Options{}), "&format=json&append_mode=delta", "", 1) + "&" + q
			ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
			ws, _, err := websocket.Dial(ctx, u, nil)
			if err != nil {
				cancel()
				t.Fatalf("%s: %v", q, err)
			}
			typ, b, err := ws.Read(ctx)
			cancel()
			_ = ws.CloseNow()
			if err != nil || typ != websocket.MessageBinary {
				t.Fatalf("%s: first message %v %v", q, typ, err)
			}
			if f, perr := protocol.DecodeBinary(form, b); perr != nil || f.Event != "sockudo:connection_established" {
				t.Errorf("%s: handshake %+v %v", q, f, perr)
			}
		}
		bad := map[string]string{
			"format=xml":              "unknown format",
			"append_mode=sometimes":   "append_mode",
			"append_rollup_window=33": "append_rollup_window",
		}
		for q, want := range bad {
			u := strings.Replace(v2URL(s, testkit.AppKey, v2Options{}), "&format=json&append_mode=delta", "", 1) + "&" + q
			status, body := upgradeStatus(t, u)
			if status != http.StatusBadRequest || !strings.Contains(body, want) {
				t.Errorf("%s: HTTP %d %q, want 400 mentioning %q", q, status, body, want)
			}
		}
		// V1 ignores the V2 parameters, as Sockudo does.
		c := dial(t, s.WSURL(testkit.AppKey)+"&format=xml&append_mode=x", dialOptions{})
		c.expectHandshake(t, 120)
	})
	t.Run("error before close keeps the prefix", func(t *testing.T) {
		c := dial(t, strings.Replace(v2URL(s, testkit.AppKey, v2Options{}), "/app/"+testkit.AppKey, "/app/no-such-key", 1), dialOptions{})
		v := &v2Client{client: c}
		v.expectV2Error(t, 4001)
		c.expectClose(t, 4001)
	})
}

// upgradeStatus attempts a WebSocket upgrade that the server should refuse over HTTP.
func upgradeStatus(t testing.TB, wsURL string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, wsURL, nil)
	if err == nil {
		t.Fatalf("upgrade of %s succeeded, want an HTTP error", wsURL)
	}
	if resp == nil {
		t.Fatalf("upgrade of %s: %v (no HTTP answer)", wsURL, err)
	}
	defer resp.Body.Close()
	b := make([]byte, 512)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, string(b[:n])
}

// testV1V2Matrix publishes once and compares what a V1 and a V2 socket get, byte for byte,
// with the golden frames in testdata/golden (message_id and stream_id normalised).
func testV1V2Matrix(t *testing.T, s *testkit.Server) {
	const ch = "v2-matrix-orders"
	v1 := connect(t, s)
	v1.subscribe(t, ch)
	v2 := connectV2(t, s, v2Options{})
	v2.subscribeV2(t, ch, nil)
	cases := []struct {
		golden string
		body   map[string]any
	}{
		{"publish_plain", map[string]any{"name": "order.created", "channel": ch, "data": `{"id":"ord_123","total":4200}`}},
		{"publish_tags_extras", map[string]any{"name": "order.paid", "channel": ch, "data": map[string]any{"id": "ord_123"},
			"tags":   map[string]string{"status": "paid", "region": "eu"},
			"extras": map[string]any{"headers": map[string]any{"tenant": "acme", "priority": 1, "urgent": true}}}},
		{"publish_ephemeral", map[string]any{"name": "order.typing", "channel": ch, "data": "x",
			"extras": map[string]any{"ephemeral": true}}},
	}
	var lastSerial uint64
	for _, tc := range cases {
		publish(t, s, tc.body)
		gotV1 := v1.next(t)
		f := v2.nextV2(t)
		gotV2 := normalizeIDs(t, f.raw)
		wantV1 := compactJSON(t, readGolden(t, tc.golden+".v1.json"))
		wantV2 := compactJSON(t, readGolden(t, tc.golden+".v2.json"))
		// Serials are per channel and increase by one per non-ephemeral publish.
		if f.Serial != 0 {
			if lastSerial != 0 && f.Serial != lastSerial+1 {
				t.Errorf("%s: serial %d after %d", tc.golden, f.Serial, lastSerial)
			}
			lastSerial = f.Serial
			gotV2 = strings.Replace(gotV2, `"serial":`+itoa(f.Serial), `"serial":"<SERIAL>"`, 1)
			// The default app makes publishes mutable messages: a create's history serial
			// is its own serial.
			gotV2 = strings.Replace(gotV2, `"sockudo_history_serial":`+itoa(f.Serial), `"sockudo_history_serial":"<SERIAL>"`, 1)
		}
		if gotV1 != wantV1 {
			t.Errorf("%s V1\n got: %s\nwant: %s", tc.golden, gotV1, wantV1)
		}
		if gotV2 != wantV2 {
			t.Errorf("%s V2\n got: %s\nwant: %s", tc.golden, gotV2, wantV2)
		}
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func readGolden(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testV2Echo(t *testing.T, s *testkit.Server) {
	const ch = "private-v2-echo"
	echo := connectV2(t, s, v2Options{})
	echo.subscribeV2(t, ch, nil)
	quiet := connectV2(t, s, v2Options{noEcho: true})
	quiet.subscribeV2(t, ch, nil)
	v1 := connect(t, s)
	v1.subscribePrivate(t, ch)

	echo.send(t, `{"event":"client-typing","channel":"`+ch+`","data":{"who":"echo"}}`)
	own := echo.nextMessage(t)
	if own.Event != "client-typing" || own.dataString() != `{"who":"echo"}` || own.MessageID == "" {
		t.Fatalf("V2 sender's echo = %s", own.raw)
	}
	got := quiet.nextMessage(t)
	if got.MessageID != own.MessageID {
		t.Fatalf("V2 receiver got message_id %q, the sender's echo %q", got.MessageID, own.MessageID)
	}
	v1.expect(t, `{"event":"client-typing","channel":"`+ch+`","data":{"who":"echo"}}`)

	quiet.send(t, `{"event":"client-typing","channel":"`+ch+`","data":{"who":"quiet"}}`)
	quiet.expectQuiet(t) // echo_messages=false: no echo
	if f := echo.nextMessage(t); f.dataString() != `{"who":"quiet"}` {
		t.Fatalf("got %s", f.raw)
	}
	v1.expect(t, `{"event":"client-typing","channel":"`+ch+`","data":{"who":"quiet"}}`)

	v1.send(t, `{"event":"client-typing","channel":"`+ch+`","data":{"who":"v1"}}`)
	v1.ping(t) // V1 never gets its own event
	echo.nextMessage(t)
	quiet.nextMessage(t)
}

func testV2Filters(t *testing.T, s *testkit.Server) {
	const ch = "v2-filter-prices"
	all := connectV2(t, s, v2Options{})
	all.subscribeV2(t, ch, nil)
	spot := connectV2(t, s, v2Options{})
	spot.subscribeV2(t, ch, map[string]any{"tags_filter": map[string]any{"op": "and", "nodes": []any{
		map[string]any{"key": "market", "cmp": "eq", "val": "spot"},
		map[string]any{"op": "not", "nodes": []any{map[string]any{"key": "asset", "cmp": "in", "vals": []string{"DOGE", "SHIB"}}}},
		map[string]any{"key": "price", "cmp": "gte", "val": 100},
	}}})
	events := connectV2(t, s, v2Options{})
	events.subscribeV2(t, ch, map[string]any{"filter": map[string]any{"events": []string{"trade"}}})
	v1 := connect(t, s)
	v1.subscribe(t, ch)

	pubs := []struct {
		event string
		tags  map[string]string
		spot  bool
	}{
		{"tick", map[string]string{"market": "spot", "asset": "BTC", "price": "64000"}, true},
		{"trade", map[string]string{"market": "spot", "asset": "DOGE", "price": "120"}, false},
		{"tick", map[string]string{"market": "futures", "asset": "BTC", "price": "64000"}, false},
		{"tick", map[string]string{"market": "spot", "asset": "ETH", "price": "99.5"}, false},
		{"tick", map[string]string{"market": "spot", "asset": "ETH", "price": "not-a-number"}, false},
		{"trade", map[string]string{"market": "spot", "asset": "ETH", "price": "3000"}, true},
		{"tick", nil, false},
	}
	for i, p := range pubs {
		publish(t, s, map[string]any{"name": p.event, "channel": ch, "data": itoa(uint64(i)), "tags": p.tags})
	}
	for i, p := range pubs {
		if f := all.nextMessage(t); f.dataString() != itoa(uint64(i)) {
			t.Fatalf("unfiltered subscriber got %s, want message %d", f.raw, i)
		}
		v1.expectEvent(t, p.event) // V1 ignores filters entirely
		if p.spot {
			if f := spot.nextMessage(t); f.dataString() != itoa(uint64(i)) {
				t.Fatalf("tag-filtered subscriber got %s, want message %d", f.raw, i)
			}
		}
		if p.event == "trade" {
			if f := events.nextMessage(t); f.dataString() != itoa(uint64(i)) {
				t.Fatalf("event-filtered subscriber got %s, want message %d", f.raw, i)
			}
		}
	}
	spot.expectQuiet(t)
	events.expectQuiet(t)

	t.Run("malformed filters are refused at subscribe", func(t *testing.T) {
		c := connectV2(t, s, v2Options{})
		bad := []any{
			map[string]any{"key": "a", "cmp": "like", "val": "x"},
			map[string]any{"op": "not", "nodes": []any{}},
			map[string]any{"key": "a", "cmp": "in"},
			map[string]any{"key": "", "cmp": "eq", "val": "x"},
			"not an object",
		}
		for _, f := range bad {
			c.sendSubscribeV2(t, "v2-filter-bad", map[string]any{"tags_filter": f})
			if msg := c.expectV2Error(t, 4300); !strings.Contains(msg, "filter") {
				t.Errorf("filter %v: message %q does not mention the filter", f, msg)
			}
			c.expectV2(t, "sockudo:subscription_error", "v2-filter-bad")
		}
		deep := map[string]any{"key": "a", "cmp": "ex"}
		for range 40 {
			deep = map[string]any{"op": "not", "nodes": []any{deep}}
		}
		c.sendSubscribeV2(t, "v2-filter-bad", map[string]any{"filter": deep})
		if msg := c.expectV2Error(t, 4300); !strings.Contains(msg, "deep") {
			t.Errorf("deep filter message %q", msg)
		}
		c.expectV2(t, "sockudo:subscription_error", "v2-filter-bad")
		c.pingV2(t) // still connected
	})
}

func testV2PresenceUpdate(t *testing.T, s *testkit.Server) {
	const ch = "presence-v2-agents"
	a := connectV2(t, s, v2Options{})
	a.sendSubscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"agent-1","user_info":{"status":"idle"}}`})
	a.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
	b := connectV2(t, s, v2Options{})
	b.sendSubscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"agent-2"}`})
	b.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
	a.expectV2(t, "sockudo_internal:member_added", ch)
	v1 := connect(t, s)
	v1.subscribePresence(t, ch, `{"user_id":"watcher"}`)
	v1.expectEvent(t, "pusher_internal:subscription_succeeded")
	a.expectV2(t, "sockudo_internal:member_added", ch)
	b.expectV2(t, "sockudo_internal:member_added", ch)

	a.sendEvent(t, "sockudo:presence_update", "", map[string]any{"channel": ch, "data": map[string]string{"status": "thinking"}})
	want := `{"event":"sockudo_internal:presence_update","channel":"` + ch + `","data":"{\"user_id\":\"agent-1\",\"user_info\":{\"status\":\"thinking\"}}"}`
	a.expect(t, want)
	b.expect(t, want)
	v1.ping(t) // V1 never receives presence_update

	late := connectV2(t, s, v2Options{})
	late.sendSubscribeV2(t, ch, map[string]any{"channel_data": `{"user_id":"agent-3"}`})
	ack := late.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
	if !strings.Contains(ack.dataString(), `"agent-1":{"status":"thinking"}`) {
		t.Fatalf("late member's presence hash does not hold the update: %s", ack.raw)
	}
	a.expectV2(t, "sockudo_internal:member_added", ch)
	b.expectV2(t, "sockudo_internal:member_added", ch)
	v1.expectEvent(t, "pusher_internal:member_added")

	big := strings.Repeat("x", 1100)
	a.sendEvent(t, "sockudo:presence_update", ch, map[string]any{"data": map[string]string{"bio": big}})
	if msg := a.expectV2Error(t, 4300); !strings.Contains(msg, "1024") {
		t.Errorf("oversize update message %q", msg)
	}
	a.sendEvent(t, "sockudo:presence_update", "", map[string]any{"channel": "presence-v2-not-joined", "data": map[string]string{}})
	a.expectV2Error(t, 4300)
	v1.sendEvent(t, "pusher:presence_update", "", map[string]any{"channel": ch, "data": map[string]string{}})
	v1.expectError(t, 4000)
}

func testV2Idempotency(t *testing.T, s *testkit.Server) {
	const ch = "v2-idem"
	c := connectV2(t, s, v2Options{})
	c.subscribeV2(t, ch, nil)
	path := "/apps/" + testkit.AppID + "/events"
	body := publishBody(t, map[string]any{"name": "e", "channel": ch, "data": "once", "idempotency_key": "k-1", "info": "subscription_count"})
	st1, ans1 := apiPost(t, s, path, body)
	st2, ans2 := apiPost(t, s, path, body)
	if st1 != 200 || st2 != 200 || ans1 != ans2 || !strings.Contains(ans1, `"subscription_count":1`) {
		t.Fatalf("answers %d %s / %d %s, want the same 200 twice", st1, ans1, st2, ans2)
	}
	if f := c.nextMessage(t); f.dataString() != "once" {
		t.Fatalf("got %s", f.raw)
	}
	// The key inside extras counts too, and a repeat delivers nothing.
	extrasKey := publishBody(t, map[string]any{"name": "e", "channel": ch, "data": "twice?", "extras": map[string]any{"idempotencyKey": "k-1"}})
	if st, _ := apiPost(t, s, path, extrasKey); st != 200 {
		t.Fatalf("HTTP %d", st)
	}
	c.expectQuiet(t)
	// A failed publish does not poison its key.
	badThenGood := []map[string]any{
		{"name": "e", "channel": "bad channel name!", "data": "x", "idempotency_key": "k-2"},
		{"name": "e", "channel": ch, "data": "after failure", "idempotency_key": "k-2"},
	}
	if st, _ := apiPost(t, s, path, publishBody(t, badThenGood[0])); st != 400 {
		t.Fatalf("bad publish: HTTP %d, want 400", st)
	}
	if st, _ := apiPost(t, s, path, publishBody(t, badThenGood[1])); st != 200 {
		t.Fatalf("HTTP %d", st)
	}
	if f := c.nextMessage(t); f.dataString() != "after failure" {
		t.Fatalf("got %s", f.raw)
	}
	// Batches de-duplicate item by item.
	batch := publishBody(t, map[string]any{"batch": []map[string]any{
		{"name": "b", "channel": ch, "data": "b1", "idempotency_key": "k-b1"},
		{"name": "b", "channel": ch, "data": "b2", "idempotency_key": "k-b2"},
	}})
	for range 2 {
		if st, ans := apiPost(t, s, "/apps/"+testkit.AppID+"/batch_events", batch); st != 200 {
			t.Fatalf("batch: HTTP %d %s", st, ans)
		}
	}
	for _, want := range []string{"b1", "b2"} {
		if f := c.nextMessage(t); f.dataString() != want {
			t.Fatalf("got %s, want %s", f.raw, want)
		}
	}
	c.expectQuiet(t)
	for body, want := range map[string]string{
		`{"name":"e","channel":"` + ch + `","data":"x","idempotency_key":""}`:                                 "idempotency_key",
		`{"name":"e","channel":"` + ch + `","data":"x","idempotency_key":"` + strings.Repeat("k", 129) + `"}`: "128",
		`{"name":"e","channel":"` + ch + `","data":"x","tags":{"a":1}}`:                                       "tags.a",
		`{"name":"e","channel":"` + ch + `","data":"x","extras":{"headers":{"a":{"b":1}}}}`:                   "flat",
		`{"name":"e","channel":"` + ch + `","data":"x","extras":{"ephemeral":"yes"}}`:                         "ephemeral",
	} {
		if st, ans := apiPost(t, s, path, []byte(body)); st != 400 || !strings.Contains(ans, want) {
			t.Errorf("%s: HTTP %d %s, want 400 mentioning %q", body, st, ans, want)
		}
	}
}

func testV2Tokens(t *testing.T, s *testkit.Server) {
	grants := map[string][]string{
		"private-v2-tok-orders:*": {"subscribe", "history"},
		"presence-v2-tok-room":    {"subscribe"},
		"private-v2-tok-chat":     {"subscribe", "publish"},
		"private-v2-tok-readonly": {"subscribe"},
		"v2-tok-public-*":         {"subscribe"},
		"presence-v2-tok-lobby":   {"subscribe", "presence"},
	}
	t.Run("grants", func(t *testing.T) {
		c := connectV2(t, s, v2Options{token: mintToken(t, "user-42", grants, time.Hour)})
		c.subscribeV2(t, "private-v2-tok-orders:1", nil)
		c.subscribeV2(t, "v2-tok-public-x", nil)
		c.sendSubscribeV2(t, "v2-tok-other", nil)
		if msg := c.expectV2Error(t, 4009); !strings.Contains(msg, "subscribe") {
			t.Errorf("message %q", msg)
		}
		c.expectV2(t, "sockudo:subscription_error", "v2-tok-other")
		// presence-* needs the presence grant as well as subscribe.
		c.sendSubscribeV2(t, "presence-v2-tok-room", map[string]any{"channel_data": `{"user_id":"user-42"}`})
		if msg := c.expectV2Error(t, 4009); !strings.Contains(msg, "presence") {
			t.Errorf("message %q", msg)
		}
		c.expectV2(t, "sockudo:subscription_error", "presence-v2-tok-room")
		c.sendSubscribeV2(t, "presence-v2-tok-lobby", map[string]any{"channel_data": `{"user_id":"user-42"}`})
		c.expectV2(t, "sockudo_internal:subscription_succeeded", "presence-v2-tok-lobby")
		// The token does not replace channel auth: a bad signature still fails.
		c.sendEvent(t, "sockudo:subscribe", "", map[string]string{"channel": "private-v2-tok-orders:2", "auth": testkit.AppKey + ":bad"})
		c.expectV2Error(t, 4009)
		c.expectV2(t, "sockudo:subscription_error", "private-v2-tok-orders:2")
		// Client events need publish.
		c.subscribeV2(t, "private-v2-tok-chat", nil)
		c.subscribeV2(t, "private-v2-tok-readonly", nil)
		c.send(t, `{"event":"client-hi","channel":"private-v2-tok-chat","data":{}}`)
		c.nextMessage(t) // echoed
		c.send(t, `{"event":"client-hi","channel":"private-v2-tok-readonly","data":{}}`)
		if msg := c.expectV2Error(t, 4301); !strings.Contains(msg, "publish") {
			t.Errorf("message %q", msg)
		}
	})
	t.Run("bad tokens are refused before the handshake", func(t *testing.T) {
		now := time.Now()
		good := mintToken(t, "u", grants, time.Hour)
		parts := strings.Split(good, ".")
		cases := map[string]string{
			"malformed":     "not-a-jwt",
			"tampered":      parts[0] + "." + parts[1] + ".AAAA" + parts[2][4:],
			"wrong secret":  mustSign(t, testkit.AppKey, "other-secret", protocol.TokenRequest{ClientID: "u", JTI: "j", Capability: grants, IssuedAt: now, TTL: time.Hour}),
			"wrong kid":     mustSign(t, "other-key", testkit.AppSecret, protocol.TokenRequest{ClientID: "u", JTI: "j", Capability: grants, IssuedAt: now, TTL: time.Hour}),
			"expired":       mustSign(t, testkit.AppKey, testkit.AppSecret, protocol.TokenRequest{ClientID: "u", JTI: "j", Capability: grants, IssuedAt: now.Add(-2 * time.Hour), TTL: time.Hour}),
			"not yet valid": mustSign(t, testkit.AppKey, testkit.AppSecret, protocol.TokenRequest{ClientID: "u", JTI: "j", Capability: grants, IssuedAt: now, NotBefore: now.Add(time.Hour), TTL: 2 * time.Hour}),
			"too long":      mustSign(t, testkit.AppKey, testkit.AppSecret, protocol.TokenRequest{ClientID: "u", JTI: "j", Capability: grants, IssuedAt: now, TTL: 48 * time.Hour}),
			"unknown op":    mustSign(t, testkit.AppKey, testkit.AppSecret, protocol.TokenRequest{ClientID: "u", JTI: "j", Capability: map[string][]string{"*": {"fly"}}, IssuedAt: now, TTL: time.Hour}),
			"oversized":     strings.Repeat("a", 9000),
		}
		for name, tok := range cases {
			c := dialV2(t, s, v2Options{token: tok})
			msg := c.expectV2Error(t, 4009)
			if !strings.HasPrefix(msg, "Authentication error") {
				t.Errorf("%s: message %q", name, msg)
			}
			c.expectClose(t, 4009)
		}
		// A token on a V1 URL is refused too, with the V1 prefix.
		v1 := dial(t, s.WSURL(testkit.AppKey)+"&token="+good, dialOptions{})
		v1.expectRefused(t, 4009)
	})
	t.Run("expiry and refresh", func(t *testing.T) {
		c := connectV2(t, s, v2Options{token: mintToken(t, "user-exp", grants, 2*time.Second)})
		f := c.expectV2(t, "sockudo:token_expired", "")
		if string(f.Data) != `{"code":40142,"reason":"expired"}` {
			t.Fatalf("token_expired data %s", f.Data)
		}
		other := mintToken(t, "someone-else", grants, time.Hour)
		c.sendEvent(t, "sockudo:auth", "", map[string]string{"token": other})
		c.expectV2Error(t, 4009)
		fresh := mintToken(t, "user-exp", grants, time.Hour)
		c.sendEvent(t, "sockudo:auth", "", map[string]string{"token": fresh})
		ok := c.expectV2(t, "sockudo:auth_success", "")
		var d struct {
			ClientID string `json:"client_id"`
			JTI      string `json:"jti"`
			Exp      int64  `json:"exp"`
		}
		if strictUnmarshal(ok.Data, &d) != nil || d.ClientID != "user-exp" || d.JTI == "" || d.Exp <= time.Now().Unix() {
			t.Fatalf("auth_success data %s", ok.Data)
		}
		c.subscribeV2(t, "private-v2-tok-orders:9", nil)
	})
}

func mustSign(t testing.TB, key, secret string, r protocol.TokenRequest) string {
	t.Helper()
	tok, err := protocol.SignCapabilityToken(key, secret, r)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func testV2Revocation(t *testing.T, s *testkit.Server) {
	grants := map[string][]string{"*": {"subscribe"}}
	jti := protocol.NewUUID()
	tok := mustSign(t, testkit.AppKey, testkit.AppSecret, protocol.TokenRequest{ClientID: "rev-user", JTI: jti, Capability: grants, IssuedAt: time.Now(), TTL: time.Hour})
	c := connectV2(t, s, v2Options{token: tok})
	c.subscribeV2(t, "v2-rev", nil)
	other := connectV2(t, s, v2Options{token: mintToken(t, "rev-other", grants, time.Hour)})

	st, ans := apiPost(t, s, "/apps/"+testkit.AppID+"/revocations", publishBody(t, map[string]any{"jti": jti, "ttl_seconds": 600}))
	if st != 200 || ans != `{"closed_connections":1,"revoked_client_id":false,"revoked_jti":true}` {
		t.Fatalf("revocation: HTTP %d %s", st, ans)
	}
	f := c.expectV2(t, "sockudo:token_expired", "")
	if string(f.Data) != `{"code":40160,"reason":"revoked"}` {
		t.Fatalf("token_expired data %s", f.Data)
	}
	c.expectV2Error(t, 4009)
	c.expectClose(t, 4009)
	other.pingV2(t) // untouched

	again := dialV2(t, s, v2Options{token: tok})
	if msg := again.expectV2Error(t, 4009); !strings.Contains(msg, "revoked") {
		t.Errorf("reconnect message %q", msg)
	}
	again.expectClose(t, 4009)

	// By client id: every token of that client.
	st, ans = apiPost(t, s, "/apps/"+testkit.AppID+"/revocations", publishBody(t, map[string]any{"client_id": "rev-other"}))
	if st != 200 || !strings.Contains(ans, `"closed_connections":1`) {
		t.Fatalf("revocation: HTTP %d %s", st, ans)
	}
	other.expectV2(t, "sockudo:token_expired", "")
	other.expectV2Error(t, 4009)
	other.expectClose(t, 4009)
	if st, ans := apiPost(t, s, "/apps/"+testkit.AppID+"/revocations", []byte(`{"reason":"x"}`)); st != 400 {
		t.Fatalf("revocation without jti or client_id: HTTP %d %s", st, ans)
	}
}

// TestV2TokenGrace: a connection whose token expired and is not refreshed is closed with
// 4009 after token_refresh_grace.
func TestV2TokenGrace(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--token-refresh-grace", "1s"}})
	// The token must still be valid when the connection is accepted, however slow the machine
	// is at starting the server and connecting: a few seconds, waited for on the frame.
	c := connectV2(t, s, v2Options{token: mintToken(t, "grace", map[string][]string{"*": {"subscribe"}}, 4*time.Second)})
	c.expectV2(t, "sockudo:token_expired", "")
	if msg := c.expectV2Error(t, 4009); msg != "capability token expired" {
		t.Errorf("message %q", msg)
	}
	c.expectClose(t, 4009)
}
