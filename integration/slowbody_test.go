package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestSlowBodiesAndIdleConnections (issue 16, findings 1 and 7) against the binary: sockets
// that pass the cheap checks and declare 10 MiB bodies they never send are answered 408 and
// closed by http_read_timeout, an idle keep-alive connection is closed by
// http_idle_timeout, and a subscriber keeps receiving publishes meanwhile.
func TestSlowBodiesAndIdleConnections(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--http-read-timeout=2s", "--http-idle-timeout=2s", "--log-level=error"}})
	sub := connect(t, s)
	sub.subscribe(t, "canary")

	const conns = 200
	path := "/apps/app-id/events"
	query := protocol.SignAPIRequest("app-key", "app-secret", "POST", path, nil, []byte("{}"), time.Now())
	var wg sync.WaitGroup
	errs := make(chan error, conns+1)
	for range conns {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := fmt.Fprintf(c, "POST %s?%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", path, query, s.Addr, 10<<20); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(time.Minute)) // a hang guard, not a measurement
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout {
				errs <- fmt.Errorf("slow body: status %d, want 408", resp.StatusCode)
			} else if _, err := br.ReadByte(); err != io.EOF {
				errs <- fmt.Errorf("slow body: connection open after the answer: %v", err)
			}
		}()
	}
	publish(t, s, map[string]any{"name": "tick", "channel": "canary", "data": "1"})
	sub.expectEvent(t, "tick")

	idle, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := fmt.Fprintf(idle, "GET /up HTTP/1.1\r\nHost: %s\r\n\r\n", s.Addr); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = idle.SetReadDeadline(time.Now().Add(time.Minute)) // a hang guard, not a measurement
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive connection not closed: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
