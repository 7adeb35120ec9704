package wsframe

import "unicode/utf8"

// CloseError is a protocol failure found while reading; Code is the status
// the server should close the connection with (1002, 1007 or 1009).
type CloseError struct {
	Code   uint16 // close status code to send
	Reason string // close reason to send
}

// Error implements error.
func (e *CloseError) Error() string { return "wsframe: " + e.Reason }

// Message is one complete unit returned by Assembler.Next: a whole data
// message (text or binary, fragments joined) or a single control frame.
type Message struct {
	Op      Opcode // OpText, OpBinary, OpClose, OpPing or OpPong
	Payload []byte // unmasked payload; valid until the next call to Next
	// Compressed is set for a data message whose first frame had RSV1 (permessage-deflate,
	// RFC 7692): Payload is the raw DEFLATE data, and UTF-8 is for the caller to check
	// after inflating it.
	Compressed bool
}

// Assembler turns a stream of client frames into messages. The caller keeps
// unread bytes in a buffer and calls Next until it reports that more input is
// needed. It enforces masking, fragmentation order, the maximum message size
// (1009) and UTF-8 validity of text messages (1007).
type Assembler struct {
	// MaxMessage is the largest data message accepted; 0 means no limit.
	MaxMessage int64
	// Deflate allows RSV1 on the first frame of a data message (permessage-deflate was
	// negotiated); anywhere else, or without Deflate, RSV1 is a protocol error.
	Deflate bool

	op         Opcode // opcode of the message being assembled, 0 when none
	compressed bool   // the message being assembled had RSV1
	frag       []byte // fragments of the message being assembled
}

// rsv1 is RSV1 in Header.RSV.
const rsv1 = 4

// Next consumes at most one complete frame from b. It returns the number of
// bytes consumed and, when a message or control frame is complete, ok=true and
// the message. n > 0 with ok == false means a fragment was absorbed (call
// again); n == 0 with ok == false and err == nil means b does not hold a whole
// frame yet. Payload bytes in b are unmasked in place. Any error is fatal: close
// the connection with the CloseError's code.
func (a *Assembler) Next(b []byte) (n int, m Message, ok bool, err error) {
	var allowed byte
	if a.Deflate {
		allowed = rsv1
	}
	h, hn, err := ParseHeader(b, allowed, true)
	if err != nil {
		return 0, m, false, &CloseError{Code: 1002, Reason: err.Error()}
	}
	if hn == 0 {
		return 0, m, false, nil
	}
	if h.RSV != 0 && (h.Op.IsControl() || h.Op == OpContinuation) {
		return 0, m, false, &CloseError{Code: 1002, Reason: "RSV1 set on a control or continuation frame"}
	}
	if h.Op.IsControl() {
		if int64(len(b)-hn) < h.Length {
			return 0, m, false, nil
		}
		p := b[hn : hn+int(h.Length)]
		Mask(h.Key, 0, p)
		if h.Op == OpClose {
			if _, _, okc := ParseClose(p); !okc {
				return 0, m, false, &CloseError{Code: 1002, Reason: "invalid close payload"}
			}
			if len(p) > 2 && !utf8.Valid(p[2:]) {
				return 0, m, false, &CloseError{Code: 1007, Reason: "invalid UTF-8 in close reason"}
			}
		}
		return hn + len(p), Message{Op: h.Op, Payload: p}, true, nil
	}
	switch {
	case h.Op == OpContinuation && a.op == 0:
		return 0, m, false, &CloseError{Code: 1002, Reason: "continuation without a message"}
	case h.Op != OpContinuation && a.op != 0:
		return 0, m, false, &CloseError{Code: 1002, Reason: "new message before the last one ended"}
	}
	total := h.Length + int64(len(a.frag))
	if a.MaxMessage > 0 && total > a.MaxMessage {
		return 0, m, false, &CloseError{Code: 1009, Reason: "message too big"}
	}
	if int64(len(b)-hn) < h.Length {
		return 0, m, false, nil
	}
	p := b[hn : hn+int(h.Length)]
	Mask(h.Key, 0, p)
	n = hn + len(p)
	op, compressed := h.Op, h.RSV != 0
	if op == OpContinuation {
		op, compressed = a.op, a.compressed
	}
	if !h.Fin {
		a.op, a.compressed = op, compressed
		a.frag = append(a.frag, p...)
		return n, m, false, nil
	}
	if a.op != 0 {
		a.frag = append(a.frag, p...)
		p = a.frag
		a.op, a.compressed = 0, false
		a.frag = a.frag[:0]
	}
	if op == OpText && !compressed && !utf8.Valid(p) {
		return 0, m, false, &CloseError{Code: 1007, Reason: "invalid UTF-8"}
	}
	return n, Message{Op: op, Payload: p, Compressed: compressed}, true, nil
}

// Reset drops any partly assembled message and releases its buffer.
func (a *Assembler) Reset() { a.op, a.compressed, a.frag = 0, false, nil }
