// Package delta implements the two delta codecs of the Sockudo/Pusher V2 delta-compression
// protocol (spec ws-protocol.md §4.5), encoders and decoders, with no dependency beyond the
// standard library:
//
//   - Fossil: the delta format of Fossil SCM's delta.c (wire name "fossil"): a header holding
//     the target length in Fossil's base-64 integer alphabet and "\n", then "N@M," (copy N
//     bytes from base offset M) and "N:<bytes>" (insert N literal bytes) commands, and a final
//     "C;" carrying the 32-bit checksum of the target. Clients decode it with npm fossil-delta
//     applyDelta(base, delta).
//   - VCDIFF: RFC 3284 (wire name "xdelta3") with the base as source segment, the default code
//     table, no VCD_ADLER32 checksum and no secondary compression, the subset accepted by npm
//     @ably/vcdiff-decoder decode(delta, base), open-vcdiff and `xdelta3 -d`.
//
// Both encoders share one matcher: every 4-byte window of the base is indexed in a hash table
// with collision chains (tables come from a sync.Pool, so encoding a small frame allocates
// only the returned delta), and the target is scanned greedily for the longest match, trying
// first the base position that continues the previous copy, which is where consecutive JSON
// frames usually line up. Decoders validate every length and offset, never panic on
// arbitrary input and refuse to produce more than MaxOutput bytes. Every function is safe for
// concurrent use.
//
// The seeded frame corpora used by the tests, the benchmarks and the sdkcompat interop test
// live in package deltatest.
package delta

import "errors"

// Wire names of the algorithms, as carried in `sockudo:delta` frames and subscription options.
const (
	// Fossil is the wire name of the Fossil SCM delta format.
	Fossil = "fossil"
	// VCDIFF is the wire name of the RFC 3284 VCDIFF format (Sockudo advertises it as "xdelta3").
	VCDIFF = "xdelta3"
)

// MaxOutput is the largest target a decoder will produce (64 MiB); a delta declaring more is
// rejected before any copying.
const MaxOutput = 64 << 20

// ErrUnknownAlgorithm is returned by Encode and Apply for an algorithm name other than Fossil
// and VCDIFF.
var ErrUnknownAlgorithm = errors.New("delta: unknown algorithm")

// Encode returns a delta that turns base into target in the given algorithm (Fossil or
// VCDIFF; "vcdiff" is accepted as an alias of VCDIFF).
func Encode(algorithm string, base, target []byte) ([]byte, error) {
	switch algorithm {
	case Fossil:
		return FossilEncode(base, target), nil
	case VCDIFF, "vcdiff":
		return VCDIFFEncode(base, target), nil
	}
	return nil, ErrUnknownAlgorithm
}

// Apply reconstructs the target from base and a delta in the given algorithm (Fossil or
// VCDIFF; "vcdiff" is accepted as an alias of VCDIFF).
func Apply(algorithm string, base, delta []byte) ([]byte, error) {
	switch algorithm {
	case Fossil:
		return FossilApply(base, delta)
	case VCDIFF, "vcdiff":
		return VCDIFFApply(base, delta)
	}
	return nil, ErrUnknownAlgorithm
}
