package server

// Metrics receives the gateway's counters. It is defined here, where it is consumed;
// *metrics.Metrics implements it. Every method must be cheap, must not block and must be
// safe for concurrent use. A nil Options.Metrics records nothing.
type Metrics interface {
	// Connected counts a connection of appID that completed the handshake.
	Connected(appID string)
	// Disconnected counts the end of a connection Connected counted: code is the close code
	// the server sent (or the client's, 1000/1005, when the client closed; 1006 when the
	// socket just dropped) and reason the CloseReason.
	Disconnected(appID string, code int, reason string)
	// MessageIn counts one WebSocket message of n bytes read from a client.
	MessageIn(appID string, n int)
	// MessageOut counts one WebSocket message of n bytes written to a client.
	MessageOut(appID string, n int)
	// SlowConsumer counts a connection closed with 4100 because its write queue was full.
	SlowConsumer(appID string)
	// Refused counts an upgraded socket refused before the handshake (no app yet), by
	// CloseReason: ip_rate_limited, over_capacity, app_refused, shutdown.
	Refused(reason string)
	// PollError counts a failed epoll_wait of the epoll transport's netpoller (EINTR
	// aside): each is logged and retried; too many in a row make the server fail
	// (Server.Failed).
	PollError()
}

// nopMetrics is the Metrics used when none is configured.
type nopMetrics struct{}

func (nopMetrics) Connected(string)                 {}
func (nopMetrics) Disconnected(string, int, string) {}
func (nopMetrics) MessageIn(string, int)            {}
func (nopMetrics) MessageOut(string, int)           {}
func (nopMetrics) SlowConsumer(string)              {}
func (nopMetrics) Refused(string)                   {}
func (nopMetrics) PollError()                       {}
