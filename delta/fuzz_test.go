package delta

import (
	"bytes"
	"testing"

	"github.com/pushwire/pushwire/delta/deltatest"
)

// fuzzMaxInput bounds fuzz inputs so each execution stays fast.
const fuzzMaxInput = 64 << 10

func addPairSeeds(f *testing.F) {
	f.Add([]byte(""), []byte(""))
	f.Add([]byte("hello world, hello world"), []byte("hello there world, hello world!"))
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaaaaaa"), []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"))
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xff}, []byte{0xff, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0})
	for _, s := range deltatest.Corpus(99, 4) {
		for i := 1; i < len(s.Frames); i++ {
			f.Add(s.Frames[i-1], s.Frames[i])
		}
	}
}

func fuzzRoundTrip(t *testing.T, base, target []byte, encode func(base, target []byte) []byte, apply func(base, delta []byte) ([]byte, error)) {
	if len(base) > fuzzMaxInput || len(target) > fuzzMaxInput {
		t.Skip()
	}
	d := encode(base, target)
	got, err := apply(base, d)
	if err != nil {
		t.Fatalf("apply: %v (delta %q)", err, d)
	}
	if !bytes.Equal(got, target) {
		t.Fatalf("round trip: got %q, want %q (delta %q)", got, target, d)
	}
	if len(d) > len(target)+len(target)/64+64 {
		t.Fatalf("delta of %d bytes for a %d-byte target", len(d), len(target))
	}
}

// FuzzFossilRoundTrip: FossilApply(base, FossilEncode(base, target)) == target.
func FuzzFossilRoundTrip(f *testing.F) {
	addPairSeeds(f)
	f.Fuzz(func(t *testing.T, base, target []byte) { fuzzRoundTrip(t, base, target, FossilEncode, FossilApply) })
}

// FuzzVCDIFFRoundTrip: VCDIFFApply(base, VCDIFFEncode(base, target)) == target.
func FuzzVCDIFFRoundTrip(f *testing.F) {
	addPairSeeds(f)
	f.Fuzz(func(t *testing.T, base, target []byte) { fuzzRoundTrip(t, base, target, VCDIFFEncode, VCDIFFApply) })
}

// fuzzApply checks a decoder on arbitrary input: no panic, and output bounded by MaxOutput.
func fuzzApply(t *testing.T, base, d []byte, apply func(base, delta []byte) ([]byte, error)) {
	if len(base) > fuzzMaxInput || len(d) > fuzzMaxInput {
		t.Skip()
	}
	out, err := apply(base, d)
	if err != nil && out != nil {
		t.Fatalf("error %v with non-nil output", err)
	}
	if len(out) > MaxOutput {
		t.Fatalf("output of %d bytes exceeds MaxOutput", len(out))
	}
}

// FuzzFossilApply: FossilApply never panics and never produces more than MaxOutput bytes.
func FuzzFossilApply(f *testing.F) {
	base := []byte("abcdefghijklmnopqrstuvwxyz0123456789")
	f.Add(base, FossilEncode(base, []byte("abcdefghijKLMNOPqrstuvwxyz!")))
	f.Add(base, []byte("R\nA@0,6:KLMNOPA@G,1:!1;"))
	f.Add([]byte(""), []byte("0\n0;"))
	f.Add(base, []byte("~~~~~\nzz@0,"))
	for _, s := range deltatest.Corpus(98, 3) {
		f.Add(s.Frames[0], FossilEncode(s.Frames[0], s.Frames[1]))
	}
	f.Fuzz(func(t *testing.T, base, d []byte) { fuzzApply(t, base, d, FossilApply) })
}

// FuzzVCDIFFApply: VCDIFFApply never panics and never produces more than MaxOutput bytes.
func FuzzVCDIFFApply(f *testing.F) {
	base := []byte("abcdefghijklmnopqrstuvwxyz0123456789")
	f.Add(base, VCDIFFEncode(base, []byte("abcdefghijKLMNOPqrstuvwxyz!zzzzzzzzzzzz")))
	f.Add([]byte(""), VCDIFFEncode(nil, []byte("hello")))
	f.Add(base, []byte{0xD6, 0xC3, 0xC4, 0, 0})
	f.Add(base, vcdWindow(vcdSource, []uint64{20, 0}, 11, []byte("xyz"), []byte{3, 22, 0, 3}, []byte{20}))
	f.Add(base, vcdWindow(0, nil, 1<<20, []byte("x"), []byte{0, 0x80 | 64, 0}, nil))
	for _, s := range deltatest.Corpus(97, 3) {
		f.Add(s.Frames[0], VCDIFFEncode(s.Frames[0], s.Frames[1]))
	}
	f.Fuzz(func(t *testing.T, base, d []byte) { fuzzApply(t, base, d, VCDIFFApply) })
}
