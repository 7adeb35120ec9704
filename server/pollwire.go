package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/internal/bytebudget"
	"github.com/pushwire/pushwire/protocol"
	"github.com/pushwire/pushwire/server/wsframe"
)

// pollWire is a conn on pushwire's own RFC 6455 transport: a hijacked TCP socket whose
// reads are driven by the server's netpoller, so an idle connection has no goroutine, no
// read buffer and no bufio buffers. When the socket is readable, a short-lived goroutine
// (one at a time per connection: the fd is armed one-shot) reads what is there into a
// pooled buffer, dispatches every whole message and keeps only the bytes of an unfinished
// frame. The writer encodes a whole batch of queued messages into one buffer and writes it
// with one call.
//
// Closing follows RFC 6455: the side that closes first sends a close frame, and the TCP
// connection is closed once both have (or after closeWait).
type pollWire struct {
	c    *conn
	nc   net.Conn
	rc   syscall.RawConn // every use of the fd goes through it (see ioOp)
	poll *netpoller
	asm  wsframe.Assembler
	// deflate is set when permessage-deflate was agreed: messages of at least threshold
	// bytes go out compressed.
	deflate   bool
	threshold int

	// Owned by the read side (one readiness callback at a time).
	pending []byte // bytes of an unfinished frame header or control frame between two callbacks; nil when idle
	// held is the assembler's reservation in the server's inbound budget; teardown gives
	// back what is left (the read side may still be running then).
	held    heldBytes
	onEvent func()
	// handoff orders one callback's work before the next one's for the race detector (the
	// real order comes from the one-shot re-arm, a system call it cannot see).
	handoff atomic.Uint32

	// dispatching is set while the read side handles the frames of one read (inputPending).
	dispatching atomic.Bool

	readErr   atomic.Pointer[error] // how the read side ended (for the disconnect's code)
	peerDone  atomic.Bool           // the read side is over: do not wait for the client's close frame
	finished  atomic.Bool           // the writer has sent our close frame
	closeOnce sync.Once
	endOnce   sync.Once

	// The timers of a paused read side (pauseRead) and of the wait for the client's close
	// frame (afterClose), owned by the server's goroutine group (afterOwned) until they
	// have run or teardown (torn) stopped them.
	timerMu                sync.Mutex
	pauseTimer, closeTimer *time.Timer
	torn                   bool
}

// closeWait is how long a connection whose close frame was sent waits for the client's.
const closeWait = 5 * time.Second

// writeChunk bounds one socket write, so the write watchdog measures progress, not the size
// of a batch.
const writeChunk = 256 << 10

// pollReadSize is the size of the pooled read buffers (a frame that does not fit is
// absorbed by the assembler as it arrives).
const pollReadSize = 16 << 10

var (
	pollReadBufs  = sync.Pool{New: func() any { b := make([]byte, pollReadSize); return &b }}
	pollWriteBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
)

// pollable reports whether r can be served on a pollWire: the server has a netpoller, the
// request is plain HTTP/1.1 (TLS stays on coder/websocket), and permessage-deflate, if the
// client offers it (deflateOffered), is not to be agreed with context takeover (which keeps
// a window per connection: coder/websocket does that).
func (s *Server) pollable(r *http.Request, deflateOffered bool) bool {
	if s.poll == nil || r.TLS != nil || r.ProtoMajor != 1 {
		return false
	}
	return s.opts.Compression != websocket.CompressionContextTakeover || !deflateOffered
}

// acceptPoll performs the opening handshake itself and hijacks the socket for a pollWire,
// agreeing permessage-deflate when deflate is set. A request that is not a valid upgrade
// gets its HTTP error here.
func (s *Server) acceptPoll(w http.ResponseWriter, r *http.Request, c *conn, deflate bool) (*pollWire, error) {
	key, err := wsframe.CheckUpgrade(r)
	if err != nil {
		if errors.Is(err, wsframe.ErrBadVersion) {
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, "pushwire: unsupported Sec-WebSocket-Version: use 13", http.StatusUpgradeRequired)
		} else {
			http.Error(w, "pushwire: "+err.Error(), http.StatusBadRequest)
		}
		return nil, err
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "pushwire: cannot take over the connection", http.StatusInternalServerError)
		return nil, fmt.Errorf("server: hijack: %w", err)
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("server: hijack: %T has no file descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("server: hijack: %w", err)
	}
	pw := &pollWire{c: c, nc: nc, rc: rc, poll: s.poll}
	pw.asm.MaxMessage = int64(c.maxMessage())
	if s.opts.InboundBudget != nil {
		pw.held.b = s.opts.InboundBudget
		pw.asm.Budget = &pw.held
	}
	if deflate {
		pw.deflate, pw.asm.Deflate = true, true
		pw.threshold = s.opts.CompressionThreshold
		if pw.threshold <= 0 {
			pw.threshold = defaultDeflateThreshold
		}
	}
	pw.onEvent = pw.event
	// Frames the client sent right behind its request are already in net/http's buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pw.pending = bytes.Clone(b)
	}
	_ = nc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	resp := wsframe.AppendResponse(make([]byte, 0, 256), key)
	if pw.deflate {
		resp = append(resp[:len(resp)-2], deflateExtension+"\r\n"...)
	}
	_, err = nc.Write(resp)
	_ = nc.SetWriteDeadline(time.Time{})
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("server: handshake: %w", err)
	}
	return pw, nil
}

// start hands the read side to the netpoller (after handling what arrived with the request).
func (w *pollWire) start() {
	if w.pending != nil && !w.drain() {
		return
	}
	w.c.readPause = 0 // frames sent with the request are not paused for
	w.handoff.Add(1)
	var err error
	if cerr := w.rc.Control(func(fd uintptr) { err = w.poll.add(int(fd), w.onEvent) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		w.pollFailed(err)
	}
}

// event is the netpoller's callback: read and handle what is there, then re-arm.
func (w *pollWire) event() {
	w.handoff.Load()
	if !w.drain() {
		return
	}
	w.handoff.Add(1)
	if d := w.c.readPause; d > 0 {
		// A request over its rate: the socket is not read (TCP pushes back) until the
		// connection may ask again; then what is pending is handled and the fd re-armed.
		w.c.readPause = 0
		w.pauseRead(d)
		return
	}
	// Re-armed under the fd's reference, so a concurrent close cannot hand the number to
	// another connection in between.
	var err error
	if cerr := w.rc.Control(func(fd uintptr) { err = w.poll.rearm(int(fd)) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		w.pollFailed(err)
	}
}

// pollFailed ends a connection whose socket the netpoller could not register or re-arm:
// it would never be read again. Unless the socket was closed meanwhile (the connection is
// ending anyway), the error is logged, and the client gets 4200 and a close frame, so it
// reconnects; Metrics.Disconnected counts the reason poll_failed.
func (w *pollWire) pollFailed(err error) {
	if !errors.Is(err, net.ErrClosed) {
		w.c.logAt(zap.ErrorLevel, "epoll transport: cannot watch the socket; closing the connection",
			zap.String("reason", string(reasonPollFailed)), zap.Error(err))
		w.c.closeWith(&protocol.Error{Code: protocol.CodeReconnect, Message: "Internal server error"}, reasonPollFailed)
	}
	w.stopReading(fmt.Errorf("server: netpoller: %w", err), false)
}

// pauseRead runs the read side again after d.
func (w *pollWire) pauseRead(d time.Duration) { w.afterOwned(&w.pauseTimer, d, w.onEvent) }

// afterOwned runs f after d on a timer (*t) the server's goroutine group owns until f has
// run or teardown stopped it, so Shutdown cannot return while f is yet to run or running.
// After teardown it does nothing.
func (w *pollWire) afterOwned(t **time.Timer, d time.Duration, f func()) {
	g := &w.c.srv.goroutines
	w.timerMu.Lock()
	defer w.timerMu.Unlock()
	if w.torn {
		return
	}
	g.add()
	*t = time.AfterFunc(d, func() {
		defer g.done()
		f()
	})
}

// drain reads the socket until it would block, handling every whole message. It reports
// whether the read side goes on (the fd should be re-armed).
func (w *pollWire) drain() (more bool) {
	bp := pollReadBufs.Get().(*[]byte)
	b := (*bp)[:0]
	defer func() {
		if p := recover(); p != nil {
			w.c.logAt(zap.ErrorLevel, "panic while serving connection", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			w.c.closeWith(&protocol.Error{Code: protocol.CodeReconnect, Message: "Internal server error"}, reasonPanic)
			w.stopReading(fmt.Errorf("server: panic: %v", p), false)
			more = false
		}
		pollReadBufs.Put(bp)
	}()
	if w.pending != nil {
		b = append(b, w.pending...)
		w.pending = nil
	}
	ok := true
	if len(b) > 0 { // what arrived with the request, or a partial frame from last time
		if b, ok = w.consume(b); !ok {
			return false
		}
	}
	for w.c.readPause == 0 {
		space := cap(b) - len(b)
		n, err := w.read(b[len(b):cap(b)])
		if n > 0 {
			if b, ok = w.consume(b[:len(b)+n]); !ok {
				return false
			}
		}
		switch {
		case errors.Is(err, syscall.EAGAIN):
		case err != nil:
			w.stopReading(err, true)
			return false
		case n == 0:
			w.stopReading(io.EOF, true)
			return false
		case n == space:
			continue // there may be more
		}
		break
	}
	if len(b) > 0 {
		// At most a frame header or a control frame (the assembler keeps data frames'
		// bytes), or what a paused connection has not handled yet.
		w.pending = bytes.Clone(b)
	}
	return true
}

// read reads into p under the fd's reference (no waiting: EAGAIN when nothing is there).
func (w *pollWire) read(p []byte) (int, error) { return rawIO(w.rc, p, false) }

// ioOp carries one system call through syscall.RawConn, which holds the fd's reference
// meanwhile (so a concurrent Close cannot hand the number to another socket), without a
// closure allocated per call or kept per connection.
type ioOp struct {
	buf         []byte
	n           int
	err         error
	read, write func(fd uintptr) bool
}

var ioOps = sync.Pool{New: func() any {
	op := &ioOp{}
	op.read, op.write = op.doRead, op.doWrite
	return op
}}

func (op *ioOp) doRead(fd uintptr) bool {
	for {
		op.n, op.err = syscall.Read(int(fd), op.buf)
		if op.err != syscall.EINTR {
			return true
		}
	}
}

func (op *ioOp) doWrite(fd uintptr) bool {
	for {
		op.n, op.err = syscall.Write(int(fd), op.buf)
		if op.err != syscall.EINTR {
			return true
		}
	}
}

// rawIO makes one non-blocking read or write of p on rc.
func rawIO(rc syscall.RawConn, p []byte, write bool) (int, error) {
	op := ioOps.Get().(*ioOp)
	op.buf = p
	var err error
	if write {
		err = rc.Write(op.write)
	} else {
		err = rc.Read(op.read)
	}
	n, opErr := max(op.n, 0), op.err
	op.buf, op.n, op.err = nil, 0, nil
	ioOps.Put(op)
	if err != nil {
		return 0, err
	}
	return n, opErr
}

// consume handles every whole frame in b and returns the unfinished rest, moved to the front
// (compact); false means the read side is over.
func (w *pollWire) consume(b []byte) ([]byte, bool) {
	off, stop := w.process(b)
	if stop {
		return nil, false
	}
	return w.compact(b, off), true
}

// compact moves the unconsumed bytes b[off:] to the front. What is left unconsumed is at
// most an incomplete frame header or control frame (wsframe.Assembler absorbs a data frame's
// payload as it arrives), so b, pooled or not, always has room for the rest of it: the buffer
// never grows with what a header declares.
func (w *pollWire) compact(b []byte, off int) []byte {
	n := copy(b, b[off:])
	return b[:n]
}

// process handles every whole frame in b and returns how many bytes it consumed; stop
// reports that the read side is over.
func (w *pollWire) process(b []byte) (off int, stop bool) {
	c := w.c
	w.dispatching.Store(true)
	defer w.dispatching.Store(false)
	if c.hc != nil {
		// The frames of one read are one batch: a resume right behind a subscribe is handled
		// before that subscription's resume hold starts (channels.Conn.BeginFrames).
		c.hc.BeginFrames()
		defer c.hc.EndFrames()
	}
	for off < len(b) {
		n, m, ok, err := w.asm.Next(b[off:])
		if err != nil {
			var ce *wsframe.CloseError
			code, text, reason := 1002, err.Error(), reasonProtocol
			if errors.As(err, &ce) {
				code, text = int(ce.Code), ce.Reason
			}
			switch code {
			case 1009:
				reason = reasonTooBig
			case wsframe.CodeTryAgainLater:
				reason = reasonInboundBudget
			}
			c.closeProtocol(code, text, reason)
			w.stopReading(err, false)
			return off, true
		}
		if n == 0 {
			return off, false
		}
		off += n
		if !ok {
			continue
		}
		c.touch()
		switch m.Op {
		case wsframe.OpText, wsframe.OpBinary:
			if w.finished.Load() {
				continue // our close frame is out: data is discarded
			}
			if m.Compressed {
				if !w.inflated(m) {
					return off, true
				}
			} else {
				c.message(m.Op == wsframe.OpText, m.Payload)
			}
			if c.readStop != nil {
				w.stopReading(c.readStop, false)
				return off, true
			}
			if c.readPause > 0 {
				return off, false // the rest waits (event)
			}
		case wsframe.OpPing:
			c.queueCtrl(wsframe.AppendFrame(nil, wsframe.OpPong, m.Payload))
		case wsframe.OpClose:
			code, _, _ := wsframe.ParseClose(m.Payload)
			c.closeWith(nil, reasonClient)
			w.stopReading(websocket.CloseError{Code: websocket.StatusCode(code)}, false)
			return off, true
		}
	}
	return off, false
}

// inflated handles a compressed message; false means the connection is failing (the data
// does not inflate, or not to UTF-8 text).
func (w *pollWire) inflated(m wsframe.Message) bool {
	c := w.c
	limit := c.maxMessage()
	buf := readBufs.Get().(*bytes.Buffer)
	defer putReadBuf(buf)
	if err := inflateMessage(buf, m.Payload, limit); err != nil {
		c.closeProtocol(1007, "invalid compressed data", reasonProtocol)
		w.stopReading(fmt.Errorf("server: inflate: %w", err), false)
		return false
	}
	if buf.Len() > limit {
		c.tooBig(buf.Len()) // at least; the rest was not inflated
		return true
	}
	if m.Op == wsframe.OpText && !utf8.Valid(buf.Bytes()) {
		c.closeProtocol(1007, "invalid UTF-8", reasonProtocol)
		w.stopReading(errors.New("server: invalid UTF-8 in a compressed message"), false)
		return false
	}
	c.message(m.Op == wsframe.OpText, buf.Bytes())
	return true
}

// stopReading ends the read side. A dead socket (dead) is closed at once; after the client's
// close frame, a protocol error or a panic, the connection ends once the writer has sent our
// close frame (afterClose).
func (w *pollWire) stopReading(err error, dead bool) {
	w.readErr.Store(&err)
	w.peerDone.Store(true)
	if dead || w.finished.Load() {
		w.teardown()
	}
}

// tryWrite writes ctrl and then frames as text messages, encoded into one buffer, with one
// non-blocking write, and returns (a copy of) what the socket did not take. Only the holder
// of the conn's writer role calls it.
func (w *pollWire) tryWrite(ctrl []byte, frames [][]byte) (rest []byte, err error) {
	bp, b := w.encode(ctrl, frames)
	n, err := rawIO(w.rc, b, true)
	if errors.Is(err, syscall.EAGAIN) {
		err = nil
	}
	if err == nil && n < len(b) {
		rest = bytes.Clone(b[n:])
	}
	putWriteBuf(bp, b)
	return rest, err
}

// encode puts ctrl and frames (as text messages, or binary ones for a binary wire format)
// into a pooled buffer.
func (w *pollWire) encode(ctrl []byte, frames [][]byte) (*[]byte, []byte) {
	size := len(ctrl)
	for _, f := range frames {
		size += len(f) + wsframe.MaxHeaderLen
	}
	bp, b := getWriteBuf(size)
	b = append(b, ctrl...)
	for _, f := range frames {
		if w.deflate && len(f) >= w.threshold {
			b = appendDeflatedFrame(b, w.c.dataOp(), f)
			continue
		}
		b = wsframe.AppendFrame(b, w.c.dataOp(), f)
	}
	return bp, b
}

func (w *pollWire) write(ctrl []byte, frames [][]byte) (int, error) {
	bp, b := w.encode(ctrl, frames)
	err := w.send(b)
	putWriteBuf(bp, b)
	if err != nil {
		return 0, err
	}
	return len(frames), nil
}

// send writes b in chunks, with the write watchdog's clock running for each.
func (w *pollWire) send(b []byte) error {
	for len(b) > 0 {
		chunk := b[:min(len(b), writeChunk)]
		w.c.writeStart.Store(time.Now().UnixNano())
		n, err := w.nc.Write(chunk)
		w.c.writeStart.Store(0)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func getWriteBuf(size int) (*[]byte, []byte) {
	bp := pollWriteBufs.Get().(*[]byte)
	if cap(*bp) < size {
		return bp, make([]byte, 0, size)
	}
	return bp, (*bp)[:0]
}

// putWriteBuf returns the pool's buffer, or b in its place when it grew, unless it is large
// (a burst's buffer is left to the garbage collector rather than pinned).
func putWriteBuf(bp *[]byte, b []byte) {
	if cap(b) > cap(*bp) && cap(b) <= 64<<10 {
		*bp = b[:0]
	}
	pollWriteBufs.Put(bp)
}

func (w *pollWire) finish(errFrame []byte, code int, reason string) error {
	bp, b := getWriteBuf(len(errFrame) + 2*wsframe.MaxHeaderLen + 2 + len(reason))
	if errFrame != nil {
		b = wsframe.AppendFrame(b, w.c.dataOp(), errFrame)
	}
	b = wsframe.AppendClose(b, uint16(code), reason)
	err := w.send(b)
	putWriteBuf(bp, b)
	if cw, ok := w.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	return err
}

func (w *pollWire) afterClose() {
	w.finished.Store(true)
	if w.peerDone.Load() {
		w.teardown()
		return
	}
	w.afterOwned(&w.closeTimer, closeWait, w.teardown)
}

func (w *pollWire) refuse(errFrame []byte, code int, reason string) {
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.c.srv.opts.WriteTimeout))
	_ = w.finish(errFrame, code, reason)
	w.awaitClose(time.Second)
	w.closeSocket()
}

// awaitClose reads (for at most d, on the calling goroutine) until the client's close frame
// arrives, so closing the socket cannot lose our last frames to a reset.
func (w *pollWire) awaitClose(d time.Duration) {
	_ = w.nc.SetReadDeadline(time.Now().Add(d))
	b := append(make([]byte, 0, 1024), w.pending...)
	w.pending = nil
	a := wsframe.Assembler{MaxMessage: 64 << 10}
	for {
		for off := 0; ; {
			n, m, ok, err := a.Next(b[off:])
			if err != nil || (ok && m.Op == wsframe.OpClose) {
				return
			}
			if n == 0 {
				b = w.compact(b, off)
				break
			}
			off += n
		}
		if len(b) == cap(b) {
			return // a frame too large to wait for
		}
		n, err := w.nc.Read(b[len(b):cap(b)])
		if err != nil {
			return
		}
		b = b[:len(b)+n]
	}
}

func (w *pollWire) closeNow() {
	w.peerDone.Store(true)
	w.closeSocket()
	if w.finished.Load() {
		w.teardown()
	}
}

func (w *pollWire) ping() {
	w.c.queueCtrl(wsframe.AppendFrame(nil, wsframe.OpPing, nil))
}

// closeSocket unregisters the fd and closes it (in that order, so the number cannot be
// reused while the netpoller still knows it).
func (w *pollWire) closeSocket() {
	w.closeOnce.Do(func() {
		_ = w.rc.Control(func(fd uintptr) { w.poll.remove(int(fd)) })
		_ = w.nc.Close()
	})
}

// teardown closes the socket and ends the connection (once).
func (w *pollWire) teardown() {
	w.endOnce.Do(func() {
		w.closeSocket()
		w.held.close()
		w.timerMu.Lock()
		w.torn = true
		for _, t := range []*time.Timer{w.pauseTimer, w.closeTimer} {
			if t != nil && t.Stop() {
				w.c.srv.goroutines.done() // it will not run
			}
		}
		w.timerMu.Unlock()
		var err error
		if p := w.readErr.Load(); p != nil {
			err = *p
		}
		w.c.srv.goroutines.Go(func() { w.c.end(err) })
	})
}

// heldBytes is one connection's share of the server's inbound budget (Options.InboundBudget):
// the bytes its assembler holds for a message still arriving. Once closed it releases
// everything and refuses more, so a connection torn down while its read side still runs
// cannot leave bytes reserved.
type heldBytes struct {
	mu     sync.Mutex
	b      *bytebudget.Budget
	n      int64
	closed bool
}

// TryReserve implements wsframe.Budget.
func (h *heldBytes) TryReserve(n int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !h.b.TryReserve(n) {
		return false
	}
	h.n += n
	return true
}

// Release implements wsframe.Budget.
func (h *heldBytes) Release(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n = min(n, h.n)
	h.n -= n
	h.b.Release(n)
}

func (h *heldBytes) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.b.Release(h.n)
	h.n = 0
}

// inputPending reports whether the client has sent bytes the server has not handled yet: the
// read side is dispatching a read, or the socket holds unread bytes. A closed socket has none.
func (w *pollWire) inputPending() bool {
	if w.dispatching.Load() {
		return true
	}
	n := 0
	if err := w.rc.Control(func(fd uintptr) { n = unreadBytes(int(fd)) }); err != nil {
		return false
	}
	return n > 0
}
