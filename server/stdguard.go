package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"unicode/utf8"

	"github.com/pushwire/pushwire/server/wsframe"
)

// frameGuard checks the frame headers of a stdWire's inbound byte stream before
// coder/websocket reads them, for the RFC 6455 rules that library does not enforce: a
// client's frames must be masked (it answers an unmasked one with 1000) and a payload length
// must use the minimal encoding with the top bit clear (it accepts any), a close frame's
// reason must be UTF-8 (it echoes any reason), and a frame taking its message over the limit
// is refused at its header with 1009 (the library would read up to its read limit first). It sits between the
// hijacked socket and the library's bufio.Reader and only tracks frame boundaries: a header
// is parsed by wsframe.ParseHeader, its payload passed through uncounted. The bytes before a
// bad frame are still delivered; the next read fails and the connection is closed with 1002
// or 1007 (conn.readLoop asks Err). The other header rules (reserved bits as negotiated, opcodes,
// control frames) the library checks itself, with 1002.
type frameGuard struct {
	r    io.Reader
	hdr  [wsframe.MaxHeaderLen]byte
	hn   int   // header bytes collected
	skip int64 // payload bytes before the next header
	// A close frame's payload, collected as it passes, to check its reason is UTF-8.
	closing bool
	key     [4]byte
	cp      []byte
	bad     atomic.Pointer[guardError]
	// limit is the largest message (Assembler.MaxMessage's rule): a data frame taking its
	// message past it fails with 1009 at its header, so the library never reads (nor
	// buffers) its payload. 0: no limit.
	limit      int64
	msgLen     int64 // wire bytes of the data message so far, this frame's included
	compressed bool  // that message has RSV1 (permessage-deflate)
}

// Err is the violation the guard found, nil if none.
func (g *frameGuard) Err() *guardError { return g.bad.Load() }

func (g *frameGuard) fail(code uint16, err error) *guardError {
	ge := &guardError{code: code, err: err}
	g.bad.Store(ge)
	return ge
}

// Read implements io.Reader.
func (g *frameGuard) Read(p []byte) (int, error) {
	if err := g.Err(); err != nil {
		return 0, err
	}
	n, err := g.r.Read(p)
	start := 0 // where the header being collected began in p (0: in an earlier read)
	for i := 0; i < n; {
		if g.skip > 0 {
			k := int(min(int64(n-i), g.skip))
			if g.closing {
				g.cp = append(g.cp, p[i:i+k]...)
			}
			i += k
			g.skip -= int64(k)
			if g.closing && g.skip == 0 {
				g.closing = false
				wsframe.Mask(g.key, 0, g.cp)
				if len(g.cp) > 2 && !utf8.Valid(g.cp[2:]) {
					// Withhold the frame's last byte: the library never sees the frame.
					ge := g.fail(1007, errors.New("invalid UTF-8 in close reason"))
					if i-1 > 0 {
						return i - 1, nil
					}
					return 0, ge
				}
			}
			continue
		}
		if g.hn == 0 {
			start = i
		}
		g.hdr[g.hn] = p[i]
		g.hn++
		i++
		h, hn, perr := wsframe.ParseHeader(g.hdr[:g.hn], 7, true)
		if perr != nil {
			ge := g.fail(1002, perr)
			if start > 0 {
				return start, nil
			}
			return 0, ge
		}
		if hn > 0 && !h.Op.IsControl() && g.limit > 0 {
			if h.Op != wsframe.OpContinuation {
				g.msgLen, g.compressed = 0, h.RSV&4 != 0
			}
			g.msgLen += h.Length
			if g.msgLen > wsframe.MessageLimit(g.limit, g.compressed) {
				ge := g.fail(1009, errors.New("message too big"))
				if start > 0 {
					return start, nil
				}
				return 0, ge
			}
		}
		if hn > 0 {
			g.hn, g.skip = 0, h.Length
			if h.Op == wsframe.OpClose && h.Length > 2 {
				g.closing, g.key, g.cp = true, h.Key, g.cp[:0]
			}
		}
	}
	return n, err
}

// guardError is a frame the guard refused, and the close code it gets.
type guardError struct {
	code uint16
	err  error
}

func (e *guardError) Error() string { return e.err.Error() }
func (e *guardError) Unwrap() error { return e.err }

// guardedWriter is the ResponseWriter coder/websocket accepts on: its Hijack hands the library
// the socket with reads going through guard (bytes net/http had already buffered first).
type guardedWriter struct {
	http.ResponseWriter
	guard *frameGuard
}

// Hijack implements http.Hijacker.
func (w *guardedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var src io.Reader = nc
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc)
	}
	w.guard.r = src
	gc := &guardedConn{Conn: nc, guard: w.guard}
	return gc, bufio.NewReadWriter(bufio.NewReader(gc), brw.Writer), nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *guardedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// guardedConn is the hijacked socket with reads through the guard.
type guardedConn struct {
	net.Conn
	guard *frameGuard
}

func (c *guardedConn) Read(p []byte) (int, error) { return c.guard.Read(p) }
