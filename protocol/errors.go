package protocol

import "fmt"

// Pusher protocol error and close codes (Pusher "Error Codes", spec ws-protocol §1.6).
const (
	CodeGeneric            = 4000 // catch-all for malformed input; Pusher's "SSL only"
	CodeAppNotFound        = 4001 // application does not exist
	CodeAppDisabled        = 4003 // application disabled
	CodeOverQuota          = 4004 // application over its connection quota
	CodePathNotFound       = 4005 // path not found
	CodeUnauthorized       = 4009 // connection or subscription not authorized
	CodeOverCapacity       = 4100 // node over capacity, or a slow consumer / full presence channel
	CodeReconnect          = 4200 // generic "reconnect immediately", used on shutdown
	CodePongTimeout        = 4201 // pong reply not received in time
	CodeInactivity         = 4202 // closed after inactivity
	CodeChannelError       = 4300 // invalid channel name, member data too large, ...
	CodeClientEventRefused = 4301 // client event rejected (rate limit or rule)
)

// Error is a protocol error carrying its Pusher code. It is sent to a client as the data of a
// pusher:error frame and, when fatal, also used as the WebSocket close code and reason.
type Error struct {
	Code    int
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("pusher error %d: %s", e.Code, e.Message) }

// Errorf builds an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
