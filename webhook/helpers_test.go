package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/config"
)

const (
	appID     = "app-id"
	appKey    = "app-key"
	appSecret = "app-secret"
)

// waitTimeout bounds every wait for something asynchronous.
const waitTimeout = 5 * time.Second

// epoch is the fake clock's start: time_ms 1767323045000.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// request is one POST a receiver got.
type request struct {
	header http.Header
	host   string
	body   []byte
	at     time.Time
}

// receiver is a real HTTP endpoint recording every request. respond, when set, answers
// request number n (1-based); otherwise it answers 200.
type receiver struct {
	srv     *httptest.Server
	respond func(n int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex
	reqs []request
}

func newReceiver(t testing.TB, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: reading body: %v", err)
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), host: r.Host, body: b, at: time.Now()})
		n := len(rc.reqs)
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/hook" }

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

// waitRequests waits until at least n requests arrived and returns them.
func (rc *receiver) waitRequests(t testing.TB, n int) []request {
	t.Helper()
	waitFor(t, "webhook requests", func() bool { return rc.count() >= n })
	return rc.requests()
}

// payload is a decoded webhook body.
type payload struct {
	TimeMS int64            `json:"time_ms"`
	Events []map[string]any `json:"events"`
}

func decode(t testing.TB, b []byte) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("webhook body %q: %v", b, err)
	}
	return p
}

// events returns every event received, in order, as "name channel [user_id]" strings.
func (rc *receiver) events(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, r := range rc.requests() {
		for _, ev := range decode(t, r.body).Events {
			s := ev["name"].(string) + " " + ev["channel"].(string)
			if u, ok := ev["user_id"].(string); ok {
				s += " " + u
			}
			out = append(out, s)
		}
	}
	return out
}

// fakeMetrics records what the sender counts.
type fakeMetrics struct {
	mu        sync.Mutex
	delivered int
	failed    []int
	retried   int
	dropped   int
}

func (m *fakeMetrics) Delivered(app string, n int) { m.with(func() { m.delivered += n }) }
func (m *fakeMetrics) Failed(app string, status int) {
	m.with(func() { m.failed = append(m.failed, status) })
}
func (m *fakeMetrics) Retried(app string)        { m.with(func() { m.retried++ }) }
func (m *fakeMetrics) Dropped(app string, n int) { m.with(func() { m.dropped += n }) }
func (m *fakeMetrics) with(f func())             { m.mu.Lock(); f(); m.mu.Unlock() }
func (m *fakeMetrics) snapshot() (delivered, retried, dropped int, failed []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.delivered, m.retried, m.dropped, append([]int(nil), m.failed...)
}

// fakeChecker answers re-checks from sets the test controls and counts its calls.
type fakeChecker struct {
	mu       sync.Mutex
	occupied map[string]bool
	members  map[string]bool
	calls    int
	first    time.Time
}

func newFakeChecker() *fakeChecker {
	return &fakeChecker{occupied: map[string]bool{}, members: map[string]bool{}}
}

func (c *fakeChecker) Occupied(app, channel string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.called()
	return c.occupied[app+"/"+channel]
}

func (c *fakeChecker) HasMember(app, channel, user string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.called()
	return c.members[app+"/"+channel+"/"+user]
}

// called counts a call; callers hold c.mu.
func (c *fakeChecker) called() {
	if c.calls == 0 {
		c.first = time.Now()
	}
	c.calls++
}

func (c *fakeChecker) firstCallAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

func (c *fakeChecker) setOccupied(channel string, v bool) {
	c.mu.Lock()
	c.occupied[appID+"/"+channel] = v
	c.mu.Unlock()
}

func (c *fakeChecker) setMember(channel, user string, v bool) {
	c.mu.Lock()
	c.members[appID+"/"+channel+"/"+user] = v
	c.mu.Unlock()
}

func (c *fakeChecker) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// fakeClock is Options.Now under test control.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// sleepRecorder replaces Sender.sleep: it records each wait, advances the fake clock by it
// and returns at once (or with ctx's error once the sender is shutting down).
type sleepRecorder struct {
	clock *fakeClock
	mu    sync.Mutex
	waits []time.Duration
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	if r.clock != nil {
		r.clock.Advance(d)
	}
	return ctx.Err()
}

func (r *sleepRecorder) recorded() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

// hook is a webhook endpoint for the test app.
func hook(url string, types ...string) config.Webhook {
	if len(types) == 0 {
		types = config.WebhookEventTypes
	}
	return config.Webhook{URL: url, EventTypes: types}
}

// testApp is the test app with these webhooks, defaults applied.
func testApp(hooks ...config.Webhook) config.App {
	a := config.App{ID: appID, Key: appKey, Secret: appSecret, Webhooks: hooks}
	a.ApplyDefaults()
	return a
}

// newSender builds a started sender for apps; edit may replace test hooks before Start.
// It is closed when the test ends.
func newSender(t testing.TB, apps []config.App, opts Options, edit func(*Sender)) *Sender {
	t.Helper()
	s := New(apps, opts)
	if edit != nil {
		edit(s)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// closeNow closes s, failing the test if it does not finish in time.
func closeNow(t testing.TB, s *Sender) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
