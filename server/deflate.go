package server

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/pushwire/pushwire/server/wsframe"
)

// permessage-deflate (RFC 7692) for the epoll transport, without context takeover in either
// direction: every message is compressed and inflated alone, so a connection keeps no
// compression state and the (large) flate writers and readers are shared through pools.

// deflateExtension is the answer's extension header when permessage-deflate is agreed.
const deflateExtension = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"

// defaultDeflateThreshold is the smallest message compressed when Options leave it at 0.
const defaultDeflateThreshold = 512

// deflateOffer reads the client's Sec-WebSocket-Extensions: whether it offers
// permessage-deflate at all, and whether in a form this transport can take (an offer whose
// parameters are all known and that does not ask for a window below the 32 KB one, i.e.
// server_max_window_bits under 15).
func deflateOffer(h http.Header) (offered, acceptable bool) {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for _, offer := range strings.Split(v, ",") {
			params := strings.Split(offer, ";")
			if !strings.EqualFold(strings.TrimSpace(params[0]), "permessage-deflate") {
				continue
			}
			offered = true
			ok := true
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "server_no_context_takeover", "client_no_context_takeover", "client_max_window_bits":
				case "server_max_window_bits":
					ok = ok && strings.Trim(strings.TrimSpace(val), `"`) == "15"
				default:
					ok = false
				}
			}
			if ok {
				return true, true
			}
		}
	}
	return offered, false
}

var (
	flateWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed)
		return w
	}}
	flateReaders = sync.Pool{New: func() any { return flate.NewReader(nil) }}
	// syncTail ends a flushed DEFLATE stream; a sender leaves it out of the message.
	syncTail = []byte{0, 0, 0xff, 0xff}
	// inflateTail restores it, plus an empty final block so the reader ends cleanly.
	inflateTail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}
)

// sliceWriter appends what is written to b.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// appendDeflatedFrame appends p as one data frame (opcode op) to dst: compressed (RSV1)
// when that makes it smaller, else as it is.
func appendDeflatedFrame(dst []byte, op wsframe.Opcode, p []byte) []byte {
	start := len(dst)
	sw := &sliceWriter{b: append(dst, make([]byte, wsframe.MaxHeaderLen)...)}
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(sw)
	_, _ = w.Write(p)
	err := w.Flush()
	w.Reset(io.Discard) // drop the reference to sw
	flateWriters.Put(w)
	b := sw.b
	body := b[start+wsframe.MaxHeaderLen:]
	body = bytes.TrimSuffix(body, syncTail)
	if err != nil || len(body) >= len(p) {
		return wsframe.AppendFrame(b[:start], op, p)
	}
	var hdr [wsframe.MaxHeaderLen]byte
	h := wsframe.AppendHeader(hdr[:0], true, op, len(body))
	h[0] |= 0x40 // RSV1: compressed
	n := copy(b[start:], h)
	n += copy(b[start+n:], body)
	return b[:start+n]
}

// inflateMessage inflates a compressed message into dst, reading at most limit+1 bytes (so
// a longer result shows as too large without inflating a bomb).
func inflateMessage(dst *bytes.Buffer, p []byte, limit int) error {
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	if err := r.(flate.Resetter).Reset(io.MultiReader(bytes.NewReader(p), bytes.NewReader(inflateTail)), nil); err != nil {
		return err
	}
	_, err := dst.ReadFrom(io.LimitReader(r, int64(limit)+1))
	return err
}
