package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestAnnotations runs the annotation groups on the default app with the in-memory store;
// TestAnnotationsPostgres runs them on Postgres.
func TestAnnotations(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1})
	runAnnotationGroups(t, s)
}

func TestAnnotationsPostgres(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}})
	runAnnotationGroups(t, s)
}

func runAnnotationGroups(t *testing.T, s *testkit.Server) {
	for name, run := range map[string]func(*testing.T, *testkit.Server){
		"LiveAndSummaries": testAnnotationsLive,
		"ReadsAndDeletes":  testAnnotationsReads,
		"BadInput":         testAnnotationsBadInput,
		"SocketBound":      testAnnotationsSocket,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run(t, s)
		})
	}
}

func annotationsPath(channel, serial string) string {
	return messagePath(channel, serial) + "/annotations"
}

// annotate publishes an annotation and returns its serial.
func annotate(t testing.TB, s *testkit.Server, channel, serial string, body map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	status, resp := apiPost(t, s, annotationsPath(channel, serial), b)
	var out struct {
		AnnotationSerial string `json:"annotationSerial"`
	}
	if status != http.StatusOK || strictUnmarshal([]byte(resp), &out) != nil || out.AnnotationSerial == "" {
		t.Fatalf("annotate %s: HTTP %d %s", b, status, resp)
	}
	return out.AnnotationSerial
}

// annWatch is a V2 subscriber that records raw annotation events and summaries.
type annWatch struct {
	*v2Client
	raw  []json.RawMessage
	sums []map[string]any // summaries of watchSerial, in arrival order
}

// watchAnnotations connects a V2 client (with a token granting annotation-subscribe when
// raw) and subscribes it to channel, with modes SUBSCRIBE and ANNOTATION_SUBSCRIBE when raw.
func watchAnnotations(t testing.TB, s *testkit.Server, channel string, raw bool) *annWatch {
	t.Helper()
	o := v2Options{}
	extra := map[string]any{}
	if raw {
		o.token = mintToken(t, "watcher", map[string][]string{"*": {"subscribe", "annotation-subscribe"}}, time.Hour)
		extra["modes"] = []string{"SUBSCRIBE", "ANNOTATION_SUBSCRIBE"}
	}
	c := connectV2(t, s, o)
	c.subscribeV2(t, channel, extra)
	return &annWatch{v2Client: c}
}

// next reads the next frame: a raw annotation (recorded, returned) or a summary of serial
// (recorded, returned); channel messages are skipped, anything else fails.
func (w *annWatch) next(t testing.TB, serial string) (raw json.RawMessage, sum map[string]any) {
	t.Helper()
	for {
		f := w.nextV2(t)
		switch f.Event {
		case protocol.AnnotationEvent:
			if f.Extras != nil || f.Serial != 0 || f.MessageID != "" {
				t.Fatalf("annotation frame with more than event, channel and data: %s", f.raw)
			}
			w.raw = append(w.raw, f.Data)
			return f.Data, nil
		case protocol.MessageSummaryEvent:
			var d struct {
				Action      string `json:"action"`
				Serial      string `json:"serial"`
				Annotations struct {
					Summary map[string]any `json:"summary"`
				} `json:"annotations"`
			}
			if string(f.Extras) != `{"ephemeral":true}` || strictUnmarshal(f.Data, &d) != nil || d.Action != "message.summary" {
				t.Fatalf("summary frame %s", f.raw)
			}
			if d.Serial != serial {
				continue
			}
			w.sums = append(w.sums, d.Annotations.Summary)
			return nil, d.Annotations.Summary
		default:
			if strings.HasPrefix(f.Event, "sockudo") && !strings.HasPrefix(f.Event, protocol.EventMessagePrefix) {
				t.Fatalf("unexpected frame %s", f.raw)
			}
		}
	}
}

// waitSummary reads until the latest summary of serial equals want (it may have come
// already, while raw events were read: frames of different nodes have no common order).
func (w *annWatch) waitSummary(t testing.TB, serial string, want map[string]any) {
	t.Helper()
	if n := len(w.sums); n > 0 && reflect.DeepEqual(w.sums[n-1], want) {
		return
	}
	for {
		if _, sum := w.next(t, serial); sum != nil && reflect.DeepEqual(sum, want) {
			return
		}
	}
}

func testAnnotationsLive(t *testing.T, s *testkit.Server) {
	const ch = "chat:ann-live"
	raw := watchAnnotations(t, s, ch, true)
	plain := watchAnnotations(t, s, ch, false)
	v1 := connect(t, s)
	v1.subscribe(t, ch)
	c := publishCreate(t, s, ch, "chat.message", "hello")
	v1.expect(t, eventFrame("chat.message", ch, "hello"))
	raw.nextMessage(t)
	plain.nextMessage(t)

	bodies := []map[string]any{
		{"type": "reaction:distinct.v1", "name": "like", "clientId": "alice", "data": map[string]string{"emoji": "👍"}},
		{"type": "reaction:distinct.v1", "name": "like", "clientId": "bob"},
		{"type": "reaction:distinct.v1", "name": "laugh", "clientId": "alice"},
		{"type": "vote:unique.v1", "name": "yes", "clientId": "alice"},
		{"type": "vote:unique.v1", "name": "no", "clientId": "alice"},
		{"type": "poll:multiple.v1", "name": "a", "clientId": "carol", "count": 3},
		{"type": "poll:multiple.v1", "name": "a", "count": 2},
		{"type": "read:flag.v1", "clientId": "dave"},
		{"type": "views:total.v1"},
	}
	var serials []string
	for _, b := range bodies {
		serials = append(serials, annotate(t, s, ch, c.MessageSerial, b))
	}
	// The raw subscriber gets every event, in order, as Sockudo shapes it.
	for i := range bodies {
		var ev map[string]any
		for {
			r, _ := raw.next(t, c.MessageSerial)
			if r != nil {
				_ = json.Unmarshal(r, &ev)
				break
			}
		}
		if ev["action"] != "annotation.create" || ev["serial"] != serials[i] || ev["messageSerial"] != c.MessageSerial || ev["type"] != bodies[i]["type"] ||
			ev["id"] == nil || ev["timestamp"] == nil {
			t.Fatalf("raw event %d: %v", i, ev)
		}
	}
	want := testkit.ReduceAnnotations(raw.raw)
	raw.waitSummary(t, c.MessageSerial, want)
	plain.waitSummary(t, c.MessageSerial, want)
	if len(plain.raw) != 0 {
		t.Fatalf("a subscription without ANNOTATION_SUBSCRIBE got raw events: %s", plain.raw)
	}
	// A delete: raw event, then a summary matching the reducer again.
	st, resp := apiBodyless(t, s, http.MethodDelete, annotationsPath(ch, c.MessageSerial)+"/"+serials[0], nil)
	if st != 200 {
		t.Fatalf("delete: %d %s", st, resp)
	}
	for {
		if r, _ := raw.next(t, c.MessageSerial); r != nil {
			break
		}
	}
	want = testkit.ReduceAnnotations(raw.raw)
	raw.waitSummary(t, c.MessageSerial, want)
	plain.waitSummary(t, c.MessageSerial, want)
	// V1 never sees annotations or summaries.
	v1.ping(t)
}

func testAnnotationsReads(t *testing.T, s *testkit.Server) {
	const ch = "chat:ann-reads"
	c := publishCreate(t, s, ch, "chat.message", "m")
	var serials []string
	for i := 0; i < 5; i++ {
		serials = append(serials, annotate(t, s, ch, c.MessageSerial, map[string]any{"type": "r:flag.v1", "clientId": fmt.Sprint("u", i)}))
	}
	annotate(t, s, ch, c.MessageSerial, map[string]any{"type": "r:total.v1"})
	type page struct {
		Channel       string            `json:"channel"`
		MessageSerial string            `json:"messageSerial"`
		Limit         int               `json:"limit"`
		HasMore       bool              `json:"hasMore"`
		NextCursor    *string           `json:"nextCursor"`
		Items         []json.RawMessage `json:"items"`
	}
	var got []string
	cursor := ""
	for i := 0; ; i++ {
		params := url.Values{"limit": {"2"}, "type": {"r:flag.v1"}}
		if cursor != "" {
			params.Set("from_serial", cursor)
		}
		status, body := apiGet(t, s, annotationsPath(ch, c.MessageSerial), params)
		var p page
		if status != 200 || strictUnmarshal([]byte(body), &p) != nil || p.Channel != ch || p.MessageSerial != c.MessageSerial || p.Limit != 2 || i > 3 {
			t.Fatalf("page %d: %d %s", i, status, body)
		}
		for _, it := range p.Items {
			var ev map[string]any
			_ = json.Unmarshal(it, &ev)
			got = append(got, ev["serial"].(string))
		}
		if !p.HasMore {
			break
		}
		cursor = *p.NextCursor
	}
	if fmt.Sprint(got) != fmt.Sprint(serials) {
		t.Fatalf("paged %v, want %v", got, serials)
	}
	st, body := apiBodyless(t, s, http.MethodDelete, annotationsPath(ch, c.MessageSerial)+"/"+serials[2], nil)
	var del map[string]string
	if st != 200 || strictUnmarshal([]byte(body), &del) != nil || del["deletedAnnotationSerial"] != serials[2] || del["annotationSerial"] == serials[2] {
		t.Fatalf("delete: %d %s", st, body)
	}
	st, body = apiGet(t, s, annotationsPath(ch, c.MessageSerial), nil)
	if st != 200 || !strings.Contains(body, `"action":"annotation.delete","serial":"`+del["annotationSerial"]+`"`) {
		t.Fatalf("list after delete: %d %s", st, body)
	}
}

func testAnnotationsBadInput(t *testing.T, s *testkit.Server) {
	const ch = "chat:ann-bad"
	c := publishCreate(t, s, ch, "chat.message", "m")
	path := annotationsPath(ch, c.MessageSerial)
	big := strings.Repeat("x", 101*1024)
	for _, tc := range []struct {
		name   string
		path   string
		body   string
		status int
	}{
		{"unknown serial", annotationsPath(ch, "0000000000001:node:0000000001"), `{"type":"r:total.v1"}`, 404},
		{"wrong type name", path, `{"type":"reaction:like.v1"}`, 400},
		{"type without version", path, `{"type":"reaction:distinct"}`, 400},
		{"distinct without a client", path, `{"type":"reaction:distinct.v1","name":"like"}`, 400},
		{"oversized data", path, `{"type":"r:total.v1","data":"` + big + `"}`, 413},
		{"not JSON", path, `{"type":`, 400},
	} {
		if status, body := apiPost(t, s, tc.path, []byte(tc.body)); status != tc.status {
			t.Errorf("%s: HTTP %d %s, want %d", tc.name, status, body, tc.status)
		}
	}
	if status, body := apiGet(t, s, path, url.Values{"from_serial": {"bogus"}}); status != 400 {
		t.Errorf("bad cursor: %d %s", status, body)
	}
	if status, body := apiBodyless(t, s, http.MethodDelete, path+"/"+protocol.FormatAnnotationSerial(999), nil); status != 404 {
		t.Errorf("delete of an unknown annotation: %d %s", status, body)
	}
	// A subscription asking for raw annotations without a token is refused, its
	// neighbours unharmed.
	v := connectV2(t, s, v2Options{})
	v.sendSubscribeV2(t, ch, map[string]any{"modes": []string{"SUBSCRIBE", "ANNOTATION_SUBSCRIBE"}})
	for {
		f := v.nextV2(t)
		if f.Event == "sockudo:subscription_error" {
			if !strings.Contains(string(f.Data), "annotation-subscribe") {
				t.Fatalf("modes without a token: %s", f.raw)
			}
			break
		}
		if f.Event != "sockudo:error" {
			t.Fatalf("modes without a token: %s", f.raw)
		}
	}
	v.expectQuiet(t)
}

func testAnnotationsSocket(t *testing.T, s *testkit.Server) {
	const ch = "chat:ann-socket"
	alice := connectV2(t, s, v2Options{token: mintToken(t, "alice", map[string][]string{"chat:*": {"subscribe", "publish", "annotation-publish", "annotation-delete-own"}}, time.Hour)})
	alice.subscribeV2(t, ch, nil)
	bob := connectV2(t, s, v2Options{token: mintToken(t, "bob", map[string][]string{"chat:*": {"subscribe", "publish", "annotation-delete-own"}}, time.Hour)})
	bob.subscribeV2(t, ch, nil)
	c := publishCreate(t, s, ch, "chat.message", "m")
	b, _ := json.Marshal(map[string]any{"type": "r:distinct.v1", "name": "like", "socketId": alice.socketID})
	status, body := apiPost(t, s, annotationsPath(ch, c.MessageSerial), b)
	if status != 200 {
		t.Fatalf("alice annotates: %d %s", status, body)
	}
	var out map[string]string
	_ = json.Unmarshal([]byte(body), &out)
	b, _ = json.Marshal(map[string]any{"type": "r:distinct.v1", "name": "like", "socketId": bob.socketID})
	if status, body := apiPost(t, s, annotationsPath(ch, c.MessageSerial), b); status != 403 {
		t.Fatalf("bob without annotation-publish: %d %s", status, body)
	}
	del := annotationsPath(ch, c.MessageSerial) + "/" + out["annotationSerial"]
	if status, body := apiBodyless(t, s, http.MethodDelete, del, url.Values{"socket_id": {bob.socketID}}); status != 403 {
		t.Fatalf("bob deletes alice's: %d %s", status, body)
	}
	if status, body := apiBodyless(t, s, http.MethodDelete, del, url.Values{"socket_id": {alice.socketID}}); status != 200 {
		t.Fatalf("alice deletes hers: %d %s", status, body)
	}
	st, list := apiGet(t, s, annotationsPath(ch, c.MessageSerial), nil)
	if st != 200 || !strings.Contains(list, `"clientId":"alice"`) {
		t.Fatalf("list: %d %s", st, list)
	}
}

// TestClusterAnnotations: three nodes over one Postgres, on Redis and on NATS. Annotations published
// through every node at once reach raw subscribers on every node exactly once; every
// subscriber's summaries never go backwards (a stale summary from another node is dropped)
// and end equal to the reducer over the events.
func TestClusterAnnotations(t *testing.T) {
	redisURL := "redis://" + testkit.RedisAddr(t) + "/0"
	natsURL := testkit.NATSURL(t)
	for _, broker := range []string{"redis", "nats"} {
		t.Run(broker, func(t *testing.T) {
			prefix := clusterPrefix()
			if broker == "nats" {
				t.Cleanup(func() { testkit.DeleteNATSBucket(t, natsURL, prefix+"_idempotency") })
			}
			testClusterAnnotations(t, startNodes(t, 3, clusterArgs(broker, redisURL, natsURL, prefix, testkit.PostgresURL(t))))
		})
	}
}

func testClusterAnnotations(t *testing.T, nodes []*testkit.Server) {
	t.Cleanup(func() {
		if t.Failed() {
			for i, s := range nodes {
				t.Logf("node %d log:\n%s", i, tail(s.Output()))
			}
		}
	})
	const ch = "chat:cl-ann"
	var raws, plains []*annWatch
	for _, s := range nodes {
		raws = append(raws, watchAnnotations(t, s, ch, true))
		plains = append(plains, watchAnnotations(t, s, ch, false))
	}
	c := publishCreate(t, nodes[0], ch, "chat.message", "m")
	const per = 15
	var wg sync.WaitGroup
	for i, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < per; j++ {
				body := map[string]any{"type": "views:total.v1"}
				if j%3 == 0 {
					body = map[string]any{"type": "reaction:distinct.v1", "name": fmt.Sprint("e", j%2), "clientId": fmt.Sprint("n", i, "-", j)}
				}
				b, _ := json.Marshal(body)
				if status, resp := apiPost(t, s, annotationsPath(ch, c.MessageSerial), b); status != 200 {
					t.Errorf("node %d: %d %s", i, status, resp)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Every raw subscriber gets all 45 events once, in one serial order.
	var want map[string]any
	for n, w := range raws {
		for len(w.raw) < 3*per {
			w.next(t, c.MessageSerial)
		}
		var serials []string
		for _, r := range w.raw {
			var ev map[string]string
			_ = json.Unmarshal(r, &ev)
			serials = append(serials, ev["serial"])
		}
		if !sort.StringsAreSorted(serials) {
			// Events from different nodes may interleave on the wire; their serials must still be distinct.
			sort.Strings(serials)
		}
		for i := 1; i < len(serials); i++ {
			if serials[i] == serials[i-1] {
				t.Fatalf("node %d: serial %s twice", n, serials[i])
			}
		}
		sorted := make([]json.RawMessage, len(w.raw))
		copy(sorted, w.raw)
		sort.Slice(sorted, func(i, j int) bool { return serialOf(sorted[i]) < serialOf(sorted[j]) })
		if want == nil {
			want = testkit.ReduceAnnotations(sorted)
		} else if got := testkit.ReduceAnnotations(sorted); !reflect.DeepEqual(got, want) {
			t.Fatalf("node %d reduces to %v, node 0 to %v", n, got, want)
		}
	}
	if total := want["views:total.v1"].(map[string]any)["total"]; total != float64(2*3*per/3) {
		t.Fatalf("reduced total %v", total)
	}
	for n, w := range append(append([]*annWatch{}, raws...), plains...) {
		w.waitSummary(t, c.MessageSerial, want)
		prev := -1.0
		for _, s := range w.sums {
			v, _ := s["views:total.v1"].(map[string]any)
			total, _ := v["total"].(float64)
			if total < prev {
				t.Fatalf("subscriber %d: summaries went backwards: %v", n, w.sums)
			}
			prev = total
		}
		w.expectQuiet(t) // no stale summary after the final one
	}
}

func serialOf(raw json.RawMessage) string {
	var ev struct {
		Serial string `json:"serial"`
	}
	_ = json.Unmarshal(raw, &ev)
	return ev.Serial
}

// TestAnnotationWebhooks: the binary sends annotation_created and annotation_deleted,
// signed, in Sockudo's shapes, to an endpoint that asked for them.
func TestAnnotationWebhooks(t *testing.T) {
	t.Parallel()
	rec := &receiver{}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	s := testkit.Start(t, testkit.Options{Port: -1, Config: fmt.Sprintf(`
apps:
  - id: app-id
    key: app-key
    secret: app-secret
    enable_history: true
    enable_versioned_messages: true
    webhooks:
      - url: %s/annotations
        event_types: [annotation_created, annotation_deleted]
        headers:
          X-Tenant: acme
`, hook.URL)})
	const ch = "chat-hooks"
	c := publishCreate(t, s, ch, "chat.message", "m")
	a := annotate(t, s, ch, c.MessageSerial, map[string]any{"type": "reaction:distinct.v1", "name": "like", "clientId": "alice"})
	status, body := apiBodyless(t, s, http.MethodDelete, annotationsPath(ch, c.MessageSerial)+"/"+a, nil)
	var del map[string]string
	if status != 200 || json.Unmarshal([]byte(body), &del) != nil {
		t.Fatalf("delete: %d %s", status, body)
	}
	for _, want := range []string{
		fmt.Sprintf(`{"name":"annotation_created","channel":%q,"message_serial":%q,"annotation_serial":%q,"annotation_type":"reaction:distinct.v1"}`, ch, c.MessageSerial, a),
		fmt.Sprintf(`{"name":"annotation_deleted","channel":%q,"message_serial":%q,"annotation_serial":%q,"deleted_annotation_serial":%q,"annotation_type":"reaction:distinct.v1"}`,
			ch, c.MessageSerial, del["annotationSerial"], a),
	} {
		testkit.WaitFor(t, 5*time.Second, want, func() bool { return rec.has(want) })
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.bad != 0 {
		t.Fatalf("%d badly signed requests", rec.bad)
	}
}
