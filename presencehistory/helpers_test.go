package presencehistory_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/replication"
	"github.com/pushwire/pushwire/replication/replicationtest"
)

const (
	appID  = "app-id"
	appKey = "app-key"
	secret = "app-secret"
)

// waitTimeout bounds every wait for something asynchronous.
const waitTimeout = 5 * time.Second

var socketSeq atomic.Int64

// nextSocketID returns a fresh valid socket id.
func nextSocketID() string {
	n := socketSeq.Add(1)
	return strconv.FormatInt(1000+n, 10) + "." + strconv.FormatInt(5000+n, 10)
}

// connect opens a V1 connection of the default app backed by a fresh fake.
func connect(t testing.TB, h node) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	s := channelstest.New(nextSocketID())
	c, err := h.Connect(appKey, s)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, s
}

// connectV2 opens a V2 connection of the default app with these options.
func connectV2(t testing.TB, h node, opts channels.ConnOptions) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	s := channelstest.NewV2(nextSocketID())
	c, err := h.ConnectWith(appKey, s, opts)
	if err != nil {
		t.Fatalf("ConnectWith: %v", err)
	}
	return c, s
}

// mustSubscribe subscribes c with a correctly signed request.
func mustSubscribe(t testing.TB, c *channels.Conn, s *channelstest.Sub, channel, channelData string) {
	t.Helper()
	req := channels.SubscribeRequest{Channel: channel, ChannelData: channelData}
	if protocol.Classify(channel).NeedsAuth() {
		presence := protocol.Classify(channel).Type == protocol.Presence
		req.Auth = protocol.AuthToken(appKey, secret, protocol.ChannelStringToSign(s.SocketID(), channel, channelData, presence))
	}
	if err := c.Subscribe(req); err != nil {
		t.Fatalf("Subscribe(%s): %v", channel, err)
	}
}

// member is presence channel_data for a user with optional info.
func member(id, info string) string {
	if info == "" {
		return `{"user_id":` + strconv.Quote(id) + `}`
	}
	return `{"user_id":` + strconv.Quote(id) + `,"user_info":` + info + `}`
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// defaultApp is the default app, defaults applied, then edit (nil: none).
func defaultApp(edit func(*config.App)) config.App {
	app := config.DefaultApp()
	app.ApplyDefaults()
	if edit != nil {
		edit(&app)
	}
	return app
}

// node is a hub and the presence-history service recording its changes.
type node struct {
	*channels.Hub
	ph *presencehistory.Service
}

// newNode builds a hub of app whose presence changes ph records over store.
func newNode(app config.App, store presencehistory.Store, opts channels.Options) node {
	ph := presencehistory.New(store, []config.App{app}, presencehistory.Options{})
	opts.PresenceRecorder = ph
	return node{channels.New([]config.App{app}, opts), ph}
}

// newCluster starts n nodes of the default app (hub options opts) recording into store on
// one fake bus, with node ids n0, n1, ... (n0 is the leader), and waits until they see each
// other.
func newCluster(t *testing.T, n int, o replication.Options, store presencehistory.Store, opts channels.Options) (*replicationtest.Bus, []node, []*replication.Node, []*replicationtest.Broker) {
	t.Helper()
	bus := &replicationtest.Bus{}
	var nodes []node
	var repl []*replication.Node
	var brokers []*replicationtest.Broker
	for i := range n {
		nd := newNode(defaultApp(nil), store, opts)
		b := bus.Node(fmt.Sprintf("n%d", i))
		nodes, repl, brokers = append(nodes, nd), append(repl, replicationtest.Start(t, nd.Hub, b, o)), append(brokers, b)
	}
	replicationtest.WaitNodes(t, repl, n)
	return bus, nodes, repl, brokers
}

// recObserver records webhook-worthy observer calls.
type recObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *recObserver) add(s string)                                                        { o.mu.Lock(); o.got = append(o.got, s); o.mu.Unlock() }
func (o *recObserver) ChannelOccupied(_, ch string)                                        { o.add("occupied " + ch) }
func (o *recObserver) ChannelVacated(_, ch string)                                         { o.add("vacated " + ch) }
func (o *recObserver) MemberAdded(_, ch, u string)                                         { o.add("member_added " + ch + " " + u) }
func (o *recObserver) MemberRemoved(_, ch, u string)                                       { o.add("member_removed " + ch + " " + u) }
func (o *recObserver) CacheMiss(string, string)                                            {}
func (o *recObserver) SubscriptionCount(string, string, int)                               {}
func (o *recObserver) ClientEvent(string, string, string, json.RawMessage, string, string) {}
