// Package channels is the core of pushwire: the per-app channel registry, subscriptions and
// their authorization, presence membership, cache channels, client-event rules, user sign-in
// with the per-user channel and watchlists, and the publish pipeline that encodes each wire
// form once and fans it out to local subscribers (through the append rollup of connections
// that asked for one, rollup.go), and the operator side of history: state, reset and purge
// (historyadmin.go).
//
// Wire formats: every frame is built as JSON. Frames for one connection go to
// Subscriber.Send (the connection transcodes them); a fan-out builds the V2 JSON frame once
// and encodes it once per binary form in use (formCache), so a publish to any number of JSON,
// MessagePack and protobuf subscribers costs one encoding per form, shared through
// Subscriber.SendEncoded. Delta state is kept per wire dialect: a binary subscriber's deltas
// turn the text its client keeps (protocol.ClientText) into the next one.
//
// It does no network I/O. It talks to connections only through the Subscriber interface,
// whose Send never blocks: a subscriber that cannot keep up closes itself (4100), so a
// publish never waits on a socket.
//
// Publish path (publish.go, sequencer.go): each channel's messages are put in order by a
// per-channel sequencer — a chain of tickets, one per publish or exclusive operation, with
// no lock or wait shared with another channel — so a channel's serials, history appends and
// deliveries keep one order while a pipelined store (PipelinedHistory, PipelinedVersions)
// group-commits many of its messages, and those of other channels, at once. No history,
// broker or socket I/O happens under a lock another channel needs. Channels without
// history are delivered at once, in their publishers' order. A delta subscription's lock
// is held from choosing its frame until the frame is queued, so deltas leave in sequence.
//
// V2 wildcard subscriptions and [meta] metachannels are channels of the registry named by
// their pattern or "[meta]<channel>" (wildcard.go): a publish reaches the matching pattern
// channels through an index, and lifecycle events of a channel go to its metachannel.
//
// Connection recovery (recovery.go): sockudo:resume replays what a V2 connection missed from
// the hot buffer or the store; positions of channels it has not subscribed yet wait, per
// connection and for Options.ResumeWindow, for their subscribes, which replay them under the
// channel's publish lock before the ack (pending.go).
//
// Presence history (package presencehistory, which imports this one): every membership
// change of a presence channel, with its cause, goes to the PresenceRecorder the hub was
// given (presence_hooks.go), under the channel's lock and in its order; recording, storing
// and reading them is the feature's.
//
// Annotations (package annotations, which imports this one): the hub calls the attached
// feature through AnnotationFeature and hands it the AnnotationNode hooks
// (annotation_hooks.go); whether a subscription may receive raw annotations, and the
// fan-out that gives them only to those, stay here.
//
// Clustering (cluster.go): the hub tells the replication protocol (package replication,
// which imports this one) what happens here through Cluster, an interface declared here, and
// the protocol acts on the hub only through the LocalNode hooks AttachCluster hands it. A hub
// without one delivers locally and answers queries from its own state.
//
// Lock order: appState.usersMu may be taken alone; shard.mu is taken before channel.mu;
// deltaSub.mu is taken inside channel.mu (read), before a subscription's hold; the
// sequencer's locks are leaves held for a map access or a pointer swap;
// Conn.mu is never held while taking a shard or channel lock. A fan-out may take a wildcard
// pattern channel's lock (read) while holding the published channel's (read), never a shard
// lock then: pattern channels are looked up before, and their locks are leaves. A
// connection's pendingResume.mu is a leaf: only Subscriber.Send and the hub's timer calls
// happen under it.
package channels
