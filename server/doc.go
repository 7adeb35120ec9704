// Package server is pushwire's WebSocket gateway: it upgrades GET /app/{key}, keeps each
// connection's bounded write queue, enforces heartbeats and the activity timeout, performs the
// handshake and refusals (4001, 4003, 4004, 4009, 4100), dispatches inbound frames to the
// channels hub, and closes every connection with 4200 on shutdown.
//
// Two transports sit under a connection (Options.Transport, ws_transport):
//
//   - The epoll transport (pollWire, Linux; the default for plain connections that negotiate
//     no compression) does the RFC 6455 handshake itself (server/wsframe), takes the socket
//     over and hands its readability to one epoll instance (netpoller). An idle connection
//     holds no goroutine and no buffer: when bytes arrive, a short-lived goroutine reads them
//     into a pooled buffer, dispatches every whole message and keeps only an unfinished
//     frame. Queued messages are written by a few shared flushers (flusher), one
//     non-blocking write per connection per turn with everything that piled up (a
//     connection written to under 2 ms ago waits out that window, so bursts share writes),
//     so a publish to thousands of subscribers wakes one or two goroutines, not thousands.
//   - coder/websocket (stdWire) serves TLS, permessage-deflate and ws_transport: std, with a
//     reader goroutine per connection and a writer goroutine while frames are queued.
//
// Wire formats: a V2 URL's format= picks JSON (text messages), MessagePack or protobuf
// (binary messages both ways; client=flutter selects sockudo_flutter's protobuf layout). A
// frame for one connection (acks, errors, replies, replays) arrives as JSON through
// Subscriber.Send and is transcoded here, at that socket: those frames are few per
// connection, and this keeps every builder and the recovery code format-blind. Fan-outs hand
// frames already encoded once per form through SendEncoded. Inbound, a binary message is
// decoded in the connection's format and a text message is read as JSON on any connection
// (neither Sockudo client sends one on a binary connection; a person debugging with a text
// tool still can); answers always go out in the connection's format. A V1 URL ignores
// format=, as Sockudo does.
//
// Input is refused as early as it can be. A frame taking its message over
// Options.MaxMessageBytes closes the connection with 1009 at its header, before a byte of its
// payload is read or held (the epoll transport's assembler, the std transport's frameGuard);
// only a protocol 2 connection's sockudo:resume, which the Sockudo clients send as one frame
// naming every channel, may be larger (Options.MaxResumeMessageBytes). A connection that keeps
// sending requests after they were refused (4301 rates, 4100 caps) is closed with 4301 past
// Options.MaxRefusedRequests: each refusal still costs a parse and an answer.
//
// A connection that cannot keep up with its queue is closed with 4100; one whose socket is
// full gets a writer goroutine of its own until it drains, so nothing a client does can
// block a publisher, a flusher or another client.
//
// Failures of the epoll transport are never silent. A socket the netpoller cannot register
// or re-arm (epoll_ctl failed) would never be read again: that connection is closed with
// 4200 (clients reconnect), the error is logged and the disconnect counted with the reason
// poll_failed. A failed epoll_wait (EINTR aside) is logged, counted (Metrics.PollError) and
// retried with a doubling backoff; after ten failures in a row the transport gives up and
// says so on Server.Failed, and cmd/pushwire shuts the process down with the error: a
// broken epoll instance does not heal, and a restart beats sockets nobody reads.
//
// Every goroutine the server starts (the netpoller and its callbacks, the flushers, writer
// goroutines, the goroutines that end connections, native pings, a paused read side's
// timer) belongs to one group (goGroup), and Shutdown returns only once all of them have
// exited; TestShutdownJoinsGoroutines checks it on both transports. The goroutines net/http
// runs ServeHTTP on are the http.Server's.
//
// New connections from one client address (one IPv6 /64; the first X-Forwarded-For entry when
// trusted) are limited by a token bucket of Options.MaxConnectionsPerIPPerMinute; an upgrade
// over it gets error 4100 and close 4100. Options.Metrics, a consumer-side interface, is told
// of every connection, refusal, message in and out, slow consumer and disconnect (with its
// close code and CloseReason). SetDraining and Draining carry readiness for a probe.
package server
