// Package server is pushwire's WebSocket gateway: it upgrades GET /app/{key}, runs one reader
// goroutine and one writer goroutine per connection, keeps each connection's bounded write
// queue, enforces heartbeats and the activity timeout, performs the handshake and refusals
// (4001, 4003, 4004, 4009, 4100), dispatches inbound frames to the channels hub, and closes
// every connection with 4200 on shutdown.
//
// A connection that cannot keep up with its queue is closed with 4100 from its own writer
// goroutine; nothing a client does can block a publisher or another client.
//
// New connections from one client address (one IPv6 /64; the first X-Forwarded-For entry when
// trusted) are limited by a token bucket of Options.MaxConnectionsPerIPPerMinute; an upgrade
// over it gets error 4100 and close 4100. Options.Metrics, a consumer-side interface, is told
// of every connection, refusal, message in and out, slow consumer and disconnect (with its
// close code and CloseReason). SetDraining and Draining carry readiness for a probe.
package server
