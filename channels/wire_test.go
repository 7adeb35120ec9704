package channels_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/delta/deltatest"
	"github.com/pushwire/pushwire/protocol"
)

var (
	wireMsgpack = protocol.Wire{Format: protocol.FormatMsgpack}
	wireProto   = protocol.Wire{Format: protocol.FormatProtobuf}
	wireFlutter = protocol.Wire{Format: protocol.FormatProtobuf, Client: protocol.ClientFlutter}
	binaryWires = []protocol.Wire{wireMsgpack, {Format: protocol.FormatMsgpack, Client: protocol.ClientFlutter}, wireProto, wireFlutter}
)

// connectWire opens a V2 connection speaking w.
func connectWire(t testing.TB, h *channels.Hub, w protocol.Wire) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	s := channelstest.NewV2(nextSocketID())
	s.W = w
	c, err := h.ConnectWith(appKey, s, channels.ConnOptions{Echo: true, Wire: w})
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// TestFanoutEncodesEachFormOnce: one publish to JSON, MessagePack, protobuf and
// sockudo_flutter protobuf subscribers (and V1 ones) builds the V2 JSON frame once and
// encodes it once per binary form; subscribers of a form share the bytes, which are the
// JSON frame's encoding. System frames (member_added) likewise.
func TestFanoutEncodesEachFormOnce(t *testing.T) {
	h, _ := newHub(t, nil)
	const channel = "presence-room"
	wires := []protocol.Wire{{}, {}, wireMsgpack, wireMsgpack, wireProto, wireProto, wireFlutter, wireFlutter}
	subs := make([]*channelstest.Sub, len(wires))
	for i, w := range wires {
		c, s := connectWire(t, h, w)
		mustSubscribe(t, c, s, channel, `{"user_id":"u`+strconv.Itoa(i)+`"}`)
		subs[i] = s
	}
	v1c, v1 := connect(t, h)
	mustSubscribe(t, v1c, v1, channel, `{"user_id":"v1"}`)
	for _, s := range append(subs, v1) {
		s.Take()
	}
	before := channels.Encodings()
	if err := h.Publish(appID, channels.Event{Name: "note", Channels: []string{channel}, Data: `{"n":1}`}); err != nil {
		t.Fatal(err)
	}
	if n := channels.Encodings() - before; n != 4 {
		t.Errorf("%d encodings for one publish to 4 V2 forms, want 4", n)
	}
	jsonFrame := subs[0].RawFrames()[0]
	for i, w := range wires {
		got := subs[i].RawFrames()
		if len(got) != 1 {
			t.Fatalf("subscriber %d got %d frames", i, len(got))
		}
		want, err := protocol.Encode(w.Form(), jsonFrame)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[0], want) {
			t.Errorf("subscriber %d (%v): frame is not the JSON frame's encoding", i, w)
		}
		if i%2 == 1 && &got[0][0] != &subs[i-1].RawFrames()[0][0] {
			t.Errorf("subscribers %d and %d (%v) got separate encodings", i-1, i, w)
		}
	}
	// A join: member_added to everyone else, one encoding per form.
	before = channels.Encodings()
	c, s := connectWire(t, h, wireMsgpack)
	mustSubscribe(t, c, s, channel, `{"user_id":"new"}`)
	if n := channels.Encodings() - before; n != 3 {
		t.Errorf("%d encodings for member_added to 3 binary forms, want 3", n)
	}
	if a, b := subs[2].RawFrames(), subs[3].RawFrames(); &a[len(a)-1][0] != &b[len(b)-1][0] {
		t.Error("member_added encoded twice for one form")
	}
	f, perr := protocol.DecodeBinary(protocol.FormProtobufFlutter, subs[6].RawFrames()[1])
	if perr != nil || f.Event != "sockudo_internal:member_added" || string(f.Data) != `"{\"user_id\":\"new\",\"user_info\":{}}"` {
		t.Errorf("member_added decoded as %+v %v", f, perr)
	}
}

// TestDeltaOnBinaryWires: delta subscribers of every binary wire get full frames that are
// the JSON full frame's encoding, and deltas that turn the base their client keeps (its text
// of the last frame, markers stripped) into its text of the new message.
func TestDeltaOnBinaryWires(t *testing.T) {
	for _, w := range binaryWires {
		t.Run(w.Format.String()+"/"+strconv.Itoa(int(w.Client)), func(t *testing.T) {
			const n = 25
			want, subs := deltaStream(t, w, "fossil", n)
			got := subs[0].RawFrames()
			var base []byte
			deltas := 0
			for i := range n {
				target, ok := protocol.ClientText(w, []byte(want[i]))
				if !ok {
					t.Fatalf("message %d: client text not predictable", i)
				}
				f, perr := protocol.DecodeBinary(w.Form(), got[i])
				if perr != nil {
					t.Fatal(perr)
				}
				if f.Event == "sockudo:delta" {
					var d struct {
						Delta     string `json:"delta"`
						Seq       int    `json:"seq"`
						BaseIndex *int   `json:"base_index"`
					}
					if err := json.Unmarshal(f.Data, &d); err != nil || d.Seq != i || d.BaseIndex != nil {
						t.Fatalf("message %d: delta data %s (%v)", i, f.Data, err)
					}
					patch, _ := base64.StdEncoding.DecodeString(d.Delta)
					out, err := delta.Apply("fossil", base, patch)
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					// A delta rebuilds the lean target of the client's text, surfacing the data
					// the client's plain path surfaces from its text of the full frame.
					if !deltatest.RebuiltAs(t, string(out), true, string(target)) {
						t.Fatalf("message %d rebuilt as\n%s\nwant\n%s", i, out, deltatest.ExpectRebuilt(string(target), true))
					}
					base = out
					deltas++
					continue
				}
				full := append([]byte(want[i][:len(want[i])-1]), `,"__delta_seq":`+strconv.Itoa(i)+`}`...)
				enc, _ := protocol.Encode(w.Form(), full)
				if !bytes.Equal(got[i], enc) {
					t.Fatalf("message %d: full frame is not the encoding of %s", i, full)
				}
				text, _ := protocol.ClientText(w, full)
				base = protocol.StripDeltaMarkers(text)
				if !bytes.Equal(base, target) {
					t.Fatalf("message %d: stripped base\n%s\nwant\n%s", i, base, target)
				}
			}
			if deltas < n-5 {
				t.Errorf("%d deltas for %d messages", deltas, n)
			}
			if a, b := subs[0].RawFrames(), subs[1].RawFrames(); &a[n-1][0] != &b[n-1][0] {
				t.Error("subscribers sharing a base got separate frames")
			}
		})
	}
}

// BenchmarkPublishFanoutFormats10k publishes to 10,000 V2 subscribers, all JSON (the
// baseline) or split evenly across JSON, MessagePack and protobuf: at most one encoding per
// form per publish (encodings/op).
func BenchmarkPublishFanoutFormats10k(b *testing.B) {
	for _, c := range []struct {
		name  string
		wires []protocol.Wire
	}{{"json", []protocol.Wire{{}}}, {"json+msgpack+protobuf", []protocol.Wire{{}, wireMsgpack, wireProto}}} {
		b.Run(c.name, func(b *testing.B) { benchFanoutWires(b, c.wires) })
	}
}

func benchFanoutWires(b *testing.B, wires []protocol.Wire) {
	h := benchHub(b, func(a *config.App) { a.EnableHistory = new(bool) })
	subs := make([]*benchSub, 10_000)
	for i := range subs {
		subs[i] = newBenchSub(i)
		subs[i].v = protocol.V2
		c, err := h.ConnectWith(appKey, subs[i], channels.ConnOptions{Wire: wires[i%len(wires)]})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Subscribe(channels.SubscribeRequest{Channel: "prices"}); err != nil {
			b.Fatal(err)
		}
		subs[i].n = 0
	}
	ev := channels.Event{Name: "price.updated", Channels: []string{"prices"}, Data: `{"symbol":"ACME","bid":101.25,"ask":101.5,"ts":1767312245123}`}
	b.ReportAllocs()
	before := channels.Encodings()
	iters := 0
	for b.Loop() {
		if err := h.Publish(appID, ev); err != nil {
			b.Fatal(err)
		}
		iters++
	}
	perPublish := float64(channels.Encodings()-before) / float64(iters)
	b.ReportMetric(perPublish, "encodings/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters)/float64(len(subs)), "ns/delivery")
	if perPublish > float64(len(wires)) {
		b.Fatalf("%.1f encodings per publish to %d forms", perPublish, len(wires))
	}
	for _, s := range subs {
		if s.n != iters {
			b.Fatalf("a subscriber got %d frames, want %d", s.n, iters)
		}
	}
}
