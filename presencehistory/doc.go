// Package presencehistory owns presence history: every membership change of a presence
// channel (member_added, member_updated, member_removed), recorded with its cause on the
// node where it happened as an event with its own per-channel serial and stream id in a
// Store, and the reads of the HTTP API — pages, point-in-time member snapshots, the
// stream's state, and reset (Sockudo's shapes).
//
// It sits beside the core, not in it: channels reports each change, in channel order and
// under the channel's lock, through the channels.PresenceRecorder it declares (Service
// implements it, and only queues there); everything else — the recording lanes, retries,
// degraded marks, the store and the reads — is here. The Store interface is declared here,
// beside its consumer; history.Memory and history.Postgres implement it and
// history/historytest.RunPresence is the conformance suite both pass. httpapi serves the
// reads; cmd/pushwire wires the Service into the hub and the API.
//
// Recording never holds up presence: the event is queued into an in-memory lane (one of
// lanes, chosen by channel), and the lane's goroutine, started when it has work and gone
// when it has none, appends it to the store outside every hub lock. A store that keeps
// failing after retries loses the event: the channel's presence stream is then reported
// degraded (continuity.degraded, complete false) until it is reset.
//
// Across nodes sharing a store, one channel's events are ordered by when they reach the
// store (its serials), which for changes made on different nodes within a few milliseconds
// (a node's first write: its connection setup) may differ from the order a watcher saw them
// live; a change reported by two nodes (a member held on both) is recorded once by the
// store; a node that crashes loses the events still queued in its lanes. A member held on
// several nodes whose connections all leave at once is recorded by the node(s) whose leave
// counted on another's hold, when the holds cross (channels' member.leftHere).
package presencehistory
