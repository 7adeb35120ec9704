package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// CloseReason says why a connection ended. It is the log field "reason" and the reason
// label of the disconnect and refusal metrics.
type CloseReason string

// Close reasons.
const (
	reasonClient          CloseReason = "client_closed"
	reasonSlowConsumer    CloseReason = "slow_consumer"
	reasonActivityTimeout CloseReason = "activity_timeout"
	reasonAuthFailed      CloseReason = "auth_failed"
	reasonShutdown        CloseReason = "shutdown"
	reasonAppRefused      CloseReason = "app_refused"
	reasonOverCapacity    CloseReason = "over_capacity"
	reasonServer          CloseReason = "server_closed"
	reasonTooBig          CloseReason = "message_too_big"
	// reasonRefusals: the connection kept sending requests after being refused past
	// Options.MaxRefusedRequests (close 4301).
	reasonRefusals      CloseReason = "too_many_refusals"
	reasonPanic         CloseReason = "internal_error"
	reasonWriteFailed   CloseReason = "write_failed"
	reasonIPRateLimited CloseReason = "ip_rate_limited"
	reasonProtocol      CloseReason = "protocol_error"
	// reasonInboundBudget: a message still arriving needed more memory than the server-wide
	// inbound budget had left (close 1013 Try Again Later; clients reconnect).
	reasonInboundBudget CloseReason = "inbound_budget"
	// reasonPollFailed: the epoll transport could not register or re-arm the socket with
	// its netpoller (epoll_ctl failed), so it would never be read again: the connection
	// is closed with 4200 (clients reconnect) and the error logged.
	reasonPollFailed CloseReason = "poll_failed"
)

// RefusalReasons are the reasons an upgrade can be refused before the handshake, the
// reason label of Metrics.Refused.
func RefusalReasons() []string {
	return []string{string(reasonShutdown), string(reasonIPRateLimited), string(reasonOverCapacity),
		string(reasonAppRefused), string(reasonAuthFailed)}
}

// conn is one WebSocket connection. Its read side (the reader goroutine of a stdWire, or a
// pollWire's readiness callbacks, one at a time) owns hc's state; a writer goroutine, started
// when frames are queued and gone after writerLinger without any, owns the socket's write
// side; Send and closeWith are safe from anywhere. An idle connection therefore holds no
// writer goroutine and no read buffer; on a pollWire it holds no goroutine at all, only the
// heartbeat timer and its structs.
type conn struct {
	srv     *Server
	wire    wire
	pw      *pollWire // wire when it is a pollWire (its queue is written by the flushers)
	hc      *channels.Conn
	remote  string // the client's address, for logs
	version protocol.Version
	// enc is the wire format (V2 format=): frames are binary messages unless it is JSON.
	enc      protocol.Wire
	socketID string
	appID    string // set before the hub sees the connection; "" until then

	lastRead atomic.Int64 // unix nanos of the last inbound frame or ping
	// lastFlush is when a flusher last wrote to the connection (unix nanos), for coalescing.
	lastFlush atomic.Int64

	started time.Time

	// Request limits (limits.go), read side only.
	histBucket, resumeBucket bucket
	// refusals counts the requests refused (Options.MaxRefusedRequests); wasRefused is set
	// while a message is handled when it was answered with a refusal.
	refusals   bucket
	wasRefused bool
	// readStop is set when the read side closed the connection itself (a message too big,
	// too many refusals): the transport stops reading.
	readStop error
	// readPause, set when a request was refused for its rate, stops reading the socket for
	// that long after the current message (read side only).
	readPause time.Duration
	// inHistorySlot is set while the read side holds one of the server's history slots
	// (withHistorySlot); the resume pacer gives the slot back while it waits (pace.go).
	inHistorySlot bool

	mu       sync.Mutex
	queue    [][]byte
	ctrl     []byte   // encoded bytes to write before queue (pollWire: control frames, the rest of a flusher's write)
	wsCode   int      // close code for reasonProtocol and reasonTooBig (0: the default)
	wsText   string   // its close reason
	spare    [][]byte // the writer's last batch, emptied, reused as the next queue
	queued   int      // bytes in queue
	closeErr *protocol.Error
	reason   CloseReason
	closed   bool
	serving  bool // serve has started: frames may be written
	writer   bool // a writer goroutine is running (or about to)
	wake     chan struct{}
	done     chan struct{} // closed when the writer has closed the socket

	heartbeat *time.Timer  // runs beat
	pingAt    atomic.Int64 // unix nanos of our outstanding heartbeat ping, 0 if none

	watchdog   *time.Timer  // runs checkWrite while a writer writes a batch; made with the first writer
	inBatch    atomic.Bool  // a writer is writing a batch
	writeStart atomic.Int64 // unix nanos the current socket write began, 0 between writes
}

// writerLinger is how long a stdWire's writer goroutine waits for more frames before it
// exits, so a busy connection keeps one writer while an idle one holds none. A pollWire's
// writer exits as soon as the queue is empty (the flushers take the next frames).
const writerLinger = time.Second

func (c *conn) init() {
	c.wake = make(chan struct{}, 1)
	c.done = make(chan struct{})
	// Both timers exist (stopped) before anything can run them, so their functions may use
	// the fields; serve and the writer arm them.
	c.heartbeat = time.AfterFunc(time.Hour, c.beat)
	c.heartbeat.Stop()
	c.touch()
}

func (c *conn) touch() { c.lastRead.Store(time.Now().UnixNano()) }

// logAt logs msg with the connection's fields (socket_id, remote, app_id), built only when
// the level is on: a connection keeps no logger of its own.
func (c *conn) logAt(lvl zapcore.Level, msg string, fields ...zap.Field) {
	ce := c.srv.log.Check(lvl, msg)
	if ce == nil {
		return
	}
	ce.Write(append([]zap.Field{zap.String("socket_id", c.socketID), zap.String("remote", c.remote), zap.String("app_id", c.appID)}, fields...)...)
}

// SocketID implements channels.Subscriber.
func (c *conn) SocketID() string { return c.socketID }

// Version implements channels.Subscriber.
func (c *conn) Version() protocol.Version { return c.version }

// Send implements channels.Subscriber: it queues a JSON frame without blocking, transcoded
// first when the connection speaks a binary format. A connection over its queue bounds is
// closed with 4100 and the frame dropped.
func (c *conn) Send(frame []byte) {
	c.SendEncoded(c.encode(frame))
}

// encode transcodes a JSON frame into the connection's wire format.
func (c *conn) encode(frame []byte) []byte {
	if !c.enc.Binary() {
		return frame
	}
	return protocol.MustEncode(c.enc.Form(), frame)
}

// SendEncoded implements channels.Subscriber: Send for a frame already in the connection's
// wire format (a fan-out encodes each form once for all its subscribers).
func (c *conn) SendEncoded(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	o := &c.srv.opts
	if len(c.queue) >= o.WriteQueueMessages || c.queued+len(frame) > o.WriteQueueBytes {
		c.mu.Unlock()
		if c.closeWith(&protocol.Error{Code: protocol.CodeOverCapacity, Message: "Client is too slow: write queue full"}, reasonSlowConsumer) {
			c.srv.metrics.SlowConsumer(c.appID)
			c.record(channels.Activity{Kind: channels.ActSlowConsumer, Code: protocol.CodeOverCapacity, Detail: "write queue full"})
		}
		return
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.kickLocked()
}

// kickLocked releases c.mu and makes sure the queue will be written. If nobody holds the
// writer role (c.writer), it is taken: a pollWire connection is handed to the server's
// flushers (no goroutine of its own), any other gets a writer goroutine. Otherwise the
// holder is woken. Before serve nothing is written (a refused connection writes its own
// error), and serve kicks once it starts.
func (c *conn) kickLocked() {
	if !c.writer && c.serving {
		c.writer = true
		if c.pw != nil && !c.closed {
			c.mu.Unlock()
			c.srv.flush.push(c)
			return
		}
		c.startWriterLocked()
		return
	}
	c.mu.Unlock()
	if c.pw != nil {
		return // a pollWire's role holder (flusher or writer) looks at the queue again before it lets go
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// startWriterLocked starts a writer goroutine for the holder of the writer role and
// releases c.mu.
func (c *conn) startWriterLocked() {
	if c.watchdog == nil {
		// Made (stopped) before the first writer runs; the writer arms it per batch.
		c.watchdog = time.AfterFunc(time.Hour, c.checkWrite)
		c.watchdog.Stop()
	}
	c.mu.Unlock()
	c.srv.goroutines.Go(c.writeLoop)
}

// flushMaxBytes is the most a flusher writes for one connection in one turn; a larger
// backlog goes to a writer goroutine of its own.
const flushMaxBytes = 256 << 10

// flush is a flusher's turn at c, which holds the writer role: everything queued, encoded
// into one buffer and written with one non-blocking write. When the socket does not take
// it all (the client reads slowly), when the backlog is large, or when the connection is
// closing (the close sequence may wait), a writer goroutine takes the role over and the
// flusher moves on.
func (c *conn) flush() {
	c.mu.Lock()
	if c.closed || c.queued > flushMaxBytes {
		c.startWriterLocked()
		return
	}
	batch, ctrl := c.queue, c.ctrl
	if len(batch) == 0 && len(ctrl) == 0 {
		c.writer = false
		c.mu.Unlock()
		return
	}
	if len(batch) > 0 {
		c.queue, c.spare, c.queued = c.spare, nil, 0
	}
	c.ctrl = nil
	c.mu.Unlock()
	rest, err := c.pw.tryWrite(ctrl, batch)
	c.lastFlush.Store(time.Now().UnixNano())
	if err == nil {
		for _, frame := range batch {
			c.srv.metrics.MessageOut(c.appID, len(frame))
		}
	}
	c.mu.Lock()
	c.recycleLocked(batch)
	switch {
	case err != nil:
		c.mu.Unlock()
		c.logAt(zap.DebugLevel, "write failed", zap.Error(err))
		c.closeWith(nil, reasonWriteFailed)
		c.mu.Lock()
		c.startWriterLocked() // to close the socket
	case rest != nil:
		c.ctrl = append(rest, c.ctrl...)
		c.startWriterLocked() // waits until the socket takes the rest
	case len(c.queue) > 0 || len(c.ctrl) > 0 || c.closed:
		c.mu.Unlock()
		c.srv.flush.push(c) // more came meanwhile: another turn
	default:
		c.writer = false
		c.mu.Unlock()
	}
}

// recycleLocked keeps a written batch's slice as the next queue's (an empty batch is still
// c.queue and stays). Called with c.mu held.
func (c *conn) recycleLocked(batch [][]byte) {
	if len(batch) > 0 && cap(batch) <= maxSpare {
		clear(batch) // don't pin the frames
		c.spare = batch[:0]
	}
}

// Close implements channels.Subscriber.
func (c *conn) Close(err *protocol.Error) {
	reason := reasonServer
	if err != nil && err.Code == protocol.CodeUnauthorized {
		reason = reasonAuthFailed
	}
	c.closeWith(err, reason)
}

// closeWith asks the writer to send err as an error frame (queued frames are dropped, except
// on shutdown when they are written first) and
// close the socket with err's code. It never blocks; only the first call counts, and it
// reports whether this call was the first.
func (c *conn) closeWith(err *protocol.Error, reason CloseReason) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed, c.closeErr, c.reason = true, err, reason
	switch reason {
	case reasonSlowConsumer, reasonWriteFailed, reasonClient, reasonTooBig, reasonPanic:
		// A slow, failed or gone client loses its backlog. Otherwise (shutdown, a revoked or
		// expired token, a terminated user) the frames already queued — events the API
		// acknowledged, the token_expired notice — are written before the closing error.
		c.queue, c.queued = nil, 0
	}
	c.kickLocked()
	return true
}

// closeProtocol closes the connection for a WebSocket-level failure of the client (a frame
// breaking RFC 6455, invalid UTF-8, a message over the hard limit): no error frame, a close
// frame with code.
func (c *conn) closeProtocol(code int, text string, reason CloseReason) {
	c.mu.Lock()
	if !c.closed {
		c.wsCode, c.wsText = code, text
	}
	c.mu.Unlock()
	c.closeWith(nil, reason)
}

// queueCtrl queues an encoded control frame, written before the queued messages. A client
// flooding pings gets pongs only while fewer than maxCtrl bytes wait (RFC 6455 lets a server
// answer only the latest ping).
func (c *conn) queueCtrl(frame []byte) {
	c.mu.Lock()
	if c.closed || len(c.ctrl)+len(frame) > maxCtrl {
		c.mu.Unlock()
		return
	}
	c.ctrl = append(c.ctrl, frame...)
	c.kickLocked()
}

const maxCtrl = 4 << 10

// refuse ends a connection before the handshake: error frame, then close with its code.
func (c *conn) refuse(err *protocol.Error, reason CloseReason) {
	c.logAt(zap.InfoLevel, "connection refused", zap.Int("code", err.Code), zap.String("reason", string(reason)), zap.String("message", err.Message))
	c.srv.metrics.Refused(string(reason))
	c.wire.refuse(c.encode(protocol.ErrorFrame(c.version, err)), err.Code, closeText(err.Message))
}

// closeText trims a close reason to the 123 bytes a close frame allows.
func closeText(s string) string {
	if len(s) > 123 {
		return s[:123]
	}
	return s
}

// serve runs the connection after the handshake: connection_established, heartbeat, the
// read side, cleanup. On a stdWire it returns when the connection has ended; a pollWire's
// read side runs from readiness callbacks, so serve returns at once and end runs later.
func (c *conn) serve(ctx context.Context) {
	c.started = time.Now()
	c.logAt(zap.DebugLevel, "connected", zap.Stringer("protocol", versionName(c.version)))
	// The hub may already have queued frames for this connection (a capability token that
	// expires during the handshake, a revocation, a terminate): connection_established goes
	// in front of them, and nothing is written before it, so it is always the first frame.
	hello := c.encode(protocol.ConnectionEstablished(c.version, c.socketID, c.srv.activity))
	c.mu.Lock()
	if !c.closed {
		c.queue = append(c.queue, nil)
		copy(c.queue[1:], c.queue)
		c.queue[0] = hello
		c.queued += len(hello)
	}
	c.serving = true
	if c.closed || len(c.queue) > 0 || len(c.ctrl) > 0 {
		c.kickLocked() // also when a closeWith came first and the Send was dropped
	} else {
		c.mu.Unlock()
	}
	c.heartbeat.Reset(c.idleLimit())
	switch w := c.wire.(type) {
	case *stdWire:
		c.end(c.readLoop(ctx, w))
	case *pollWire:
		w.start()
	}
}

// end cleans up once the read side is over (readErr says how): it makes sure the writer
// finishes and the socket is closed, leaves the hub and unregisters the connection.
func (c *conn) end(readErr error) {
	c.closeWith(nil, reasonClient)
	<-c.done
	c.heartbeat.Stop()
	c.mu.Lock()
	reason, closeErr, wsCode := c.reason, c.closeErr, c.wsCode
	c.mu.Unlock()
	if reason == reasonActivityTimeout {
		c.hc.MarkTimedOut() // its presence members leave with cause "timeout"
	}
	c.hc.Disconnect()
	code := closeCode(closeErr, reason, readErr, wsCode)
	c.srv.metrics.Disconnected(c.appID, code, string(reason))
	c.record(channels.Activity{Kind: channels.ActDisconnected, Code: code, Detail: string(reason)})
	fields := []zap.Field{zap.String("reason", string(reason)), zap.Int("code", code), zap.Duration("duration", time.Since(c.started))}
	if readErr != nil && websocket.CloseStatus(readErr) == -1 && !errors.Is(readErr, io.EOF) && !errors.Is(readErr, context.Canceled) {
		fields = append(fields, zap.Error(readErr))
	}
	c.logAt(zap.DebugLevel, "disconnected", fields...)
	c.srv.unregister(c)
}

// closeCode is the close code a connection ended with: the server's error code, the client's
// code when the client closed (1005 when it gave none), 1006 when the socket dropped or a
// write failed, wsCode (1002, 1007, 1009) for a WebSocket-level failure of the client, 1009
// for an oversized message, 1000 for any other server close.
func closeCode(closeErr *protocol.Error, reason CloseReason, readErr error, wsCode int) int {
	switch {
	case closeErr != nil:
		return closeErr.Code
	case reason == reasonClient:
		if st := websocket.CloseStatus(readErr); st != -1 {
			return int(st)
		}
		return int(websocket.StatusAbnormalClosure)
	case reason == reasonWriteFailed:
		return int(websocket.StatusAbnormalClosure)
	case wsCode != 0:
		return wsCode
	case reason == reasonTooBig:
		return int(websocket.StatusMessageTooBig)
	}
	return int(websocket.StatusNormalClosure)
}

type versionName protocol.Version

func (v versionName) String() string { return fmt.Sprintf("%d", uint8(v)) }

// idleLimit is the silence after which the heartbeat pings: ActivityTimeout for V1; V2
// connections get no app-level ping but a native WebSocket ping after
// max(ActivityTimeout/2, 5s). Either way PongTimeout then passes with no reply → 4201.
func (c *conn) idleLimit() time.Duration {
	o := &c.srv.opts
	if c.version == protocol.V2 {
		return max(o.ActivityTimeout/2, 5*time.Second)
	}
	return o.ActivityTimeout
}

// beat is the heartbeat timer's function: after idleLimit of silence it pings, and closes
// with 4201 when PongTimeout passes with no reply. It re-arms itself until the connection
// closes.
func (c *conn) beat() {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	o := &c.srv.opts
	idleLimit := c.idleLimit()
	now := time.Now().UnixNano()
	last := c.lastRead.Load()
	pingAt := c.pingAt.Load()
	switch {
	case pingAt != 0 && last > pingAt:
		c.pingAt.Store(0) // the client answered; re-arm below
	case pingAt != 0:
		c.closeWith(&protocol.Error{Code: protocol.CodePongTimeout, Message: "Pong reply not received in time"}, reasonActivityTimeout)
		return
	}
	idle := time.Duration(now - last)
	if idle < idleLimit {
		c.heartbeat.Reset(idleLimit - idle)
		return
	}
	c.pingAt.Store(now)
	if c.version == protocol.V2 {
		c.wire.ping()
	} else {
		c.Send(protocol.Ping(c.version))
	}
	c.heartbeat.Reset(o.PongTimeout)
}

// writeLoop drains the queue to the socket. It returns when the queue stays empty for
// writerLinger (a later Send starts a new writer) or, once the connection is closing, after
// writing what is left and closing the socket.
func (c *conn) writeLoop() {
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		c.mu.Lock()
		batch, ctrl := c.queue, c.ctrl
		if len(batch) > 0 {
			c.queue, c.spare, c.queued = c.spare, nil, 0
		}
		c.ctrl = nil
		closing, closeErr, reason := c.closed, c.closeErr, c.reason
		if len(batch) == 0 && len(ctrl) == 0 && !closing {
			if c.pw != nil {
				// On a pollWire the next Send writes directly: no reason to linger.
				c.writer = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			if linger == nil {
				linger = time.NewTimer(writerLinger)
			} else {
				linger.Reset(writerLinger)
			}
			select {
			case <-c.wake:
				continue
			case <-linger.C:
			}
			c.mu.Lock()
			if len(c.queue) == 0 && len(c.ctrl) == 0 && !c.closed {
				c.writer = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		c.inBatch.Store(true)
		c.watchdog.Reset(c.srv.opts.WriteTimeout)
		if len(batch) > 0 || len(ctrl) > 0 {
			n, err := c.wire.write(ctrl, batch)
			for _, frame := range batch[:n] {
				c.srv.metrics.MessageOut(c.appID, len(frame))
			}
			if err != nil {
				c.closeWith(nil, reasonWriteFailed)
				c.logAt(zap.DebugLevel, "write failed", zap.Error(err))
				if closing {
					reason = reasonWriteFailed
				}
			}
		}
		if closing {
			c.finish(closeErr, reason)
		}
		c.inBatch.Store(false)
		c.watchdog.Stop()
		if closing {
			close(c.done)
			c.wire.afterClose()
			return
		}
		c.mu.Lock()
		c.recycleLocked(batch)
		c.mu.Unlock()
	}
}

// maxSpare bounds the batch slice a connection keeps for reuse (a burst's larger one goes).
const maxSpare = 64

// checkWrite is the watchdog's function: a socket write still running WriteTimeout after it
// began closes the socket, which fails the write (as a write context's deadline would,
// without a context and a timer per frame). It re-arms itself while the batch lasts.
func (c *conn) checkWrite() {
	if !c.inBatch.Load() {
		return
	}
	timeout := c.srv.opts.WriteTimeout
	began := c.writeStart.Load()
	if began == 0 { // between two writes
		c.watchdog.Reset(timeout)
		return
	}
	if elapsed := time.Duration(time.Now().UnixNano() - began); elapsed < timeout {
		c.watchdog.Reset(timeout - elapsed)
		return
	}
	c.logAt(zap.DebugLevel, "write timed out", zap.Duration("timeout", timeout))
	c.wire.closeNow()
}

// nativePing sends a WebSocket ping on ws and counts its pong as activity. The pong is read
// by the connection's read loop; the heartbeat closes the connection if none comes.
func (c *conn) nativePing(ws *websocket.Conn, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if ws.Ping(ctx) == nil {
		c.touch()
	}
}

// finish writes the closing error frame (if any) and closes the socket with the error's
// code (the WebSocket-level code for reasonProtocol and reasonTooBig, else 1000).
func (c *conn) finish(err *protocol.Error, reason CloseReason) {
	if err == nil {
		code, text := int(websocket.StatusNormalClosure), ""
		c.mu.Lock()
		if c.wsCode != 0 {
			code, text = c.wsCode, c.wsText
		}
		c.mu.Unlock()
		_ = c.wire.finish(nil, code, text)
		return
	}
	var frame []byte
	if reason != reasonWriteFailed {
		frame = c.encode(protocol.ErrorFrame(c.version, err))
	}
	c.logAt(zap.DebugLevel, "closing", zap.Int("code", err.Code), zap.String("reason", string(reason)))
	if c.wire.finish(frame, err.Code, closeText(err.Message)) == nil && frame != nil {
		c.srv.metrics.MessageOut(c.appID, len(frame))
	}
}

// readLoop reads and dispatches a stdWire's messages until the connection ends.
func (c *conn) readLoop(ctx context.Context, w *stdWire) (err error) {
	ws := w.ws
	defer func() {
		if p := recover(); p != nil {
			c.logAt(zap.ErrorLevel, "panic while serving connection", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			c.closeWith(&protocol.Error{Code: protocol.CodeReconnect, Message: "Internal server error"}, reasonPanic)
			err = fmt.Errorf("server: panic: %v", p)
		}
	}()
	limit := c.maxMessage() // coder/websocket's read limit closes with 1009 past it
	for {
		typ, r, err := ws.Reader(ctx)
		if err != nil {
			return c.readFailed(w, err)
		}
		c.touch()
		// The message buffer comes from a pool for the time of one message, so an idle
		// connection holds none.
		buf := readBufs.Get().(*bytes.Buffer)
		n, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
		if err != nil {
			putReadBuf(buf)
			return c.readFailed(w, err)
		}
		if n > int64(limit) {
			putReadBuf(buf)
			c.tooBig(int(n))
			return c.readStop
		}
		if typ == websocket.MessageText && !utf8.Valid(buf.Bytes()) {
			// coder/websocket does not check (RFC 6455 §8.1: fail the connection, 1007).
			putReadBuf(buf)
			c.closeProtocol(1007, "invalid UTF-8", reasonProtocol)
			return errors.New("server: invalid UTF-8 in a text message")
		}
		c.message(typ == websocket.MessageText, buf.Bytes())
		putReadBuf(buf)
		if c.readStop != nil {
			return c.readStop
		}
		if d := c.readPause; d > 0 {
			c.readPause = 0
			pause := time.NewTimer(d)
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
			}
		}
	}
}

// readFailed closes the connection with 1002, 1007 or 1009 when the read failed on a frame
// the guard refused (coder/websocket would close it with 1000), and returns err.
func (c *conn) readFailed(w *stdWire, err error) error {
	if gerr := w.guard.Err(); gerr != nil {
		reason := reasonProtocol
		if gerr.code == 1009 {
			reason = reasonTooBig
		}
		c.closeProtocol(int(gerr.code), gerr.Error(), reason)
	}
	return err
}

// message handles one whole inbound data message of at most maxMessage bytes; msg is only
// valid during the call. A text message is JSON on every connection; a binary one is
// decoded in the connection's binary format (a format=json connection refuses it). Either
// way the answers go out in the connection's format. A message over MaxMessageBytes (only
// a protocol 2 connection's can be) must be a sockudo:resume: anything else closes the
// connection with 1009 (tooBig), as a larger frame would have from its header.
func (c *conn) message(text bool, msg []byte) {
	over := len(msg) > c.srv.opts.MaxMessageBytes
	if !over {
		c.srv.metrics.MessageIn(c.appID, len(msg))
	}
	var (
		f    protocol.Frame
		perr *protocol.Error
	)
	switch {
	case text:
		f, perr = protocol.ParseFrame(msg)
	case c.enc.Binary():
		f, perr = protocol.DecodeBinary(c.enc.Form(), msg)
	default:
		perr = &protocol.Error{Code: protocol.CodeGeneric, Message: "Binary frames are not supported: send JSON text frames"}
	}
	if over {
		if name, system := protocol.Canonical(f.Event); perr != nil || !system || name != "resume" {
			c.tooBig(len(msg))
			return
		}
		c.srv.metrics.MessageIn(c.appID, len(msg))
	}
	if perr != nil {
		c.sendError(perr)
		return
	}
	c.dispatch(f)
	if c.wasRefused {
		c.wasRefused = false
		c.refusal()
	}
}

// readBufs holds the buffers inbound messages are read into, shared by all connections.
var readBufs = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}

// putReadBuf returns a message buffer to the pool, unless a large message grew it: that one
// is left to the garbage collector rather than pinned.
func putReadBuf(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return
	}
	b.Reset()
	readBufs.Put(b)
}

func (c *conn) sendError(err *protocol.Error) { c.sendErrorOn("", err) }

// sendErrorOn sends an error frame about channel ("" none) and shows it to a console watching
// the app.
// A refusal (4301, 4100) counts against the connection's budget (refusal).
func (c *conn) sendErrorOn(channel string, err *protocol.Error) {
	c.Send(protocol.ErrorFrame(c.version, err))
	c.record(channels.Activity{Kind: channels.ActError, Channel: channel, Code: err.Code, Detail: err.Message})
	if err.Code == protocol.CodeClientEventRefused || err.Code == protocol.CodeOverCapacity {
		c.wasRefused = true
	}
}

// record hands an activity of this connection to the tap when someone watches its app.
func (c *conn) record(a channels.Activity) {
	if t := c.srv.opts.Tap; t != nil && c.appID != "" && t.Watching(c.appID) {
		a.AppID, a.SocketID = c.appID, c.socketID
		t.Record(a)
	}
}

// InputPending implements channels.InputPender: on the epoll transport, whether the client
// has sent bytes not handled yet (so a resume hold waits for a resume the server has not
// read); false on the std transport, which reads one message at a time.
func (c *conn) InputPending() bool {
	if c.pw == nil {
		return false
	}
	return c.pw.inputPending()
}

var _ channels.InputPender = (*conn)(nil)
