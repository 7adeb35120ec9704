package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

// maxDrain is how much of a response body is read (and discarded) so the connection can
// be reused.
const maxDrain = 64 << 10

// endpoint is one webhook URL of an app with its backlog.
type endpoint struct {
	app     *appHooks
	url     string
	logURL  string // url without a password, for logs and errors
	prefix  string
	types   map[string]bool
	headers http.Header
	host    string // a custom Host header
	max     int    // backlog cap
	batch   int    // BatchSize: the backlog length that wakes the worker at once

	mu    sync.Mutex
	buf   [][]byte  // encoded events waiting, oldest first
	since time.Time // when buf last became non-empty
	full  bool      // the last push was refused (logged once per overflow)
	wake  chan struct{}
}

func newEndpoint(a *appHooks, w config.Webhook, queue, batch int) *endpoint {
	e := &endpoint{
		app:     a,
		url:     w.URL,
		logURL:  w.URL,
		prefix:  w.ChannelPrefix,
		types:   map[string]bool{},
		headers: http.Header{},
		max:     queue,
		batch:   batch,
		wake:    make(chan struct{}, 1),
	}
	if u, err := url.Parse(w.URL); err == nil {
		e.logURL = u.Redacted()
	}
	for _, t := range w.EventTypes {
		e.types[t] = true
	}
	for k, v := range w.Headers {
		if strings.EqualFold(k, "Host") {
			e.host = v
			continue
		}
		e.headers.Set(k, v)
	}
	return e
}

// wants reports whether the endpoint takes this event type on this channel.
func (e *endpoint) wants(typ, channel string) bool {
	return e.types[typ] && strings.HasPrefix(channel, e.prefix)
}

// push appends an event to the backlog without blocking; ok is false when the backlog is
// full, and first is true for the first refusal since the backlog last had room. It wakes
// the worker when the backlog becomes non-empty or reaches a full batch.
func (e *endpoint) push(ev []byte) (ok, first bool) {
	e.mu.Lock()
	if len(e.buf) >= e.max {
		first = !e.full
		e.full = true
		e.mu.Unlock()
		return false, first
	}
	e.full = false
	e.buf = append(e.buf, ev)
	n := len(e.buf)
	if n == 1 {
		e.since = time.Now()
	}
	e.mu.Unlock()
	if n == 1 || n == e.batch {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	return true, false
}

// pending returns the backlog length and when it became non-empty.
func (e *endpoint) pending() (int, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.buf), e.since
}

// take removes and returns up to n of the oldest events.
func (e *endpoint) take(n int) [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	n = min(n, len(e.buf))
	out := make([][]byte, n)
	copy(out, e.buf)
	rest := copy(e.buf, e.buf[n:])
	clear(e.buf[rest:])
	e.buf = e.buf[:rest]
	return out
}

// run is the delivery goroutine of one endpoint: it gathers a batch (BatchInterval after
// the oldest waiting event, or BatchSize events), delivers it with retries, and repeats.
// Once Close has stopped intake it sends what is left without waiting, then returns.
func (s *Sender) run(e *endpoint) {
	defer s.workers.Done()
	for {
		n, since := e.pending()
		draining := isDone(s.drain)
		if n == 0 {
			if draining {
				return
			}
			select {
			case <-e.wake:
			case <-s.drain:
			}
			continue
		}
		if n < s.batch && !draining {
			if wait := s.every - time.Since(since); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-e.wake:
				case <-s.drain:
				}
				t.Stop()
				continue
			}
		}
		s.deliver(e, e.take(s.batch))
	}
}

// deliver sends one batch, retrying as the package documentation describes; events it
// gives up on are counted as dropped.
func (s *Sender) deliver(e *endpoint, events [][]byte) {
	a := e.app
	first := s.now()
	b := body(first.UnixMilli(), events)
	sig := sign(a.secret, b)
	for attempt := 1; ; attempt++ {
		err := s.post(e, b, sig)
		if err == nil {
			s.metrics.Delivered(a.id, len(events))
			s.record(e, events, 0, "delivered to "+e.logURL)
			return
		}
		status, retryAfter := 0, time.Duration(0)
		var se *statusError
		if errors.As(err, &se) {
			status, retryAfter = se.status, se.retryAfter
		}
		s.record(e, events, status, fmt.Sprintf("attempt %d failed: %v", attempt, err))
		s.metrics.Failed(a.id, status)
		giveUp := func(why string) {
			s.metrics.Dropped(a.id, len(events))
			s.log.Warn("webhook dropped", zap.String("app", a.id), zap.String("url", e.logURL),
				zap.Int("events", len(events)), zap.Int("attempts", attempt), zap.String("reason", why), zap.Error(err))
		}
		if s.ctx.Err() != nil {
			giveUp("shutdown")
			return
		}
		if !retryable(err) {
			giveUp("permanent failure")
			return
		}
		wait := retryAfter
		if wait <= 0 {
			wait = s.backoff(attempt)
		}
		if s.now().Add(wait).Sub(first) > s.retryFor {
			giveUp("retry time exhausted")
			return
		}
		s.metrics.Retried(a.id)
		s.log.Debug("webhook retry", zap.String("app", a.id), zap.String("url", e.logURL),
			zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		if s.sleep(s.ctx, wait) != nil {
			giveUp("shutdown")
			return
		}
	}
}

// post makes one attempt: nil on 2xx, a *statusError on another status, a
// *permanentError when the request cannot be built, any other error for network failures.
func (s *Sender) post(e *endpoint, b []byte, sig string) error {
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		return fmt.Errorf("webhook: POST %s: %w", e.logURL, s.ctx.Err())
	}
	defer func() { <-s.sem }()
	ctx := s.ctx
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(b))
	if err != nil {
		return &permanentError{fmt.Errorf("webhook: building the request to %s: %w", e.logURL, err)}
	}
	for k, v := range e.headers {
		req.Header[k] = v
	}
	if e.host != "" {
		req.Host = e.host
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Pusher-Key", e.app.key)
	req.Header.Set("X-Pusher-Signature", sig)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: POST %s: %w", e.logURL, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	return &statusError{
		url:        e.logURL,
		status:     resp.StatusCode,
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), s.now()),
	}
}

// backoff is the wait before the retry that follows failed attempt number attempt (1 for
// the first): RetryBase doubled per attempt, capped at RetryMax, jittered into [d/2, d).
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.retryBase
	for i := 1; i < attempt && d < s.retryMax; i++ {
		d *= 2
	}
	d = min(d, s.retryMax)
	half := d / 2
	return half + time.Duration(s.jitter()*float64(d-half))
}

// statusError is a non-2xx answer.
type statusError struct {
	url        string
	status     int
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	return fmt.Sprintf("webhook: POST %s: status %d", e.url, e.status)
}

// permanentError is a failure that no retry can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryable reports whether a failed attempt may succeed later: network errors and
// timeouts, 5xx, 408 and 429.
func retryable(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	var se *statusError
	if errors.As(err, &se) {
		return retryableStatus(se.status)
	}
	return true
}

// retryableStatus reports whether an HTTP status is worth retrying.
func retryableStatus(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date. Absent,
// invalid or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Beyond any RetryFor anyway; keep the multiplication from overflowing.
		return time.Duration(min(secs, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// record shows one request's events and outcome to the tap when someone watches the app.
func (s *Sender) record(e *endpoint, events [][]byte, status int, detail string) {
	t := s.tap
	if t == nil || !t.Watching(e.app.id) {
		return
	}
	for _, ev := range events {
		var head struct {
			Name    string `json:"name"`
			Channel string `json:"channel"`
			Event   string `json:"event"`
		}
		_ = json.Unmarshal(ev, &head)
		event := "webhook:" + head.Name
		if head.Event != "" {
			event += " " + head.Event
		}
		t.Record(channels.Activity{Kind: channels.ActWebhook, AppID: e.app.id, Channel: head.Channel, Event: event, Code: status, Detail: detail})
	}
}
