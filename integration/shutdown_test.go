package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
)

// Load of TestShutdownUnderLoad: loadClients sockets spread over loadChannels channels. The
// test process and the server each hold about one file per socket, far below the limit.
const (
	loadClients     = 500
	loadChannels    = 10
	loadDialWorkers = 32
	shutdownTimeout = 10 * time.Second
)

// stoppedLogRE matches the log line pushwire writes only after a clean shutdown (every socket
// closed and HTTP drained within shutdown_timeout).
var stoppedLogRE = regexp.MustCompile(`(?m)\tstopped$`)

// TestShutdownUnderLoad connects 500 subscribed clients, proves an acknowledged publish
// reaches every one, then sends SIGTERM and checks the graceful shutdown: every client gets
// the pusher:error 4200 frame and close code 4200 (so pusher-js reconnects at once,
// elsewhere), connections attempted while the server shuts down are refused, and the process
// exits cleanly within shutdown_timeout although one client stopped reading altogether.
func TestShutdownUnderLoad(t *testing.T) {
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{
		"--shutdown-timeout=" + shutdownTimeout.String(),
		"--log-level=info", // one debug line per socket would only slow the -race server down
	}})

	// 1. Connect and subscribe every client, loadDialWorkers at a time.
	start := time.Now()
	clients, err := connectLoad(s, loadClients)
	t.Cleanup(func() {
		for _, c := range clients {
			if c != nil {
				_ = c.ws.CloseNow()
			}
		}
	})
	if err != nil {
		t.Fatalf("connecting %d clients: %v", loadClients, err)
	}
	t.Logf("%d clients connected and subscribed in %s", loadClients, time.Since(start).Round(time.Millisecond))

	// A client that never reads again: the server cannot finish its close handshake, so it
	// keeps shutting down for a while (the probes below hit that window) and must still
	// exit within shutdown_timeout.
	laggard := dial(t, s.WSURL(testkit.AppKey), dialOptions{noReader: true})
	testkit.WaitFor(t, 10*time.Second, "every socket in the connections gauge", func() bool {
		_, body := get(t, "http://"+s.MetricsAddr+"/metrics")
		return strings.Contains(body, fmt.Sprintf(`pushwire_connections{app="%s"} %d`, testkit.AppID, loadClients+1))
	})

	// 2. One signed publish to every channel; once it is acknowledged (200), every
	// subscriber must get it.
	names := make([]string, loadChannels)
	for i := range names {
		names[i] = loadChannel(i)
	}
	data := fmt.Sprintf(`{"order":"ord_%d"}`, time.Now().UnixNano())
	publish(t, s, map[string]any{"name": "order.shipped", "channels": names, "data": data})
	checkAll(t, clients, "receive the published event", func(i int, c *client) error {
		return expectFrame(c, eventFrame("order.shipped", loadChannel(i%loadChannels), data))
	})

	// 3. SIGTERM, timed until the process has exited.
	stopped := make(chan time.Duration, 1)
	sigterm := time.Now()
	go func() {
		s.Stop()
		stopped <- time.Since(sigterm)
	}()
	exited := make(chan struct{})
	var elapsed time.Duration
	go func() {
		elapsed = <-stopped
		close(exited)
	}()

	// The first 4200 frame proves the server is shutting down; from then until it exits, every
	// new connection must be refused.
	if err := expectShutdownFrames(clients[0]); err != nil {
		t.Fatalf("client 0: %v\nserver output:\n%s", err, tail(s.Output()))
	}
	probes := make(chan probeResult, 1)
	go func() { probes <- probeUntil(s, exited) }()

	checkAll(t, clients[1:], "get pusher:error 4200 and close 4200", func(_ int, c *client) error {
		return expectShutdownFrames(c)
	})

	select {
	case <-exited:
	case <-time.After(2 * shutdownTimeout):
		t.Fatalf("pushwire still running %s after SIGTERM", 2*shutdownTimeout)
	}
	t.Logf("pushwire exited %s after SIGTERM (shutdown_timeout %s)", elapsed.Round(time.Millisecond), shutdownTimeout)
	// "stopped" is logged only when every shutdown step finished within shutdown_timeout (a
	// step that ran out of it makes the process exit with the error instead).
	out := s.Output()
	if !stoppedLogRE.MatchString(out) || strings.Contains(out, "pushwire stopped") {
		t.Errorf("pushwire did not report a clean shutdown:\n%s", tail(out))
	}

	// 4. Connections attempted during the shutdown were all refused.
	p := <-probes
	t.Logf("connections attempted during shutdown: %d refused with 4200, %d refused by the closed listener", p.refused4200, p.refusedTransport)
	if p.err != nil {
		t.Errorf("connection attempted during shutdown: %v", p.err)
	}
	if p.refused4200 == 0 {
		t.Errorf("no connection was attempted while the server was still closing sockets (want error and close 4200)")
	}

	// 5. The client that stopped reading finds the same 4200 frames in its socket buffer.
	go laggard.readLoop()
	laggard.expectHandshake(t, 120)
	if err := expectShutdownFrames(laggard); err != nil {
		t.Errorf("client that stopped reading: %v", err)
	}

	// 6. Once the process is gone nothing accepts connections.
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	if ws, _, err := websocket.Dial(ctx, s.WSURL(testkit.AppKey), nil); err == nil {
		_ = ws.CloseNow()
		t.Error("dial after exit succeeded")
	}
}

func loadChannel(i int) string { return fmt.Sprintf("shutdown-load-%d", i) }

// connectLoad opens n clients, client i subscribed to loadChannel(i % loadChannels). It
// returns every client opened so far with the first error.
func connectLoad(s *testkit.Server, n int) ([]*client, error) {
	clients := make([]*client, n)
	idx := make(chan int)
	errc := make(chan error, n)
	var wg sync.WaitGroup
	for range loadDialWorkers {
		wg.Go(func() {
			for i := range idx {
				c, err := connectSubscribed(s, loadChannel(i%loadChannels))
				clients[i] = c
				if err != nil {
					errc <- fmt.Errorf("client %d: %w", i, err)
				}
			}
		})
	}
	for i := range n {
		idx <- i
	}
	close(idx)
	wg.Wait()
	close(errc)
	return clients, <-errc // nil when the channel is empty
}

// connectSubscribed dials app-key, checks the handshake and subscribes to a public channel,
// without touching testing.T so that it can run on any goroutine.
func connectSubscribed(s *testkit.Server, channel string) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*frameTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, s.WSURL(testkit.AppKey), nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	c := &client{ws: ws, msgs: make(chan message, 64), done: make(chan struct{}), key: testkit.AppKey, secret: testkit.AppSecret}
	go c.readLoop()
	hs, err := nextText(c)
	if err != nil {
		return c, fmt.Errorf("handshake: %w", err)
	}
	m := handshakeRE.FindStringSubmatch(hs)
	if m == nil {
		return c, fmt.Errorf("handshake frame %s", hs)
	}
	c.socketID = m[1]
	if err := ws.Write(ctx, websocket.MessageText, []byte(subscribeFrame(channel, "", ""))); err != nil {
		return c, fmt.Errorf("subscribe: %w", err)
	}
	if err := expectFrame(c, ackFrame(channel, "{}")); err != nil {
		return c, fmt.Errorf("subscription ack: %w", err)
	}
	return c, nil
}

// nextText is client.next without testing.T: the next text frame or an error.
func nextText(c *client) (string, error) {
	m, ok := c.recv(frameTimeout)
	if !ok {
		select {
		case <-c.done:
			return "", fmt.Errorf("connection ended while waiting for a frame: %w", c.err)
		default:
			return "", fmt.Errorf("no frame within %s", frameTimeout)
		}
	}
	if m.typ != websocket.MessageText {
		return "", fmt.Errorf("got a %v message, want text: %q", m.typ, m.data)
	}
	return string(m.data), nil
}

// expectFrame requires the next frame to be exactly want.
func expectFrame(c *client, want string) error {
	got, err := nextText(c)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("frame\n got: %s\nwant: %s", got, want)
	}
	return nil
}

// expectShutdownFrames requires the next frame to be exactly a pusher:error with code 4200
// and a message, and then the end of the connection with close code 4200.
func expectShutdownFrames(c *client) error {
	got, err := nextText(c)
	if err != nil {
		return fmt.Errorf("waiting for pusher:error 4200: %w", err)
	}
	if !isError4200(got) {
		return fmt.Errorf("frame\n got: %s\nwant: {\"event\":\"pusher:error\",\"data\":{\"code\":4200,\"message\":\"...\"}}", got)
	}
	if m, ok := c.recv(frameTimeout); ok {
		return fmt.Errorf("got frame %q after the 4200 error, want close 4200", m.data)
	}
	select {
	case <-c.done:
	default:
		return fmt.Errorf("connection still open %s after the 4200 error", frameTimeout)
	}
	if code := websocket.CloseStatus(c.err); code != 4200 {
		return fmt.Errorf("close status %d (%v), want 4200", code, c.err)
	}
	return nil
}

// isError4200 reports whether frame is exactly {"event":"pusher:error","data":{"code":4200,
// "message":"..."}} with a non-empty message and no other keys.
func isError4200(frame string) bool {
	var f struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	var d errorData
	return strictUnmarshal([]byte(frame), &f) == nil && f.Event == "pusher:error" &&
		strictUnmarshal(f.Data, &d) == nil && d.Code == 4200 && d.Message != ""
}

// checkAll runs check on every client concurrently and reports each failure (the first few
// in full), so a partial loss shows how many clients it hit.
func checkAll(t *testing.T, clients []*client, what string, check func(i int, c *client) error) {
	t.Helper()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { errs[i] = check(i, c) })
	}
	wg.Wait()
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Sprintf("client %d: %v", i, err))
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d clients did not %s; first:\n%s", len(failed), len(clients), what, strings.Join(failed[:min(5, len(failed))], "\n"))
	}
}

// probeResult counts how connections attempted during shutdown were refused; err is set
// when one was not.
type probeResult struct {
	refused4200      int // upgraded, then pusher:error 4200 and close 4200 (the server is closing sockets)
	refusedTransport int // the listener is closed or the process is gone
	err              error
}

// probeUntil dials app-key every 25ms until stop is closed; no attempt may get a handshake.
func probeUntil(s *testkit.Server, stop <-chan struct{}) probeResult {
	var r probeResult
	for {
		select {
		case <-stop:
			return r
		default:
		}
		switch refused, err := probe(s); {
		case err != nil:
			r.err = errors.Join(r.err, err)
		case refused:
			r.refused4200++
		default:
			r.refusedTransport++
		}
		select {
		case <-stop:
			return r
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// probe opens one connection during shutdown. It returns refused4200 when the server
// answered the upgrade with pusher:error 4200 and close 4200, false when the connection
// failed at the transport (dial error, or dropped before any frame because the process
// exited), and an error for anything else, such as a connection_established.
func probe(s *testkit.Server) (refused4200 bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, s.WSURL(testkit.AppKey), nil)
	if err != nil {
		return false, nil
	}
	defer ws.CloseNow()
	typ, b, err := ws.Read(ctx)
	if err != nil {
		if code := websocket.CloseStatus(err); code != -1 {
			return false, fmt.Errorf("closed with %d before any frame, want pusher:error 4200 first", code)
		}
		return false, nil // the process exited while answering
	}
	if typ != websocket.MessageText || !isError4200(string(b)) {
		return false, fmt.Errorf("a connection attempted during shutdown got %q, want pusher:error 4200", b)
	}
	_, _, err = ws.Read(ctx)
	if code := websocket.CloseStatus(err); code != 4200 {
		return false, fmt.Errorf("a connection refused during shutdown closed with %d (%v), want 4200", code, err)
	}
	return true, nil
}

// tail returns the last lines of the server output for a failure message.
func tail(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}
