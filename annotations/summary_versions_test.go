package annotations_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/protocol"
)

// TestSummaryVersionsFromPeers: a node delivers a summary from another node only when its
// version (the store's last annotation serial of the message) is newer than the last it
// delivered: a stale summary overtaken on the wire, or the same one from two nodes, goes
// out once.
func TestSummaryVersionsFromPeers(t *testing.T) {
	h := channels.New([]config.App{defaultApp()}, channels.Options{}) // no history: no resume hold
	sub := channelstest.NewV2("123.456")
	c, err := h.ConnectWith(appKey, sub, channels.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if perr := c.Subscribe(channels.SubscribeRequest{Channel: "chat:x"}); perr != nil {
		t.Fatal(perr)
	}
	sub.Take()
	// What replication calls (through channels.LocalNode) for a summary from another node.
	l := annotations.Attach(h, history.NewMemory(history.MemoryOptions{}), annotations.Options{})
	for _, v := range []uint64{5, 3, 5, 7, 6} {
		m := protocol.SummaryMessage("chat:x", "m1", []protocol.TypeSummary{{Type: "v:total.v1", Summary: []byte(`{"total":` + strconv.FormatUint(v, 10) + `}`)}})
		l.RemoteSummary(appID, "chat:x", "m1", v, m)
	}
	got := sub.Take()
	if len(got) != 2 || !strings.Contains(got[0], `{"total":5}`) || !strings.Contains(got[1], `{"total":7}`) {
		t.Fatalf("delivered %v, want versions 5 and 7 only", got)
	}
	// Another message's versions are its own.
	m := protocol.SummaryMessage("chat:x", "m2", nil)
	l.RemoteSummary(appID, "chat:x", "m2", 1, m)
	if n := len(sub.Take()); n != 1 {
		t.Fatalf("m2: %d frames", n)
	}
}
