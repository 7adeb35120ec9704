package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

var _ channels.Observer = (*Sender)(nil)

// Event types, as listed in config.WebhookEventTypes.
const (
	typeOccupied          = "channel_occupied"
	typeVacated           = "channel_vacated"
	typeMemberAdded       = "member_added"
	typeMemberRemoved     = "member_removed"
	typeClientEvent       = "client_event"
	typeCacheMiss         = "cache_miss"
	typeSubscriptionCount = "subscription_count"
	typeMessageVersion    = "message_version_created"
)

// Defaults of the options that have no server setting in config.
const (
	// DefaultRetryBase is the first retry wait; each further retry doubles it.
	DefaultRetryBase = time.Second
	// DefaultRetryMax caps one retry wait.
	DefaultRetryMax = 60 * time.Second
	// DefaultMaxConcurrent caps the webhook requests in flight at once.
	DefaultMaxConcurrent = 20
)

// Checker answers the re-checks of delayed events from the hub's current state.
// HubChecker adapts a *channels.Hub.
type Checker interface {
	// Occupied reports whether the channel has at least one subscriber.
	Occupied(appID, channel string) bool
	// HasMember reports whether the user is present in the presence channel.
	HasMember(appID, channel, userID string) bool
}

// Metrics counts what the sender does. Implementations must be safe for concurrent use.
type Metrics interface {
	// Delivered counts events that reached a receiver (2xx).
	Delivered(appID string, events int)
	// Failed counts one failed request; status is the HTTP status, or 0 when no response
	// came back (network error, timeout).
	Failed(appID string, status int)
	// Retried counts a request scheduled for another attempt.
	Retried(appID string)
	// Dropped counts events given up on: backlog full, permanent failure, retries over, or
	// shutdown.
	Dropped(appID string, events int)
}

// Options tune a Sender. The zero value of each field means its documented default.
type Options struct {
	// QueueSize caps the events waiting for each endpoint besides the one batch being
	// delivered (or retried); one over it is dropped and counted. Per endpoint, so a dead
	// receiver cannot starve the others. Default config.DefaultWebhookQueueSize.
	QueueSize int
	// BatchSize caps the events of one request. Default config.DefaultWebhookBatchSize.
	BatchSize int
	// BatchInterval is how long events gather before a request. Negative: no gathering.
	// Default config.DefaultWebhookBatchInterval.
	BatchInterval time.Duration
	// Timeout bounds one request. Negative: no bound. Default config.DefaultWebhookTimeout.
	Timeout time.Duration
	// RetryFor is how long after its first attempt a failing request is still retried.
	// Negative: never retried. Default config.DefaultWebhookRetryFor.
	RetryFor time.Duration
	// VacateDelay is how long channel_vacated and member_removed wait before their
	// re-check. Negative: no wait (re-checked at once). Default
	// config.DefaultWebhookVacateDelay.
	VacateDelay time.Duration
	// RetryBase is the first retry wait. Default DefaultRetryBase.
	RetryBase time.Duration
	// RetryMax caps one retry wait. Default DefaultRetryMax.
	RetryMax time.Duration
	// MaxConcurrent caps the requests in flight at once. Default DefaultMaxConcurrent.
	MaxConcurrent int
	// Client sends the requests. Default: a client that follows no redirects and whose idle
	// connections are closed by Close.
	Client *http.Client
	// Logger receives delivery failures. Default: no logging.
	Logger *zap.Logger
	// Checker re-checks delayed events (see also SetChecker). Default none: delayed events
	// are sent after VacateDelay without a re-check.
	Checker Checker
	// Metrics counts deliveries, failures, retries and drops. Default none.
	Metrics Metrics
	// Tap is shown every request of the apps someone watches (the debug console), one
	// Activity per event with the outcome. Default none.
	Tap channels.Tap
	// Now is the clock for time_ms and the RetryFor budget. Default time.Now.
	Now func() time.Time
}

// Sender delivers the webhooks of every app that has some. It implements
// channels.Observer; its methods are safe for concurrent use and never block on delivery.
type Sender struct {
	apps      map[string]*appHooks
	eps       []*endpoint
	queue     int
	batch     int
	every     time.Duration
	timeout   time.Duration
	retryFor  time.Duration
	retryBase time.Duration
	retryMax  time.Duration
	delay     time.Duration
	client    *http.Client
	ownClient bool
	log       *zap.Logger
	metrics   Metrics
	tap       channels.Tap
	now       func() time.Time
	checker   atomic.Pointer[Checker]
	sem       chan struct{}
	// sleep waits d or until ctx ends (tests replace it to record and skip waits).
	sleep func(ctx context.Context, d time.Duration) error
	// jitter returns a number in [0, 1) (tests replace it).
	jitter func() float64

	// closeMu guards closed, checked by the events that carry no state.
	closeMu sync.RWMutex
	closed  bool

	// mu guards the state of channel_occupied/vacated and member_added/removed: what was
	// last reported and which delayed events are pending. Lock order: mu, then an
	// endpoint's mu. Never take closeMu while holding mu.
	mu          sync.Mutex
	stateClosed bool
	occupied    map[stateKey]struct{}
	present     map[stateKey]struct{}
	pending     map[pendingKey]*delayed
	seq         uint64
	timers      sync.WaitGroup

	startOnce sync.Once
	closeOnce sync.Once
	// drain is closed when Close has stopped intake: workers then send what is left at once
	// and exit.
	drain   chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	done    chan struct{}
}

// appHooks is one app with webhooks.
type appHooks struct {
	id     string
	key    string
	secret []byte
	eps    []*endpoint
	// types is the union of the endpoints' event types.
	types map[string]bool
}

// New builds a sender for the apps that have webhooks (config defaults applied and
// validated). Call Start to begin delivering and Close to stop.
func New(apps []config.App, opts Options) *Sender {
	s := &Sender{
		apps:      map[string]*appHooks{},
		queue:     orInt(opts.QueueSize, config.DefaultWebhookQueueSize),
		batch:     orInt(opts.BatchSize, config.DefaultWebhookBatchSize),
		every:     orDur(opts.BatchInterval, config.DefaultWebhookBatchInterval),
		timeout:   orDur(opts.Timeout, config.DefaultWebhookTimeout),
		retryFor:  orDur(opts.RetryFor, config.DefaultWebhookRetryFor),
		retryBase: posDur(opts.RetryBase, DefaultRetryBase),
		retryMax:  posDur(opts.RetryMax, DefaultRetryMax),
		delay:     orDur(opts.VacateDelay, config.DefaultWebhookVacateDelay),
		client:    opts.Client,
		log:       opts.Logger,
		metrics:   opts.Metrics,
		tap:       opts.Tap,
		now:       opts.Now,
		sem:       make(chan struct{}, orInt(opts.MaxConcurrent, DefaultMaxConcurrent)),
		sleep:     sleepCtx,
		jitter:    rand.Float64,
		occupied:  map[stateKey]struct{}{},
		present:   map[stateKey]struct{}{},
		pending:   map[pendingKey]*delayed{},
		drain:     make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.client == nil {
		s.client = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect is answered, not followed: the signed body goes only to the URL
			// that was configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		s.ownClient = true
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.metrics == nil {
		s.metrics = nopMetrics{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Checker != nil {
		s.SetChecker(opts.Checker)
	}
	for _, a := range apps {
		if len(a.Webhooks) == 0 {
			continue
		}
		h := &appHooks{id: a.ID, key: a.Key, secret: []byte(a.Secret), types: map[string]bool{}}
		for _, w := range a.Webhooks {
			e := newEndpoint(h, w, s.queue, s.batch)
			h.eps = append(h.eps, e)
			s.eps = append(s.eps, e)
			for _, t := range w.EventTypes {
				h.types[t] = true
			}
		}
		s.apps[a.ID] = h
	}
	return s
}

// SetChecker sets the Checker used by the re-checks of delayed events. It exists because
// the hub takes the sender as its Observer when it is built, so the hub's checker can only
// be set afterwards: webhook.New, then channels.New, then SetChecker(HubChecker(hub)).
// Safe to call at any time.
func (s *Sender) SetChecker(c Checker) {
	if c == nil {
		s.checker.Store(nil)
		return
	}
	s.checker.Store(&c)
}

// Start starts one delivery goroutine per endpoint. Calling it again does nothing.
func (s *Sender) Start() {
	s.startOnce.Do(func() {
		for _, e := range s.eps {
			s.workers.Add(1)
			go s.run(e)
		}
	})
}

// Close stops accepting events, re-checks and queues every pending delayed event at once,
// delivers what is queued, and returns when every goroutine of the sender has exited. If
// ctx ends first, requests in flight are cancelled, what is left is dropped and counted,
// and the error wraps ctx.Err(). Calling Close again waits for the first call's work.
func (s *Sender) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.Start()
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		s.flushDelayed()
		close(s.drain)
		go func() {
			s.workers.Wait()
			close(s.done)
		}()
	})
	var err error
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
		err = fmt.Errorf("webhook: close: undelivered events dropped: %w", ctx.Err())
	}
	s.cancel()
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return err
}

// ChannelOccupied implements channels.Observer: channel_occupied, unless the channel is
// already reported occupied (its vacate is pending or was re-checked away).
func (s *Sender) ChannelOccupied(appID, channel string) {
	a := s.apps[appID]
	if a == nil || !a.tracks(typeOccupied, typeVacated, channel) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stateClosed {
		s.dropClosed(a, typeOccupied, channel)
		return
	}
	k := stateKey{app: appID, channel: channel}
	s.cancelPending(typeVacated, k)
	if _, ok := s.occupied[k]; ok {
		return
	}
	s.occupied[k] = struct{}{}
	s.push(a, typeOccupied, channel, func() []byte { return encodeChannel(typeOccupied, channel) })
}

// ChannelVacated implements channels.Observer: channel_vacated after VacateDelay, if the
// channel is still unoccupied then.
func (s *Sender) ChannelVacated(appID, channel string) {
	a := s.apps[appID]
	if a == nil || !a.tracks(typeOccupied, typeVacated, channel) {
		return
	}
	s.schedule(a, typeVacated, stateKey{app: appID, channel: channel})
}

// MemberAdded implements channels.Observer: member_added, unless the user is already
// reported present (a removal is pending or was re-checked away).
func (s *Sender) MemberAdded(appID, channel, userID string) {
	a := s.apps[appID]
	if a == nil || !a.tracks(typeMemberAdded, typeMemberRemoved, channel) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stateClosed {
		s.dropClosed(a, typeMemberAdded, channel)
		return
	}
	k := stateKey{app: appID, channel: channel, user: userID}
	s.cancelPending(typeMemberRemoved, k)
	if _, ok := s.present[k]; ok {
		return
	}
	s.present[k] = struct{}{}
	s.push(a, typeMemberAdded, channel, func() []byte { return encodeMember(typeMemberAdded, channel, userID) })
}

// MemberRemoved implements channels.Observer: member_removed after VacateDelay, if the user
// is still absent then.
func (s *Sender) MemberRemoved(appID, channel, userID string) {
	a := s.apps[appID]
	if a == nil || !a.tracks(typeMemberAdded, typeMemberRemoved, channel) {
		return
	}
	s.schedule(a, typeMemberRemoved, stateKey{app: appID, channel: channel, user: userID})
}

// MessageVersionCreated implements channels.VersionObserver: message_version_created, for
// every create, update, delete and append of a mutable message.
func (s *Sender) MessageVersionCreated(appID, channel, messageSerial, versionSerial string, action protocol.Action) {
	s.emit(appID, typeMessageVersion, channel, func() []byte {
		return encode(struct {
			Name          string `json:"name"`
			Channel       string `json:"channel"`
			MessageSerial string `json:"message_serial"`
			VersionSerial string `json:"version_serial"`
			Action        string `json:"action"`
		}{typeMessageVersion, channel, messageSerial, versionSerial, "message." + string(action)})
	})
}

// ClientEvent implements channels.Observer: client_event.
func (s *Sender) ClientEvent(appID, channel, event string, data json.RawMessage, socketID, userID string) {
	s.emit(appID, typeClientEvent, channel, func() []byte {
		return encodeClientEvent(channel, event, data, socketID, userID)
	})
}

// CacheMiss implements channels.Observer: cache_miss.
func (s *Sender) CacheMiss(appID, channel string) {
	s.emit(appID, typeCacheMiss, channel, func() []byte { return encodeChannel(typeCacheMiss, channel) })
}

// SubscriptionCount implements channels.Observer: subscription_count.
func (s *Sender) SubscriptionCount(appID, channel string, count int) {
	s.emit(appID, typeSubscriptionCount, channel, func() []byte { return encodeCount(channel, count) })
}

// emit queues a stateless event for the endpoints that want it.
func (s *Sender) emit(appID, typ, channel string, enc func() []byte) {
	a := s.apps[appID]
	if a == nil || !a.types[typ] {
		return
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		s.dropClosed(a, typ, channel)
		return
	}
	s.push(a, typ, channel, enc)
}

// push appends the event, encoded once on first need, to the backlog of every endpoint of a
// that wants it, counting the endpoints whose backlog is full.
func (s *Sender) push(a *appHooks, typ, channel string, enc func() []byte) {
	var ev []byte
	for _, e := range a.eps {
		if !e.wants(typ, channel) {
			continue
		}
		if ev == nil {
			ev = enc()
		}
		if ok, first := e.push(ev); !ok {
			s.metrics.Dropped(a.id, 1)
			if first {
				s.log.Warn("webhook queue full: dropping events until it drains",
					zap.String("app", a.id), zap.String("url", e.logURL), zap.Int("queue_size", e.max))
			}
		}
	}
}

// dropClosed counts an event that arrived after Close, once per endpoint that wanted it.
func (s *Sender) dropClosed(a *appHooks, typ, channel string) {
	for _, e := range a.eps {
		if e.wants(typ, channel) {
			s.metrics.Dropped(a.id, 1)
		}
	}
}

// tracks reports whether some endpoint of the app wants either event type on channel (the
// add/remove pair share their state).
func (a *appHooks) tracks(add, remove, channel string) bool {
	for _, e := range a.eps {
		if e.wants(add, channel) || e.wants(remove, channel) {
			return true
		}
	}
	return false
}

// nopMetrics is the Metrics used when none is given.
type nopMetrics struct{}

func (nopMetrics) Delivered(string, int) {}
func (nopMetrics) Failed(string, int)    {}
func (nopMetrics) Retried(string)        {}
func (nopMetrics) Dropped(string, int)   {}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func orInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// posDur returns v when positive, else d.
func posDur(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

// orDur returns d for 0, 0 for a negative v (switched off), else v.
func orDur(v, d time.Duration) time.Duration {
	switch {
	case v == 0:
		return d
	case v < 0:
		return 0
	}
	return v
}
