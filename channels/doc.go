// Package channels is the core of pushwire: the per-app channel registry, subscriptions and
// their authorization, presence membership, cache channels, client-event rules, user sign-in
// with the per-user channel and watchlists, and the publish pipeline that encodes each wire
// form once and fans it out to local subscribers (through the append rollup of connections
// that asked for one, rollup.go), the operator side of history: state, reset and purge
// (historyadmin.go), and annotations on mutable messages with their coalesced summaries
// (annotations.go).
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
// V2 wildcard subscriptions and [meta] metachannels are channels of the registry named by
// their pattern or "[meta]<channel>" (wildcard.go): a publish reaches the matching pattern
// channels through an index, and lifecycle events of a channel go to its metachannel.
//
// Connection recovery (recovery.go): sockudo:resume replays what a V2 connection missed from
// the hot buffer or the store; positions of channels it has not subscribed yet wait, per
// connection and for Options.ResumeWindow, for their subscribes, which replay them under the
// channel's publish lock before the ack (pending.go).
//
// Lock order: appState.usersMu may be taken alone; shard.mu is taken before channel.mu;
// Conn.mu is never held while taking a shard or channel lock. A fan-out may take a wildcard
// pattern channel's lock (read) while holding the published channel's (read), never a shard
// lock then: pattern channels are looked up before, and their locks are leaves. A
// connection's pendingResume.mu is a leaf: only Subscriber.Send and the hub's timer calls
// happen under it.
package channels
