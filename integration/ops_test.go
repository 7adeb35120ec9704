package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsReadyAndDrain: the binary serves Prometheus metrics on its own listener, /ready
// is OK while serving and 503 DRAINING during drain_delay after SIGTERM, before sockets close.
func TestMetricsReadyAndDrain(t *testing.T) {
	srv := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--drain-delay=2s"}})
	c := connect(t, srv)
	c.subscribe(t, "metrics-channel")
	if code, body := get(t, srv.HTTPURL()+"/ready"); code != 200 || body != "OK" {
		t.Fatalf("/ready = %d %q", code, body)
	}
	var body string
	testkit.WaitFor(t, 5*time.Second, "connection in metrics", func() bool {
		_, body = get(t, "http://"+srv.MetricsAddr+"/metrics")
		return strings.Contains(body, `pushwire_connections{app="app-id"} 1`)
	})
	for _, want := range []string{"pushwire_messages_in_total", "pushwire_messages_out_total", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	go srv.Stop()
	testkit.WaitFor(t, 5*time.Second, "/ready to report draining", func() bool {
		resp, err := http.Get(srv.HTTPURL() + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	c.ping(t) // still connected during the drain delay
	c.expectError(t, 4200)
	c.expectClose(t, 4200)
}
