package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pushwire/pushwire/config"
)

// statuses answers the listed statuses in turn (with Retry-After when ra is set), then 200.
func statuses(ra string, codes ...int) func(n int, w http.ResponseWriter, r *http.Request) {
	return func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= len(codes) {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			w.WriteHeader(codes[n-1])
		}
	}
}

// retrySender builds a sender whose retry waits are recorded (advancing clk) instead of
// slept, with jitter fixed at j.
func retrySender(t *testing.T, rc *receiver, clk *fakeClock, j float64, opts Options) (*Sender, *fakeMetrics, *sleepRecorder) {
	t.Helper()
	m := &fakeMetrics{}
	rec := &sleepRecorder{clock: clk}
	opts.Metrics = m
	opts.Now = clk.Now
	opts.BatchInterval = -1
	s := newSender(t, []config.App{testApp(hook(rc.url()))}, opts, func(s *Sender) {
		s.sleep = rec.sleep
		s.jitter = func() float64 { return j }
	})
	return s, m, rec
}

// TestRetryThenSuccess: a receiver answering 503 once gets the identical body and
// signature again after the first backoff.
func TestRetryThenSuccess(t *testing.T) {
	rc := newReceiver(t, statuses("", http.StatusServiceUnavailable))
	s, m, rec := retrySender(t, rc, newFakeClock(), 0.5, Options{RetryBase: time.Second})
	s.CacheMiss(appID, "cache-x")
	reqs := rc.waitRequests(t, 2)
	closeNow(t, s)
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if !bytes.Equal(reqs[0].body, reqs[1].body) ||
		reqs[0].header.Get("X-Pusher-Signature") != reqs[1].header.Get("X-Pusher-Signature") {
		t.Fatal("the retry changed the body or signature")
	}
	if got, want := rec.recorded(), []time.Duration{750 * time.Millisecond}; !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v (base 1s jittered into [0.5s,1s))", got, want)
	}
	delivered, retried, dropped, failed := m.snapshot()
	if delivered != 1 || retried != 1 || dropped != 0 || !slices.Equal(failed, []int{503}) {
		t.Fatalf("delivered %d retried %d dropped %d failed %v, want 1 1 0 [503]", delivered, retried, dropped, failed)
	}
}

// TestRetryClassification: which failures are retried.
func TestRetryClassification(t *testing.T) {
	tests := []struct {
		status int
		retry  bool
	}{
		{500, true}, {502, true}, {503, true}, {504, true}, {408, true}, {429, true},
		{400, false}, {401, false}, {403, false}, {404, false}, {409, false}, {410, false},
		{413, false}, {422, false}, {301, false}, {302, false}, {307, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					w.Header().Set("Location", "/elsewhere")
					w.WriteHeader(tt.status)
				}
			})
			s, m, _ := retrySender(t, rc, newFakeClock(), 0, Options{})
			s.CacheMiss(appID, "cache-x")
			want := 1
			if tt.retry {
				want = 2
			}
			rc.waitRequests(t, want)
			closeNow(t, s)
			if n := rc.count(); n != want {
				t.Fatalf("%d requests, want %d", n, want)
			}
			for _, r := range rc.requests() {
				if r.header.Get("X-Pusher-Key") != appKey {
					t.Fatalf("a request without the webhook headers reached the receiver (redirect followed?)")
				}
			}
			delivered, retried, dropped, failed := m.snapshot()
			if !slices.Equal(failed, []int{tt.status}) {
				t.Fatalf("failed %v, want [%d]", failed, tt.status)
			}
			if tt.retry && (delivered != 1 || retried != 1 || dropped != 0) {
				t.Fatalf("delivered %d retried %d dropped %d, want 1 1 0", delivered, retried, dropped)
			}
			if !tt.retry && (delivered != 0 || retried != 0 || dropped != 1) {
				t.Fatalf("delivered %d retried %d dropped %d, want 0 0 1", delivered, retried, dropped)
			}
			if got := retryableStatus(tt.status); got != tt.retry {
				t.Fatalf("retryableStatus(%d) = %v", tt.status, got)
			}
		})
	}
}

// TestRetryNetworkErrors: a dropped connection and a request over Timeout are retried and
// counted with status 0.
func TestRetryNetworkErrors(t *testing.T) {
	tests := []struct {
		name  string
		first func(w http.ResponseWriter, r *http.Request)
	}{
		{"connection closed", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			_ = conn.Close()
		}},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					tt.first(w, r)
				}
			})
			s, m, _ := retrySender(t, rc, newFakeClock(), 0, Options{Timeout: 50 * time.Millisecond})
			s.CacheMiss(appID, "cache-x")
			rc.waitRequests(t, 2)
			closeNow(t, s)
			delivered, retried, dropped, failed := m.snapshot()
			if delivered != 1 || retried != 1 || dropped != 0 || !slices.Equal(failed, []int{0}) {
				t.Fatalf("delivered %d retried %d dropped %d failed %v, want 1 1 0 [0]", delivered, retried, dropped, failed)
			}
		})
	}
}

// TestRetryAfter: a 429 (or 503) with Retry-After waits what it says, in seconds or as a
// date; an unusable value falls back to the backoff; one beyond RetryFor gives up at once.
func TestRetryAfter(t *testing.T) {
	clk := newFakeClock()
	tests := []struct {
		name     string
		status   int
		value    string
		wantWait []time.Duration
		requests int
	}{
		{"seconds", 429, "7", []time.Duration{7 * time.Second}, 2},
		{"date", 429, clk.Now().Add(30 * time.Second).Format(http.TimeFormat), []time.Duration{30 * time.Second}, 2},
		{"on 503 too", 503, "2", []time.Duration{2 * time.Second}, 2},
		{"zero: backoff", 429, "0", []time.Duration{500 * time.Millisecond}, 2},
		{"garbage: backoff", 429, "soon", []time.Duration{500 * time.Millisecond}, 2},
		{"past date: backoff", 429, clk.Now().Add(-time.Hour).Format(http.TimeFormat), []time.Duration{500 * time.Millisecond}, 2},
		{"beyond RetryFor: give up", 429, "600", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, statuses(tt.value, tt.status))
			s, m, rec := retrySender(t, rc, newFakeClock(), 0, Options{RetryBase: time.Second})
			s.CacheMiss(appID, "cache-x")
			rc.waitRequests(t, tt.requests)
			closeNow(t, s)
			if n := rc.count(); n != tt.requests {
				t.Fatalf("%d requests, want %d", n, tt.requests)
			}
			if got := rec.recorded(); !slices.Equal(got, tt.wantWait) {
				t.Fatalf("waits %v, want %v", got, tt.wantWait)
			}
			if _, _, dropped, _ := m.snapshot(); dropped != 2-tt.requests {
				t.Fatalf("dropped %d, want %d", dropped, 2-tt.requests)
			}
		})
	}
}

// TestRetryForExhausted: a receiver that always fails is retried with doubling, capped,
// jittered waits until the next attempt would start past RetryFor; then the batch is dropped.
func TestRetryForExhausted(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	s, m, rec := retrySender(t, rc, newFakeClock(), 0,
		Options{RetryBase: time.Second, RetryMax: 4 * time.Second, RetryFor: 10 * time.Second})
	// One event: with no batch interval, two events could go out as two batches (each
	// retried on its own) depending on scheduling.
	s.SubscriptionCount(appID, "c", 1)
	// Jitter 0 waits half the nominal wait: 0.5, 1, 2, 2, 2, 2 s, attempts at 0, 0.5, 1.5,
	// 3.5, 5.5, 7.5, 9.5 s; the next would start at 11.5 s > 10 s.
	wantWaits := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	waitFor(t, "the batch to be given up", func() bool { _, _, d, _ := m.snapshot(); return d > 0 })
	closeNow(t, s)
	if got := rec.recorded(); !slices.Equal(got, wantWaits) {
		t.Fatalf("waits %v, want %v", got, wantWaits)
	}
	delivered, retried, dropped, failed := m.snapshot()
	if n := rc.count(); n != 7 || len(failed) != 7 || retried != 6 {
		t.Fatalf("requests %d failures %d retries %d, want 7 7 6", n, len(failed), retried)
	}
	if delivered != 0 || dropped != 1 {
		t.Fatalf("delivered %d dropped %d, want 0 and 1", delivered, dropped)
	}
}

// TestBackoff: RetryBase doubling per attempt, capped at RetryMax, jittered into [d/2, d).
func TestBackoff(t *testing.T) {
	s := New(nil, Options{RetryBase: time.Second, RetryMax: 60 * time.Second})
	nominal := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, n := range nominal {
		d := n * time.Second
		for _, tt := range []struct {
			jitter float64
			want   time.Duration
		}{{0, d / 2}, {0.5, d * 3 / 4}, {0.999999, d - d/2000000}} {
			s.jitter = func() float64 { return tt.jitter }
			got := s.backoff(i + 1)
			if got < tt.want-time.Millisecond || got > tt.want+time.Millisecond || got >= d {
				t.Errorf("backoff(%d) with jitter %v = %s, want %s (< %s)", i+1, tt.jitter, got, tt.want, d)
			}
		}
	}
	s.jitter = func() float64 { return 0 }
	if got := s.backoff(500); got != 30*time.Second {
		t.Errorf("backoff(500) = %s, want 30s (no overflow)", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestParseRetryAfter covers both Retry-After forms.
func TestParseRetryAfter(t *testing.T) {
	now := epoch
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"  ", 0}, {"0", 0}, {"-3", 0}, {"1", time.Second}, {" 120 ", 2 * time.Minute},
		{"1.5", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Second).Format(http.TimeFormat), 0},
		{"99999999999999999", 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestOverflowNeverBlocks: with a receiver that hangs, observer calls keep returning at once;
// what does not fit is dropped and counted, and Close gives up on the rest when its context
// ends, still accounting for every event.
func TestOverflowNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	m := &fakeMetrics{}
	core, logs := observer.New(zap.WarnLevel)
	s := New([]config.App{testApp(hook(rc.url()))},
		Options{QueueSize: 10, BatchSize: 1, BatchInterval: -1, Timeout: time.Hour, Metrics: m, Logger: zap.New(core)})
	s.Start()

	const total = 10000
	var slowest time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			start := time.Now()
			s.ClientEvent(appID, "private-c", "client-e", json.RawMessage(strconv.Itoa(i)), "1.1", "")
			slowest = max(slowest, time.Since(start))
		}
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("observer calls blocked behind a hanging receiver")
	}
	if slowest > time.Second {
		t.Errorf("slowest observer call took %s", slowest)
	}
	rc.waitRequests(t, 1) // the one batch in flight
	if _, _, dropped, _ := m.snapshot(); dropped < total-11 || dropped > total-10 {
		t.Fatalf("dropped %d, want %d or %d (queue of 10 plus the batch in flight)", dropped, total-11, total-10)
	}
	// One warning per overflow episode, not per drop: the worker taking its one event may
	// have made room once, starting a second episode.
	if n := logs.FilterMessageSnippet("queue full").Len(); n < 1 || n > 2 {
		t.Fatalf("%d queue-full warnings, want 1 (or 2), not one per drop", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want it to wrap context.DeadlineExceeded", err)
	}
	delivered, _, dropped, _ := m.snapshot()
	if delivered != 0 || dropped != total {
		t.Fatalf("delivered %d dropped %d, want 0 and %d: every event accounted for", delivered, dropped, total)
	}
}

// TestDeadEndpointDoesNotStarveOthers: one hanging receiver does not delay another
// endpoint of the same app.
func TestDeadEndpointDoesNotStarveOthers(t *testing.T) {
	release := make(chan struct{})
	dead := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	live := newReceiver(t, nil)
	m := &fakeMetrics{}
	s := New([]config.App{testApp(hook(dead.url()), hook(live.url()))},
		Options{QueueSize: 20, BatchSize: 1, BatchInterval: -1, Metrics: m})
	s.Start()
	for i := range 50 {
		s.SubscriptionCount(appID, "c", i)
		live.waitRequests(t, i+1)
	}
	// The dead endpoint holds 20 queued events plus the one it is stuck sending.
	if _, _, dropped, _ := m.snapshot(); dropped < 29 || dropped > 30 {
		t.Fatalf("dropped %d, want 29 (or 30 if its worker was slow to take the first)", dropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded (the dead receiver)", err)
	}
}

// TestConcurrencyCap: no more than MaxConcurrent requests are in flight at once.
func TestConcurrencyCap(t *testing.T) {
	var mu sync.Mutex
	inFlight, peak := 0, 0
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	var hooks []config.Webhook
	for range 6 {
		hooks = append(hooks, hook(rc.url()))
	}
	s := newSender(t, []config.App{testApp(hooks...)}, Options{MaxConcurrent: 2, BatchInterval: -1}, nil)
	s.CacheMiss(appID, "cache-x")
	rc.waitRequests(t, 2)
	// Give the other four workers every chance to exceed the cap: they are all runnable.
	for range 100 {
		runtime.Gosched()
	}
	if n := rc.count(); n != 2 {
		t.Fatalf("%d requests in flight, want 2", n)
	}
	close(release)
	rc.waitRequests(t, 6)
	mu.Lock()
	defer mu.Unlock()
	if peak != 2 {
		t.Fatalf("peak in flight %d, want 2", peak)
	}
}

// TestCloseFlushes: Close sends what is queued and what waits for its delay, even when the
// batch interval is long and Start was never called.
func TestCloseFlushes(t *testing.T) {
	rc := newReceiver(t, nil)
	m := &fakeMetrics{}
	s := New([]config.App{testApp(hook(rc.url()))}, Options{BatchInterval: time.Hour, VacateDelay: time.Hour, Metrics: m})
	s.ChannelOccupied(appID, "c")
	for i := range 5 {
		s.SubscriptionCount(appID, "c", i)
	}
	s.ChannelVacated(appID, "c")
	if n := rc.count(); n != 0 {
		t.Fatalf("%d requests before Close", n)
	}
	closeNow(t, s)
	want := []string{"channel_occupied c", "subscription_count c", "subscription_count c", "subscription_count c",
		"subscription_count c", "subscription_count c", "channel_vacated c"}
	if got := rc.events(t); !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
	if d, _, dropped, _ := m.snapshot(); d != 7 || dropped != 0 {
		t.Fatalf("delivered %d dropped %d, want 7 and 0", d, dropped)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestGoroutinesExit: after Close every goroutine the sender started (workers, timers,
// HTTP connections) is gone.
func TestGoroutinesExit(t *testing.T) {
	rc := newReceiver(t, statuses("", 503))
	base := runtime.NumGoroutine()
	var hooks []config.Webhook
	for range 4 {
		hooks = append(hooks, hook(rc.url()))
	}
	chk := newFakeChecker()
	s := New([]config.App{testApp(hooks...)}, Options{VacateDelay: time.Hour, RetryBase: time.Millisecond, Checker: chk})
	s.Start()
	s.ChannelOccupied(appID, "c")
	s.ChannelVacated(appID, "c")
	for i := range 20 {
		s.SubscriptionCount(appID, "c", i)
	}
	rc.waitRequests(t, 4)
	closeNow(t, s)
	waitFor(t, "goroutines to return to the baseline", func() bool { return runtime.NumGoroutine() <= base })
}
