// Package replication is the cluster replication protocol: what the nodes of a pushwire
// cluster tell each other so that a client sees one server whichever node it is on.
//
// It owns:
//   - the node-to-node envelope and its explicit, versioned wire format (wire.go: member
//     names spelled out, format 1.1 readable by and from the unversioned 1.0, a newer major
//     refused and counted; golden bytes per kind in testdata/envelope_*.golden, a fuzz
//     target over the decoder);
//   - the node (node.go): publishing each locally delivered message to the other nodes,
//     the ordered queue of state envelopes (presence joins, leaves and updates, subscription
//     counts gathered for Options.CountInterval, terminations, history resets and purges),
//     hello and sync (a node that appears or comes back exchanges its whole state),
//     heartbeats, node liveness (a node silent for NodeTimeout is dropped, its members
//     removed, the leader reporting them once), broker health and the periodic resync;
//   - the replicas (replicas.go): what every other live node holds (presence members and
//     subscription counts per channel), from which this node answers channel, count and
//     member queries for the whole cluster;
//   - ordering and gap fill (order.go): a channel's serial messages delivered on every node
//     in serial order, a gap waited for and then filled from the shared history store.
//
// The seam. The core (package channels) declares what it needs of a cluster as
// channels.Cluster, which Node implements, and hands Node a channels.LocalNode: the hooks
// through which the protocol acts on this node's hub (deliver a message, apply another
// node's members and counts, close a user's connections, forget purged history, read the
// whole local state for a sync). channels imports nothing of this package. Brokers (package
// cluster: Local, Redis, NATS) implement Broker, declared here beside its consumer, and
// carry envelopes as opaque bytes. cmd/pushwire wires a hub, a broker and Start together.
//
// Timers (heartbeats, liveness, health polls, count gathering, resync, gap waits) run on
// the hub's injected clock (channels.Options.Now and AfterFunc); only the broker publish
// deadline (Options.PublishTimeout) is real time. Every goroutine is owned by the Node and
// joined by Stop.
//
// replicationtest is an in-process broker network for tests of clustered hubs.
package replication
