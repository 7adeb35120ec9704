// Package history stores the messages of channels that keep history and hands out their
// serials. It implements channels.History twice: Memory (the default; a bounded ring per
// channel, gone on restart, freed by a background sweeper once all of it is older than MaxAge) and Postgres (durable and shared by every node using the same
// database; schema created and migrated by the server from embedded, versioned SQL under an
// advisory lock; appends queued per channel and group-committed — many messages of many
// channels per transaction, serials allocated in the transaction that stores them, several
// such transactions in flight per connection in pipeline mode (postgres_commit.go); retention by
// count and age applied on read and trimmed in the background, never on the append path).
// In both, the retained messages of a channel are a contiguous run of serials ending at the
// head. Both also keep presence history (presencehistory.Store: memory_presence.go,
// postgres_presence.go): the membership events of presence channels, per channel a stream
// with its own serials, retained by age, count and bytes; and mutable messages
// (channels.Versions) with their annotations (annotations.Store; memory_annotations.go,
// postgres_annotations.go). history/historytest is the behaviour every implementation passes.
package history
