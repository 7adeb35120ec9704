// Package metrics is pushwire's Prometheus instrumentation: one private registry holding the
// Go and process collectors and every pushwire_ metric, and the HTTP handler that serves it on
// the separate metrics listener (GET /metrics, Prometheus text format).
//
// A *Metrics is handed to the packages that produce the numbers, each of which declares the
// small interface it needs (server.Metrics, httpapi.Metrics, webhook.Metrics); this package
// imports none of them. Every method is safe for concurrent use.
//
// Label cardinality is bounded: labels are app ids (from configuration), route patterns (never
// raw paths), HTTP methods and statuses, close codes and close reasons. Socket ids, channel
// names, user ids and client addresses never become labels.
//
// Series whose labels are known at start are exported from the first scrape, at 0, so
// dashboards and absent() alerts work before the first connection: the per-app series of
// every configured app (InitApps), connections_refused_total per refusal reason
// (InitRefusals) and the latency histogram per API route (InitRoutes); cmd/pushwire calls
// them at start. Series with a close code or HTTP status appear when those first happen.
// deploy/grafana/pushwire-dashboard.json charts these families.
//
// Metric families (all prefixed pushwire_):
//
//	connections{app}                          gauge: WebSocket connections open now
//	connects_total{app}                       connections that completed the handshake
//	disconnects_total{app,code,reason}        connections that ended, by close code and reason
//	messages_in_total{app}, bytes_in_total{app}    WebSocket frames read from clients
//	messages_out_total{app}, bytes_out_total{app}  WebSocket frames written to clients
//	slow_consumer_closes_total{app}           connections closed because their write queue filled
//	connections_refused_total{reason}         upgrades refused before the handshake
//	                                          (reason ip_rate_limited is the per-IP limit)
//	ws_poll_errors_total                      failed epoll_wait calls of the epoll transport
//	                                          (retried; ten in a row stop the server)
//	http_requests_total{route,method,status}  REST requests by chi route pattern
//	http_request_duration_seconds{route}      REST latency histogram
//	http_rate_limited_total{app}              REST publishes refused with 429
//	webhook_events_delivered_total{app}       webhook events delivered
//	webhook_failures_total{app,status}        failed webhook requests ("network" for no response)
//	webhook_retries_total{app}                webhook requests retried
//	webhook_events_dropped_total{app}         webhook events dropped (queue full or retries over)
package metrics
