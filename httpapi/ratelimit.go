package httpapi

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pushwire/pushwire/config"
)

// eventLimiter enforces App.MaxBackendEventsPerSecond with a token bucket per app: it holds
// up to one second of events and refills continuously. A request of n events needs
// min(n, capacity) tokens and takes n, so a batch larger than the per-second limit still
// goes through once the bucket is full and the debt is repaid before the next one.
type eventLimiter struct {
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*eventBucket // by app id: bounded by the configured apps
}

type eventBucket struct {
	tokens float64
	last   time.Time
}

func newEventLimiter(now func() time.Time) *eventLimiter {
	return &eventLimiter{now: now, buckets: map[string]*eventBucket{}}
}

// allow takes n events from appID's bucket of perSecond and reports whether it could.
// perSecond <= 0 is unlimited.
func (l *eventLimiter) allow(appID string, perSecond, n int) bool {
	if perSecond <= 0 {
		return true
	}
	now := l.now()
	capacity := float64(perSecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[appID]
	if !ok {
		b = &eventBucket{tokens: capacity, last: now}
		l.buckets[appID] = b
	} else if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(capacity, b.tokens+elapsed.Seconds()*capacity)
		b.last = now
	}
	if b.tokens < min(float64(n), capacity) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// allowEvents applies the app's backend event limit to a request of n events; when it is
// over, it answers 429 rate_limited with Retry-After: 1 and returns false.
func (a *api) allowEvents(w http.ResponseWriter, app config.App, n int) bool {
	if a.events.allow(app.ID, app.MaxBackendEventsPerSecond, n) {
		return true
	}
	a.metrics.RateLimited(app.ID)
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("Too many events: app %s may publish %d events per second through the HTTP API", app.ID, app.MaxBackendEventsPerSecond))
	return false
}
