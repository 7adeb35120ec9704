package wsframe

import "unicode/utf8"

// CloseError is a protocol failure found while reading; Code is the status
// the server should close the connection with (1002, 1007, 1009 or 1013).
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

// Budget is where an Assembler reserves the memory it holds for a message still arriving
// (a server-wide cap shared by every connection). TryReserve reports whether n more bytes
// fit; Release gives back bytes reserved earlier. A server's *bytebudget.Budget is one.
type Budget interface {
	TryReserve(n int64) bool
	Release(n int64)
}

// CodeTryAgainLater is the close status (RFC 6455 §7.4.2's registry: "Try Again Later")
// of a message refused because the server-wide Budget is spent.
const CodeTryAgainLater = 1013

// minGrow is the smallest buffer the assembler allocates for a message still arriving.
const minGrow = 512

// Assembler turns a stream of client frames into messages. The caller keeps
// unread bytes in a buffer and calls Next until it reports that more input is
// needed. It enforces masking, fragmentation order, the maximum message size
// (1009, from the frame header: a frame that would take its message past
// MaxMessage is refused before any of its payload is read) and UTF-8 validity of
// text messages (1007).
//
// Memory follows the bytes received, never what a header declares: a data frame
// whose payload is not all in the caller's buffer yet is absorbed piece by piece
// into a buffer of the assembler's that at most doubles per step and never
// outgrows the bytes of the message received so far by more than that factor.
// That buffer's capacity is reserved in Budget (past it the message fails with
// CodeTryAgainLater), and it is dropped, its reservation released, as soon as
// the message is complete: between messages an assembler holds nothing. So what
// the caller must keep between reads is at most one incomplete frame header or
// control frame (MaxHeaderLen + MaxControlPayload bytes).
type Assembler struct {
	// MaxMessage is the largest data message accepted (a compressed one may take
	// MessageLimit bytes on the wire); 0 means no limit.
	MaxMessage int64
	// Deflate allows RSV1 on the first frame of a data message (permessage-deflate was
	// negotiated); anywhere else, or without Deflate, RSV1 is a protocol error.
	Deflate bool
	// Budget, when set, is charged for the capacity of the message buffer.
	Budget Budget

	op         Opcode // opcode of the message being assembled, 0 when none
	compressed bool   // the message being assembled had RSV1
	frag       []byte // bytes of the message being assembled (fragments, partial frames)
	reserved   int64  // bytes of frag's capacity reserved in Budget

	// The data frame whose payload is still arriving (remain > 0).
	remain int64   // its payload bytes not received yet
	fin    bool    // it is the message's last frame
	key    [4]byte // its masking key
	pos    int     // its payload bytes unmasked so far
}

// rsv1 is RSV1 in Header.RSV.
const rsv1 = 4

// Next consumes at most one frame, or the part of a data frame's payload present, from
// b. It returns the number of bytes consumed and, when a message or control frame is
// complete, ok=true and the message. n > 0 with ok == false means a fragment or part of
// a frame was absorbed (call again); n == 0 with ok == false and err == nil means b does
// not hold a whole frame header (or control frame) yet. Payload bytes in b are unmasked in
// place. Any error is fatal: close the connection with the CloseError's code.
func (a *Assembler) Next(b []byte) (n int, m Message, ok bool, err error) {
	if a.remain > 0 {
		return a.absorb(b, 0)
	}
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
	if h.Op != OpContinuation {
		a.op, a.compressed = h.Op, h.RSV != 0
	}
	total := h.Length + int64(len(a.frag))
	if limit := MessageLimit(a.MaxMessage, a.compressed); a.MaxMessage > 0 && total > limit {
		// Refused from the header: not a byte of the payload is read or held.
		a.op, a.compressed = 0, false
		a.drop()
		return 0, m, false, &CloseError{Code: 1009, Reason: "message too big"}
	}
	if int64(len(b)-hn) < h.Length {
		// Part of the payload is here: keep it and wait for the rest.
		a.remain, a.fin, a.key, a.pos = h.Length, h.Fin, h.Key, 0
		return a.absorb(b[hn:], hn)
	}
	p := b[hn : hn+int(h.Length)]
	Mask(h.Key, 0, p)
	n = hn + len(p)
	if !h.Fin {
		if err := a.keep(p, 0); err != nil {
			return 0, m, false, err
		}
		return n, m, false, nil
	}
	if len(a.frag) > 0 {
		if err := a.keep(p, 0); err != nil {
			return 0, m, false, err
		}
		p = a.frag
	}
	return a.complete(n, p)
}

// MessageLimit is the most bytes a message of at most max bytes may take on the wire:
// max itself, or for a permessage-deflate message (compressed), max plus DEFLATE's worst
// case growth (stored blocks: 5 bytes a 64 KiB block) and a little room, since data that
// does not compress comes out slightly larger. What it inflates to is the caller's to check
// against max.
func MessageLimit(max int64, compressed bool) int64 {
	if !compressed {
		return max
	}
	return max + max/1024 + 64
}

// absorb takes the part of the current frame's payload that is in b; hn header bytes
// before b were consumed with it.
func (a *Assembler) absorb(b []byte, hn int) (n int, m Message, ok bool, err error) {
	k := int(min(int64(len(b)), a.remain))
	if k == 0 {
		return hn, m, false, nil
	}
	p := b[:k]
	a.pos = Mask(a.key, a.pos, p)
	a.remain -= int64(k)
	if err := a.keep(p, a.remain); err != nil {
		return 0, m, false, err
	}
	if a.remain > 0 || !a.fin {
		return hn + k, m, false, nil
	}
	return a.complete(hn+k, a.frag)
}

// complete ends the message whose bytes are p (the last frame's or the assembled ones) and
// lets go of the message buffer.
func (a *Assembler) complete(n int, p []byte) (int, Message, bool, error) {
	op, compressed := a.op, a.compressed
	a.op, a.compressed = 0, false
	a.drop()
	if op == OpText && !compressed && !utf8.Valid(p) {
		return 0, Message{}, false, &CloseError{Code: 1007, Reason: "invalid UTF-8"}
	}
	return n, Message{Op: op, Payload: p, Compressed: compressed}, true, nil
}

// keep appends p to the message buffer; more is how many bytes of the current frame are
// still to come (the buffer never grows past the frame's end for them).
func (a *Assembler) keep(p []byte, more int64) error {
	need := len(a.frag) + len(p)
	if need > cap(a.frag) {
		size := max(need, 2*cap(a.frag), minGrow)
		if limit := int64(need) + more; int64(size) > limit {
			size = int(limit)
		}
		if a.Budget != nil {
			if !a.Budget.TryReserve(int64(size - cap(a.frag))) {
				return &CloseError{Code: CodeTryAgainLater, Reason: "server busy: too much input waiting, try again later"}
			}
			a.reserved += int64(size - cap(a.frag))
		}
		nf := make([]byte, len(a.frag), size)
		copy(nf, a.frag)
		a.frag = nf
	}
	a.frag = append(a.frag, p...)
	return nil
}

// drop lets go of the message buffer and its reservation.
func (a *Assembler) drop() {
	a.frag = nil
	if a.reserved > 0 {
		a.Budget.Release(a.reserved)
		a.reserved = 0
	}
}

// Held is the capacity of the buffer the assembler holds for a message still arriving.
func (a *Assembler) Held() int { return cap(a.frag) }

// Reset drops any partly assembled message and releases its buffer and reservation.
func (a *Assembler) Reset() {
	a.op, a.compressed, a.remain, a.fin, a.pos = 0, false, 0, false, 0
	a.drop()
}
