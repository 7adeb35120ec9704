package load

import (
	"bytes"
	"strconv"
	"strings"
)

// payloadMarker starts the timestamp every benchmark payload carries. The payload is a plain
// string (no quotes, backslashes or control characters), so it reaches subscribers unescaped
// whether it travels as the data of an HTTP event, of a client event or inside the user_info
// of a presence member, and a byte search finds it in any frame.
const payloadMarker = "pwl:"

// EncodePayload builds a payload of exactly size bytes (or the minimum that holds the
// header, when size is smaller): "pwl:<unix nanos>:<phase>:<seq>:" padded with 'x'.
func EncodePayload(unixNanos int64, phase, seq, size int) string {
	var b strings.Builder
	b.Grow(max(size, 48))
	b.WriteString(payloadMarker)
	b.WriteString(strconv.FormatInt(unixNanos, 10))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(phase))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(seq))
	b.WriteByte(':')
	for b.Len() < size {
		b.WriteByte('x')
	}
	return b.String()
}

// DecodePayload finds the first benchmark payload in frame and returns its timestamp, phase
// and sequence number.
func DecodePayload(frame []byte) (unixNanos int64, phase, seq int, ok bool) {
	i := bytes.Index(frame, []byte(payloadMarker))
	if i < 0 {
		return 0, 0, 0, false
	}
	p := frame[i+len(payloadMarker):]
	var fields [3]int64
	for f := range fields {
		n, rest, ok := parseUint(p)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return 0, 0, 0, false
		}
		fields[f] = n
		p = rest[1:]
	}
	return fields[0], int(fields[1]), int(fields[2]), true
}

func parseUint(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i >= 19 {
			return 0, nil, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// frameChannel returns the value of the first "channel":"…" in a frame (channel names hold no
// characters JSON escapes).
func frameChannel(frame []byte) []byte {
	const key = `"channel":"`
	i := bytes.Index(frame, []byte(key))
	if i < 0 {
		return nil
	}
	rest := frame[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// frameEvent returns the value of the first "event":"…" in a frame.
func frameEvent(frame []byte) []byte {
	const key = `"event":"`
	i := bytes.Index(frame, []byte(key))
	if i < 0 {
		return nil
	}
	rest := frame[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}
