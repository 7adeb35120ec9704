package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/server/wsframe"
)

// netpollAvailable reports whether the platform has the netpoller (the one it makes to
// find out is closed and joined).
func netpollAvailable() bool {
	var g goGroup
	p, err := newNetpollerWith(nil, pollHooks{spawn: g.Go})
	if err != nil {
		return false
	}
	p.close()
	_ = g.wait(context.Background())
	return true
}

// goroutineDump is every goroutine's stack.
func goroutineDump() string {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return b.String()
}

// serverOwned matches a goroutine the server starts (net/http's handler goroutines, which run
// ServeHTTP, are the http.Server's).
var serverOwned = regexp.MustCompile(`pushwire/server\.\((\*netpoller|\*flusher|\*conn|\*pollWire|\*Server)\)`)

// serverGoroutines returns the stacks of goroutines the server owns that are still running.
func serverGoroutines() []string {
	var left []string
	for _, g := range strings.Split(goroutineDump(), "\n\n") {
		if serverOwned.MatchString(g) && !strings.Contains(g, "net/http.(*conn).serve") && !strings.Contains(g, "testing.tRunner") {
			left = append(left, g)
		}
	}
	return left
}

// TestShutdownJoinsGoroutines: with connections open at shutdown — some subscribed with
// events queued, one client that never answers the close handshake, one whose read side is
// paused for a request over its rate — Shutdown returns only
// once every goroutine the server started has exited (checked at once on return), and once
// the HTTP server and the clients are gone too the process is back to its goroutine count
// from before (waited for, with a generous bound; the leftover stacks are printed on
// failure). On both transports.
func TestShutdownJoinsGoroutines(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		app := config.DefaultApp()
		app.ApplyDefaults()
		hub := channels.New([]config.App{app}, channels.Options{})
		baseline := runtime.NumGoroutine()

		srv := New(hub, Options{Transport: testTransport, HistoryRequestsPerSecond: 1, HistoryRequestBurst: 1})
		mux := http.NewServeMux()
		mux.Handle("/app/", srv)
		ts := httptest.NewServer(mux)
		url := "ws" + strings.TrimPrefix(ts.URL, "http")

		const n = 8
		clients := make([]*rawClient, n)
		for i := range clients {
			c := dialRaw(t, url, "/app/app-key", text(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"feed-%d"}}`, i%2)))
			c.expectPrefix(`{"event":"pusher:connection_established"`)
			c.expectPrefix(`{"event":"pusher_internal:subscription_succeeded"`)
			clients[i] = c
		}
		// One more whose read side is paused (a request over its rate) at shutdown.
		req := text(`{"event":"sockudo:channel_history","channel":"h","data":{"channel":"h","limit":1}}`)
		paused := dialRaw(t, url, "/app/app-key?protocol=2", nil)
		paused.expectPrefix(`{"event":"sockudo:connection_established"`)
		paused.write(append(append([]byte(nil), req...), req...))
		for {
			_, p, err := paused.frame()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(p), `"code":4301`) {
				break
			}
		}
		clients = append(clients, paused)
		for i := 0; i < 50; i++ {
			if err := hub.Publish("app-id", channels.Event{Name: "tick", Channels: []string{"feed-0", "feed-1"}, Data: strings.Repeat("z", 500)}); err != nil {
				t.Fatal(err)
			}
		}
		// All but the last answer the close handshake; the last stays silent (the server
		// waits closeWait for it, then drops it).
		var answered sync.WaitGroup
		errs := make(chan error, len(clients))
		for _, c := range append(clients[:n-1:n-1], paused) {
			answered.Add(1)
			go func() {
				defer answered.Done()
				for {
					op, p, err := c.frame()
					if err != nil {
						errs <- fmt.Errorf("no close frame: %w", err)
						return
					}
					if op == wsframe.OpClose {
						code, _, _ := wsframe.ParseClose(p)
						_, _ = c.nc.Write(clientFrame(true, wsframe.OpClose, binary.BigEndian.AppendUint16(nil, code)))
						return
					}
				}
			}()
		}

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if left := serverGoroutines(); len(left) > 0 {
			t.Fatalf("Shutdown returned with %d goroutines of the server running:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}

		answered.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		ts.Close()
		for _, c := range clients {
			_ = c.nc.Close()
		}
		// An event wait with a generous bound, not a timing assertion: goroutines outside the
		// server (net/http's) end on their own schedule.
		var now int
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if now = runtime.NumGoroutine(); now <= baseline {
				return
			}
		}
		t.Fatalf("%d goroutines after Shutdown, %d before the server:\n\n%s", now, baseline, goroutineDump())
	})
}

// TestGoGroupWait: wait returns once every goroutine of the group has returned, also when
// one starts after a wait found none, and with ctx's error while one still runs.
func TestGoGroupWait(t *testing.T) {
	var g goGroup
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var ran sync.WaitGroup
	for range 100 {
		ran.Add(1)
		g.Go(func() { defer ran.Done(); <-release })
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.wait(ctx); err == nil {
		t.Fatal("wait returned nil with goroutines running")
	}
	waited := make(chan error)
	go func() { waited <- g.wait(context.Background()) }()
	close(release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	ran.Wait()
	g.Go(func() {}) // after a wait: allowed, unlike sync.WaitGroup's reuse rules
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
