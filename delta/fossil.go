package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// fossilDigits is Fossil's base-64 integer alphabet, most significant digit first.
const fossilDigits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"

// fossilValue maps a byte to its digit value, or -1 for a non-digit.
var fossilValue = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(fossilDigits); i++ {
		v[fossilDigits[i]] = int8(i)
	}
	return v
}()

// fossilDigitCount is the number of digits putInt writes for v.
func fossilDigitCount(v int) int {
	n := 1
	for x := 64; v >= x && n < 11; x <<= 6 {
		n++
	}
	return n
}

// appendFossilInt appends v in Fossil's base-64 notation.
func appendFossilInt(b []byte, v uint64) []byte {
	if v == 0 {
		return append(b, '0')
	}
	var buf [11]byte
	i := len(buf)
	for ; v > 0; v >>= 6 {
		i--
		buf[i] = fossilDigits[v&63]
	}
	return append(b, buf[i:]...)
}

// fossilChecksum is delta.c's checksum(): the sum, modulo 2^32, of the input read as
// big-endian 32-bit words, the last partial word padded with zero bytes on the right.
func fossilChecksum(b []byte) uint32 {
	var s0, s1 uint32
	for len(b) >= 16 {
		w0 := binary.BigEndian.Uint64(b)
		w1 := binary.BigEndian.Uint64(b[8:])
		s0 += uint32(w0>>32) + uint32(w0)
		s1 += uint32(w1>>32) + uint32(w1)
		b = b[16:]
	}
	s0 += s1
	for len(b) >= 4 {
		s0 += binary.BigEndian.Uint32(b)
		b = b[4:]
	}
	var tail [4]byte
	copy(tail[:], b)
	return s0 + binary.BigEndian.Uint32(tail[:])
}

// fossilWorth: a copy "N@M," plus the insert header it forces after it must cost less than
// the N literal bytes it replaces.
func fossilWorth(_, s, n int) bool {
	return n >= fossilDigitCount(n)+fossilDigitCount(s)+4
}

// FossilEncode returns a Fossil delta that turns base into target:
// FossilApply(base, FossilEncode(base, target)) returns target, and so does npm fossil-delta
// applyDelta(base, delta) and Fossil SCM's delta_apply.
func FossilEncode(base, target []byte) []byte {
	m := getMatcher(base)
	defer m.release()
	m.find(target, fossilWorth)
	out := appendFossilInt(m.out[:0], uint64(len(target)))
	out = append(out, '\n')
	pos := 0
	for _, op := range m.ops {
		if op.t > pos {
			out = appendFossilInt(out, uint64(op.t-pos))
			out = append(out, ':')
			out = append(out, target[pos:op.t]...)
		}
		out = appendFossilInt(out, uint64(op.n))
		out = append(out, '@')
		out = appendFossilInt(out, uint64(op.s))
		out = append(out, ',')
		pos = op.t + op.n
	}
	if pos < len(target) {
		out = appendFossilInt(out, uint64(len(target)-pos))
		out = append(out, ':')
		out = append(out, target[pos:]...)
	}
	out = appendFossilInt(out, uint64(fossilChecksum(target)))
	out = append(out, ';')
	m.out = out
	return append([]byte(nil), out...)
}

// Errors returned by FossilApply.
var (
	errFossilHeader   = errors.New("delta: fossil: size integer not terminated by '\\n'")
	errFossilInt      = errors.New("delta: fossil: malformed integer")
	errFossilCopy     = errors.New("delta: fossil: copy command not terminated by ','")
	errFossilRange    = errors.New("delta: fossil: copy extends past end of base")
	errFossilSize     = errors.New("delta: fossil: output larger than declared size")
	errFossilInsert   = errors.New("delta: fossil: insert extends past end of delta")
	errFossilChecksum = errors.New("delta: fossil: bad checksum")
	errFossilTotal    = errors.New("delta: fossil: output size does not match declared size")
	errFossilOp       = errors.New("delta: fossil: unknown delta operator")
	errFossilEnd      = errors.New("delta: fossil: unterminated delta")
)

// fossilInt reads one base-64 integer of at least one digit from d[*pos:]. Values above
// 2^36 are rejected (every legal value fits in 32 bits).
func fossilInt(d []byte, pos *int) (uint64, error) {
	i := *pos
	var v uint64
	for i < len(d) {
		c := fossilValue[d[i]]
		if c < 0 {
			break
		}
		v = v<<6 | uint64(c)
		if v > 1<<36 {
			return 0, errFossilInt
		}
		i++
	}
	if i == *pos {
		return 0, errFossilInt
	}
	*pos = i
	return v, nil
}

// FossilApply applies a Fossil delta to base and returns the target. The declared size, every
// copy range and the final checksum are verified; a delta declaring more than MaxOutput
// bytes is rejected. It never panics, whatever the input.
func FossilApply(base, delta []byte) ([]byte, error) {
	pos := 0
	limit, err := fossilInt(delta, &pos)
	if err != nil {
		return nil, err
	}
	if pos >= len(delta) || delta[pos] != '\n' {
		return nil, errFossilHeader
	}
	pos++
	if limit > MaxOutput {
		return nil, fmt.Errorf("delta: fossil: declared output of %d bytes exceeds the %d-byte limit", limit, MaxOutput)
	}
	// Every output byte comes from base or from the delta; size the buffer for the common
	// case without trusting the declared size blindly.
	out := make([]byte, 0, min(limit, uint64(len(base)+len(delta))))
	for pos < len(delta) {
		cnt, err := fossilInt(delta, &pos)
		if err != nil {
			return nil, err
		}
		if pos >= len(delta) {
			return nil, errFossilEnd
		}
		op := delta[pos]
		pos++
		switch op {
		case '@':
			ofst, err := fossilInt(delta, &pos)
			if err != nil {
				return nil, err
			}
			if pos < len(delta) {
				if delta[pos] != ',' {
					return nil, errFossilCopy
				}
				pos++
			}
			if cnt > limit-uint64(len(out)) {
				return nil, errFossilSize
			}
			if ofst > uint64(len(base)) || cnt > uint64(len(base))-ofst {
				return nil, errFossilRange
			}
			out = append(out, base[ofst:ofst+cnt]...)
		case ':':
			if cnt > limit-uint64(len(out)) {
				return nil, errFossilSize
			}
			if cnt > uint64(len(delta)-pos) {
				return nil, errFossilInsert
			}
			out = append(out, delta[pos:pos+int(cnt)]...)
			pos += int(cnt)
		case ';':
			if uint64(len(out)) != limit {
				return nil, errFossilTotal
			}
			if cnt != uint64(fossilChecksum(out)) {
				return nil, errFossilChecksum
			}
			return out, nil
		default:
			return nil, errFossilOp
		}
	}
	return nil, errFossilEnd
}
