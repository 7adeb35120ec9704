package channels

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// FuzzParseModes: no input panics; raw annotations are wanted only when the modes name
// ANNOTATION_SUBSCRIBE, and every accepted mode is a known one.
func FuzzParseModes(f *testing.F) {
	for _, s := range []string{`["SUBSCRIBE","ANNOTATION_SUBSCRIBE"]`, `["SUBSCRIBE"]`, `[]`, `null`, `"SUBSCRIBE"`, `[1]`, `["annotation_subscribe"]`, `["X"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ann, err := parseModes(json.RawMessage(b))
		if err != nil {
			return
		}
		var modes []string
		if json.Unmarshal(b, &modes) != nil {
			if ann || (len(b) != 0 && string(b) != "null") {
				t.Fatalf("%q accepted", b)
			}
			return
		}
		want := false
		for _, m := range modes {
			switch strings.ToUpper(m) {
			case "SUBSCRIBE":
			case "ANNOTATION_SUBSCRIBE":
				want = true
			default:
				t.Fatalf("unknown mode %q accepted", m)
			}
		}
		if ann != want {
			t.Fatalf("%s: annotations %v", b, ann)
		}
	})
}

// TestSummaryVersionsFromPeers: a node delivers a summary from another node only when its
// version (the store's last annotation serial of the message) is newer than the last it
// delivered: a stale summary overtaken on the wire, or the same one from two nodes, goes
// out once.
func TestSummaryVersionsFromPeers(t *testing.T) {
	app := config.DefaultApp()
	app.ApplyDefaults()
	h := New([]config.App{app}, Options{})
	sub := channelstest.NewV2("123.456")
	c, err := h.ConnectWith(app.Key, sub, ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if perr := c.Subscribe(SubscribeRequest{Channel: "chat:x"}); perr != nil {
		t.Fatal(perr)
	}
	sub.Take()
	a := h.byID[app.ID]
	for _, v := range []uint64{5, 3, 5, 7, 6} {
		m := protocol.SummaryMessage("chat:x", "m1", []protocol.TypeSummary{{Type: "v:total.v1", Summary: []byte(`{"total":` + strconv.FormatUint(v, 10) + `}`)}})
		raw, _ := json.Marshal(&envelope{Kind: envSummary, Msg: m, Channel: "chat:x", Summary: &summaryEnvelope{MessageSerial: "m1", Version: v}})
		env, err := decodeEnvelope(raw)
		if err != nil {
			t.Fatal(err)
		}
		a.summaryFromPeer(env)
	}
	got := sub.Take()
	if len(got) != 2 || !strings.Contains(got[0], `{"total":5}`) || !strings.Contains(got[1], `{"total":7}`) {
		t.Fatalf("delivered %v, want versions 5 and 7 only", got)
	}
	// Another message's versions are its own.
	m := protocol.SummaryMessage("chat:x", "m2", nil)
	a.summaryFromPeer(&envelope{Kind: envSummary, Msg: m, Channel: "chat:x", Summary: &summaryEnvelope{MessageSerial: "m2", Version: 1}})
	if n := len(sub.Take()); n != 1 {
		t.Fatalf("m2: %d frames", n)
	}
}
