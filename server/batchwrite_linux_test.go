//go:build linux

package server

import (
	"testing"

	"github.com/pushwire/pushwire/server/wsframe"
	"golang.org/x/sys/unix"
)

// BenchmarkFrameWrites compares one write(2) per frame (what the coder/websocket
// transport does today) with encoding all queued frames into one buffer and
// issuing a single write, for a queue of 16 frames of 200 bytes. The reader
// side drains in a goroutine so writes do not block.
func BenchmarkFrameWrites(b *testing.B) {
	payload := make([]byte, 200)
	for i := range payload {
		payload[i] = 'x'
	}
	const queued = 16
	run := func(b *testing.B, batch bool) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer unix.Close(fds[0])
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64<<10)
			for {
				if n, err := unix.Read(fds[1], buf); n <= 0 || err != nil {
					return
				}
			}
		}()
		var out []byte
		b.SetBytes(int64(queued * len(payload)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if batch {
				out = out[:0]
				for j := 0; j < queued; j++ {
					out = wsframe.AppendFrame(out, wsframe.OpText, payload)
				}
				if _, err := unix.Write(fds[0], out); err != nil {
					b.Fatal(err)
				}
				continue
			}
			for j := 0; j < queued; j++ {
				out = wsframe.AppendFrame(out[:0], wsframe.OpText, payload)
				if _, err := unix.Write(fds[0], out); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		unix.Shutdown(fds[0], unix.SHUT_WR)
		<-done
		unix.Close(fds[1])
	}
	b.Run("per-frame", func(b *testing.B) { run(b, false) })
	b.Run("batched", func(b *testing.B) { run(b, true) })
}
