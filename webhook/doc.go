// Package webhook sends Pusher-format webhooks: signed HTTP POSTs telling an app's own
// servers about channel lifecycle events, without ever blocking a publish or a socket.
//
// A *Sender implements channels.Observer. Each observer call encodes the event once and
// appends it to the bounded backlog of every endpoint that wants it (its event_types and
// channel_prefix); a full backlog drops the event and counts it (Metrics.Dropped). Nothing
// an observer call does waits on the network.
//
// # Wire format
//
// Every request is
//
//	POST <url>
//	Content-Type: application/json
//	X-Pusher-Key: <app key>
//	X-Pusher-Signature: <lowercase hex HMAC-SHA256(app secret, exact body bytes)>
//	<the endpoint's custom headers>
//
//	{"time_ms":<unix ms when the request was built>,"events":[...]}
//
// with the events, in the order they were observed, shaped as Pusher documents them:
//
//	{"name":"channel_occupied","channel":"c"}
//	{"name":"channel_vacated","channel":"c"}
//	{"name":"member_added","channel":"presence-c","user_id":"u"}
//	{"name":"member_removed","channel":"presence-c","user_id":"u"}
//	{"name":"client_event","channel":"private-c","event":"client-e","data":"{\"a\":1}","socket_id":"1.2"}
//	    (+ "user_id" on presence channels)
//	{"name":"cache_miss","channel":"cache-c"}
//	{"name":"subscription_count","channel":"c","subscription_count":3}
//
// A client event's data is always a JSON string, as on Pusher (whose documented example is
// "data": "{\"data\":1234}"): data the client sent as a string is passed through unchanged,
// any other JSON value is sent as its JSON text inside a string. (Sockudo instead keeps the
// original JSON type; Pusher's SDK-facing shape wins here.)
//
// # Batching and delivery
//
// Each endpoint has one delivery goroutine. Events gather for BatchInterval after the first
// one arrives, or until BatchSize are waiting, then go out in one request; a slow receiver
// therefore gets fuller batches. Requests to one endpoint are sequential, so its events
// arrive in order; at most MaxConcurrent requests run at once across all endpoints.
//
// A request is retried on network errors (including the per-request Timeout), 5xx, 408 and
// 429, with exponential backoff from RetryBase doubling up to RetryMax, each wait jittered
// to between half and all of its nominal value; a Retry-After header (seconds or HTTP date)
// replaces the computed wait. Retries stop once the next attempt would start more than
// RetryFor after the first one; the events are then dropped and counted. Any other non-2xx
// answer (including redirects, which are not followed) is a permanent failure: no retry.
// Retries resend the identical body and signature.
//
// # Delayed events
//
// channel_vacated and member_removed wait VacateDelay and are sent only if the Checker
// still reports the channel unoccupied / the user absent, so a page reload does not flap.
// The sender also remembers which channels and members it last reported as occupied /
// present: a channel_occupied (member_added) for one already reported, such as the
// re-subscription that cancelled a pending channel_vacated (member_removed), is not sent
// again. After a vacate that was really sent, the next occupation is reported as usual.
// One time.AfterFunc timer is pending per channel (or channel and user) at most; no
// goroutine waits per event.
//
// # Shutdown
//
// Close stops accepting events, evaluates every pending delayed event at once, delivers
// everything queued (retrying while its context allows), then returns once every goroutine
// the Sender started has exited. Events still undelivered when the context ends are dropped
// and counted.
package webhook
