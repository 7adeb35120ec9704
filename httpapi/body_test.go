package httpapi

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/bytebudget"
	"github.com/pushwire/pushwire/internal/testkit"
)

// signalBody tells started when the handler comes back for more of a body than arrived:
// the body buffer has been made by then.
type signalBody struct {
	io.ReadCloser
	reads   int
	started chan<- struct{}
}

func (b *signalBody) Read(p []byte) (int, error) {
	if b.reads++; b.reads == 2 {
		b.started <- struct{}{}
	}
	return b.ReadCloser.Read(p)
}

// slowServer serves the API with a short read timeout, telling started when a request's
// body read waits for bytes.
func slowServer(t *testing.T, opts Options, readTimeout time.Duration, started chan<- struct{}) *httptest.Server {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	hub := channels.New([]config.App{app}, channels.Options{})
	api := New(hub, opts)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if started != nil {
			r.Body = &signalBody{ReadCloser: r.Body, started: started}
		}
		api.ServeHTTP(w, r)
	}))
	ts.Config.ReadHeaderTimeout = readTimeout
	ts.Config.ReadTimeout = readTimeout
	ts.Config.IdleTimeout = readTimeout
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestSlowBodiesHoldNoMemory (issue 16, finding 1): connections that pass the cheap checks
// (key, app, timestamp) and declare large bodies they never send hold only what arrived,
// within the inbound budget, and are answered 408 and closed once the read timeout passes.
func TestSlowBodiesHoldNoMemory(t *testing.T) {
	const (
		conns    = 200
		declared = 10 << 20
	)
	budget := bytebudget.New(64 << 20)
	started := make(chan struct{}, conns)
	ts := slowServer(t, Options{InboundBudget: budget}, 2*time.Second, started)
	u, err := url.Parse(signedURL(ts, "POST", "/apps/app-id/events", nil, []byte("{}"), testSecret, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	before := liveHeap()
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
		_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", u.RequestURI(), u.Host, declared)
		if err != nil {
			t.Fatal(err)
		}
	}
	for range conns {
		<-started
	}
	held := budget.Used()
	after := liveHeap()
	rise := int64(after) - int64(before)
	t.Logf("%d connections declaring %d bytes: heap %+d bytes, budget holds %d", conns, declared, rise, held)
	if rise > 16<<20 {
		t.Errorf("heap rose by %d MB while %d connections declared %d MB bodies", rise>>20, conns, conns*declared>>20)
	}
	if held > conns*bodyStartBytes {
		t.Errorf("budget holds %d bytes, want at most %d", held, conns*bodyStartBytes)
	}
	// The read timeout ends each of them: 408, then the server closes the connection.
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, err := testkit.AnswerThenClose(c)
			if err == nil && status != http.StatusRequestTimeout {
				err = fmt.Errorf("status %d, want 408", status)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := budget.Used(); n != 0 {
		t.Errorf("budget still holds %d bytes after every request ended", n)
	}
}

// TestInboundBudget: bodies reserve their buffers in the shared budget; past it a request is
// refused with 503 and Retry-After, and every reservation is returned once served.
func TestInboundBudget(t *testing.T) {
	budget := bytebudget.New(48 << 10)
	e := newEnv(t, Options{InboundBudget: budget}, nil)
	small := []byte(`{"name":"e","channel":"c","data":"x"}`)
	resp, got := e.call(t, "POST", "/apps/app-id/events", nil, small)
	wantOK(t, resp, got, `{}`)
	big := []byte(`{"name":"e","channel":"c","data":"` + strings.Repeat("x", 100<<10) + `"}`)
	resp, got = e.call(t, "POST", "/apps/app-id/events", nil, big)
	wantError(t, resp, got, 503, "service_unavailable")
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if n := budget.Used(); n != 0 {
		t.Errorf("budget holds %d bytes after the requests", n)
	}
	if budget.Refusals() != 1 {
		t.Errorf("refusals %d", budget.Refusals())
	}
	// A body declared over the limit is refused by its Content-Length before any read.
	e2 := newEnv(t, Options{InboundBudget: budget, MaxBodyBytes: 1 << 10}, nil)
	resp, got = e2.call(t, "POST", "/apps/app-id/events", nil, big)
	wantError(t, resp, got, 413, "payload_too_large")
	if budget.Refusals() != 1 || budget.Used() != 0 {
		t.Errorf("a 413 by Content-Length touched the budget: refusals %d used %d", budget.Refusals(), budget.Used())
	}
}
