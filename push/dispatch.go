package push

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Queue tuning.
const (
	// planPage is the number of recipients expanded per planning step, so a publish to a
	// large channel holds at most one page in memory.
	planPage = 1000
	// claimBatch is the number of deliveries claimed per dispatch step.
	claimBatch = 512
	// leaseFor is how long a claim holds a publish or delivery; a node that dies mid-send
	// leaves its work to be reclaimed after it.
	leaseFor = 2 * sendTimeout
)

// Start runs the dispatcher and the bridge until Close. Calling it again does nothing.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.run()
	go s.runBridge()
}

// Close stops the dispatcher and the bridge and waits for their goroutines; sends in
// flight are cancelled (their deliveries stay queued and are retried after the lease).
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.once.Do(func() { s.stop() })
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the dispatcher loop: work until nothing is due, then sleep until the next due time
// (at most PollInterval, to see work queued by other nodes) or a Wake.
func (s *Service) run() {
	defer s.wg.Done()
	for {
		if err := s.Step(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("push dispatch step failed; retrying", zap.Error(err))
		}
		s.prune(s.ctx)
		wait := s.poll
		if t, ok, err := s.store.NextDue(s.ctx); err == nil && ok {
			wait = min(wait, max(0, t.Sub(s.now())))
		}
		timer := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// prune deletes finished publishes past the retention, at most hourly, in bounded batches.
func (s *Service) prune(ctx context.Context) {
	now := s.now()
	if now.Sub(s.lastPrune) < time.Hour {
		return
	}
	s.lastPrune = now
	for {
		n, err := s.store.PruneFinished(ctx, now.Add(-s.retention), 1000)
		if err != nil {
			s.log.Warn("push: pruning finished publishes failed", zap.Error(err))
			return
		}
		if n < 1000 {
			return
		}
	}
}

// Step does every piece of work due now: it plans due publishes, then sends due deliveries
// until none is left. Tests drive the queue with it and an injected clock.
func (s *Service) Step(ctx context.Context) error {
	if err := s.planDue(ctx); err != nil {
		return err
	}
	for {
		n, err := s.dispatchBatch(ctx)
		if err != nil {
			return err
		}
		if n < claimBatch {
			return nil
		}
	}
}

// planCursor is a publish's expansion progress: target index, position in the target's
// list, and the user of a channel's user subscription being expanded.
type planCursor struct {
	T  int    `json:"t"`
	P  string `json:"p,omitempty"`
	C  string `json:"c,omitempty"`
	CP string `json:"cp,omitempty"`
}

func (s *Service) planDue(ctx context.Context) error {
	for {
		now := s.now()
		p, err := s.store.ClaimPublish(ctx, now, now.Add(leaseFor))
		if err != nil || p == nil {
			return err
		}
		if err := s.plan(ctx, p); err != nil {
			return err
		}
	}
}

// plan expands a claimed publish into deliveries, one page at a time.
func (s *Service) plan(ctx context.Context, p *Publish) error {
	var cur planCursor
	if p.Cursor != "" {
		_ = json.Unmarshal([]byte(p.Cursor), &cur)
	}
	cfg := s.apps[p.AppID]
	for {
		now := s.now()
		p.LeaseUntil = now.Add(leaseFor)
		switch {
		case cfg == nil || !cfg.enabled:
			p.State, p.Error = PublishFailed, "push is not enabled for the app"
			_, err := s.store.PlanPublish(ctx, p, nil, true)
			return err
		case !p.Request.ExpiresAt.IsZero() && !now.Before(p.Request.ExpiresAt):
			p.State, p.Error = PublishExpired, "expired before it could be sent"
			_, err := s.store.PlanPublish(ctx, p, nil, true)
			return err
		}
		ds, done, err := s.expand(ctx, p, &cur, now)
		if err != nil {
			return err
		}
		p.Cursor = string(marshal(cur))
		if _, err := s.store.PlanPublish(ctx, p, ds, done); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// expand returns up to planPage deliveries from the cursor on, and whether the publish is
// fully expanded.
func (s *Service) expand(ctx context.Context, p *Publish, cur *planCursor, now time.Time) ([]*Delivery, bool, error) {
	targets := p.Request.Targets
	var out []*Delivery
	add := func(ds []*Device) {
		for _, d := range ds {
			out = append(out, &Delivery{AppID: p.AppID, PublishID: p.ID, DeviceID: d.ID, ClientID: d.ClientID,
				Platform: d.Platform, State: DeliveryPending, Due: now, ExpiresAt: p.Request.ExpiresAt, UpdatedAt: now})
		}
	}
	for len(out) < planPage && cur.T < len(targets) {
		t := targets[cur.T]
		want := planPage - len(out)
		switch {
		case t.Kind == TargetDevice:
			ds, err := s.store.GetDevices(ctx, p.AppID, []string{t.ID})
			if err != nil {
				return nil, false, err
			}
			add(ds)
			*cur = planCursor{T: cur.T + 1}
		case t.Kind == TargetClient || cur.C != "":
			client := t.ID
			if t.Kind == TargetChannel {
				client = cur.C
			}
			ds, err := s.store.ListDevices(ctx, p.AppID, client, cur.CP, want)
			if err != nil {
				return nil, false, err
			}
			add(ds)
			switch {
			case len(ds) == want:
				cur.CP = ds[len(ds)-1].ID
			case t.Kind == TargetChannel:
				cur.C, cur.CP = "", ""
			default:
				*cur = planCursor{T: cur.T + 1}
			}
		default: // a channel: its device interests, then each user interest's devices
			subs, err := s.store.ListSubscriptions(ctx, p.AppID, Filter{Channel: t.ID}, cur.P, want)
			if err != nil {
				return nil, false, err
			}
			if len(subs) == 0 {
				*cur = planCursor{T: cur.T + 1}
				continue
			}
			var ids []string
			for _, sb := range subs {
				cur.P = sb.key()
				if sb.DeviceID == "" {
					cur.C = sb.ClientID
					break
				}
				ids = append(ids, sb.DeviceID)
			}
			ds, err := s.store.GetDevices(ctx, p.AppID, ids)
			if err != nil {
				return nil, false, err
			}
			add(ds)
		}
	}
	return out, cur.T >= len(targets), nil
}

// dispatchBatch claims and sends one batch of due deliveries; it returns how many it
// claimed.
func (s *Service) dispatchBatch(ctx context.Context) (int, error) {
	now := s.now()
	ds, err := s.store.ClaimDeliveries(ctx, now, now.Add(leaseFor), claimBatch)
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	devices, pubs, err := s.loadFor(ctx, ds)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	for _, d := range ds {
		dev, pub := devices[d.AppID+"\x00"+d.DeviceID], pubs[d.AppID+"\x00"+d.PublishID]
		if !s.prepare(d, dev, pub, now) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.send(ctx, d, dev, pub)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return len(ds), ctx.Err() // cancelled sends stay leased and are retried later
	}
	if err := s.store.FinishDeliveries(ctx, ds); err != nil {
		return len(ds), err
	}
	s.afterBatch(ctx, ds)
	return len(ds), nil
}

// loadFor fetches the devices and publishes of a batch.
func (s *Service) loadFor(ctx context.Context, ds []*Delivery) (map[string]*Device, map[string]*Publish, error) {
	byApp := map[string][]string{}
	pubs := map[string]*Publish{}
	for _, d := range ds {
		byApp[d.AppID] = append(byApp[d.AppID], d.DeviceID)
		k := d.AppID + "\x00" + d.PublishID
		if _, ok := pubs[k]; ok {
			continue
		}
		if v, ok := s.pubCache.Load(k); ok {
			pubs[k] = v.(*Publish)
			continue
		}
		p, err := s.store.GetPublish(ctx, d.AppID, d.PublishID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, nil, err
		}
		pubs[k] = p
		if p != nil {
			s.pubCache.Store(k, p)
		}
	}
	devices := map[string]*Device{}
	for app, ids := range byApp {
		devs, err := s.store.GetDevices(ctx, app, ids)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range devs {
			devices[app+"\x00"+d.ID] = d
		}
	}
	return devices, pubs, nil
}

// prepare settles the deliveries that need no send (expired, device gone, no provider,
// rate-limited) and reports whether d is to be sent.
func (s *Service) prepare(d *Delivery, dev *Device, pub *Publish, now time.Time) bool {
	d.UpdatedAt = now
	cfg := s.apps[d.AppID]
	switch {
	case pub == nil:
		d.State, d.Reason = DeliveryFailed, "publish no longer exists"
	case !d.ExpiresAt.IsZero() && !now.Before(d.ExpiresAt):
		d.State, d.Reason = DeliveryExpired, "expired before it could be delivered: "+orStr(d.Reason, "not sent")
	case dev == nil:
		d.State, d.Reason = DeliveryFailed, "device is no longer registered"
	case cfg == nil || cfg.providers[dev.Platform] == nil:
		d.State, d.Reason = DeliveryFailed, noProviderReason(d.AppID, dev.Platform)
	case cfg.deliveries != nil && !cfg.deliveries.take(now):
		d.Due = now.Add(cfg.deliveries.wait(now))
		s.metrics.PushRateLimited(d.AppID)
		return false // stays pending, attempts unchanged
	default:
		return true
	}
	s.metrics.PushDelivery(d.AppID, string(d.Platform), d.State)
	return false
}

func noProviderReason(appID string, p Platform) string {
	name := map[Platform]string{APNs: "APNs", FCM: "FCM", Web: "Web Push"}[p]
	return "no " + name + " credentials configured for app " + appID + " (apps[].push." + string(p) + ")"
}

// send delivers d through its provider and records the outcome on d.
func (s *Service) send(ctx context.Context, d *Delivery, dev *Device, pub *Publish) {
	cfg := s.apps[d.AppID]
	n := &Notification{PublishID: pub.ID, Payload: &pub.Request.Payload, Override: pub.Request.Overrides[dev.Platform], ExpiresAt: d.ExpiresAt}
	res := cfg.providers[dev.Platform].Send(ctx, dev, n)
	now := s.now()
	d.Attempts++
	d.Status, d.Reason, d.UpdatedAt = res.Status, res.Reason, now
	s.metrics.PushDelivery(d.AppID, string(dev.Platform), res.Outcome.String())
	switch res.Outcome {
	case Delivered:
		d.State, d.ProviderID, d.Reason = DeliveryDelivered, res.ID, ""
	case Unregistered:
		d.State, d.TokenRemoved = DeliveryFailed, true
	case Rejected:
		d.State = DeliveryFailed
	case Retry:
		wait := s.backoff(cfg, d.Attempts)
		wait = max(wait, res.RetryAfter)
		switch {
		case cfg.maxAttempts > 0 && d.Attempts >= cfg.maxAttempts:
			d.State, d.Reason = DeliveryFailed, "gave up after "+itoa(d.Attempts)+" attempts: "+res.String()
		case !d.ExpiresAt.IsZero() && now.Add(wait).After(d.ExpiresAt):
			d.State, d.Reason = DeliveryExpired, "retry window ended: "+res.String()
		default:
			d.State, d.Due, d.Reason = DeliveryPending, now.Add(wait), res.String()
		}
	}
	if d.State != DeliveryPending && d.State != DeliveryDelivered && res.Outcome != Retry {
		s.log.Info("push delivery failed", zap.String("app_id", d.AppID), zap.String("publish_id", d.PublishID),
			zap.String("device_id", d.DeviceID), zap.String("result", res.String()))
	}
}

// backoff is the wait before retry n (1-based): initial × 2^(n-1), capped, jittered.
func (s *Service) backoff(cfg *appCfg, n int) time.Duration {
	w := cfg.initial
	for i := 1; i < n && w < cfg.maxBackoff; i++ {
		w *= 2
	}
	w = min(w, cfg.maxBackoff)
	return time.Duration(float64(w) * s.jitter())
}

func randomJitter() float64 { return 0.8 + 0.4*rand.Float64() }

// afterBatch removes unregistered devices, records failures on devices and tells the
// failure observer.
func (s *Service) afterBatch(ctx context.Context, ds []*Delivery) {
	for _, d := range ds {
		switch {
		case d.TokenRemoved:
			if _, err := s.store.DeleteDevice(ctx, d.AppID, d.DeviceID); err != nil {
				s.log.Warn("push: removing an unregistered device failed", zap.String("device_id", d.DeviceID), zap.Error(err))
			}
		case d.State == DeliveryFailed && d.Attempts > 0:
			_ = s.store.MarkDevice(ctx, d.AppID, d.DeviceID, true, d.Reason)
		}
		if (d.State == DeliveryFailed || d.State == DeliveryExpired) && s.failures != nil {
			s.failures.PushDeliveryFailed(d.AppID, d.PublishID, d.DeviceID, d.ClientID, string(d.Platform), d.Reason, d.TokenRemoved)
		}
	}
	s.forgetPublishes(ctx, ds)
}

// forgetPublishes drops the batch's finished publishes from the payload cache (one look-up
// per publish of the batch).
func (s *Service) forgetPublishes(ctx context.Context, ds []*Delivery) {
	seen := map[string]bool{}
	for _, d := range ds {
		k := d.AppID + "\x00" + d.PublishID
		if seen[k] {
			continue
		}
		seen[k] = true
		if _, ok := s.pubCache.Load(k); !ok {
			continue
		}
		if p, err := s.store.GetPublish(ctx, d.AppID, d.PublishID); err == nil && p.terminal() {
			s.pubCache.Delete(k)
		}
	}
}

func orStr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// bucket is a token bucket of perSecond tokens refilled continuously, holding one second.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(perSecond int) *bucket {
	return &bucket{rate: float64(perSecond), tokens: float64(perSecond)}
}

func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.rate, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// take takes one token at now.
func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// wait is how long until a token is free.
func (b *bucket) wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
