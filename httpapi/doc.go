// Package httpapi is pushwire's REST API: the Pusher-compatible signed endpoints under
// /apps/{app_id}/ (publish, batch publish, channel queries, presence users, terminate user
// connections) and the unsigned health endpoints /up and /live.
//
// Every /apps route checks Pusher's request signature (auth_key, auth_timestamp within 600 s,
// body_md5, HMAC-SHA256 over METHOD\nPATH\nsorted query). Errors are JSON bodies
// {"error","code","status"} with a matching HTTP status, never a 200.
package httpapi
