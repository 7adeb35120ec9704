// Package annotations owns annotations on mutable messages (Sockudo's message
// annotations): publish, delete and list for the HTTP API, with the capability checks of a
// socket-bound request; delivery of every stored event to the channel's V2 subscriptions
// with mode ANNOTATION_SUBSCRIBE (sockudo_internal:annotation); per-message summaries
// coalesced per SummaryWindow on the hub's clock and sent to every V2 subscriber
// (sockudo_internal:message, action message.summary); the summaries a new V2 subscription
// gets at once; and the annotation webhooks (Observer).
//
// It sits beside the core, not in it. channels declares the seam: the hub calls the
// feature through channels.AnnotationFeature (a new V2 subscription; another node's
// summary), and the feature acts on the hub only through the channels.AnnotationNode that
// Hub.AttachAnnotations hands it (who a socket is and what its token grants, whether a
// channel keeps mutable messages, delivery in the channel's order, local fan-out, the
// cluster's summary forwarding, the clock). Whether a subscription may ask for raw
// annotations stays a core check (it is about the connection's token), as does the
// fan-out filter that gives raw events only to the subscriptions that asked. The Store
// interface is declared here, beside its consumer; history.Memory and history.Postgres
// implement it and history/historytest.RunAnnotations is the one suite they pass.
//
// Across nodes the store is the truth: the node that made a change computes the summary
// from the (shared) store after its write committed and sends it to every node with the
// store's version of the message's annotations (its last annotation serial). A node
// delivers a summary only if its version is newer than the last it delivered for that
// message, so two nodes' summaries arriving in either order never leave a subscriber with
// a stale one, and equal summaries from several nodes go out once.
package annotations
