package delta

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/adler32"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/pushwire/pushwire/delta/deltatest"
)

type codec struct {
	name   string
	encode func(base, target []byte) []byte
	apply  func(base, delta []byte) ([]byte, error)
}

var codecs = []codec{
	{Fossil, FossilEncode, FossilApply},
	{VCDIFF, VCDIFFEncode, VCDIFFApply},
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// mutate returns a copy of b with k random small edits.
func mutate(r *rand.Rand, b []byte, k int) []byte {
	out := append([]byte(nil), b...)
	for range k {
		p := r.IntN(len(out) + 1)
		switch r.IntN(3) {
		case 0:
			out = append(out[:p], append(randBytes(r, 1+r.IntN(20)), out[p:]...)...)
		case 1:
			out = append(out[:p], out[min(len(out), p+1+r.IntN(20)):]...)
		default:
			if p < len(out) {
				out[p] ^= 0x5a
			}
		}
	}
	return out
}

type tcase struct {
	name         string
	base, target []byte
	// maxRatio, when > 0, bounds len(delta)/len(target): the encoder must find the copies.
	maxRatio float64
}

func tableCases() []tcase {
	r := rand.New(rand.NewPCG(1, 2))
	mb := randBytes(r, 1<<20)
	mbText := []byte(strings.Repeat(`{"event":"price","channel":"ticker:BTC","data":"{\"bid\":1.5}"}`+"\n", 1<<20/64))
	uni := []byte("héllo wörld — 日本語のテキスト 🚀🚀🚀 Привет мир ελληνικά 😀 " + strings.Repeat("∑", 40))
	uni2 := bytes.Replace(uni, []byte("日本語"), []byte("中文的"), 1)
	uni2 = append(uni2, "👍 ok"...)
	binBase := randBytes(r, 4096)
	return []tcase{
		{name: "empty/empty"},
		{name: "empty base", target: []byte("hello, world")},
		{name: "empty target", base: []byte("hello, world")},
		{name: "one byte", base: []byte("a"), target: []byte("b")},
		{name: "tiny base", base: []byte("abc"), target: []byte("abcabcabc")},
		{name: "identical", base: mbText[:5000], target: mbText[:5000], maxRatio: 0.01},
		{name: "identical short", base: []byte(`{"a":1,"b":2}`), target: []byte(`{"a":1,"b":2}`)},
		{name: "totally different", base: randBytes(r, 3000), target: randBytes(r, 3000)},
		{name: "binary edits", base: binBase, target: mutate(r, binBase, 10), maxRatio: 0.2},
		{name: "binary with zeros", base: make([]byte, 1000), target: append(make([]byte, 500), 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)},
		{name: "runs", base: []byte("xyz"), target: []byte(strings.Repeat("a", 300) + "b" + strings.Repeat("c", 9) + "d")},
		{name: "1MB identical", base: mb, target: mb, maxRatio: 0.001},
		{name: "1MB random vs random", base: mb[:1<<19], target: randBytes(r, 1<<20)},
		{name: "1MB text edited", base: mbText, target: mutate(r, mbText, 50), maxRatio: 0.01},
		{name: "1MB appended", base: mb, target: append(append([]byte(nil), mb...), "tail"...), maxRatio: 0.001},
		{name: "unicode", base: uni, target: uni2, maxRatio: 0.5},
		{name: "prefix shift", base: []byte(strings.Repeat("0123456789", 50)), target: []byte("!!" + strings.Repeat("0123456789", 50)), maxRatio: 0.1},
		{name: "reordered blocks", base: []byte(strings.Repeat("A", 100) + strings.Repeat("B", 100) + "The quick brown fox jumps over the lazy dog"),
			target: []byte("The quick brown fox jumps over the lazy dog" + strings.Repeat("B", 100) + strings.Repeat("A", 100)), maxRatio: 0.3},
	}
}

// TestCodecsTable round-trips edge cases (empty, identical, unrelated, binary, 1 MB, Unicode)
// through both codecs, directly and by algorithm name, and bounds the delta sizes.
func TestCodecsTable(t *testing.T) {
	for _, c := range codecs {
		for _, tc := range tableCases() {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				d := c.encode(tc.base, tc.target)
				got, err := c.apply(tc.base, d)
				if err != nil {
					t.Fatalf("apply: %v", err)
				}
				if !bytes.Equal(got, tc.target) {
					t.Fatalf("round trip differs: got %d bytes, want %d", len(got), len(tc.target))
				}
				if tc.maxRatio > 0 && float64(len(d)) > tc.maxRatio*float64(len(tc.target)) {
					t.Errorf("delta is %d bytes for a %d-byte target: want at most %.3f of it", len(d), len(tc.target), tc.maxRatio)
				}
				// A delta never grows much beyond the target (literal everything + headers).
				if limit := len(tc.target) + len(tc.target)/64 + 64; len(d) > limit {
					t.Errorf("delta is %d bytes for a %d-byte target: more than %d", len(d), len(tc.target), limit)
				}
				// Via the algorithm-name API too.
				d2, err := Encode(c.name, tc.base, tc.target)
				if err != nil || !bytes.Equal(d2, d) {
					t.Fatalf("Encode(%q) differs from the direct encoder (err %v)", c.name, err)
				}
				got2, err := Apply(c.name, tc.base, d)
				if err != nil || !bytes.Equal(got2, tc.target) {
					t.Fatalf("Apply(%q): %v", c.name, err)
				}
				// Applying the delta to the wrong base must fail or give other bytes, never panic.
				if len(tc.base) > 0 {
					wrong := append([]byte(nil), tc.base...)
					wrong[len(wrong)/2] ^= 0xff
					_, _ = c.apply(wrong, d)
				}
			})
		}
	}
}

// TestAlgorithmNames pins the wire names and the unknown-algorithm error.
func TestAlgorithmNames(t *testing.T) {
	if Fossil != "fossil" || VCDIFF != "xdelta3" {
		t.Fatalf("wire names changed: %q %q", Fossil, VCDIFF)
	}
	if _, err := Encode("gzip", nil, nil); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Fatalf("Encode(gzip) err = %v", err)
	}
	if _, err := Apply("", nil, nil); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Fatalf("Apply(\"\") err = %v", err)
	}
	d, err := Encode("vcdiff", []byte("abcdefgh"), []byte("abcdefgh!"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Apply("vcdiff", []byte("abcdefgh"), d); err != nil || string(got) != "abcdefgh!" {
		t.Fatalf("vcdiff alias: %q %v", got, err)
	}
}

// TestCorpusRoundTrip encodes every consecutive pair of the seeded streams with both codecs
// and checks the decoders give back the target, and that the streams actually compress.
func TestCorpusRoundTrip(t *testing.T) {
	streams := deltatest.Corpus(42, 300)
	streams = append(streams, deltatest.Stream{Name: "price-ticks-minimal", Frames: deltatest.PriceTicksMinimal(42, 300)})
	for _, s := range streams {
		for _, c := range codecs {
			full, sum := 0, 0
			for i := 1; i < len(s.Frames); i++ {
				base, target := s.Frames[i-1], s.Frames[i]
				d := c.encode(base, target)
				got, err := c.apply(base, d)
				if err != nil || !bytes.Equal(got, target) {
					t.Fatalf("%s/%s frame %d: err %v, equal %v", s.Name, c.name, i, err, bytes.Equal(got, target))
				}
				full += len(target)
				sum += len(d)
			}
			saving := 100 * (1 - float64(sum)/float64(full))
			t.Logf("%-20s %-8s %8d -> %7d bytes (%.1f%% saved)", s.Name, c.name, full, sum, saving)
			if s.Name != "random-edits" && saving < 50 {
				t.Errorf("%s/%s saves only %.1f%%", s.Name, c.name, saving)
			}
		}
	}
}

// TestCorpusValidJSON: the JSON streams are well-formed JSON frames (RandomEdits is not JSON
// on purpose) and chat frames carry non-ASCII text.
func TestCorpusValidJSON(t *testing.T) {
	for _, s := range deltatest.Corpus(7, 50) {
		if s.Name == "random-edits" {
			continue
		}
		for i, f := range s.Frames {
			if !json.Valid(f) {
				t.Fatalf("%s frame %d is not JSON: %s", s.Name, i, f)
			}
			if s.Name == "chat-edits" && (!utf8.Valid(f) || utf8.RuneCount(f) == len(f)) {
				t.Fatalf("%s frame %d has no multi-byte UTF-8", s.Name, i)
			}
		}
	}
	a, b := deltatest.PriceTicks(3, 20), deltatest.PriceTicks(3, 20)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatal("PriceTicks is not deterministic")
		}
	}
}

// TestFossilFormat checks Fossil's integer alphabet, delta.c's checksum and a hand-written
// delta in the documented syntax.
func TestFossilFormat(t *testing.T) {
	for _, v := range []uint64{0, 1, 9, 10, 63, 64, 4095, 4096, 1<<32 - 1} {
		s := appendFossilInt(nil, v)
		pos := 0
		got, err := fossilInt(s, &pos)
		if err != nil || got != v || pos != len(s) || len(s) != fossilDigitCount(int(v)) {
			t.Errorf("int %d: %q -> %d %v (digits %d)", v, s, got, err, fossilDigitCount(int(v)))
		}
	}
	if s := string(appendFossilInt(nil, 64*64+10)); s != "10A" {
		t.Errorf("4106 encodes as %q, want 10A", s)
	}
	// delta.c's checksum computed the way delta.c writes it.
	ref := func(z []byte) uint32 {
		var s0, s1, s2, s3 uint32
		for len(z) >= 4 {
			s0 += uint32(z[0])
			s1 += uint32(z[1])
			s2 += uint32(z[2])
			s3 += uint32(z[3])
			z = z[4:]
		}
		s3 += s2<<8 + s1<<16 + s0<<24
		switch len(z) {
		case 3:
			s3 += uint32(z[2]) << 8
			fallthrough
		case 2:
			s3 += uint32(z[1]) << 16
			fallthrough
		case 1:
			s3 += uint32(z[0]) << 24
		}
		return s3
	}
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 100 {
		b := randBytes(r, n*7)
		if got, want := fossilChecksum(b), ref(b); got != want {
			t.Fatalf("checksum of %d bytes: %08x, want %08x", len(b), got, want)
		}
	}
	// A hand-written delta in the documented syntax: copy, insert, checksum.
	base := []byte("abcdefghijklmnopqrstuvwxyz")
	target := []byte("abcdefghijKLMNOPqrstuvwxyz!")
	d := []byte("R\nA@0,6:KLMNOPA@G,1:!" + string(appendFossilInt(nil, uint64(fossilChecksum(target)))) + ";")
	if got, err := FossilApply(base, d); err != nil || !bytes.Equal(got, target) {
		t.Fatalf("hand-written delta: %q %v", got, err)
	}
	// Our encoder writes exactly that shape: header, commands, checksum.
	enc := FossilEncode(base, target)
	if !bytes.HasPrefix(enc, []byte("R\n")) || !bytes.HasSuffix(enc, []byte(";")) || !bytes.Contains(enc, []byte("@0,")) {
		t.Fatalf("unexpected encoding %q", enc)
	}
}

// TestFossilRejects: malformed or inconsistent Fossil deltas are errors, not output.
func TestFossilRejects(t *testing.T) {
	base := []byte("abcdefghijklmnopqrstuvwxyz")
	target := []byte("abcdefghijKLMNOPqrstuvwxyz!")
	good := FossilEncode(base, target)
	sum := string(appendFossilInt(nil, uint64(fossilChecksum(target))))
	for name, d := range map[string]string{
		"empty":             "",
		"no newline":        "R",
		"no digits":         "\n",
		"truncated":         string(good[:len(good)-1]),
		"bad checksum":      "R\nA@0,6:KLMNOPA@G,1:!1;",
		"short output":      "R\nA@0," + sum + ";",
		"copy past base":    "R\nA@0,6:KLMNOPA@H,1:!" + sum + ";",
		"copy past limit":   "1\nA@0," + sum + ";",
		"insert past delta": "R\nz:abc",
		"insert past limit": "1\n2:ab" + sum + ";",
		"unknown op":        "R\nA#0,",
		"copy no comma":     "R\nA@0;",
		"huge declared":     string(appendFossilInt(nil, MaxOutput+1)) + "\n0;",
		"overflowing int":   "~~~~~~~~~~~~~~~~~~~~\n",
	} {
		if got, err := FossilApply(base, []byte(d)); err == nil {
			t.Errorf("%s: accepted, produced %q", name, got)
		}
	}
	if _, err := FossilApply(base, good); err != nil {
		t.Fatal(err)
	}
}

// TestVCDIFFCodeTable checks the default code table and the instruction merging.
func TestVCDIFFCodeTable(t *testing.T) {
	// Spot checks against RFC 3284 §5.6 and the formulas the encoder uses.
	tab := vcdDefaultTable
	checks := map[int]vcdCode{
		0:   {typ1: instRun},
		1:   {typ1: instAdd},
		2:   {typ1: instAdd, size1: 1},
		18:  {typ1: instAdd, size1: 17},
		19:  {typ1: instCopy},
		20:  {typ1: instCopy, size1: 4},
		34:  {typ1: instCopy, size1: 18},
		35:  {typ1: instCopy, mode1: 1},
		162: {typ1: instCopy, size1: 18, mode1: 8},
		163: {instAdd, 1, 0, instCopy, 4, 0},
		174: {instAdd, 4, 0, instCopy, 6, 0},
		234: {instAdd, 4, 0, instCopy, 6, 5},
		235: {instAdd, 1, 0, instCopy, 4, 6},
		246: {instAdd, 4, 0, instCopy, 4, 8},
		247: {instCopy, 4, 0, instAdd, 1, 0},
		255: {instCopy, 4, 8, instAdd, 1, 0},
	}
	for i, want := range checks {
		if tab[i] != want {
			t.Errorf("code %d = %+v, want %+v", i, tab[i], want)
		}
	}
	// Every pair the writer merges decodes to the same two instructions.
	for mode := uint8(0); mode <= 8; mode++ {
		for add := 1; add <= 4; add++ {
			for size := 4; size <= 18; size++ {
				w := instWriter{last: -1}
				w.add(add)
				w.copy(size, mode)
				var got []vcdCode
				for _, b := range w.buf {
					got = append(got, tab[b])
				}
				if len(w.buf) == 1 {
					c := got[0]
					if c.typ1 != instAdd || int(c.size1) != add || c.typ2 != instCopy || int(c.size2) != size || c.mode2 != mode {
						t.Errorf("add %d + copy %d mode %d merged into %+v", add, size, mode, c)
					}
				} else if got[0].typ1 != instAdd || int(got[0].size1) != add || got[1].typ1 != instCopy || int(got[1].size1) != size || got[1].mode1 != mode {
					t.Errorf("add %d + copy %d mode %d written as %+v", add, size, mode, got)
				}
			}
		}
		w := instWriter{last: -1}
		w.copy(4, mode)
		w.add(1)
		if len(w.buf) != 1 || tab[w.buf[0]] != (vcdCode{instCopy, 4, mode, instAdd, 1, 0}) {
			t.Errorf("copy 4 mode %d + add 1 not merged: %v", mode, w.buf)
		}
	}
}

// TestVCDIFFVarint checks RFC 3284's base-128 integers.
func TestVCDIFFVarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1 << 32, 1 << 40} {
		b := appendVarint(nil, v)
		pos := 0
		got, err := readVarint(b, &pos)
		if err != nil || got != v || pos != len(b) || len(b) != varintLen(v) {
			t.Errorf("varint %d: % x -> %d %v", v, b, got, err)
		}
	}
	// RFC 3284 §2 example: 123456789 = 58 BC DE 15.
	if b := appendVarint(nil, 123456789); !bytes.Equal(b, []byte{0xBA, 0xEF, 0x9A, 0x15}) {
		t.Errorf("123456789 -> % x", b)
	}
}

// vcdWindow builds a one-window delta by hand.
func vcdWindow(ind byte, seg []uint64, tgtLen int, data, inst, addr []byte) []byte {
	d := []byte{0xD6, 0xC3, 0xC4, 0, 0, ind}
	for _, v := range seg {
		d = appendVarint(d, v)
	}
	var body []byte
	body = appendVarint(body, uint64(tgtLen))
	body = append(body, 0)
	body = appendVarint(body, uint64(len(data)))
	body = appendVarint(body, uint64(len(inst)))
	body = appendVarint(body, uint64(len(addr)))
	body = append(append(append(body, data...), inst...), addr...)
	d = appendVarint(d, uint64(len(body)))
	return append(d, body...)
}

// TestVCDIFFDecoderFeatures decodes hand-built deltas using every address mode, RUN,
// overlapping copies, VCD_TARGET, Adler-32 and the xdelta3 application header.
func TestVCDIFFDecoderFeatures(t *testing.T) {
	base := []byte("0123456789abcdefghij")
	// COPY from target overlapping itself (mode SELF, address in the target part), RUN, ADD.
	// U = base(20) + T. ADD "xy" (T=xy), COPY 6 from U[20] (overlap: xyxyxy), RUN 3 of 'z'.
	d := vcdWindow(vcdSource, []uint64{20, 0}, 11, []byte("xyz"), []byte{3, 19 + 16*0 + 6 - 3, 0, 3}, []byte{20})
	got, err := VCDIFFApply(base, d)
	if err != nil || string(got) != "xyxyxyxyzzz" {
		t.Fatalf("overlap/run: %q %v", got, err)
	}
	// HERE mode and near cache: COPY 4 from 2 (HERE: here=20, 18), COPY 4 near[0]+8 = 10.
	d = vcdWindow(vcdSource, []uint64{20, 0}, 8, nil, []byte{36, 20 + 32}, []byte{18, 8})
	if got, err = VCDIFFApply(base, d); err != nil || string(got) != "2345abcd" {
		t.Fatalf("here/near: %q %v", got, err)
	}
	// Same cache: COPY 4 SELF 12, then COPY 4 same (mode 6) byte 12 → 12.
	d = vcdWindow(vcdSource, []uint64{20, 0}, 8, nil, []byte{20, 19 + 16*6 + 1}, []byte{12, 12})
	if got, err = VCDIFFApply(base, d); err != nil || string(got) != "cdefcdef" {
		t.Fatalf("same: %q %v", got, err)
	}
	// Source segment in the middle of the base: addresses are relative to it.
	d = vcdWindow(vcdSource, []uint64{5, 10}, 5, nil, []byte{19, 5}, []byte{0})
	if got, err = VCDIFFApply(base, d); err != nil || string(got) != "abcde" {
		t.Fatalf("segment: %q %v", got, err)
	}
	// VCD_TARGET: second window copies from the first window's output.
	w1 := vcdWindow(0, nil, 4, []byte("wxyz"), []byte{5}, nil)
	w2 := vcdWindow(vcdTarget, []uint64{4, 0}, 4, nil, []byte{20}, []byte{0})
	if got, err = VCDIFFApply(nil, append(w1, w2[5:]...)); err != nil || string(got) != "wxyzwxyz" {
		t.Fatalf("VCD_TARGET: %q %v", got, err)
	}
	// xdelta3's Adler-32 extension, verified.
	body := vcdWindow(vcdSource|vcdAdler32, []uint64{20, 0}, 4, nil, []byte{20}, []byte{0})
	// Insert the checksum after the three section lengths: rebuild by hand.
	sum := binary.BigEndian.AppendUint32(nil, adler32.Checksum([]byte("0123")))
	var enc []byte
	enc = appendVarint(enc, 4)
	enc = append(enc, 0, 0, 1, 1)
	enc = append(enc, sum...)
	enc = append(enc, 20, 0)
	withSum := append(append(append([]byte(nil), body[:8]...), appendVarint(nil, uint64(len(enc)))...), enc...)
	if got, err = VCDIFFApply(base, withSum); err != nil || string(got) != "0123" {
		t.Fatalf("adler32: %q %v", got, err)
	}
	withSum[len(withSum)-3]++
	if _, err = VCDIFFApply(base, withSum); err == nil {
		t.Fatal("bad adler32 accepted")
	}
	// Header-only delta: empty output.
	if got, err = VCDIFFApply(base, []byte{0xD6, 0xC3, 0xC4, 0, 0}); err != nil || len(got) != 0 {
		t.Fatalf("header only: %q %v", got, err)
	}
	// xdelta3 application header is skipped.
	app := append([]byte{0xD6, 0xC3, 0xC4, 0, vcdAppHeader, 3, 'a', 'b', 'c'}, vcdWindow(0, nil, 2, []byte("hi"), []byte{3}, nil)[5:]...)
	if got, err = VCDIFFApply(nil, app); err != nil || string(got) != "hi" {
		t.Fatalf("app header: %q %v", got, err)
	}
}

// TestVCDIFFRejects: malformed, unsupported or truncated VCDIFF deltas are errors.
func TestVCDIFFRejects(t *testing.T) {
	base := []byte("0123456789abcdefghij")
	cases := map[string][]byte{
		"empty":             nil,
		"bad magic":         []byte("VCD\x00\x00"),
		"secondary":         {0xD6, 0xC3, 0xC4, 0, vcdDecompress, 1},
		"code table":        {0xD6, 0xC3, 0xC4, 0, vcdCodetable},
		"source and target": vcdWindow(vcdSource|vcdTarget, []uint64{1, 0}, 0, nil, nil, nil),
		"segment too long":  vcdWindow(vcdSource, []uint64{21, 0}, 0, nil, nil, nil),
		"segment past end":  vcdWindow(vcdSource, []uint64{20, 1}, 0, nil, nil, nil),
		"copy past here":    vcdWindow(vcdSource, []uint64{20, 0}, 4, nil, []byte{20}, []byte{20}),
		"add past data":     vcdWindow(0, nil, 4, []byte("ab"), []byte{5}, nil),
		"run without data":  vcdWindow(0, nil, 4, nil, []byte{0, 4}, nil),
		"overfill":          vcdWindow(0, nil, 1, []byte("ab"), []byte{4}, nil),
		"underfill":         vcdWindow(0, nil, 3, []byte("ab"), []byte{4}, nil),
		"data left over":    vcdWindow(0, nil, 1, []byte("ab"), []byte{3}, nil),
		"huge window":       vcdWindow(0, nil, MaxOutput+1, nil, nil, nil),
		"here underflow":    vcdWindow(vcdSource, []uint64{20, 0}, 4, nil, []byte{36}, []byte{21}),
		"same no addr byte": vcdWindow(vcdSource, []uint64{20, 0}, 4, nil, []byte{19 + 16*6 + 1}, nil),
		"bad varint":        {0xD6, 0xC3, 0xC4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, d := range cases {
		if got, err := VCDIFFApply(base, d); err == nil {
			t.Errorf("%s: accepted, produced %q", name, got)
		}
	}
	// Truncations of a good delta are all rejected.
	good := VCDIFFEncode(base, []byte("0123456789abcdefghij!0123"))
	for i := range len(good) - 1 {
		if i == 5 { // header alone is a valid empty delta
			continue
		}
		if _, err := VCDIFFApply(base, good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: accepted", i)
		}
	}
}

// TestEncodersAllocate: with pooled tables an encode allocates only the returned delta. Under
// the race detector sync.Pool drops a quarter of the returned matchers, each costing a dozen
// or so allocations to rebuild, so the bound is looser there but still catches an encoder
// that allocates per match or per byte.
func TestEncodersAllocate(t *testing.T) {
	limit := 2.0
	if raceEnabled {
		limit = 16
	}
	frames := deltatest.PriceTicks(1, 3)
	for _, c := range codecs {
		c.encode(frames[0], frames[1]) // warm the pool
		n := testing.AllocsPerRun(500, func() { c.encode(frames[0], frames[1]) })
		t.Logf("%s encode: %.0f allocations per frame", c.name, n)
		if n > limit {
			t.Errorf("%s encode: %.1f allocations per frame, want ≤ %.0f", c.name, n, limit)
		}
	}
}

// vcdiffWindows counts the windows of a well-formed VCDIFF delta without secondary
// compression or application header.
func vcdiffWindows(t *testing.T, d []byte) int {
	t.Helper()
	pos, n := 5, 0
	next := func() int {
		v, err := readVarint(d, &pos)
		if err != nil {
			t.Fatalf("window %d: %v", n, err)
		}
		return int(v)
	}
	for pos < len(d) {
		if ind := d[pos]; ind&(vcdSource|vcdTarget) != 0 {
			pos++
			next()
			next()
		} else {
			pos++
		}
		enc := next()
		pos += enc
		n++
	}
	if pos != len(d) {
		t.Fatalf("windows overrun the delta: %d > %d", pos, len(d))
	}
	return n
}

// TestLargeTargetMultiWindow: a target longer than vcdiffWindowSize is split into several
// VCDIFF windows, each with the whole base as source segment, and both codecs round-trip it.
func TestLargeTargetMultiWindow(t *testing.T) {
	base, target := deltatest.LargePair(11, 64<<10, vcdiffWindowSize+vcdiffWindowSize/8)
	d := VCDIFFEncode(base, target)
	if w := vcdiffWindows(t, d); w != 2 {
		t.Fatalf("%d-byte target written as %d windows, want 2", len(target), w)
	}
	got, err := VCDIFFApply(base, d)
	if err != nil || !bytes.Equal(got, target) {
		t.Fatalf("VCDIFF multi-window round trip: err %v, equal %v", err, bytes.Equal(got, target))
	}
	f := FossilEncode(base, target)
	got, err = FossilApply(base, f)
	if err != nil || !bytes.Equal(got, target) {
		t.Fatalf("Fossil large round trip: err %v, equal %v", err, bytes.Equal(got, target))
	}
	for name, n := range map[string]int{"vcdiff": len(d), "fossil": len(f)} {
		if n > len(target)/20 {
			t.Errorf("%s: %d-byte delta for a %d-byte target made of base blocks", name, n, len(target))
		}
	}
	if d := VCDIFFEncode(base, target[:vcdiffWindowSize]); vcdiffWindows(t, d) != 1 {
		t.Error("a target of exactly vcdiffWindowSize bytes is not one window")
	}
}

// TestConcurrentEncode: encoders sharing the matcher pool from many goroutines give the same
// deltas as a sequential run (no scratch buffer is shared or returned to a caller).
func TestConcurrentEncode(t *testing.T) {
	pairs := deltatest.Pairs(deltatest.Corpus(5, 60))
	want := make([][2][]byte, len(pairs))
	for i, p := range pairs {
		want[i] = [2][]byte{FossilEncode(p.Base, p.Target), VCDIFFEncode(p.Base, p.Target)}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range pairs {
				i := (k + g*31) % len(pairs)
				p := pairs[i]
				f, v := FossilEncode(p.Base, p.Target), VCDIFFEncode(p.Base, p.Target)
				if !bytes.Equal(f, want[i][0]) || !bytes.Equal(v, want[i][1]) {
					t.Errorf("goroutine %d, %s: delta differs from the sequential one", g, p.Name)
					return
				}
				f[0], v[0] = 0, 0 // the caller owns the returned slices
			}
		}()
	}
	wg.Wait()
}
