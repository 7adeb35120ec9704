package server

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/pushwire/pushwire/server/wsframe"
)

// FuzzFrameGuard feeds arbitrary bytes through a frameGuard one byte per read and in one
// read, with or without a message limit: it never panics, delivers a prefix of its input (nearly the same either way), refuses
// the same way either way, and delivers everything when it does not refuse.
func FuzzFrameGuard(f *testing.F) {
	f.Add(append(text(`{"event":"pusher:ping"}`), clientFrame(true, wsframe.OpClose, []byte{3, 0xe8, 'o', 'k'})...))
	f.Add(wsframe.AppendFrame(nil, wsframe.OpText, []byte("x")))
	f.Add([]byte{0x81, 0xfe, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'})
	f.Add(clientFrame(true, wsframe.OpClose, []byte{3, 0xe8, 0xff}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var limit int64 // the message limit, when the input's first byte is odd
		if len(b) > 0 && b[0]&1 == 1 {
			limit = 64
		}
		read := func(r io.Reader) ([]byte, *guardError) {
			g := &frameGuard{r: r, limit: limit}
			out, _ := io.ReadAll(g)
			return out, g.Err()
		}
		whole, werr := read(bytes.NewReader(b))
		bytewise, berr := read(iotest.OneByteReader(bytes.NewReader(b)))
		// Read by read, the start of a bad header (or a close frame but its last byte) may
		// have gone out before the guard could tell.
		if !bytes.HasPrefix(b, whole) || !bytes.HasPrefix(b, bytewise) ||
			abs(len(whole)-len(bytewise)) > wsframe.MaxHeaderLen+wsframe.MaxControlPayload {
			t.Fatalf("delivered %d / %d bytes of %d", len(whole), len(bytewise), len(b))
		}
		if (werr == nil) != (berr == nil) || (werr != nil && werr.code != berr.code) {
			t.Fatalf("refusals differ: %v / %v", werr, berr)
		}
		if werr == nil && len(whole) != len(b) {
			t.Fatalf("delivered %d of %d bytes without refusing", len(whole), len(b))
		}
	})
}

func abs(n int) int { return max(n, -n) }

// TestFrameGuardLimit: with a limit, the guard refuses with 1009 at the header of a data
// frame taking its message over it (fragments add up; control frames between them do not
// count; a deflated message may take MessageLimit), having delivered the frames before it.
func TestFrameGuardLimit(t *testing.T) {
	ping := clientFrame(true, wsframe.OpPing, []byte("p"))
	deflated := clientHeader(true, wsframe.OpText, 100)
	deflated[0] |= 0x40
	for _, tc := range []struct {
		name      string
		in        []byte
		delivered int // bytes before the refusal; -1: everything, no refusal
	}{
		{"at the limit", clientFrame(true, wsframe.OpText, make([]byte, 64)), -1},
		{"over the limit, header only", clientHeader(true, wsframe.OpText, 65), 0},
		{"after a good frame", append(text("hi"), clientHeader(true, wsframe.OpBinary, 1<<40)...), len(text("hi"))},
		{"fragments adding up", append(append(clientFrame(false, wsframe.OpText, make([]byte, 40)), ping...), clientHeader(true, wsframe.OpContinuation, 25)...),
			len(clientFrame(false, wsframe.OpText, make([]byte, 40))) + len(ping)},
		{"fragments within", append(append(clientFrame(false, wsframe.OpText, make([]byte, 40)), ping...), clientFrame(true, wsframe.OpContinuation, make([]byte, 24))...), -1},
		{"deflated within MessageLimit", append(deflated, make([]byte, 100)...), -1},
	} {
		g := &frameGuard{r: bytes.NewReader(tc.in), limit: 64}
		out, _ := io.ReadAll(g)
		switch err := g.Err(); {
		case tc.delivered < 0 && (err != nil || len(out) != len(tc.in)):
			t.Errorf("%s: refused (%v) after %d of %d bytes", tc.name, err, len(out), len(tc.in))
		case tc.delivered >= 0 && (err == nil || err.code != 1009 || len(out) != tc.delivered):
			t.Errorf("%s: %v after %d bytes, want 1009 after %d", tc.name, err, len(out), tc.delivered)
		}
	}
}
