package wsframe

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode byte

// Frame opcodes.
const (
	OpContinuation Opcode = 0x0 // continuation of a fragmented message
	OpText         Opcode = 0x1 // text data frame
	OpBinary       Opcode = 0x2 // binary data frame
	OpClose        Opcode = 0x8 // close control frame
	OpPing         Opcode = 0x9 // ping control frame
	OpPong         Opcode = 0xA // pong control frame
)

// IsControl reports whether op is a control opcode (close, ping, pong).
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

// MaxHeaderLen is the longest possible frame header: 2 bytes, 8 bytes of
// extended length and a 4-byte masking key.
const MaxHeaderLen = 14

// MaxControlPayload is the largest payload a control frame may carry.
const MaxControlPayload = 125

// Header is a parsed frame header.
type Header struct {
	Fin    bool    // final fragment of a message
	RSV    byte    // reserved bits RSV1..RSV3 as the low three bits
	Op     Opcode  // frame opcode
	Masked bool    // payload is masked (required for client frames)
	Key    [4]byte // masking key when Masked
	Length int64   // payload length in bytes
}

// Protocol errors returned by ParseHeader. Each one means the peer violated
// RFC 6455 and the connection should be closed with status 1002.
var (
	ErrReservedBits    = errors.New("wsframe: reserved bits set")
	ErrBadOpcode       = errors.New("wsframe: unknown opcode")
	ErrControlTooLong  = errors.New("wsframe: control frame payload over 125 bytes")
	ErrControlFragment = errors.New("wsframe: fragmented control frame")
	ErrUnmasked        = errors.New("wsframe: client frame not masked")
	ErrBadLength       = errors.New("wsframe: invalid payload length encoding")
)

// ParseHeader parses a frame header at the start of b. It returns the header
// and the number of bytes it occupies. If b does not yet hold a whole header,
// n is 0 and err is nil: the caller should read more bytes and retry.
// allowedRSV is the mask of reserved bits a negotiated extension permits
// (0 when no extension is in use). requireMask makes unmasked frames an error,
// as a server must.
func ParseHeader(b []byte, allowedRSV byte, requireMask bool) (h Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	b0, b1 := b[0], b[1]
	h.Fin = b0&0x80 != 0
	h.RSV = (b0 >> 4) & 0x7
	h.Op = Opcode(b0 & 0x0f)
	h.Masked = b1&0x80 != 0
	if h.RSV&^allowedRSV != 0 {
		return h, 0, ErrReservedBits
	}
	switch h.Op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return h, 0, ErrBadOpcode
	}
	if requireMask && !h.Masked {
		return h, 0, ErrUnmasked
	}
	n = 2
	l := int64(b1 & 0x7f)
	switch l {
	case 126:
		if len(b) < n+2 {
			return h, 0, nil
		}
		l = int64(binary.BigEndian.Uint16(b[n:]))
		if l < 126 {
			return h, 0, ErrBadLength
		}
		n += 2
	case 127:
		if len(b) < n+8 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[n:])
		if u>>63 != 0 || u <= 0xffff {
			return h, 0, ErrBadLength
		}
		l = int64(u)
		n += 8
	}
	h.Length = l
	if h.Op.IsControl() {
		if !h.Fin {
			return h, 0, ErrControlFragment
		}
		if l > MaxControlPayload {
			return h, 0, ErrControlTooLong
		}
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Key[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// Mask XORs p in place with key, starting at byte offset pos of the payload,
// and returns the offset following p, so a payload can be unmasked in pieces.
func Mask(key [4]byte, pos int, p []byte) int {
	for i := range p {
		p[i] ^= key[(pos+i)&3]
	}
	return pos + len(p)
}

// AppendHeader appends an unmasked server frame header for a payload of
// length n to dst and returns the extended slice.
func AppendHeader(dst []byte, fin bool, op Opcode, n int) []byte {
	b0 := byte(op) & 0x0f
	if fin {
		b0 |= 0x80
	}
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}

// AppendFrame appends a complete, unmasked, unfragmented server frame to dst.
// Appending several frames to one buffer lets the caller send them with a
// single write.
func AppendFrame(dst []byte, op Opcode, payload []byte) []byte {
	dst = AppendHeader(dst, true, op, len(payload))
	return append(dst, payload...)
}

// AppendClose appends a close frame with the given status code and reason.
// The reason is truncated so the payload fits in 125 bytes.
func AppendClose(dst []byte, code uint16, reason string) []byte {
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
	}
	dst = AppendHeader(dst, true, OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// ParseClose splits a close frame payload into status code and reason. An
// empty payload yields code 1005 (no status received). ok is false when the
// payload is malformed (one byte long, or a code that may not be sent).
func ParseClose(p []byte) (code uint16, reason []byte, ok bool) {
	if len(p) == 0 {
		return 1005, nil, true
	}
	if len(p) == 1 {
		return 0, nil, false
	}
	code = binary.BigEndian.Uint16(p)
	return code, p[2:], ValidCloseCode(code)
}

// ValidCloseCode reports whether code may appear in a close frame on the wire.
func ValidCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey returns the Sec-WebSocket-Accept value for a client's
// Sec-WebSocket-Key.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// ValidKey reports whether key is a valid Sec-WebSocket-Key: base64 of 16 bytes.
func ValidKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}
