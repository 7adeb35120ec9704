package presencehistory_test

import (
	"fmt"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/channels/hubtest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/replication"
	"github.com/pushwire/pushwire/replication/replicationtest"
)

const appID = hubtest.AppID

// waitTimeout bounds every wait for something asynchronous.
const waitTimeout = hubtest.WaitTimeout

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

// defaultApp is the default app, defaults applied, then edit (nil: none).
func defaultApp(edit func(*config.App)) config.App {
	app := config.DefaultApp()
	app.ApplyDefaults()
	if edit != nil {
		edit(&app)
	}
	return app
}

func connect(t testing.TB, h node) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	return hubtest.Connect(t, h.Hub)
}

func connectV2(t testing.TB, h node, opts channels.ConnOptions) (*channels.Conn, *channelstest.Sub) {
	t.Helper()
	return hubtest.ConnectV2(t, h.Hub, opts)
}

var (
	mustSubscribe = hubtest.MustSubscribe
	member        = hubtest.Member
	waitFor       = hubtest.WaitFor
)
