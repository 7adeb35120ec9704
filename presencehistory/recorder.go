package presencehistory

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

// Options tune a Service. The zero value works.
type Options struct {
	// Logger receives retries, lost events and resets. Default: no logging.
	Logger *zap.Logger
	// Now is the clock of degraded marks. Default time.Now. (Events carry the time the hub
	// stamped on them.)
	Now func() time.Time
}

// Service records the presence events of the apps that enable presence history into its
// Store, and answers the HTTP API's reads. It implements channels.PresenceRecorder. With a
// nil Store it records nothing and refuses every read as disabled.
type Service struct {
	store Store
	apps  map[string]config.App
	log   *zap.Logger
	now   func() time.Time
	seed  maphash.Seed
	lanes [lanes]lane

	degradedMu sync.Mutex
	degraded   map[streamRef]degradedMark
}

var _ channels.PresenceRecorder = (*Service)(nil)

// New returns the Service of apps (defaults already applied) over store.
func New(store Store, apps []config.App, opts Options) *Service {
	s := &Service{store: store, apps: make(map[string]config.App, len(apps)), log: opts.Logger, now: opts.Now,
		seed: maphash.MakeSeed(), degraded: map[streamRef]degradedMark{}}
	for _, a := range apps {
		s.apps[a.ID] = a
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.lanes {
		s.lanes[i].idle = make(chan struct{})
		close(s.lanes[i].idle)
	}
	return s
}

// on reports whether app records presence history (a store is configured and the app
// enables it).
func (s *Service) on(app config.App) bool { return s.store != nil && app.PresenceHistory.On() }

// retention is the app's retention of presence events.
func retention(app config.App) Retention {
	p := app.PresenceHistory
	return Retention{Window: p.RetentionWindow.D(), MaxEvents: p.MaxEventsPerChannel, MaxBytes: p.MaxBytesPerChannel}
}

// lanes is the number of recording lanes (goroutines at most) of a Service.
const lanes = 8

// Recording retries: a failing append is retried after each of these waits, then given up.
var retryWaits = []time.Duration{50 * time.Millisecond, 250 * time.Millisecond, time.Second, 3 * time.Second}

// batchMax caps the events of one channel appended in one store call.
const batchMax = 256

// queueMax caps the events waiting in one lane (a store down for long): past it an event
// is dropped and its channel's presence stream marked degraded, rather than memory growing
// without bound.
const queueMax = 100_000

type job struct {
	app     config.App
	channel string
	ev      Event
}

type streamRef struct{ app, channel string }

type degradedMark struct {
	reason string
	atMs   int64
}

type lane struct {
	mu      sync.Mutex
	pending []job
	running bool
	idle    chan struct{} // closed when the lane has no work (replaced when it gets some)
}

// MemberChanged implements channels.PresenceRecorder: it queues the change for the
// channel's presence stream when the app records presence history. The hub may hold the
// channel's lock (it only queues): events of one channel are queued, and so stored, in the
// order they happened on this node.
func (s *Service) MemberChanged(appID, channel string, c channels.PresenceChange) {
	app, ok := s.apps[appID]
	if !ok || !s.on(app) {
		return
	}
	s.add(job{app: app, channel: channel, ev: eventOf(c)})
}

func (s *Service) add(j job) {
	l := &s.lanes[maphash.String(s.seed, j.app.ID+"\x00"+j.channel)%lanes]
	l.mu.Lock()
	if len(l.pending) >= queueMax {
		l.mu.Unlock()
		s.markDegraded(j.app.ID, j.channel, "presence_history_queue_full")
		return
	}
	l.pending = append(l.pending, j)
	start := !l.running
	if start {
		l.running = true
		l.idle = make(chan struct{})
	}
	l.mu.Unlock()
	if start {
		go s.run(l) // owned by the lane: it ends when the lane is empty (Flush waits for it)
	}
}

// run drains the lane, then marks it idle and returns.
func (s *Service) run(l *lane) {
	for {
		l.mu.Lock()
		jobs := l.pending
		l.pending = nil
		if len(jobs) == 0 {
			l.running = false
			close(l.idle)
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		// Group by channel, keeping each channel's order; channels in a stable order.
		groups := map[streamRef][]job{}
		var order []streamRef
		for _, j := range jobs {
			k := streamRef{j.app.ID, j.channel}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], j)
		}
		for _, k := range order {
			g := groups[k]
			for len(g) > 0 {
				n := min(len(g), batchMax)
				s.append(g[:n])
				g = g[n:]
			}
		}
	}
}

// append stores one channel's jobs, retrying a failing store; given up, the channel's
// presence stream is marked degraded.
func (s *Service) append(jobs []job) {
	app, channel := jobs[0].app, jobs[0].channel
	evs := make([]Event, len(jobs))
	for i, j := range jobs {
		evs[i] = j.ev
	}
	var err error
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = s.store.AppendPresence(ctx, app.ID, channel, evs, retention(app))
		cancel()
		if err == nil || attempt >= len(retryWaits) {
			break
		}
		s.log.Info("presence history append failed; retrying", zap.String("app_id", app.ID), zap.String("channel", channel),
			zap.Int("attempt", attempt+1), zap.Error(err))
		time.Sleep(retryWaits[attempt])
	}
	if err == nil {
		return
	}
	s.log.Warn("presence history events lost", zap.String("app_id", app.ID), zap.String("channel", channel),
		zap.Int("events", len(evs)), zap.Error(err))
	s.markDegraded(app.ID, channel, "presence_history_write_failed")
}

// markDegraded records that an event of the channel was lost.
func (s *Service) markDegraded(appID, channel, reason string) {
	s.degradedMu.Lock()
	s.degraded[streamRef{appID, channel}] = degradedMark{reason: reason, atMs: s.now().UnixMilli()}
	s.degradedMu.Unlock()
}

func (s *Service) degradedOf(appID, channel string) (degradedMark, bool) {
	s.degradedMu.Lock()
	defer s.degradedMu.Unlock()
	d, ok := s.degraded[streamRef{appID, channel}]
	return d, ok
}

func (s *Service) isDegraded(appID, channel string) bool {
	_, ok := s.degradedOf(appID, channel)
	return ok
}

// Flush waits until every presence event queued on this node before the call was stored
// (or given up): for a graceful shutdown, and for tests that read right after a change.
func (s *Service) Flush(ctx context.Context) error {
	for i := range s.lanes {
		l := &s.lanes[i]
		l.mu.Lock()
		idle := l.idle
		l.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
