package load

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxFrame bounds one inbound message; a server sending more is a protocol error here.
const maxFrame = 16 << 20

// CloseError is a close frame received from the server.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket closed by server: %d %s", e.Code, e.Reason)
}

// wsConn is a minimal WebSocket client connection: one reader goroutine (ReadMessage) and any
// number of writers (WriteText, serialised). It answers pings itself. Server frames are never
// masked; ours always are. It exists so that thousands of subscribers cost the load tool as
// little CPU and memory as possible, leaving the cores to the server under test.
type wsConn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte // message being read; reused

	wmu  sync.Mutex
	wbuf []byte
}

var wsGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

// acceptKey is Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(wsGUID)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// dialWS opens a ws:// URL (wss is not supported: the benchmark runs on loopback).
func dialWS(ctx context.Context, rawURL string, readBuf int) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("pwload: only ws:// URLs are supported, got %q", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var keyBytes [16]byte
	_, _ = rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\nUser-Agent: pwload\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	if readBuf <= 0 {
		readBuf = 4096
	}
	br := bufio.NewReaderSize(nc, readBuf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("websocket handshake: HTTP %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(key) {
		nc.Close()
		return nil, errors.New("websocket handshake: bad Sec-WebSocket-Accept")
	}
	_ = nc.SetDeadline(time.Time{})
	return &wsConn{nc: nc, br: br}, nil
}

// ReadMessage returns the next text or binary message. The slice is valid until the next
// call. Pings are answered, pongs ignored; a close frame is answered and returned as a
// *CloseError.
func (c *wsConn) ReadMessage() (op byte, msg []byte, err error) {
	c.buf = c.buf[:0]
	var msgOp byte
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return 0, nil, err
		}
		fin := hdr[0]&0x80 != 0
		fop := hdr[0] & 0x0F
		masked := hdr[1]&0x80 != 0
		n := uint64(hdr[1] & 0x7F)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		var mask [4]byte
		if masked {
			if _, err := io.ReadFull(c.br, mask[:]); err != nil {
				return 0, nil, err
			}
		}
		if n > maxFrame || uint64(len(c.buf))+n > maxFrame {
			return 0, nil, fmt.Errorf("websocket: message over %d bytes", maxFrame)
		}
		if fop >= opClose { // control frame: never fragmented, read it aside
			p := make([]byte, n)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return 0, nil, err
			}
			if masked {
				maskBytes(mask, p)
			}
			switch fop {
			case opPing:
				_ = c.writeFrame(opPong, p)
			case opClose:
				ce := &CloseError{Code: 1005}
				if len(p) >= 2 {
					ce.Code = int(binary.BigEndian.Uint16(p))
					ce.Reason = string(p[2:])
				}
				_ = c.writeFrame(opClose, p[:min(len(p), 2)])
				c.nc.Close()
				return 0, nil, ce
			}
			continue
		}
		start := len(c.buf)
		if cap(c.buf)-start < int(n) {
			nb := make([]byte, start, start+int(n))
			copy(nb, c.buf)
			c.buf = nb
		}
		c.buf = c.buf[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.buf[start:]); err != nil {
			return 0, nil, err
		}
		if masked {
			maskBytes(mask, c.buf[start:])
		}
		if fop != opContinuation {
			msgOp = fop
		}
		if fin {
			if cap(c.buf) > 64<<10 {
				out := c.buf
				c.buf = nil // don't keep a large buffer per idle connection
				return msgOp, out, nil
			}
			return msgOp, c.buf, nil
		}
	}
}

func maskBytes(key [4]byte, b []byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// WriteText sends one masked text frame; safe for concurrent use.
func (c *wsConn) WriteText(p []byte) error { return c.writeFrame(opText, p) }

func (c *wsConn) writeFrame(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.wbuf[:0]
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, p...)
	maskBytes(key, b[start:])
	_, err := c.nc.Write(b)
	if cap(b) <= 4096 {
		c.wbuf = b
	} else {
		c.wbuf = nil
	}
	return err
}

// Close sends a close frame with code and closes the socket.
func (c *wsConn) Close(code int) error {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.writeFrame(opClose, p[:])
	return c.nc.Close()
}

// wsURL is the subscriber URL of an app key on a ws:// base URL.
func wsURL(base, key string, version int) string {
	base = strings.TrimRight(base, "/")
	q := "?protocol=7&client=pwload&version=1.0&flash=false"
	if version == 2 {
		q = "?protocol=2&client=pwload&version=1.0&format=json&echo_messages=false"
	}
	return base + "/app/" + url.PathEscape(key) + q
}
