// Package httpapi is pushwire's REST API, a chi router built by New: the Pusher Channels
// HTTP API under /apps/{app_id}/ and the unsigned node endpoints.
//
// Signed routes (Pusher's request signature, spec http-api §1):
//
//	POST /apps/{app_id}/events                               publish one event to 1..n channels
//	POST /apps/{app_id}/batch_events                         publish several events, all or nothing
//	GET  /apps/{app_id}/channels                             occupied channels (filter_by_prefix, info)
//	GET  /apps/{app_id}/channels/{channel}                   one channel (info: subscription_count, user_count, cache)
//	GET  /apps/{app_id}/channels/{channel}/users             members of a presence channel
//	POST /apps/{app_id}/users/{user_id}/terminate_connections close a user's connections (4009)
//	POST /apps/{app_id}/users/{user_id}/force_reconnect      close them with 4200 (reconnect at once), {"ok":true}
//	POST /apps/{app_id}/revocations                          revoke capability tokens
//	GET  /apps/{app_id}/channels/{channel}/history           one page of the channel's history
//	GET  /apps/{app_id}/channels/{channel}/history/state     the channel's stream (historyops.go)
//	POST /apps/{app_id}/channels/{channel}/history/reset     drop every message, start a new stream
//	POST /apps/{app_id}/channels/{channel}/history/purge     drop the oldest messages
//	DELETE /apps/{app_id}/channels/{channel}/history         the same purge, parameters in the query
//	GET|POST /apps/{app_id}/channels/{channel}/messages/...  mutable messages (messages.go)
//	GET  /apps/{app_id}/channels/{channel}/presence/history[/snapshot|/state], POST .../reset
//	                                                         presence history (presence_history.go)
//
// A publish may carry message_id: the delivered message's id and an idempotent create key
// per channel (messageid.go).
//
// The app is found by auth_key (404 app_not_found when unknown) and must be the app of the
// path; auth_timestamp must be within 600 s of the clock; body_md5 is required and checked on
// POST and refused on GET; the signature is the lowercase hex HMAC-SHA256, keyed with the app
// secret, of METHOD\nRAW_PATH\nQUERY with keys lowercased and sorted and values unescaped.
// The body is read once, up to Options.MaxBodyBytes (413 over it).
//
// Answers are JSON (Content-Type application/json). A publish answers {} (as Pusher does),
// or the requested counts per channel when the event carries info. Every error, including an
// unknown path and a recovered panic, is a JSON envelope {"error","code","status"} whose
// status is the HTTP status; an error is never sent with a 200. The codes are invalid_input,
// missing_channel_info and limit_exceeded (400), auth_failed (401), app_not_found and
// not_found (404), method_not_allowed (405), payload_too_large (413), rate_limited (429,
// with Retry-After: 1, when an app's max_backend_events_per_second is exceeded; each event
// of /events and each item of /batch_events counts) and internal_error (500).
//
// Push routes (push.go, when Options.Push is set): Sockudo's /apps/{app_id}/push/* surface
// (device registrations, channel subscriptions, publish, batch publish, publish status,
// scheduled cancellation, delivery status, credentials). They take a signed request (as
// push-admin, or push-subscribe with X-Sockudo-Push-Capability) or an unsigned request
// carrying a device identity token (X-Sockudo-Device-Identity-Token or Authorization:
// Bearer), which may only manage that device. After every HTTP publish, Options.PublishHook
// (the push bridge) is told, without waiting.
//
// Unsigned routes: GET /live (200, empty), GET /up (200 OK), GET /up/{app_id} (OK, 404
// NOT_FOUND for an unknown app, 503 ERROR for a disabled one), GET /ready (OK, or 503
// DRAINING while Options.Ready reports false). Health answers are plain text, echoed in the
// X-Health-Check header.
//
// GET /usage and /apps/{app_id}/usage (the caller's app's node-local connections and occupied channels, the node's
// memory, goroutines and uptime, as JSON; O(1): maintained counters) is authenticated like
// the stats. Stats (GET /stats, GET /apps/{app_id}/stats) answer Sockudo's operator stats shape
// (memory, history, presence_history, totals, apps; node-local counts) for the one app the
// caller proves it holds: a request signed with the app's key and secret (the path /stats
// signed like any API path), or the debug console's credential (Options.ConsoleAuth: HTTP
// Basic app id and console token or secret, or the console's session cookie).
//
// Request bodies are read as they arrive, within Options.MaxBodyBytes and the shared
// Options.InboundBudget (body.go). X-Idempotency-Key is bound to the signed body
// (headerKey in events.go).
//
// Every request is reported to Options.Metrics under its chi route pattern, never its raw
// path. The WebSocket endpoint /app/{key} and Prometheus metrics are served elsewhere.
package httpapi
