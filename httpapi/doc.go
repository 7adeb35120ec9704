// Package httpapi is pushwire's REST API: the Pusher-compatible signed endpoints under
// /apps/{app_id}/ (publish, batch publish, channel queries, presence users, terminate user
// connections) and the unsigned node endpoints: /live, /up and /up/{app_id} (health), /ready
// (200 OK, or 503 DRAINING while Options.Ready reports false) and /usage (node-local
// connections and channels per app, memory, goroutines, uptime, as JSON).
//
// Every /apps route checks Pusher's request signature (auth_key, auth_timestamp within 600 s,
// body_md5, HMAC-SHA256 over METHOD\nPATH\nsorted query). Errors are JSON bodies
// {"error","code","status"} with a matching HTTP status, never a 200. An app's
// max_backend_events_per_second is a token bucket counting each event of /events and each
// item of /batch_events; over it the API answers 429 rate_limited with Retry-After: 1.
//
// Every request is reported to Options.Metrics under its chi route pattern, never its raw
// path. Prometheus metrics themselves are served by package metrics on a separate listener.
package httpapi
