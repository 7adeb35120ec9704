package delta

import (
	"compress/flate"
	"encoding/base64"
	"strconv"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/delta/deltatest"
)

// benchFrames is the price-tick corpus used by the benchmarks: consecutive V2 frames of
// ~500 bytes.
var benchFrames = sync.OnceValue(func() [][]byte { return deltatest.PriceTicks(1, 1000) })

func benchEncode(b *testing.B, frames [][]byte, encode func(base, target []byte) []byte) {
	var n int64
	for i := 1; i < len(frames); i++ {
		n += int64(len(frames[i]))
	}
	b.SetBytes(n / int64(len(frames)-1))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := 1 + i%(len(frames)-1)
		encode(frames[k-1], frames[k])
	}
}

func benchApply(b *testing.B, encode func(base, target []byte) []byte, apply func(base, delta []byte) ([]byte, error)) {
	frames := benchFrames()
	deltas := make([][]byte, len(frames))
	var n int64
	for i := 1; i < len(frames); i++ {
		deltas[i] = encode(frames[i-1], frames[i])
		n += int64(len(frames[i]))
	}
	b.SetBytes(n / int64(len(frames)-1))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := 1 + i%(len(frames)-1)
		if _, err := apply(frames[k-1], deltas[k]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFossilEncode: encode throughput in target bytes per second on the price ticks.
func BenchmarkFossilEncode(b *testing.B) { benchEncode(b, benchFrames(), FossilEncode) }

// BenchmarkFossilApply: decode throughput in target bytes per second on the price ticks.
func BenchmarkFossilApply(b *testing.B) { benchApply(b, FossilEncode, FossilApply) }

// BenchmarkVCDIFFEncode: encode throughput in target bytes per second on the price ticks.
func BenchmarkVCDIFFEncode(b *testing.B) { benchEncode(b, benchFrames(), VCDIFFEncode) }

// BenchmarkVCDIFFApply: decode throughput in target bytes per second on the price ticks.
func BenchmarkVCDIFFApply(b *testing.B) { benchApply(b, VCDIFFEncode, VCDIFFApply) }

// BenchmarkEncodeStreams: encode throughput on the other seeded streams, frames of ~125 bytes
// (minimal ticks) to ~2 KB (order timelines with their fill lists).
func BenchmarkEncodeStreams(b *testing.B) {
	streams := append(deltatest.Corpus(1, 1000), deltatest.Stream{Name: "price-ticks-minimal", Frames: deltatest.PriceTicksMinimal(1, 1000)})
	for _, s := range streams {
		for _, c := range codecs {
			b.Run(s.Name+"/"+c.name, func(b *testing.B) { benchEncode(b, s.Frames, c.encode) })
		}
	}
}

// BenchmarkFossilEncodeParallel shows the pooled tables scale across cores.
func BenchmarkFossilEncodeParallel(b *testing.B) {
	frames := benchFrames()
	b.SetBytes(int64(len(frames[1])))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := 1 + i%(len(frames)-1)
			FossilEncode(frames[k-1], frames[k])
			i++
		}
	})
}

// streamBytes totals a price-tick stream of n frames: full frames, codec deltas of every
// consecutive pair, and what the wire would carry under the Sockudo rules (first two frames
// and every 11th full with a `__delta_seq` marker; the rest `sockudo:delta` frames with the
// base64 delta, whichever is smaller).
type streamBytes struct {
	full, fossil, vcdiff, fossilWire, vcdiffWire int
	// deflate and deflateCtx are the full frames under permessage-deflate without and with
	// context takeover (what clients that cannot use V2 deltas get).
	deflate, deflateCtx int
}

// countWriter counts bytes written.
type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// deflateSizes returns the permessage-deflate payload sizes of frames: each message
// compressed alone, and with a shared 32 KB window (RFC 7692; the trailing 4 bytes of each
// sync flush are not sent).
func deflateSizes(frames [][]byte) (alone, shared int) {
	cw, one := &countWriter{}, &countWriter{}
	ctx, _ := flate.NewWriter(cw, flate.DefaultCompression)
	w, _ := flate.NewWriter(one, flate.DefaultCompression)
	for _, f := range frames {
		one.n = 0
		w.Reset(one) // a fresh compressor per message, without reallocating its window
		_, _ = w.Write(f)
		_ = w.Flush()
		alone += one.n - 4
		before := cw.n
		_, _ = ctx.Write(f)
		_ = ctx.Flush()
		shared += cw.n - before - 4
	}
	return alone, shared
}

// measureStream totals frames; withDeflate also measures permessage-deflate (slow under the
// race detector, which instruments compress/flate byte by byte).
func measureStream(frames [][]byte, withDeflate bool) (s streamBytes) {
	wire := func(alg string, d []byte, seq int) int {
		return len(`{"event":"sockudo:delta","channel":"ticker:BTC","data":{"event":"price","delta":"`) +
			base64.StdEncoding.EncodedLen(len(d)) + len(`","seq":`) + len(strconv.Itoa(seq)) +
			len(`,"algorithm":"`+alg+`","base_index":`) + len(strconv.Itoa(seq-1)) + len(`}}`)
	}
	fullFrame := func(f []byte, seq int) int { return len(f) + len(`,"__delta_seq":`) + len(strconv.Itoa(seq)) }
	consecutive := map[string]int{}
	for i, f := range frames {
		s.full += len(f)
		if i == 0 {
			s.fossil += len(f)
			s.vcdiff += len(f)
			s.fossilWire += fullFrame(f, i)
			s.vcdiffWire += fullFrame(f, i)
			continue
		}
		fd := FossilEncode(frames[i-1], f)
		vd := VCDIFFEncode(frames[i-1], f)
		s.fossil += len(fd)
		s.vcdiff += len(vd)
		for _, x := range []struct {
			alg string
			d   []byte
			sum *int
		}{{Fossil, fd, &s.fossilWire}, {VCDIFF, vd, &s.vcdiffWire}} {
			w := wire(x.alg, x.d, i)
			if i < 2 || consecutive[x.alg] >= 10 || w >= fullFrame(f, i) {
				*x.sum += fullFrame(f, i)
				consecutive[x.alg] = 0
			} else {
				*x.sum += w
				consecutive[x.alg]++
			}
		}
	}
	if withDeflate {
		s.deflate, s.deflateCtx = deflateSizes(frames)
	}
	return s
}

func pct(part, whole int) float64 { return 100 * (1 - float64(part)/float64(whole)) }

// TestPriceTickStreamBytes reports the bytes of a 10,000-message price-tick stream sent as
// full frames, as Fossil deltas and as VCDIFF deltas, raw and as they would travel on the
// wire, and fails if the codecs save clearly less than they do today (74.8% and 63.9% for
// Fossil; the corpus and encoders are deterministic).
//
// The 80% saving once aimed at is out of reach for Fossil on these streams whatever the
// matcher: each V2 tick carries a fresh 36-byte message_id, and the ~10 changed numbers per
// tick each cost a copy command, an insert header and their digits, plus header and
// checksum: ~130 bytes of a ~515-byte frame (our deltas are already 22% smaller than Fossil
// SCM's own encoder's, see sdkcompat TestDeltaInterop). VCDIFF's binary commands get 78.8%.
func TestPriceTickStreamBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, c := range []struct {
		name   string
		frames [][]byte
		min    float64 // minimum raw Fossil saving, %
	}{
		{"price-ticks (V2 frames with message_id)", deltatest.PriceTicks(1, 10000), 72},
		{"price-ticks-minimal (no ids)", deltatest.PriceTicksMinimal(1, 10000), 61},
	} {
		s := measureStream(c.frames, !raceEnabled)
		t.Logf("%s, 10000 messages:", c.name)
		t.Logf("  full frames        %9d bytes", s.full)
		t.Logf("  fossil deltas      %9d bytes  %5.1f%% saved", s.fossil, pct(s.fossil, s.full))
		t.Logf("  vcdiff deltas      %9d bytes  %5.1f%% saved", s.vcdiff, pct(s.vcdiff, s.full))
		t.Logf("  fossil on the wire %9d bytes  %5.1f%% saved (sockudo:delta envelope, base64, full every 11th)", s.fossilWire, pct(s.fossilWire, s.full))
		t.Logf("  vcdiff on the wire %9d bytes  %5.1f%% saved", s.vcdiffWire, pct(s.vcdiffWire, s.full))
		if !raceEnabled {
			t.Logf("  permessage-deflate %9d bytes  %5.1f%% saved (no context takeover, the default)", s.deflate, pct(s.deflate, s.full))
			t.Logf("  permessage-deflate %9d bytes  %5.1f%% saved (context takeover)", s.deflateCtx, pct(s.deflateCtx, s.full))
		}
		if p := pct(s.fossil, s.full); p < c.min {
			t.Errorf("%s: fossil saves %.1f%%, want ≥ %.0f%%", c.name, p, c.min)
		}
	}
}

// BenchmarkPriceTickStream reports the same totals as metrics (bytes per 10,000 messages).
func BenchmarkPriceTickStream(b *testing.B) {
	frames := deltatest.PriceTicks(1, 10000)
	var s streamBytes
	for b.Loop() {
		s = measureStream(frames, true)
	}
	b.ReportMetric(float64(s.full), "full-bytes")
	b.ReportMetric(float64(s.fossil), "fossil-bytes")
	b.ReportMetric(float64(s.vcdiff), "vcdiff-bytes")
	b.ReportMetric(pct(s.fossil, s.full), "fossil-%saved")
	b.ReportMetric(pct(s.vcdiff, s.full), "vcdiff-%saved")
	b.ReportMetric(pct(s.fossilWire, s.full), "fossil-wire-%saved")
	b.ReportMetric(pct(s.deflate, s.full), "deflate-%saved")
	b.ReportMetric(pct(s.deflateCtx, s.full), "deflate-ctx-%saved")
}
