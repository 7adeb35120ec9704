package delta

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
)

const (
	// minMatch is the length of the hashed window: no copy is shorter than this.
	minMatch = 4
	// maxChain bounds how many earlier base positions with the same hash are examined.
	maxChain = 32
	// goodLen stops the chain walk once a match this long is found.
	goodLen = 256
	// minTableBits and maxTableBits bound the size of the hash-head table (1<<bits entries).
	minTableBits = 8
	maxTableBits = 18
	// maxIndexed is the largest base that is indexed: offsets are stored as int32.
	maxIndexed = math.MaxInt32 - 1
)

// copyOp is one copy chosen by the matcher: n bytes of the target starting at t equal the
// base starting at s. Bytes of the target between copies are literals.
type copyOp struct {
	t, s, n int
}

// matcher holds the hash index of one base and the scratch buffers of one encode. Matchers
// are pooled so that steady-state encoding allocates only the returned delta.
type matcher struct {
	head  []int32 // hash of 4 bytes -> 1 + most recent base position with that hash, 0 = none
	prev  []int32 // base position -> 1 + previous base position with the same hash
	shift uint    // 32 - table bits
	src   []byte
	ops   []copyOp
	out   []byte // scratch for the encoded delta
	data  []byte // VCDIFF data section scratch
	inst  []byte // VCDIFF instructions section scratch
	addr  []byte // VCDIFF addresses section scratch
}

var matchers = sync.Pool{New: func() any { return new(matcher) }}

// scratchLimit is the capacity above which a buffer is dropped instead of being pooled, so
// that one huge input does not pin memory forever.
const scratchLimit = 1 << 20

// getMatcher returns a pooled matcher indexing src.
func getMatcher(src []byte) *matcher {
	m := matchers.Get().(*matcher)
	m.index(src)
	return m
}

// release returns m to the pool.
func (m *matcher) release() {
	m.src = nil
	if cap(m.prev) > scratchLimit {
		m.prev = nil
	}
	if cap(m.ops) > scratchLimit/16 {
		m.ops = nil
	}
	for _, b := range []*[]byte{&m.out, &m.data, &m.inst, &m.addr} {
		if cap(*b) > scratchLimit {
			*b = nil
		}
	}
	matchers.Put(m)
}

func load32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[i:]) }

func hash4(u uint32, shift uint) uint32 { return (u * 2654435761) >> shift }

// index builds the hash chains of every 4-byte window of src.
func (m *matcher) index(src []byte) {
	m.src = src
	if len(src) < minMatch || len(src) > maxIndexed {
		m.shift = 0
		return
	}
	b := uint(minTableBits)
	for b < maxTableBits && 1<<b < len(src) {
		b++
	}
	size := 1 << b
	if cap(m.head) < size {
		m.head = make([]int32, size)
	} else {
		m.head = m.head[:size]
		clear(m.head)
	}
	n := len(src) - minMatch + 1
	if cap(m.prev) < n {
		m.prev = make([]int32, n)
	} else {
		m.prev = m.prev[:n]
	}
	m.shift = 32 - b
	head, prev, shift := m.head, m.prev[:n], m.shift
	for i := range prev {
		h := hash4(load32(src, i), shift)
		prev[i] = head[h]
		head[h] = int32(i + 1)
	}
}

// matchLen returns the length of the common prefix of a and b.
func matchLen(a, b []byte) int {
	n := 0
	for len(a) >= 8 && len(b) >= 8 {
		if x := binary.LittleEndian.Uint64(a) ^ binary.LittleEndian.Uint64(b); x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		a, b, n = a[8:], b[8:], n+8
	}
	if len(b) < len(a) {
		a = a[:len(b)]
	}
	for i := range a {
		if a[i] != b[i] {
			break
		}
		n++
	}
	return n
}

// worthFunc reports whether copying n bytes from base offset s, after lit pending literal
// bytes, makes the delta smaller than leaving them literal.
type worthFunc func(lit, s, n int) bool

// find fills m.ops with greedy longest matches of tgt against the indexed base, in target
// order. Before walking the hash chain it tries the base position that continues the
// previous copy, where consecutive frames of a stream usually line up.
func (m *matcher) find(tgt []byte, worth worthFunc) {
	m.ops = m.ops[:0]
	src := m.src
	if m.shift == 0 || len(tgt) < minMatch {
		return
	}
	head, prev, shift := m.head, m.prev, m.shift
	lit, i, drift := 0, 0, 0 // drift = base offset - target offset of the last copy
	last := len(tgt) - minMatch
	for i <= last {
		cur := load32(tgt, i)
		bestLen, bestSrc := 0, -1
		if p := i + drift; p >= 0 && p+minMatch <= len(src) && load32(src, p) == cur {
			bestLen = minMatch + matchLen(src[p+minMatch:], tgt[i+minMatch:])
			bestSrc = p
		}
		if bestLen < goodLen {
			rest := len(tgt) - i
			c := head[hash4(cur, shift)]
			for steps := 0; c != 0 && steps < maxChain && bestLen < rest; steps++ {
				p := int(c - 1)
				c = prev[p]
				if p == bestSrc || load32(src, p) != cur {
					continue
				}
				// A candidate can only win if it also matches at the current best length.
				if bestLen > 0 && (p+bestLen >= len(src) || src[p+bestLen] != tgt[i+bestLen]) {
					continue
				}
				if l := minMatch + matchLen(src[p+minMatch:], tgt[i+minMatch:]); l > bestLen {
					bestLen, bestSrc = l, p
					// A match cut short by the end of the base may still be beaten.
					if l >= goodLen && p+l < len(src) {
						break
					}
				}
			}
		}
		if bestLen >= minMatch {
			t, s, n := i, bestSrc, bestLen
			for t > lit && s > 0 && src[s-1] == tgt[t-1] {
				t, s, n = t-1, s-1, n+1
			}
			if worth(t-lit, s, n) {
				m.ops = append(m.ops, copyOp{t: t, s: s, n: n})
				i = t + n
				lit = i
				drift = s - t
				continue
			}
		}
		// Step faster through long unmatched stretches (incompressible data).
		i += 1 + (i-lit)>>7
	}
}
