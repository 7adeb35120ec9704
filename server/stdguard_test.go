package server

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/pushwire/pushwire/server/wsframe"
)

// FuzzFrameGuard feeds arbitrary bytes through a frameGuard one byte per read and in one
// read: it never panics, delivers a prefix of its input (nearly the same either way), refuses
// the same way either way, and delivers everything when it does not refuse.
func FuzzFrameGuard(f *testing.F) {
	f.Add(append(text(`{"event":"pusher:ping"}`), clientFrame(true, wsframe.OpClose, []byte{3, 0xe8, 'o', 'k'})...))
	f.Add(wsframe.AppendFrame(nil, wsframe.OpText, []byte("x")))
	f.Add([]byte{0x81, 0xfe, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'})
	f.Add(clientFrame(true, wsframe.OpClose, []byte{3, 0xe8, 0xff}))
	f.Fuzz(func(t *testing.T, b []byte) {
		read := func(r io.Reader) ([]byte, *guardError) {
			g := &frameGuard{r: r}
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
