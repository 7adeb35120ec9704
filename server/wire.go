package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/server/wsframe"
)

// wire is the socket under a conn: coder/websocket (stdWire, used for TLS, permessage-deflate
// and ws_transport: std) or pushwire's event-driven transport (pollWire). Only the conn's
// writer goroutine calls write, finish and afterClose; closeNow and ping may be called from
// anywhere.
type wire interface {
	// write sends ctrl (control frames already encoded; only pollWire queues any) and then
	// frames as text messages. It returns how many of frames were written.
	write(ctrl []byte, frames [][]byte) (int, error)
	// finish sends errFrame (when not nil) as a text message, then a close frame with code
	// and reason, and ends the socket's write side. The error is errFrame's.
	finish(errFrame []byte, code int, reason string) error
	// afterClose runs once the writer has finished and c.done is closed.
	afterClose()
	// refuse is finish for a connection that was never served, followed by the close: it
	// runs on the upgrading goroutine.
	refuse(errFrame []byte, code int, reason string)
	// closeNow drops the socket at once.
	closeNow()
	// ping sends a WebSocket ping (the V2 heartbeat); its pong counts as activity.
	ping()
}

// messageType is the WebSocket message type of the connection's frames: binary for the
// binary wire formats, else text.
func (c *conn) messageType() websocket.MessageType {
	if c.enc.Binary() {
		return websocket.MessageBinary
	}
	return websocket.MessageText
}

// dataOp is messageType as a frame opcode (the epoll transport).
func (c *conn) dataOp() wsframe.Opcode {
	if c.enc.Binary() {
		return wsframe.OpBinary
	}
	return wsframe.OpText
}

// stdWire is a conn on coder/websocket: one Write per message, the close handshake and
// pings handled by the library, and a reader goroutine (conn.readLoop) per connection.
type stdWire struct {
	ws         *websocket.Conn
	c          *conn
	writeStart *atomic.Int64 // the conn's: unix nanos the current write began, 0 between
	guard      *frameGuard   // checks the inbound frame headers the library does not
}

func (w *stdWire) write(_ []byte, frames [][]byte) (int, error) {
	for i, f := range frames {
		if err := w.writeOne(f); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}

// writeOne writes one text message with the watchdog's clock running (no context per write,
// so coder/websocket sets up no timer for it).
func (w *stdWire) writeOne(frame []byte) error {
	w.writeStart.Store(time.Now().UnixNano())
	err := w.ws.Write(context.Background(), w.c.messageType(), frame)
	w.writeStart.Store(0)
	return err
}

func (w *stdWire) finish(errFrame []byte, code int, reason string) error {
	var err error
	if errFrame != nil {
		err = w.writeOne(errFrame)
	}
	_ = w.ws.Close(websocket.StatusCode(code), reason)
	return err
}

func (w *stdWire) afterClose() {}

func (w *stdWire) refuse(errFrame []byte, code int, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), w.c.srv.opts.WriteTimeout)
	defer cancel()
	_ = w.ws.Write(ctx, w.c.messageType(), errFrame)
	_ = w.ws.Close(websocket.StatusCode(code), reason)
}

func (w *stdWire) closeNow() { _ = w.ws.CloseNow() }

func (w *stdWire) ping() {
	w.c.srv.goroutines.Go(func() { w.c.nativePing(w.ws, w.c.srv.opts.PongTimeout) })
}
