package deltatest

import "testing"

// Reader rebuilds one delta subscription's frames as a test reads them: a Rebuilder that
// fails the test on a frame it cannot rebuild and remembers whether the frame read last was
// a delta, so the checks of ExpectRebuilt and RebuiltAs need no bookkeeping at the call site.
type Reader struct {
	*Rebuilder
	t testing.TB
	// Last is true when the frame read last was a delta.
	Last bool
}

// NewReader returns a Reader that rebuilds with apply (delta.Apply in the server's tests).
func NewReader(t testing.TB, apply func(algorithm string, base, delta []byte) ([]byte, error)) *Reader {
	return &Reader{Rebuilder: NewRebuilder(apply), t: t}
}

// Read rebuilds frame and returns the text it surfaces; a frame that cannot be rebuilt fails
// the test.
func (r *Reader) Read(frame string) string {
	r.t.Helper()
	out, isDelta, err := r.Rebuild([]byte(frame))
	if err != nil {
		r.t.Fatal(err)
	}
	r.Last = isDelta
	return string(out)
}

// Expect is the text the frame read last must rebuild to, when a plain subscriber received
// plain for the same message (ExpectRebuilt).
func (r *Reader) Expect(plain string) string { return ExpectRebuilt(plain, r.Last) }

// Same reports whether rebuilt, the text of the frame read last, is right for a message a
// plain subscriber received as plain (RebuiltAs).
func (r *Reader) Same(rebuilt, plain string) bool {
	r.t.Helper()
	return RebuiltAs(r.t, rebuilt, r.Last, plain)
}

// Announce tells r the algorithm the server announced on subscribe
// (sockudo:delta_compression_enabled), as a client learns it.
func (r *Reader) Announce(alg string) {
	r.t.Helper()
	r.Read(`{"event":"sockudo:delta_compression_enabled","data":{"enabled":true,"algorithm":"` + alg + `"}}`)
}
