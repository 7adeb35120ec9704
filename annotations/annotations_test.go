package annotations_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// annConn connects a V2 connection for client holding a token with grants (plus history)
// and subscribes it to ch, with modes SUBSCRIBE and ANNOTATION_SUBSCRIBE when raw.
func annConn(t *testing.T, h hub, clk *testkit.Clock, ch, client string, grants []string, raw bool) (*channelstest.Sub, *protocol.Error) {
	t.Helper()
	tok, err := protocol.SignCapabilityToken(appKey, secret, protocol.TokenRequest{ClientID: client, JTI: "jti-" + client + nextSocketID(),
		Capability: map[string][]string{"*": append(grants, "history")}, IssuedAt: clk.Now(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	claims, perr := protocol.ParseCapabilityToken(tok, appKey, secret, clk.Now())
	if perr != nil {
		t.Fatal(perr)
	}
	c, s := connectV2(t, h, channels.ConnOptions{Token: claims})
	data := map[string]any{"channel": ch, "rewind": 1}
	if raw {
		data["modes"] = []string{"SUBSCRIBE", "ANNOTATION_SUBSCRIBE"}
	}
	b, _ := json.Marshal(data)
	req, perr := protocol.ParseSubscribeV2(b)
	if perr != nil {
		t.Fatalf("ParseSubscribeV2: %v", perr)
	}
	if perr := c.Subscribe(req); perr != nil {
		return s, perr
	}
	s.Take()
	return s, nil
}

// frames splits what a subscriber got into raw annotation events, summaries (data) and
// other events.
func frames(t *testing.T, s *channelstest.Sub) (anns []protocol.Annotation, sums []json.RawMessage, other []string) {
	t.Helper()
	for _, f := range s.Take() {
		m := decodeV2(t, f)
		var ev string
		_ = json.Unmarshal(m["event"], &ev)
		switch ev {
		case protocol.AnnotationEvent:
			anns = append(anns, decodeAnnotation(t, m["data"]))
		case protocol.MessageSummaryEvent:
			if string(m["extras"]) != `{"ephemeral":true}` {
				t.Fatalf("summary extras %s", m["extras"])
			}
			sums = append(sums, m["data"])
		default:
			other = append(other, ev)
		}
	}
	return anns, sums, other
}

func decodeAnnotation(t *testing.T, data json.RawMessage) protocol.Annotation {
	t.Helper()
	var w struct {
		Action, ID, Serial, MessageSerial, Type, Name, ClientID, Encoding string
		Count                                                             uint64
		Data                                                              json.RawMessage
		Timestamp                                                         int64
	}
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatalf("annotation %s: %v", data, err)
	}
	return protocol.Annotation{ID: w.ID, Action: protocol.AnnotationAction(w.Action), Serial: w.Serial, MessageSerial: w.MessageSerial,
		Type: w.Type, Name: w.Name, ClientID: w.ClientID, Count: w.Count, Data: w.Data, Encoding: w.Encoding, TimestampMs: w.Timestamp}
}

func summaryOf(t *testing.T, data json.RawMessage) (string, map[string]any) {
	t.Helper()
	var d struct {
		Action      string `json:"action"`
		Serial      string `json:"serial"`
		Annotations struct {
			Summary map[string]any `json:"summary"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.Action != "message.summary" {
		t.Fatalf("summary %s: %v", data, err)
	}
	return d.Serial, d.Annotations.Summary
}

func publishAnn(t *testing.T, h hub, ch, serial string, a protocol.Annotation) protocol.Annotation {
	t.Helper()
	res, herr := h.ann.Publish(context.Background(), appID, annotations.Request{Channel: ch, MessageSerial: serial, Annotation: a})
	if herr != nil {
		t.Fatalf("PublishAnnotation %+v: %d %s", a, herr.Status, herr.Message)
	}
	return res
}

// TestAnnotationDelivery: raw events reach only ANNOTATION_SUBSCRIBE subscriptions, at
// once; every V2 subscriber gets one summary per message per window, matching the test's
// reducer over the raw events; V1 subscribers get neither.
func TestAnnotationDelivery(t *testing.T) {
	h, clk := mutableHub(t)
	ch := "chat:room-1"
	raw, perr := annConn(t, h, clk, ch, "watcher", []string{"subscribe", "annotation-subscribe"}, true)
	if perr != nil {
		t.Fatal(perr)
	}
	plain, _ := annConn(t, h, clk, ch, "plain", []string{"subscribe"}, false)
	v1c, v1 := connect(t, h)
	mustSubscribe(t, v1c, v1, ch, "")
	v1.Take()
	msg := create(t, h, ch, "hello")
	msg2 := create(t, h, ch, "second")
	raw.Take()
	plain.Take()
	v1.Take()

	var published []protocol.Annotation
	pub := func(serial, typ, name, client string, count uint64) protocol.Annotation {
		a := publishAnn(t, h, ch, serial, protocol.Annotation{Type: typ, Name: name, ClientID: client, Count: count, Data: []byte(`{"k":1}`)})
		published = append(published, a)
		return a
	}
	like := pub(msg, "reaction:distinct.v1", "like", "alice", 0)
	pub(msg, "reaction:distinct.v1", "like", "bob", 0)
	pub(msg, "reaction:distinct.v1", "laugh", "alice", 0)
	pub(msg, "vote:unique.v1", "yes", "alice", 0)
	pub(msg, "vote:unique.v1", "no", "alice", 0)
	pub(msg, "poll:multiple.v1", "a", "carol", 3)
	pub(msg, "poll:multiple.v1", "a", "", 2)
	pub(msg, "read:flag.v1", "", "dave", 0)
	pub(msg, "views:total.v1", "", "", 0)
	pub(msg2, "views:total.v1", "", "", 0)

	anns, sums, other := frames(t, raw)
	if len(anns) != len(published) || len(sums) != 0 || len(other) != 0 {
		t.Fatalf("raw subscriber before the window: %d annotations, %d summaries, %v", len(anns), len(sums), other)
	}
	for i := range anns {
		if anns[i].Serial != published[i].Serial || anns[i].ID == "" || anns[i].Action != protocol.AnnotationCreate || string(anns[i].Data) != `{"k":1}` {
			t.Fatalf("raw event %d: %+v, published %+v", i, anns[i], published[i])
		}
	}
	if n := plain.Len() + v1.Len(); n != 0 {
		t.Fatalf("plain V2 and V1 got %d frames before the window: %v %v", n, plain.Frames(), v1.Frames())
	}
	clk.Add(annotations.SummaryWindow)
	for name, s := range map[string]*channelstest.Sub{"raw": raw, "plain": plain} {
		_, sums, other := frames(t, s)
		if len(sums) != 2 || len(other) != 0 {
			t.Fatalf("%s: %d summaries after the window (want one per message), %v", name, len(sums), other)
		}
		got := map[string]map[string]any{}
		for _, d := range sums {
			serial, sum := summaryOf(t, d)
			got[serial] = sum
		}
		var forMsg []protocol.Annotation
		for _, a := range anns {
			if a.MessageSerial == msg {
				forMsg = append(forMsg, a)
			}
		}
		if want := reduceRaw(forMsg); !reflect.DeepEqual(got[msg], want) {
			t.Fatalf("%s: summary\n got %v\nwant %v", name, got[msg], want)
		}
		if want := map[string]any{"views:total.v1": map[string]any{"total": float64(1)}}; !reflect.DeepEqual(got[msg2], want) {
			t.Fatalf("%s: summary of the second message %v", name, got[msg2])
		}
	}
	if v1.Len() != 0 {
		t.Fatalf("V1 got %v", v1.Frames())
	}

	// A delete: the raw event at once (the create's id, type, name and client), the summary
	// after the window.
	del, dup, herr := h.ann.Delete(context.Background(), appID, ch, msg, like.Serial, "")
	if herr != nil || dup {
		t.Fatalf("delete: %v %v", herr, dup)
	}
	anns2, sums2, _ := frames(t, raw)
	if len(anns2) != 1 || len(sums2) != 0 || anns2[0].Action != protocol.AnnotationDelete || anns2[0].Serial != del.Serial ||
		anns2[0].ID != "" || anns2[0].Name != "like" || anns2[0].ClientID != "alice" {
		t.Fatalf("after the delete: %+v, %d summaries", anns2, len(sums2))
	}
	if _, dup, herr := h.ann.Delete(context.Background(), appID, ch, msg, like.Serial, ""); herr != nil || !dup {
		t.Fatalf("second delete: %v dup %v", herr, dup)
	}
	if raw.Len() != 0 {
		t.Fatalf("a repeated delete delivered %v", raw.Frames())
	}
	clk.Add(annotations.SummaryWindow)
	_, sums3, _ := frames(t, plain)
	if len(sums3) != 1 {
		t.Fatalf("%d summaries after the delete", len(sums3))
	}
	var forMsg []protocol.Annotation
	for _, a := range append(anns, anns2...) {
		if a.MessageSerial == msg {
			forMsg = append(forMsg, a)
		}
	}
	// The delete event carries no id on the wire (Sockudo's shape): match it to its create.
	for i := range forMsg {
		if forMsg[i].Action == protocol.AnnotationDelete {
			forMsg[i].ID = like.ID
		}
	}
	if _, got := summaryOf(t, sums3[0]); !reflect.DeepEqual(got, reduceRaw(forMsg)) {
		t.Fatalf("summary after the delete\n got %v\nwant %v", got, reduceRaw(forMsg))
	}
}

// TestAnnotationSummaryRandom: random creates and deletes by random clients of every
// summarizer, windows closing at random points: the last summary each subscriber holds
// always equals the reducer over the raw events.
func TestAnnotationSummaryRandom(t *testing.T) {
	h, clk := mutableHub(t)
	ch := "chat:random"
	raw, perr := annConn(t, h, clk, ch, "watcher", []string{"subscribe", "annotation-subscribe"}, true)
	if perr != nil {
		t.Fatal(perr)
	}
	msg := create(t, h, ch, "m")
	raw.Take()
	rng := rand.New(rand.NewSource(18))
	types := []string{"r:distinct.v1", "r:unique.v1", "r:multiple.v1", "r:flag.v1", "r:total.v1"}
	clients := []string{"", "u1", "u2", "u3"}
	var live []protocol.Annotation
	var seen []protocol.Annotation
	ids := map[string]string{} // create serial → id
	var last map[string]any
	for i := 0; i < 400; i++ {
		if len(live) > 0 && rng.Intn(3) == 0 {
			k := rng.Intn(len(live))
			if _, _, herr := h.ann.Delete(context.Background(), appID, ch, msg, live[k].Serial, ""); herr != nil {
				t.Fatal(herr.Message)
			}
			live = append(live[:k], live[k+1:]...)
		} else {
			typ := types[rng.Intn(len(types))]
			a := protocol.Annotation{Type: typ, Name: []string{"x", "y", "z"}[rng.Intn(3)], ClientID: clients[rng.Intn(len(clients))], Count: uint64(rng.Intn(3))}
			if a.ClientID == "" && !strings.Contains(typ, "multiple") && !strings.Contains(typ, "total") {
				a.ClientID = "u0"
			}
			live = append(live, publishAnn(t, h, ch, msg, a))
		}
		if rng.Intn(10) == 0 {
			clk.Add(annotations.SummaryWindow)
		}
		anns, sums, _ := frames(t, raw)
		for _, a := range anns {
			if a.Action == protocol.AnnotationCreate {
				ids[a.Serial] = a.ID
			}
		}
		seen = append(seen, anns...)
		if len(sums) > 1 {
			t.Fatalf("%d summaries in one window", len(sums))
		}
		if len(sums) == 1 {
			_, last = summaryOf(t, sums[0])
			if want := reduceRaw(seen); !reflect.DeepEqual(last, want) {
				t.Fatalf("step %d: summary\n got %v\nwant %v", i, last, want)
			}
		}
	}
	clk.Add(annotations.SummaryWindow)
	_, sums, _ := frames(t, raw)
	if len(sums) == 1 {
		_, last = summaryOf(t, sums[0])
	}
	if want := reduceRaw(seen); !reflect.DeepEqual(last, want) {
		t.Fatalf("final summary\n got %v\nwant %v", last, want)
	}
	_ = ids
}

// TestAnnotationErrors: bad input gets the right HTTP status from the hub.
func TestAnnotationErrors(t *testing.T) {
	h, _ := mutableHub(t)
	ch := "chat:errors"
	msg := create(t, h, ch, "m")
	ctx := context.Background()
	big := `"` + strings.Repeat("x", (config.DefaultMaxEventPayloadKB+1)*1024) + `"`
	for _, c := range []struct {
		name   string
		serial string
		a      protocol.Annotation
		status int
	}{
		{"unknown serial", "nope", protocol.Annotation{Type: "reaction:total.v1"}, 404},
		{"no summarizer", msg, protocol.Annotation{Type: "reaction:sum.v1"}, 400},
		{"no namespace", msg, protocol.Annotation{Type: "distinct.v1"}, 400},
		{"version 2", msg, protocol.Annotation{Type: "reaction:distinct.v2"}, 400},
		{"distinct without name", msg, protocol.Annotation{Type: "reaction:distinct.v1", ClientID: "a"}, 400},
		{"flag without client", msg, protocol.Annotation{Type: "reaction:flag.v1"}, 400},
		{"oversized data", msg, protocol.Annotation{Type: "reaction:total.v1", Data: []byte(big)}, 413},
	} {
		_, herr := h.ann.Publish(ctx, appID, annotations.Request{Channel: ch, MessageSerial: c.serial, Annotation: c.a})
		if herr == nil || herr.Status != c.status {
			t.Errorf("%s: %+v, want %d", c.name, herr, c.status)
		}
	}
	if _, herr := h.ann.List(ctx, appID, ch, msg, "", "bogus", 10, ""); herr == nil || herr.Status != 400 {
		t.Errorf("bad cursor: %+v", herr)
	}
	if _, herr := h.ann.List(ctx, appID, ch, "nope", "", "", 10, ""); herr == nil || herr.Status != 404 {
		t.Errorf("list of an unknown message: %+v", herr)
	}
	if _, _, herr := h.ann.Delete(ctx, appID, ch, msg, protocol.FormatAnnotationSerial(7), ""); herr == nil || herr.Status != 404 {
		t.Errorf("delete of an unknown annotation: %+v", herr)
	}
	if _, _, herr := h.ann.Delete(ctx, appID, ch, msg, "x y", ""); herr == nil || herr.Status != 400 {
		t.Errorf("delete of a bad serial: %+v", herr)
	}
}

// TestAnnotationCapabilities: ANNOTATION_SUBSCRIBE needs annotation-subscribe (and a token,
// as in Sockudo); socket-bound publishes need publish and annotation-publish; deletes need
// annotation-delete-any, or annotation-delete-own on the client's own annotation.
func TestAnnotationCapabilities(t *testing.T) {
	h, clk := mutableHub(t)
	ch := "chat:caps"
	if _, perr := annConn(t, h, clk, ch, "nosub", []string{"subscribe"}, true); perr == nil || !strings.Contains(perr.Message, "annotation-subscribe") {
		t.Fatalf("modes without annotation-subscribe: %v", perr)
	}
	c, s := connectV2(t, h, channels.ConnOptions{})
	req, _ := protocol.ParseSubscribeV2(json.RawMessage(`{"channel":"chat:caps","modes":["SUBSCRIBE","ANNOTATION_SUBSCRIBE"]}`))
	if perr := c.Subscribe(req); perr == nil {
		t.Fatalf("modes without a token were accepted: %v", s.Frames())
	}
	if _, perr := protocol.ParseSubscribeV2(json.RawMessage(`{"channel":"x","modes":["SUBSCRIBE","PUBLISH_EVERYTHING"]}`)); perr == nil {
		t.Fatal("unknown mode accepted")
	}
	if _, perr := protocol.ParseSubscribeV2(json.RawMessage(`{"channel":"x","modes":"SUBSCRIBE"}`)); perr == nil {
		t.Fatal("modes as a string accepted")
	}
	msg := create(t, h, ch, "m")
	socketOf := func(client string, grants ...string) string {
		s, perr := annConn(t, h, clk, ch, client, grants, false)
		if perr != nil {
			t.Fatal(perr)
		}
		return s.SocketID()
	}
	alice := socketOf("alice", "subscribe", "publish", "annotation-publish", "annotation-delete-own")
	bob := socketOf("bob", "subscribe", "publish", "annotation-publish", "annotation-delete-own")
	mod := socketOf("mod", "subscribe", "annotation-delete-any")
	noAnn := socketOf("carol", "subscribe", "publish")
	ctx := context.Background()
	pubAs := func(socket, client string) (protocol.Annotation, *channels.HistoryError) {
		return h.ann.Publish(ctx, appID, annotations.Request{Channel: ch, MessageSerial: msg, SocketID: socket,
			Annotation: protocol.Annotation{Type: "reaction:distinct.v1", Name: "like", ClientID: client}})
	}
	if _, herr := pubAs(noAnn, ""); herr == nil || herr.Status != 403 {
		t.Fatalf("publish without annotation-publish: %+v", herr)
	}
	if _, herr := pubAs(alice, "bob"); herr == nil || herr.Status != 401 {
		t.Fatalf("publish as another client: %+v", herr)
	}
	a, herr := pubAs(alice, "")
	if herr != nil || a.ClientID != "alice" {
		t.Fatalf("publish as alice: %+v %+v", a, herr)
	}
	if _, _, herr := h.ann.Delete(ctx, appID, ch, msg, a.Serial, bob); herr == nil || herr.Status != 403 {
		t.Fatalf("bob deletes alice's annotation: %+v", herr)
	}
	if _, _, herr := h.ann.Delete(ctx, appID, ch, msg, a.Serial, noAnn); herr == nil || herr.Status != 403 {
		t.Fatalf("delete without a grant: %+v", herr)
	}
	if _, _, herr := h.ann.Delete(ctx, appID, ch, msg, a.Serial, alice); herr != nil {
		t.Fatalf("alice deletes her own: %+v", herr)
	}
	b, _ := pubAs(bob, "")
	if _, _, herr := h.ann.Delete(ctx, appID, ch, msg, b.Serial, mod); herr != nil {
		t.Fatalf("a moderator deletes bob's: %+v", herr)
	}
	if _, herr := h.ann.List(ctx, appID, ch, msg, "", "", 10, alice); herr == nil || herr.Status != 403 {
		t.Fatalf("list without annotation-subscribe: %+v", herr)
	}
	page, herr := h.ann.List(ctx, appID, ch, msg, "", "", 10, "")
	if herr != nil || len(page.Items) != 4 {
		t.Fatalf("privileged list: %+v %+v", page, herr)
	}
	_ = fmt.Sprint
}

// reduceRaw is testkit.ReduceAnnotations over annotations as a raw subscriber decoded them.
func reduceRaw(events []protocol.Annotation) map[string]any {
	raw := make([]json.RawMessage, len(events))
	for i := range events {
		raw[i] = events[i].AppendJSON(nil)
	}
	return testkit.ReduceAnnotations(raw)
}

// TestAnnotationSnapshotOnSubscribe: a new V2 subscription gets, right after its
// acknowledgement, the current summary of each annotated message (as Sockudo sends them);
// a V1 subscription gets none.
func TestAnnotationSnapshotOnSubscribe(t *testing.T) {
	h, clk := mutableHub(t)
	ch := "chat:snap"
	m1, m2, m3 := create(t, h, ch, "one"), create(t, h, ch, "two"), create(t, h, ch, "three")
	var ev1, ev2 []protocol.Annotation
	for _, a := range []protocol.Annotation{{Type: "r:distinct.v1", Name: "like", ClientID: "a"}, {Type: "r:distinct.v1", Name: "like", ClientID: "b"}} {
		ev1 = append(ev1, publishAnn(t, h, ch, m1, a))
	}
	ev2 = append(ev2, publishAnn(t, h, ch, m2, protocol.Annotation{Type: "v:total.v1"}))
	del, _, herr := h.ann.Delete(context.Background(), appID, ch, m1, ev1[0].Serial, "")
	if herr != nil {
		t.Fatal(herr.Message)
	}
	ev1 = append(ev1, del)
	clk.Add(annotations.SummaryWindow)

	c, s := connectV2(t, h, channels.ConnOptions{})
	if err := c.Subscribe(subReq(s, ch, "")); err != nil {
		t.Fatal(err)
	}
	frames := s.Take()
	if len(frames) != 3 || !strings.Contains(frames[0], "subscription_succeeded") {
		t.Fatalf("frames after subscribe: %v", frames)
	}
	got := map[string]map[string]any{}
	for _, f := range frames[1:] {
		m := decodeV2(t, f)
		serial, sum := summaryOf(t, m["data"])
		got[serial] = sum
	}
	if !reflect.DeepEqual(got[m1], reduceRaw(ev1)) || !reflect.DeepEqual(got[m2], reduceRaw(ev2)) || got[m3] != nil {
		t.Fatalf("snapshots %v, want %v and %v", got, reduceRaw(ev1), reduceRaw(ev2))
	}
	v1c, v1 := connect(t, h)
	mustSubscribe(t, v1c, v1, ch, "")
	if frames := v1.Take(); len(frames) != 1 {
		t.Fatalf("V1 got %v", frames)
	}
}

// TestAnnotationFramesBypassDelta: a delta subscriber gets annotation summaries as plain
// frames without __delta_seq (sockudo-js keeps no delta base of internal events), and the
// deltas of the messages around them still rebuild against the previous message.
func TestAnnotationFramesBypassDelta(t *testing.T) {
	clk := testkit.NewClock(time.Now())
	h := newHub(defaultApp(), history.NewMemory(history.MemoryOptions{}), clk, channels.Options{DeltaEncoder: delta.Encode})
	ch := "market-ann"
	_, ps := v2Sub(t, h, ch, channels.ConnOptions{}, true) // a rewind skips the resume hold
	dc, ds := connectV2(t, h, channels.ConnOptions{})
	req := subReq(ds, ch, "")
	req.Delta, req.DeltaSet, req.Rewind = "fossil", true, &channels.RewindSpec{Count: 1}
	if err := dc.Subscribe(req); err != nil {
		t.Fatal(err)
	}
	ps.Take()
	ds.Take()
	var msg string
	for i := range 6 {
		ev := tick(i, "BTC")
		ev.Channels = []string{ch}
		acks, err := h.PublishAcks(appID, ev)
		if err != nil {
			t.Fatal(err)
		}
		msg = acks[0].MessageSerial
		if i%2 == 1 {
			publishAnn(t, h, ch, msg, protocol.Annotation{Type: "views:total.v1"})
			clk.Add(annotations.SummaryWindow)
		}
	}
	want, got := ps.Take(), ds.Take()
	if len(want) != len(got) || len(want) != 9 {
		t.Fatalf("plain got %d frames, delta %d, want 9 each", len(want), len(got))
	}
	r := newDeltaReader(t)
	for i := range got {
		if strings.Contains(got[i], `"event":"sockudo_internal:message"`) {
			if got[i] != want[i] || strings.Contains(got[i], "__delta_seq") {
				t.Fatalf("summary frame %d on the delta subscription: %s", i, got[i])
			}
			continue
		}
		if rebuilt := r.Read(got[i]); !r.Same(rebuilt, want[i]) {
			t.Fatalf("frame %d rebuilt as\n%s\nwant\n%s\n(plain frame %s)", i, rebuilt, r.Expect(want[i]), want[i])
		}
	}
	if r.Deltas == 0 {
		t.Fatal("no delta frames: the test proves nothing")
	}
}

// TestAnnotationSummaryFitsPayloadLimit: a summary larger than the app's event payload
// limit lists fewer client ids (clipped) but keeps exact totals, as Sockudo fits it.
func TestAnnotationSummaryFitsPayloadLimit(t *testing.T) {
	app := defaultApp()
	app.MaxEventPayloadKB = 1
	clk := testkit.NewClock(time.Now())
	h := newHub(app, history.NewMemory(history.MemoryOptions{}), clk, channels.Options{})
	ch := "chat:big"
	_, s := v2Sub(t, h, ch, channels.ConnOptions{}, true)
	msg := create(t, h, ch, "m")
	for i := range 120 {
		publishAnn(t, h, ch, msg, protocol.Annotation{Type: "r:distinct.v1", Name: "like", ClientID: fmt.Sprintf("user-%03d", i)})
	}
	s.Take()
	clk.Add(annotations.SummaryWindow)
	_, sums, _ := frames(t, s)
	if len(sums) != 1 || len(sums[0]) > 1024 {
		t.Fatalf("%d summaries, data of %d bytes", len(sums), len(sums[0]))
	}
	_, sum := summaryOf(t, sums[0])
	like := sum["r:distinct.v1"].(map[string]any)["like"].(map[string]any)
	if like["total"] != float64(120) || like["clipped"] != true || len(like["clientIds"].([]any)) >= 120 || like["clientIds"].([]any)[0] != "user-000" {
		t.Fatalf("clipped summary %v", like)
	}
}

// TestAnnotationFramesNotCached: on a cache channel the cached event stays the last
// message, never an annotation or a summary.
func TestAnnotationFramesNotCached(t *testing.T) {
	h, clk := mutableHub(t)
	ch := "cache-scores"
	msg := create(t, h, ch, "3-1")
	publishAnn(t, h, ch, msg, protocol.Annotation{Type: "v:total.v1"})
	clk.Add(annotations.SummaryWindow)
	c, s := connect(t, h)
	mustSubscribe(t, c, s, ch, "")
	got := s.Take()
	if len(got) != 2 || !strings.Contains(got[1], `"event":"ai.answer"`) || !strings.Contains(got[1], "3-1") {
		t.Fatalf("V1 subscriber of a cache channel got %v", got)
	}
}

// flakyReads is a memory store whose next failReads annotation reads fail.
type flakyReads struct {
	*history.Memory
	failReads atomic.Int32
}

func (f *flakyReads) ReadAnnotations(ctx context.Context, appID, channel, serial string, q annotations.Query) ([]protocol.Annotation, bool, error) {
	if f.failReads.Add(-1) >= 0 {
		return nil, false, errors.New("store down")
	}
	return f.Memory.ReadAnnotations(ctx, appID, channel, serial, q)
}

// TestAnnotationSummaryRetried: when the store fails to read a summary it is tried again a
// window later (twice, three times…), so subscribers are not left with a stale one.
func TestAnnotationSummaryRetried(t *testing.T) {
	clk := testkit.NewClock(time.Now())
	store := &flakyReads{Memory: history.NewMemory(history.MemoryOptions{})}
	h := newHub(defaultApp(), store, clk, channels.Options{})
	ch := "chat:flaky"
	_, s := v2Sub(t, h, ch, channels.ConnOptions{}, true)
	msg := create(t, h, ch, "m")
	publishAnn(t, h, ch, msg, protocol.Annotation{Type: "v:total.v1"})
	s.Take()
	store.failReads.Store(2)
	clk.Add(annotations.SummaryWindow) // fails
	clk.Add(annotations.SummaryWindow) // retry 1 fails
	if _, sums, _ := frames(t, s); len(sums) != 0 {
		t.Fatalf("summaries while the store fails: %s", sums)
	}
	clk.Add(2 * annotations.SummaryWindow) // retry 2 reads
	if _, sums, _ := frames(t, s); len(sums) != 1 {
		t.Fatalf("%d summaries after the store came back", len(sums))
	}
}
