package clustertest

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/replication"
)

var hubSocket atomic.Int64

func nextSocket() string {
	n := hubSocket.Add(1)
	return strconv.FormatInt(7000+n, 10) + "." + strconv.FormatInt(9000+n, 10)
}

// RunHubs checks that hubs joined through an implementation behave as one server: three
// hubs (replication.Start on three nodes from newNode, as for Run) deliver each
// publish once to every subscriber of every node, share presence members (one member_added
// and one member_removed), answer counts for the cluster, and terminate a user everywhere.
func RunHubs(t *testing.T, newNode func(t *testing.T) replication.Broker) {
	app := config.DefaultApp()
	app.ApplyDefaults()
	hubs := make([]*channels.Hub, 3)
	nodes := make([]*replication.Node, 3)
	for i := range hubs {
		b := newNode(t)
		h := channels.New([]config.App{app}, channels.Options{})
		n, err := replication.Start(testkit.Context(t, deliverTimeout), h, b, replication.Options{Heartbeat: 200 * time.Millisecond, NodeTimeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("hub %d: replication.Start: %v", i, err)
		}
		t.Cleanup(func() { n.Stop(); _ = b.Close() })
		nodes[i] = n
		hubs[i] = h
	}
	for i, n := range nodes {
		testkit.WaitFor(t, deliverTimeout, fmt.Sprintf("hub %d sees 3 nodes", i), func() bool { return n.Nodes() == 3 })
	}
	connect := func(h *channels.Hub) (*channels.Conn, *channelstest.Sub) {
		s := channelstest.New(nextSocket())
		c, err := h.Connect(app.Key, s)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		return c, s
	}
	subscribe := func(c *channels.Conn, s *channelstest.Sub, ch, data string) {
		req := channels.SubscribeRequest{Channel: ch, ChannelData: data}
		if protocol.Classify(ch).NeedsAuth() {
			req.Auth = protocol.AuthToken(app.Key, app.Secret, protocol.ChannelStringToSign(s.SocketID(), ch, data, strings.HasPrefix(ch, "presence-")))
		}
		if err := c.Subscribe(req); err != nil {
			t.Fatalf("Subscribe %s: %v", ch, err)
		}
	}

	// Publish: once per subscriber, whichever node published.
	var subs []*channelstest.Sub
	for _, h := range hubs {
		c, s := connect(h)
		subscribe(c, s, "news", "")
		s.Take()
		subs = append(subs, s)
	}
	for i, h := range hubs {
		if err := h.Publish(app.ID, channels.Event{Name: "e", Channels: []string{"news"}, Data: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subs {
		s.WaitFrames(t, 3, deliverTimeout)
	}
	time.Sleep(settle)
	for i, s := range subs {
		if got := s.Frames(); len(got) != 3 {
			t.Errorf("subscriber on hub %d: %d frames, want 3: %q", i, len(got), got)
		}
	}

	// Presence: u on hubs 1 and 2 is one member; the watcher on hub 0 sees one join, one leave.
	const ch = "presence-suite"
	w, ws := connect(hubs[0])
	subscribe(w, ws, ch, `{"user_id":"w"}`)
	ws.Take()
	var conns []*channels.Conn
	for _, h := range hubs[1:] {
		c, s := connect(h)
		subscribe(c, s, ch, `{"user_id":"u"}`)
		conns = append(conns, c)
	}
	testkit.WaitFor(t, deliverTimeout, "3 subscriptions, 2 users on every hub", func() bool {
		for _, h := range hubs {
			info, err := h.Channel(app.ID, ch)
			if err != nil || info.SubscriptionCount != 3 || info.UserCount != 2 {
				return false
			}
		}
		return true
	})
	for _, c := range conns {
		c.Disconnect()
	}
	testkit.WaitFor(t, deliverTimeout, "member_removed", func() bool { return ws.Len() >= 2 })
	time.Sleep(settle)
	got := ws.Take()
	if len(got) != 2 || !strings.Contains(got[0], "member_added") || !strings.Contains(got[1], "member_removed") {
		t.Errorf("watcher got %q, want one member_added and one member_removed", got)
	}

	// Terminate on hub 0 closes the user's sockets on hubs 1 and 2.
	var victims []*channelstest.Sub
	for _, h := range hubs[1:] {
		c, s := connect(h)
		subscribe(c, s, ch, `{"user_id":"v"}`)
		victims = append(victims, s)
	}
	hubs[0].TerminateUserConnections(app.ID, "v")
	for _, s := range victims {
		if err := s.WaitClosed(t, deliverTimeout); err == nil || err.Code != protocol.CodeUnauthorized {
			t.Errorf("victim closed with %v, want 4009", err)
		}
	}
}
