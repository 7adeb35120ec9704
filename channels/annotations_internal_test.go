package channels

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

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
		raw, _ := encodeEnvelope(&envelope{Kind: envSummary, Msg: m, Channel: "chat:x", Summary: &summaryEnvelope{MessageSerial: "m1", Version: v}})
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
