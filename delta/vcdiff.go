package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"slices"
)

// VCDIFF (RFC 3284) constants.
const (
	vcdDecompress = 0x01 // Hdr_Indicator: secondary compressor id follows (unsupported)
	vcdCodetable  = 0x02 // Hdr_Indicator: application-defined code table (unsupported)
	vcdAppHeader  = 0x04 // Hdr_Indicator: xdelta3 application header (skipped)

	vcdSource  = 0x01 // Win_Indicator: source segment taken from the base
	vcdTarget  = 0x02 // Win_Indicator: source segment taken from earlier output
	vcdAdler32 = 0x04 // Win_Indicator: xdelta3's Adler-32 of the window target follows

	// vcdiffWindowSize is the largest target window the encoder writes; xdelta3 refuses
	// windows above 16 MiB.
	vcdiffWindowSize = 8 << 20

	vcdNearSize = 4
	vcdSameSize = 3
	vcdSelf     = 0
	vcdHere     = 1
)

// Instruction types of the code table.
const (
	instNoop = iota
	instAdd
	instRun
	instCopy
)

// vcdiffMagic is the file header: "VCD" with the high bits set, version 0, Hdr_Indicator 0.
var vcdiffMagic = [...]byte{0xD6, 0xC3, 0xC4, 0x00}

// vcdCode is one entry of a code table: up to two instructions (type, size, mode).
type vcdCode struct {
	typ1, size1, mode1 uint8
	typ2, size2, mode2 uint8
}

// vcdDefaultTable is the default code table of RFC 3284 §5.6.
var vcdDefaultTable = func() (t [256]vcdCode) {
	i := 0
	t[i] = vcdCode{typ1: instRun}
	i++
	t[i] = vcdCode{typ1: instAdd}
	i++
	for size := 1; size <= 17; size++ {
		t[i] = vcdCode{typ1: instAdd, size1: uint8(size)}
		i++
	}
	for mode := 0; mode <= 8; mode++ {
		t[i] = vcdCode{typ1: instCopy, mode1: uint8(mode)}
		i++
		for size := 4; size <= 18; size++ {
			t[i] = vcdCode{typ1: instCopy, size1: uint8(size), mode1: uint8(mode)}
			i++
		}
	}
	for mode := 0; mode <= 5; mode++ {
		for add := 1; add <= 4; add++ {
			for size := 4; size <= 6; size++ {
				t[i] = vcdCode{instAdd, uint8(add), 0, instCopy, uint8(size), uint8(mode)}
				i++
			}
		}
	}
	for mode := 6; mode <= 8; mode++ {
		for add := 1; add <= 4; add++ {
			t[i] = vcdCode{instAdd, uint8(add), 0, instCopy, 4, uint8(mode)}
			i++
		}
	}
	for mode := 0; mode <= 8; mode++ {
		t[i] = vcdCode{instCopy, 4, uint8(mode), instAdd, 1, 0}
		i++
	}
	return t
}()

// appendVarint appends v as an RFC 3284 integer: base 128, most significant digit first,
// the high bit set on every byte but the last.
func appendVarint(b []byte, v uint64) []byte {
	var buf [10]byte
	i := len(buf) - 1
	buf[i] = byte(v & 0x7f)
	for v >>= 7; v > 0; v >>= 7 {
		i--
		buf[i] = byte(v&0x7f) | 0x80
	}
	return append(b, buf[i:]...)
}

// varintLen is the encoded length of v.
func varintLen(v uint64) int {
	n := 1
	for v >>= 7; v > 0; v >>= 7 {
		n++
	}
	return n
}

// vcdiffWorth: a copy costs an opcode (often merged with the preceding ADD) and its address.
func vcdiffWorth(_, s, n int) bool {
	return n >= minMatch && n >= varintLen(uint64(s))+2
}

// addrCache is the near/same address cache of RFC 3284 §5.1, reset for every window.
type addrCache struct {
	near     [vcdNearSize]uint64
	nextSlot int
	same     [vcdSameSize * 256]uint64
}

func (c *addrCache) update(addr uint64) {
	c.near[c.nextSlot] = addr
	c.nextSlot = (c.nextSlot + 1) % vcdNearSize
	c.same[addr%(vcdSameSize*256)] = addr
}

// encode picks the cheapest mode for addr at position here and updates the cache. For the
// same-cache modes the value is the single address byte.
func (c *addrCache) encode(addr, here uint64) (mode uint8, val uint64) {
	mode, val = vcdSelf, addr
	if d := here - addr; addr <= here && d < val {
		mode, val = vcdHere, d
	}
	for i, n := range c.near {
		if d := addr - n; addr >= n && d < val {
			mode, val = uint8(2+i), d
		}
	}
	if val >= 128 {
		if k := addr % (vcdSameSize * 256); c.same[k] == addr {
			mode, val = uint8(2+vcdNearSize+k/256), k%256
		}
	}
	c.update(addr)
	return mode, val
}

// instWriter writes the instructions section, merging an instruction into the previous
// single-instruction opcode when the default table has a matching pair.
type instWriter struct {
	buf  []byte
	last int // index of the previous opcode if it can still be merged, else -1
	typ  uint8
	size int
	mode uint8
}

func (w *instWriter) add(size int) {
	if w.last >= 0 && w.typ == instCopy && w.size == 4 && size == 1 {
		w.buf[w.last] = byte(247 + int(w.mode))
		w.last = -1
		return
	}
	if size <= 17 {
		w.buf = append(w.buf, byte(1+size))
		w.last, w.typ, w.size = len(w.buf)-1, instAdd, size
		return
	}
	w.buf = appendVarint(append(w.buf, 1), uint64(size))
	w.last = -1
}

func (w *instWriter) copy(size int, mode uint8) {
	if w.last >= 0 && w.typ == instAdd && w.size <= 4 {
		a := w.size - 1
		switch {
		case mode <= 5 && size >= 4 && size <= 6:
			w.buf[w.last] = byte(163 + int(mode)*12 + a*3 + size - 4)
			w.last = -1
			return
		case mode >= 6 && size == 4:
			w.buf[w.last] = byte(235 + int(mode-6)*4 + a)
			w.last = -1
			return
		}
	}
	op := 19 + 16*int(mode)
	if size >= 4 && size <= 18 {
		w.buf = append(w.buf, byte(op+size-3))
		w.last, w.typ, w.size, w.mode = len(w.buf)-1, instCopy, size, mode
		return
	}
	w.buf = appendVarint(append(w.buf, byte(op)), uint64(size))
	w.last = -1
}

func (w *instWriter) run(size int) {
	w.buf = appendVarint(append(w.buf, 0), uint64(size))
	w.last = -1
}

// minRun is the shortest run of one byte inside literal text that becomes a RUN.
const minRun = 8

// VCDIFFEncode returns an RFC 3284 delta that turns base into target: one window per 8 MiB
// of target, each with the whole base as its source segment (VCD_SOURCE), COPY addresses in
// the default near/same cache modes, ADD and RUN for literals, the default code table, no
// checksum and no secondary compression. npm @ably/vcdiff-decoder, open-vcdiff, xdelta3 -d
// and VCDIFFApply all decode it.
func VCDIFFEncode(base, target []byte) []byte {
	m := getMatcher(base)
	defer m.release()
	out := append(m.out[:0], vcdiffMagic[:]...)
	out = append(out, 0) // Hdr_Indicator
	for off := 0; ; {
		n := min(len(target)-off, vcdiffWindowSize)
		out = m.appendWindow(out, target[off:off+n])
		off += n
		if off >= len(target) {
			break
		}
	}
	m.out = out
	return append([]byte(nil), out...)
}

// appendWindow encodes one target window against the whole base.
func (m *matcher) appendWindow(out, tgt []byte) []byte {
	base := m.src
	m.find(tgt, vcdiffWorth)
	data, addr := m.data[:0], m.addr[:0]
	w := instWriter{buf: m.inst[:0], last: -1}
	var cache addrCache
	literal := func(lit []byte) {
		for len(lit) > 0 {
			// Find the first run of minRun equal bytes.
			start, end := len(lit), len(lit)
			for i := 0; i+minRun <= len(lit); {
				j := i + 1
				for j < len(lit) && lit[j] == lit[i] {
					j++
				}
				if j-i >= minRun {
					start, end = i, j
					break
				}
				i = j
			}
			if start > 0 {
				data = append(data, lit[:start]...)
				w.add(start)
			}
			if end > start {
				data = append(data, lit[start])
				w.run(end - start)
			}
			lit = lit[end:]
		}
	}
	pos := 0
	for _, op := range m.ops {
		literal(tgt[pos:op.t])
		mode, val := cache.encode(uint64(op.s), uint64(len(base)+op.t))
		w.copy(op.n, mode)
		if mode >= 2+vcdNearSize {
			addr = append(addr, byte(val))
		} else {
			addr = appendVarint(addr, val)
		}
		pos = op.t + op.n
	}
	literal(tgt[pos:])
	inst := w.buf
	m.data, m.inst, m.addr = data, inst, addr

	if len(base) > 0 {
		out = append(out, vcdSource)
		out = appendVarint(out, uint64(len(base)))
		out = appendVarint(out, 0)
	} else {
		out = append(out, 0)
	}
	body := varintLen(uint64(len(tgt))) + 1 +
		varintLen(uint64(len(data))) + varintLen(uint64(len(inst))) + varintLen(uint64(len(addr))) +
		len(data) + len(inst) + len(addr)
	out = appendVarint(out, uint64(body))
	out = appendVarint(out, uint64(len(tgt)))
	out = append(out, 0) // Delta_Indicator: no secondary compression
	out = appendVarint(out, uint64(len(data)))
	out = appendVarint(out, uint64(len(inst)))
	out = appendVarint(out, uint64(len(addr)))
	out = append(out, data...)
	out = append(out, inst...)
	return append(out, addr...)
}

// Errors returned by VCDIFFApply.
var (
	errVCDHeader   = errors.New("delta: vcdiff: bad file header")
	errVCDVarint   = errors.New("delta: vcdiff: malformed integer")
	errVCDTrunc    = errors.New("delta: vcdiff: truncated delta")
	errVCDWindow   = errors.New("delta: vcdiff: bad window indicator")
	errVCDSegment  = errors.New("delta: vcdiff: source segment out of range")
	errVCDSections = errors.New("delta: vcdiff: section lengths do not match the delta encoding length")
	errVCDInst     = errors.New("delta: vcdiff: instruction overflows the target window")
	errVCDData     = errors.New("delta: vcdiff: data section exhausted")
	errVCDAddr     = errors.New("delta: vcdiff: bad copy address")
	errVCDShort    = errors.New("delta: vcdiff: window target not filled or sections not consumed")
	errVCDChecksum = errors.New("delta: vcdiff: Adler-32 mismatch")
)

// readVarint reads an RFC 3284 integer from b[*pos:]; values above 2^40 are rejected.
func readVarint(b []byte, pos *int) (uint64, error) {
	var v uint64
	for i := *pos; i < len(b); i++ {
		v = v<<7 | uint64(b[i]&0x7f)
		if v > 1<<40 {
			return 0, errVCDVarint
		}
		if b[i]&0x80 == 0 {
			*pos = i + 1
			return v, nil
		}
	}
	return 0, errVCDTrunc
}

// readLen reads an integer that must not exceed max.
func readLen(b []byte, pos *int, max int) (int, error) {
	v, err := readVarint(b, pos)
	if err != nil {
		return 0, err
	}
	if v > uint64(max) {
		return 0, errVCDTrunc
	}
	return int(v), nil
}

// VCDIFFApply decodes an RFC 3284 delta against base and returns the target. It supports the
// default code table, VCD_SOURCE and VCD_TARGET windows, all address modes, xdelta3's
// application header and per-window Adler-32 (verified when present); it rejects secondary
// compression, custom code tables and anything producing more than MaxOutput bytes. It never
// panics, whatever the input.
func VCDIFFApply(base, delta []byte) ([]byte, error) {
	if len(delta) < 5 || [4]byte(delta[:4]) != vcdiffMagic {
		return nil, errVCDHeader
	}
	hdr := delta[4]
	pos := 5
	if hdr&^vcdAppHeader != 0 {
		return nil, fmt.Errorf("delta: vcdiff: unsupported Hdr_Indicator %#x (secondary compression or custom code table)", hdr)
	}
	if hdr&vcdAppHeader != 0 {
		n, err := readLen(delta, &pos, len(delta)-pos)
		if err != nil {
			return nil, err
		}
		pos += n
		if pos > len(delta) {
			return nil, errVCDTrunc
		}
	}
	var out []byte
	var cache addrCache
	for pos < len(delta) {
		var err error
		out, err = applyWindow(base, delta, &pos, out, &cache)
		if err != nil {
			return nil, err
		}
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// applyWindow decodes the window at delta[*pos:], appending its target to out.
func applyWindow(base, delta []byte, pos *int, out []byte, cache *addrCache) ([]byte, error) {
	ind := delta[*pos]
	*pos++
	if ind&^(vcdSource|vcdTarget|vcdAdler32) != 0 || ind&(vcdSource|vcdTarget) == vcdSource|vcdTarget {
		return nil, errVCDWindow
	}
	var seg []byte
	if ind&(vcdSource|vcdTarget) != 0 {
		from := base
		if ind&vcdTarget != 0 {
			from = out
		}
		size, err := readLen(delta, pos, len(from))
		if err != nil {
			return nil, errVCDSegment
		}
		at, err := readLen(delta, pos, len(from)-size)
		if err != nil {
			return nil, errVCDSegment
		}
		seg = from[at : at+size : at+size]
	}
	encLen, err := readLen(delta, pos, len(delta))
	if err != nil {
		return nil, err
	}
	// The bound is checked after the length's own bytes are consumed: the window's encoding
	// starts there, so a length that fits before its varint can still run past the end.
	end := *pos + encLen
	if end > len(delta) {
		return nil, errVCDTrunc
	}
	enc := delta[:end]
	tgtLen, err := readLen(enc, pos, MaxOutput-len(out))
	if err != nil {
		return nil, fmt.Errorf("delta: vcdiff: target window too large or truncated: %w", err)
	}
	if *pos >= end {
		return nil, errVCDTrunc
	}
	if enc[*pos] != 0 {
		return nil, fmt.Errorf("delta: vcdiff: unsupported Delta_Indicator %#x (secondary compression)", enc[*pos])
	}
	*pos++
	var lens [3]int
	for i := range lens {
		if lens[i], err = readLen(enc, pos, end-*pos); err != nil {
			return nil, err
		}
	}
	var sum uint32
	if ind&vcdAdler32 != 0 {
		if end-*pos < 4 {
			return nil, errVCDTrunc
		}
		sum = binary.BigEndian.Uint32(enc[*pos:])
		*pos += 4
	}
	if lens[0]+lens[1]+lens[2] != end-*pos {
		return nil, errVCDSections
	}
	data := enc[*pos : *pos+lens[0]]
	inst := enc[*pos+lens[0] : *pos+lens[0]+lens[1]]
	addrs := enc[*pos+lens[0]+lens[1] : end]
	*pos = end

	start := len(out)
	// Every byte comes from an instruction; grow for the common case only, appends do the rest.
	out = slices.Grow(out, min(tgtLen, len(base)+4*len(delta)))
	*cache = addrCache{}
	dp, ap, ip := 0, 0, 0
	for ip < len(inst) {
		c := &vcdDefaultTable[inst[ip]]
		ip++
		for half := 0; half < 2; half++ {
			typ, size, mode := c.typ1, int(c.size1), c.mode1
			if half == 1 {
				typ, size, mode = c.typ2, int(c.size2), c.mode2
			}
			if typ == instNoop {
				continue
			}
			room := tgtLen - (len(out) - start)
			if size == 0 {
				if size, err = readLen(inst, &ip, room); err != nil {
					return nil, errVCDInst
				}
			} else if size > room {
				return nil, errVCDInst
			}
			switch typ {
			case instAdd:
				if size > len(data)-dp {
					return nil, errVCDData
				}
				out = append(out, data[dp:dp+size]...)
				dp += size
			case instRun:
				if dp >= len(data) {
					return nil, errVCDData
				}
				b := data[dp]
				dp++
				out = slices.Grow(out, size)
				run := out[len(out) : len(out)+size]
				for i := range run {
					run[i] = b
				}
				out = out[:len(out)+size]
			case instCopy:
				here := uint64(len(seg) + len(out) - start)
				var a uint64
				switch {
				case mode == vcdSelf:
					if a, err = readVarint(addrs, &ap); err != nil {
						return nil, errVCDAddr
					}
				case mode == vcdHere:
					v, err := readVarint(addrs, &ap)
					if err != nil || v > here {
						return nil, errVCDAddr
					}
					a = here - v
				case mode < 2+vcdNearSize:
					v, err := readVarint(addrs, &ap)
					if err != nil {
						return nil, errVCDAddr
					}
					a = cache.near[mode-2] + v
				default:
					if ap >= len(addrs) {
						return nil, errVCDAddr
					}
					a = cache.same[int(mode-2-vcdNearSize)*256+int(addrs[ap])]
					ap++
				}
				if a >= here {
					return nil, errVCDAddr
				}
				cache.update(a)
				n := size
				if a < uint64(len(seg)) {
					k := min(n, len(seg)-int(a))
					out = append(out, seg[int(a):int(a)+k]...)
					n -= k
					a = uint64(len(seg))
				}
				// The rest comes from this window's target, possibly overlapping what it writes.
				from := start + int(a) - len(seg)
				for n > 0 {
					k := min(n, len(out)-from)
					out = append(out, out[from:from+k]...)
					from += k
					n -= k
				}
			}
		}
	}
	if len(out)-start != tgtLen || dp != len(data) || ap != len(addrs) {
		return nil, errVCDShort
	}
	if ind&vcdAdler32 != 0 && adler32.Checksum(out[start:]) != sum {
		return nil, errVCDChecksum
	}
	return out, nil
}
