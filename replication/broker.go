package replication

import "context"

// Broker carries envelopes between the nodes of a cluster (cluster.Local, cluster.Redis,
// cluster.NATS implement it; cluster/clustertest is their conformance suite). Envelopes are
// opaque bytes to the broker; a Node encodes publishes, presence and count changes in them.
//
// Start connects a hub to the other nodes through one (see node.go for what travels and
// how). Broadcast pub/sub with per-sender order is all the hub needs: there is
// no request/reply, since every node keeps a replica of the others' presence members and
// subscription counts.
type Broker interface {
	// NodeID identifies this node; envelopes it publishes are not delivered back to it.
	NodeID() string
	// Publish sends env to every other node serving appID. It must not block on a slow or
	// absent broker for longer than ctx allows; an error means the envelope may be lost.
	Publish(ctx context.Context, appID string, env []byte) error
	// Start begins delivering other nodes' envelopes to handle, one at a time and, for one
	// sending node, in the order it published them. It returns once subscribed.
	Start(ctx context.Context, handle func(appID, fromNode string, env []byte)) error
	// Healthy reports whether the broker connection is up (false while it reconnects).
	Healthy() bool
	// Close stops delivery and releases the connection.
	Close() error
}
