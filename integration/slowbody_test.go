package integration

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
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

	heap := func() float64 {
		v, err := strconv.ParseFloat(metric(t, s, "go_memstats_heap_inuse_bytes"), 64)
		if err != nil {
			t.Fatalf("go_memstats_heap_inuse_bytes: %v", err)
		}
		return v
	}
	before := heap()
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
			status, err := testkit.AnswerThenClose(c)
			if err == nil && status != http.StatusRequestTimeout {
				err = fmt.Errorf("slow body: status %d, want 408", status)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	publish(t, s, map[string]any{"name": "tick", "channel": "canary", "data": "1"})
	sub.expectEvent(t, "tick")
	// The server holds what arrived, not what was declared (200 × 10 MiB).
	if rise := heap() - before; rise > 64<<20 {
		t.Errorf("server heap rose by %.0f MB with %d slow bodies pending", rise/(1<<20), conns)
	}

	idle, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := fmt.Fprintf(idle, "GET /up HTTP/1.1\r\nHost: %s\r\n\r\n", s.Addr); err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.AnswerThenClose(idle); err != nil {
		t.Errorf("idle keep-alive connection: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
