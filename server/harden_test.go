package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/bytebudget"
	"github.com/pushwire/pushwire/server/wsframe"
)

// liveHeap is the heap the last full collection found live (runtime/metrics), after one.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// dialBare opens a WebSocket with a hand-written request and reads the 101 answer byte by
// byte, so the client side holds no buffer (the tests measure the server's heap).
func dialBare(t *testing.T, url string) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	req := "GET /app/app-key HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var got []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(got, []byte("\r\n\r\n")) {
		if _, err := nc.Read(one); err != nil {
			t.Fatalf("handshake: %v after %q", err, got)
		}
		got = append(got, one[0])
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
		t.Fatalf("handshake answer %q", got)
	}
	return nc
}

// readFrameBare reads one server frame from nc without a buffer of its own.
func readFrameBare(t *testing.T, nc net.Conn) (wsframe.Opcode, []byte) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	hdr := make([]byte, 2, wsframe.MaxHeaderLen)
	if _, err := readFull(nc, hdr); err != nil {
		t.Fatal(err)
	}
	ext := map[byte]int{126: 2, 127: 8}[hdr[1]&0x7f]
	hdr = hdr[:2+ext]
	if _, err := readFull(nc, hdr[2:]); err != nil {
		t.Fatal(err)
	}
	h, _, err := wsframe.ParseHeader(hdr, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h.Length)
	if _, err := readFull(nc, p); err != nil {
		t.Fatal(err)
	}
	return h.Op, p
}

func readFull(nc net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := nc.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// waitFor polls cond (an observable state of the server) until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// TestPinnedFrameHeadersHoldLittle (issue 16 finding 2): 500 sockets each sending the
// header of a 1 MiB frame and 10 bytes of it make the server hold what arrived, not what was
// declared: the heap grows by less than 24 MB (it grew by 500 MiB when the declared length
// was allocated), and the bytes held are reserved in the inbound budget.
func TestPinnedFrameHeadersHoldLittle(t *testing.T) {
	const conns = 500
	budget := bytebudget.New(64 << 20)
	_, _, url := newPollServer(t, Options{InboundBudget: budget, MaxMessageBytes: 2 << 20})
	pinned := append(clientHeader(true, wsframe.OpText, 1<<20), make([]byte, 10)...)
	socks := make([]net.Conn, 0, conns)
	before := liveHeap()
	for range conns {
		nc := dialBare(t, url)
		if op, _ := readFrameBare(t, nc); op != wsframe.OpText { // connection_established
			t.Fatalf("first frame op %d", op)
		}
		if _, err := nc.Write(pinned); err != nil {
			t.Fatal(err)
		}
		socks = append(socks, nc)
	}
	waitFor(t, "every partial frame to be reserved", func() bool { return budget.Used() >= conns*10 })
	grew := liveHeap() - before
	t.Logf("%d sockets with a pinned 1 MiB frame: heap +%.1f MB, %d bytes reserved", conns, float64(grew)/(1<<20), budget.Used())
	if grew > 24<<20 {
		t.Fatalf("heap grew by %.1f MB for %d pinned frames", float64(grew)/(1<<20), conns)
	}
	for _, nc := range socks {
		_ = nc.Close()
	}
	waitFor(t, "the reservations to be released", func() bool { return budget.Used() == 0 })
}

// TestInboundBudgetRefuses1013: a message that would take the server past its inbound
// budget closes its connection with 1013 (Try Again Later); the others are served.
func TestInboundBudgetRefuses1013(t *testing.T) {
	budget := bytebudget.New(64 << 10)
	_, fm, url := newPollServer(t, Options{InboundBudget: budget, MaxMessageBytes: 1 << 20})
	other := dialRaw(t, url, "/app/app-key", nil)
	other.expectPrefix(`{"event":"pusher:connection_established"`)
	c := dialRaw(t, url, "/app/app-key", nil)
	c.expectPrefix(`{"event":"pusher:connection_established"`)
	big := clientFrame(true, wsframe.OpText, make([]byte, 512<<10))
	go func() { _, _ = c.nc.Write(big[:200<<10]) }() // the server stops reading it at 64 KiB
	// The server closes without waiting for our close frame: it stopped reading mid-frame.
	if op, p, err := c.frame(); err != nil || op != wsframe.OpClose {
		t.Fatalf("got op %d %q (%v), want a close frame", op, p, err)
	} else if code, _, _ := wsframe.ParseClose(p); code != wsframe.CodeTryAgainLater {
		t.Fatalf("close code %d (%q), want %d", code, p, wsframe.CodeTryAgainLater)
	}
	fm.waitCount(t, "disconnected app-id 1013 inbound_budget", 1)
	waitFor(t, "the reservation to be released", func() bool { return budget.Used() == 0 })
	other.write(text(`{"event":"pusher:ping"}`))
	other.expect(wsframe.OpText, `{"event":"pusher:pong"}`)
}

// TestFragmentBuffersShrink (issue 16 finding 3): 100 sockets that each sent one 1 MiB
// message in four fragments hold little afterwards, on both transports: the heap is less
// than 16 MB above what it was (it kept 1 MiB per socket).
func TestFragmentBuffersShrink(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		const conns = 100
		_, _, url := newTestServer(t, Options{MaxMessageBytes: 1 << 20})
		pad := strings.Repeat("p", 1<<20-64)
		msg := []byte(`{"event":"pusher:ping","data":"` + pad + `"}`)
		q := len(msg) / 4
		var frames []byte
		frames = append(frames, clientFrame(false, wsframe.OpText, msg[:q])...)
		frames = append(frames, clientFrame(false, wsframe.OpContinuation, msg[q:2*q])...)
		frames = append(frames, clientFrame(false, wsframe.OpContinuation, msg[2*q:3*q])...)
		frames = append(frames, clientFrame(true, wsframe.OpContinuation, msg[3*q:])...)
		pad, msg = "", nil
		socks := make([]net.Conn, 0, conns)
		for range conns {
			nc := dialBare(t, url)
			readFrameBare(t, nc) // connection_established
			socks = append(socks, nc)
		}
		before := liveHeap()
		for _, nc := range socks {
			if _, err := nc.Write(frames); err != nil {
				t.Fatal(err)
			}
			if op, p := readFrameBare(t, nc); op != wsframe.OpText || string(p) != `{"event":"pusher:pong"}` {
				t.Fatalf("answer op %d %.80q", op, p)
			}
		}
		grew := liveHeap() - before
		t.Logf("%d sockets after a fragmented 1 MiB message each: heap %+.1f MB", conns, float64(grew)/(1<<20))
		if grew > 16<<20 {
			t.Fatalf("heap grew by %.1f MB", float64(grew)/(1<<20))
		}
	})
}

// TestPollDeflateLargeFrames (issue 16 finding 8): compressed client messages whose frames
// are larger than the read buffer (16 KiB) are served on the epoll transport, up to the
// message limit; they used to drop the connection (1006).
func TestPollDeflateLargeFrames(t *testing.T) {
	_, _, url := newPollServer(t, Options{Compression: websocket.CompressionNoContextTakeover, MaxMessageBytes: 256 << 10})
	ctx := t.Context()
	ws, _, err := websocket.Dial(ctx, url+"/app/app-key", &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{30 << 10, 100 << 10, 256<<10 - 100} {
		raw := make([]byte, n*3/4)
		_, _ = rand.Read(raw) // incompressible: the deflated frame is about n bytes
		msg := `{"event":"pusher:ping","data":"` + base64.StdEncoding.EncodeToString(raw)[:n-40] + `"}`
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, b, err := ws.Read(ctx); err != nil || string(b) != `{"event":"pusher:pong"}` {
			t.Fatalf("%d bytes deflated: got %q (%v)", len(msg), b, err)
		}
	}
}

// TestRFC6455Conformance (issue 16 finding 9) sends frames breaking RFC 6455's MUSTs on a raw
// socket to each transport: each fails the connection with its close code (1002 protocol
// error, 1007 invalid data, 1009 too big) and no Pusher error frame; the well-formed edge
// cases are served.
func TestRFC6455Conformance(t *testing.T) {
	const ping = `{"event":"pusher:ping"}`
	withBits := func(f []byte, b0 byte) []byte { f[0] |= b0; return f }
	withOp := func(f []byte, op byte) []byte { f[0] = f[0]&0xf0 | op; return f }
	// A masked header with a chosen length field (non-minimal encodings).
	lenField := func(b0 byte, field ...byte) []byte {
		b := append([]byte{b0}, field...)
		b[1] |= 0x80
		return append(b, 0, 0, 0, 0) // the key; payload bytes would follow
	}
	fails := []struct {
		name string
		send []byte
		code uint16
	}{
		{"unmasked frame", wsframe.AppendFrame(nil, wsframe.OpText, []byte(ping)), 1002},
		{"RSV1 without an extension", withBits(text(ping), 0x40), 1002},
		{"RSV2", withBits(text(ping), 0x20), 1002},
		{"RSV3", withBits(text(ping), 0x10), 1002},
		{"reserved data opcode 3", withOp(text(ping), 3), 1002},
		{"reserved control opcode 0xB", withOp(clientFrame(true, wsframe.OpPing, nil), 0xb), 1002},
		{"16-bit length under 126", append(lenField(0x81, 126, 0, 5), "hello"...), 1002},
		{"64-bit length under 65536", append(lenField(0x81, 127, 0, 0, 0, 0, 0, 0, 0, 5), "hello"...), 1002},
		{"64-bit length with the top bit", lenField(0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 5), 1002},
		{"fragmented ping", clientFrame(false, wsframe.OpPing, []byte("p")), 1002},
		{"ping over 125 bytes", append(lenField(0x89, 126, 0, 126), make([]byte, 126)...), 1002},
		{"continuation without a message", clientFrame(true, wsframe.OpContinuation, []byte("x")), 1002},
		{"new message inside a fragmented one", append(clientFrame(false, wsframe.OpText, []byte("{")), text(ping)...), 1002},
		{"invalid UTF-8", text("\xff\xfe"), 1007},
		{"invalid UTF-8 across fragments", append(clientFrame(false, wsframe.OpText, []byte("\xe2\x82")), clientFrame(true, wsframe.OpContinuation, []byte("\x28"))...), 1007},
		{"over the limit", clientFrame(true, wsframe.OpText, make([]byte, 1025)), 1009},
		// Refused from the header: the payload never comes, the close does.
		{"header of a 1 GiB frame, no payload", clientHeader(true, wsframe.OpText, 1<<30), 1009},
		{"header of a 1 MiB frame, no payload", clientHeader(true, wsframe.OpBinary, 1<<20), 1009},
		{"a fragment taking the message over the limit", append(clientFrame(false, wsframe.OpText, make([]byte, 600)), clientHeader(true, wsframe.OpContinuation, 600)...), 1009},
		{"close payload of 1 byte", clientFrame(true, wsframe.OpClose, []byte{3}), 1002},
		{"close code 1005 on the wire", clientFrame(true, wsframe.OpClose, []byte{0x03, 0xed}), 1002},
		{"close code 999", clientFrame(true, wsframe.OpClose, []byte{0x03, 0xe7}), 1002},
		{"close reason not UTF-8", clientFrame(true, wsframe.OpClose, []byte{0x03, 0xe8, 0xff}), 1007},
	}
	forTransports(t, func(t *testing.T) {
		for _, tc := range fails {
			t.Run(tc.name, func(t *testing.T) {
				fm := newFakeMetrics()
				_, _, url := newTestServer(t, Options{MaxMessageBytes: 1024, Metrics: fm})
				c := dialRaw(t, url, "/app/app-key", nil)
				c.expectPrefix(`{"event":"pusher:connection_established"`)
				go func() { _, _ = c.nc.Write(tc.send) }() // the server may stop reading midway
				op, p, err := c.frame()
				if err != nil || op != wsframe.OpClose {
					t.Fatalf("got op %d %.80q (%v), want a close frame", op, p, err)
				}
				if code, _, _ := wsframe.ParseClose(p); code != tc.code {
					t.Fatalf("close code %d (%q), want %d", code, p, tc.code)
				}
			})
		}
		t.Run("served", func(t *testing.T) {
			_, _, url := newTestServer(t, Options{MaxMessageBytes: 1024})
			c := dialRaw(t, url, "/app/app-key", nil)
			c.expectPrefix(`{"event":"pusher:connection_established"`)
			c.write(clientFrame(true, wsframe.OpPing, []byte("hi")))
			c.expect(wsframe.OpPong, "hi")
			// A character split across fragments, a ping between them, a 16-bit length.
			msg := `{"event":"pusher:ping","data":"€` + strings.Repeat("x", 200) + `"}`
			cut := strings.Index(msg, "€") + 1
			c.write(clientFrame(false, wsframe.OpText, []byte(msg[:cut])))
			c.write(clientFrame(true, wsframe.OpPing, []byte("mid")))
			c.write(clientFrame(true, wsframe.OpContinuation, []byte(msg[cut:])))
			c.expect(wsframe.OpPong, "mid")
			c.expect(wsframe.OpText, `{"event":"pusher:pong"}`)
			c.write(clientFrame(true, wsframe.OpClose, []byte{0x03, 0xe8}))
			op, p, err := c.frame()
			if err != nil || op != wsframe.OpClose {
				t.Fatalf("got op %d %q (%v), want the close echoed", op, p, err)
			}
		})
	})
}
