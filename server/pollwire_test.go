package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/klauspost/compress/flate"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/server/wsframe"
)

// rawClient speaks RFC 6455 by hand over TCP, so tests can send what no well-behaved
// client library would: frames split anywhere, frames behind the request, broken frames.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// dialRaw opens a WebSocket on path with a hand-written request, followed in the same write
// by extra (already encoded client frames), and checks the 101 answer.
func dialRaw(t *testing.T, url, path string, extra []byte, header ...string) *rawClient {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n" + strings.Join(header, "") + "\r\n"
	if _, err := nc.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsframe.AcceptKey(testKey) {
		t.Fatalf("handshake answer %s %v", resp.Status, resp.Header)
	}
	return c
}

// clientFrame encodes a masked client frame.
func clientFrame(fin bool, op wsframe.Opcode, payload []byte) []byte {
	b := wsframe.AppendHeader(nil, fin, op, len(payload))
	b[1] |= 0x80
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	p := append([]byte(nil), payload...)
	wsframe.Mask(key, 0, p)
	return append(b, p...)
}

func text(s string) []byte { return clientFrame(true, wsframe.OpText, []byte(s)) }

// clientHeader encodes only the masked header of a client frame declaring n payload bytes.
func clientHeader(fin bool, op wsframe.Opcode, n int) []byte {
	b := wsframe.AppendHeader(nil, fin, op, n)
	b[1] |= 0x80
	return append(b, 1, 2, 3, 4)
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// frame reads one server frame.
func (c *rawClient) frame() (wsframe.Opcode, []byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr, err := c.br.Peek(2)
	if err != nil {
		return 0, nil, err
	}
	n := 2
	switch hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	hdr, err = c.br.Peek(n)
	if err != nil {
		return 0, nil, err
	}
	h, hn, err := wsframe.ParseHeader(hdr, 0, false)
	if err != nil || hn == 0 || h.Masked || !h.Fin {
		return 0, nil, fmt.Errorf("bad server frame header % x: %v", hdr, err)
	}
	_, _ = c.br.Discard(hn)
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return 0, nil, err
	}
	return h.Op, p, nil
}

// expect reads the next frame and compares it with op and payload.
func (c *rawClient) expect(op wsframe.Opcode, want string) {
	c.t.Helper()
	got, p, err := c.frame()
	if err != nil || got != op || string(p) != want {
		c.t.Fatalf("got frame op %d %q (%v), want op %d %q", got, p, err, op, want)
	}
}

// expectPrefix reads the next text frame and checks its start.
func (c *rawClient) expectPrefix(prefix string) {
	c.t.Helper()
	op, p, err := c.frame()
	if err != nil || op != wsframe.OpText || !strings.HasPrefix(string(p), prefix) {
		c.t.Fatalf("got frame op %d %.120q (%v), want text %q…", op, p, err, prefix)
	}
}

// expectClose reads frames up to a close frame with code, then expects the server to close
// the TCP connection.
func (c *rawClient) expectClose(code uint16) {
	c.t.Helper()
	for {
		op, p, err := c.frame()
		if err != nil {
			c.t.Fatalf("no close frame: %v", err)
		}
		if op != wsframe.OpClose {
			continue
		}
		if got, _, _ := wsframe.ParseClose(p); got != code {
			c.t.Fatalf("close code %d (%q), want %d", got, p, code)
		}
		c.write(clientFrame(true, wsframe.OpClose, binary.BigEndian.AppendUint16(nil, code)))
		if _, err := c.br.ReadByte(); err == nil {
			c.t.Fatal("data after the close frame")
		}
		return
	}
}

func newPollServer(t *testing.T, opts Options) (*Server, *fakeMetrics, string) {
	t.Helper()
	if !netpollAvailable() {
		t.Skip("no netpoller here")
	}
	fm := newFakeMetrics()
	opts.Metrics, opts.Transport = fm, TransportEpoll
	srv, _, url := newTestServer(t, opts)
	return srv, fm, url
}

// TestPollFramesBehindHandshake: frames sent in the same write as the upgrade request are
// served (they sit in net/http's buffer when the socket is taken over).
func TestPollFramesBehindHandshake(t *testing.T) {
	_, _, url := newPollServer(t, Options{})
	c := dialRaw(t, url, "/app/app-key", append(text(`{"event":"pusher:ping"}`), text(`{"event":"pusher:subscribe","data":{"channel":"a"}}`)...))
	c.expectPrefix(`{"event":"pusher:connection_established"`)
	c.expect(wsframe.OpText, `{"event":"pusher:pong"}`)
	c.expect(wsframe.OpText, `{"event":"pusher_internal:subscription_succeeded","channel":"a","data":"{}"}`)
}

// TestPollSplitStream sends a stream of fragmented messages, pings and large messages cut
// into random pieces, and checks every answer in order: the read side keeps partial frames
// across readiness events and grows its buffer for a frame over the pooled size.
func TestPollSplitStream(t *testing.T) {
	_, _, url := newPollServer(t, Options{})
	c := dialRaw(t, url, "/app/app-key", nil)
	c.expectPrefix(`{"event":"pusher:connection_established"`)
	var stream []byte
	var want []string
	for i := 0; i < 20; i++ {
		ping := fmt.Sprintf(`{"event":"pusher:ping","data":{"i":%d,"pad":"%s"}}`, i, strings.Repeat("p", i*2000))
		switch i % 3 {
		case 0: // one frame
			stream = append(stream, text(ping)...)
		case 1: // three fragments with a control ping in between
			third := len(ping) / 3
			stream = append(stream, clientFrame(false, wsframe.OpText, []byte(ping[:third]))...)
			stream = append(stream, clientFrame(true, wsframe.OpPing, []byte(fmt.Sprint("c", i)))...)
			stream = append(stream, clientFrame(false, wsframe.OpContinuation, []byte(ping[third:2*third]))...)
			stream = append(stream, clientFrame(true, wsframe.OpContinuation, []byte(ping[2*third:]))...)
			want = append(want, fmt.Sprint("pong c", i))
		case 2: // a subscribe, to see the order kept
			stream = append(stream, text(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"c%d"}}`, i))...)
			want = append(want, fmt.Sprintf(`{"event":"pusher_internal:subscription_succeeded","channel":"c%d","data":"{}"}`, i))
			stream = append(stream, text(ping)...)
		}
		want = append(want, `{"event":"pusher:pong"}`)
	}
	rnd := mrand.New(mrand.NewPCG(1, 2))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := stream; len(b) > 0; {
			n := min(len(b), 1+rnd.IntN(9000))
			if _, err := c.nc.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
			if rnd.IntN(4) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	// Control frames may overtake queued messages (they are written first), so the two
	// kinds are checked as two sequences.
	var texts, pongs []string
	for _, w := range want {
		if strings.HasPrefix(w, "pong ") {
			pongs = append(pongs, w)
		} else {
			texts = append(texts, w)
		}
	}
	for len(texts)+len(pongs) > 0 {
		op, p, err := c.frame()
		if err != nil {
			t.Fatalf("%d answers missing: %v", len(texts)+len(pongs), err)
		}
		seq := &texts
		got := string(p)
		if op == wsframe.OpPong {
			seq, got = &pongs, "pong "+got
		}
		if len(*seq) == 0 || (*seq)[0] != got {
			t.Fatalf("got %.100q, want %.100q", got, *seq)
		}
		*seq = (*seq)[1:]
	}
	<-done
}

// TestPollProtocolErrors: a frame breaking RFC 6455 closes the connection with its code and
// no Pusher error frame (a message over the limit: 1009); a binary message only gets an
// error frame.
func TestPollProtocolErrors(t *testing.T) {
	unmasked := wsframe.AppendFrame(nil, wsframe.OpText, []byte(`{"event":"pusher:ping"}`))
	rsv := text(`{"event":"pusher:ping"}`)
	rsv[0] |= 0x40
	cases := []struct {
		name   string
		send   []byte
		code   uint16
		reason string
	}{
		{"unmasked frame", unmasked, 1002, "protocol_error"},
		{"reserved bit without an extension", rsv, 1002, "protocol_error"},
		{"invalid UTF-8", text("\xff\xfe"), 1007, "protocol_error"},
		{"continuation without a message", clientFrame(true, wsframe.OpContinuation, []byte("x")), 1002, "protocol_error"},
		{"over the limit", clientFrame(true, wsframe.OpText, make([]byte, 1025)), 1009, "message_too_big"},
		{"header over the limit", clientHeader(true, wsframe.OpText, 1<<20), 1009, "message_too_big"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, fm, url := newPollServer(t, Options{MaxMessageBytes: 1024})
			c := dialRaw(t, url, "/app/app-key", nil)
			c.expectPrefix(`{"event":"pusher:connection_established"`)
			c.write(tc.send)
			op, p, err := c.frame()
			if err != nil || op != wsframe.OpClose {
				t.Fatalf("got op %d %q (%v), want a close frame", op, p, err)
			}
			if code, _, _ := wsframe.ParseClose(p); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			fm.waitCount(t, fmt.Sprintf("disconnected app-id %d %s", tc.code, tc.reason), 1)
		})
	}
	t.Run("binary keeps the connection", func(t *testing.T) {
		_, _, url := newPollServer(t, Options{MaxMessageBytes: 1024})
		c := dialRaw(t, url, "/app/app-key", nil)
		c.expectPrefix(`{"event":"pusher:connection_established"`)
		c.write(clientFrame(true, wsframe.OpBinary, []byte("x")))
		c.expect(wsframe.OpText, `{"event":"pusher:error","data":{"code":4000,"message":"Binary frames are not supported: send JSON text frames"}}`)
		c.write(clientFrame(true, wsframe.OpPing, []byte("hi")))
		c.expect(wsframe.OpPong, "hi")
		c.write(text(`{"event":"pusher:ping"}`))
		c.expect(wsframe.OpText, `{"event":"pusher:pong"}`)
	})
}

// TestPollCloseHandshake: the client's close frame is answered with one, then the TCP
// connection is closed; the server's close (here 4200 on shutdown) waits for the client's.
func TestPollCloseHandshake(t *testing.T) {
	t.Run("client closes", func(t *testing.T) {
		_, fm, url := newPollServer(t, Options{})
		c := dialRaw(t, url, "/app/app-key", nil)
		c.expectPrefix(`{"event":"pusher:connection_established"`)
		c.write(clientFrame(true, wsframe.OpClose, binary.BigEndian.AppendUint16(nil, 4321)))
		op, _, err := c.frame()
		if err != nil || op != wsframe.OpClose {
			t.Fatalf("op %d (%v), want the close answer", op, err)
		}
		if _, err := c.br.ReadByte(); err == nil {
			t.Fatal("connection open after the close handshake")
		}
		fm.waitCount(t, "disconnected app-id 4321 client_closed", 1)
	})
	t.Run("server closes", func(t *testing.T) {
		srv, fm, url := newPollServer(t, Options{})
		c := dialRaw(t, url, "/app/app-key", nil)
		c.expectPrefix(`{"event":"pusher:connection_established"`)
		go func() { _ = srv.Shutdown(t.Context()) }()
		c.expect(wsframe.OpText, `{"event":"pusher:error","data":{"code":4200,"message":"Server is shutting down"}}`)
		c.expectClose(4200)
		fm.waitCount(t, "disconnected app-id 4200 shutdown", 1)
	})
	t.Run("socket dropped", func(t *testing.T) {
		_, fm, url := newPollServer(t, Options{})
		c := dialRaw(t, url, "/app/app-key", nil)
		c.expectPrefix(`{"event":"pusher:connection_established"`)
		_ = c.nc.Close()
		fm.waitCount(t, "disconnected app-id 1006 client_closed", 1)
	})
}

// TestPollV2NativePing: a silent V2 connection gets a WebSocket ping, and 4201 when it does
// not answer.
func TestPollV2NativePing(t *testing.T) {
	_, _, url := newPollServer(t, Options{ActivityTimeout: time.Second, PongTimeout: 100 * time.Millisecond})
	c := dialRaw(t, url, "/app/app-key?protocol=2", nil)
	c.expectPrefix(`{"event":"sockudo:connection_established"`)
	c.expect(wsframe.OpPing, "")
	c.expect(wsframe.OpText, `{"event":"sockudo:error","data":{"code":4201,"message":"Pong reply not received in time"}}`)
	c.expectClose(4201)
}

// TestPollIdleConnectionsHoldNoGoroutine: idle connections on the epoll transport hold no
// goroutine once their writers have lingered out (on std each holds its reader).
func TestPollIdleConnectionsHoldNoGoroutine(t *testing.T) {
	srv, _, url := newPollServer(t, Options{})
	before := runtime.NumGoroutine()
	const n = 200
	for i := 0; i < n; i++ {
		c := dialRaw(t, url, "/app/app-key", text(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"idle-%d"}}`, i)))
		c.expectPrefix(`{"event":"pusher:connection_established"`)
		c.expectPrefix(`{"event":"pusher_internal:subscription_succeeded"`)
	}
	if got := srv.Connections(); got != n {
		t.Fatalf("%d connections, want %d", got, n)
	}
	var extra int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if extra = runtime.NumGoroutine() - before; extra < n/10 {
			return
		}
	}
	t.Fatalf("%d idle connections hold %d goroutines", n, extra)
}

// TestTransportChoice: plain connections get the epoll transport, which also agrees
// permessage-deflate without context takeover; context takeover (a window per connection)
// and ws_transport std stay on coder/websocket.
func TestTransportChoice(t *testing.T) {
	if !netpollAvailable() {
		t.Skip("no netpoller here")
	}
	cases := []struct {
		name    string
		opts    Options
		header  string
		want    string
		deflate bool
	}{
		{"plain", Options{Compression: websocket.CompressionNoContextTakeover}, "", "*server.pollWire", false},
		{"deflate offered", Options{Compression: websocket.CompressionNoContextTakeover}, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", "*server.pollWire", true},
		{"deflate with a small window", Options{Compression: websocket.CompressionNoContextTakeover}, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n", "*server.pollWire", false},
		{"second offer taken", Options{Compression: websocket.CompressionNoContextTakeover}, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate\r\n", "*server.pollWire", true},
		{"deflate with context takeover", Options{Compression: websocket.CompressionContextTakeover}, "Sec-WebSocket-Extensions: permessage-deflate\r\n", "*server.stdWire", true},
		{"deflate offered, compression off", Options{}, "Sec-WebSocket-Extensions: permessage-deflate\r\n", "*server.pollWire", false},
		{"std asked for", Options{Transport: TransportStd}, "", "*server.stdWire", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, url := newTestServer(t, tc.opts)
			addr := strings.TrimPrefix(url, "ws://")
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			fmt.Fprintf(nc, "GET /app/app-key HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n", addr, testKey, tc.header)
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("answer %v %v", resp, err)
			}
			if got := resp.Header.Get("Sec-WebSocket-Extensions") != ""; got != tc.deflate {
				t.Errorf("extension negotiated %v, want %v", got, tc.deflate)
			}
			for deadline := time.Now().Add(5 * time.Second); srv.Connections() == 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			srv.mu.Lock()
			var got string
			for c := range srv.conns {
				got = fmt.Sprintf("%T", c.wire)
			}
			srv.mu.Unlock()
			if got != tc.want {
				t.Fatalf("wire %s, want %s", got, tc.want)
			}
		})
	}
}

// TestPollBadUpgrade: requests that are not valid upgrades get HTTP errors, not a socket.
func TestPollBadUpgrade(t *testing.T) {
	_, _, url := newPollServer(t, Options{})
	addr := strings.TrimPrefix(url, "ws://")
	cases := []struct {
		name   string
		header string
		status int
	}{
		{"bad version", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 8\r\n", http.StatusUpgradeRequired},
		{"bad key", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n", http.StatusBadRequest},
		{"no connection upgrade", "Upgrade: websocket\r\nSec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			fmt.Fprintf(nc, "GET /app/app-key HTTP/1.1\r\nHost: %s\r\n%s\r\n", addr, tc.header)
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil || resp.StatusCode != tc.status {
				t.Fatalf("answer %v %v, want %d", resp, err, tc.status)
			}
		})
	}
}

// TestPollFanoutWithPings: events published while the client pings keep their order, none
// lost or doubled, whether they were written directly, queued, or left half-written for the
// writer: the socket buffers are made small and nothing is read until all are published.
func TestPollFanoutWithPings(t *testing.T) {
	srv, _, url := newPollServer(t, Options{WriteQueueMessages: 10000})
	c := dialRaw(t, url, "/app/app-key", text(`{"event":"pusher:subscribe","data":{"channel":"feed"}}`))
	c.expectPrefix(`{"event":"pusher:connection_established"`)
	c.expectPrefix(`{"event":"pusher_internal:subscription_succeeded"`)
	_ = c.nc.(*net.TCPConn).SetReadBuffer(32 << 10)
	srv.mu.Lock()
	for sc := range srv.conns {
		_ = sc.pw.nc.(*net.TCPConn).SetWriteBuffer(32 << 10)
	}
	srv.mu.Unlock()
	const n = 3000
	pad := strings.Repeat("x", 700)
	for i := 0; i < n; i++ {
		if err := srv.hub.Publish("app-id", channels.Event{Name: "e", Channels: []string{"feed"}, Data: fmt.Sprintf("%d %s", i, pad)}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			c.write(clientFrame(true, wsframe.OpPing, []byte(fmt.Sprint(i))))
		}
	}
	next, pongs := 0, 0
	for next < n {
		op, p, err := c.frame()
		if err != nil {
			t.Fatalf("after event %d: %v", next, err)
		}
		if op == wsframe.OpPong {
			pongs++
			continue
		}
		want := fmt.Sprintf(`{"event":"e","channel":"feed","data":"%d %s"}`, next, pad)
		if string(p) != want {
			t.Fatalf("event %d: got %.60q", next, p)
		}
		next++
	}
	if pongs == 0 {
		t.Error("no pong")
	}
}

// TestPollDeflate: with permessage-deflate agreed, large messages go out compressed and
// small ones as they are, and compressed client messages are inflated; coder/websocket's
// client (an independent implementation) reads and writes both.
func TestPollDeflate(t *testing.T) {
	srv, _, url := newPollServer(t, Options{Compression: websocket.CompressionNoContextTakeover})
	t.Run("raw frames", func(t *testing.T) {
		c := dialRaw(t, url, "/app/app-key", nil, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
		c.expectPrefix(`{"event":"pusher:connection_established"`) // under the threshold: plain
		big := `{"event":"pusher:subscribe","data":{"channel":"feed","pad":"` + strings.Repeat("ab", 400) + `"}}`
		var z bytes.Buffer
		fw, _ := flate.NewWriter(&z, flate.BestCompression)
		_, _ = fw.Write([]byte(big))
		_ = fw.Flush()
		f := clientFrame(true, wsframe.OpText, bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff}))
		f[0] |= 0x40
		c.write(f)
		c.expect(wsframe.OpText, `{"event":"pusher_internal:subscription_succeeded","channel":"feed","data":"{}"}`)
		data := strings.Repeat("price tick ", 100)
		if err := srv.hub.Publish("app-id", channels.Event{Name: "e", Channels: []string{"feed"}, Data: data}); err != nil {
			t.Fatal(err)
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(c.br, hdr); err != nil || hdr[0] != 0xc1 { // FIN, RSV1, text
			t.Fatalf("frame header % x (%v), want a compressed text frame", hdr, err)
		}
		p := make([]byte, int(hdr[1]&0x7f))
		if hdr[1]&0x7f >= 126 {
			t.Fatalf("compressed frame of %d+ bytes for %d bytes of data", hdr[1]&0x7f, len(data))
		}
		if _, err := io.ReadFull(c.br, p); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))))
		if want := `{"event":"e","channel":"feed","data":"` + data + `"}`; err != nil || string(got) != want {
			t.Fatalf("inflated %.80q (%v)", got, err)
		}
		bad := clientFrame(true, wsframe.OpText, []byte{0xff, 0xff, 0xff})
		bad[0] |= 0x40
		c.write(bad)
		c.expectClose(1007)
	})
	t.Run("coder/websocket client", func(t *testing.T) {
		ctx := t.Context()
		ws, resp, err := websocket.Dial(ctx, url+"/app/app-key", &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
			t.Fatal("permessage-deflate not agreed")
		}
		ws.SetReadLimit(1 << 20)
		read := func() string {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if got := read(); !strings.HasPrefix(got, `{"event":"pusher:connection_established"`) {
			t.Fatalf("got %.80s", got)
		}
		sub := `{"event":"pusher:subscribe","data":{"channel":"feed2","pad":"` + strings.Repeat("z", 2000) + `"}}`
		if err := ws.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != `{"event":"pusher_internal:subscription_succeeded","channel":"feed2","data":"{}"}` {
			t.Fatalf("got %.80s", got)
		}
		for _, n := range []int{10, 600, 60000} {
			data := strings.Repeat("q", n)
			if err := srv.hub.Publish("app-id", channels.Event{Name: "e", Channels: []string{"feed2"}, Data: data}); err != nil {
				t.Fatal(err)
			}
			if got, want := read(), `{"event":"e","channel":"feed2","data":"`+data+`"}`; got != want {
				t.Fatalf("%d bytes: got %.80s", n, got)
			}
		}
	})
}
