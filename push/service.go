package push

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/config"
)

// Metrics counts what push does. *metrics.Metrics implements it; methods must be cheap and
// safe for concurrent use.
type Metrics interface {
	// PushPublished counts an accepted publish.
	PushPublished(appID string)
	// PushDelivery counts one send outcome (delivered, retry, unregistered, rejected,
	// expired) by platform.
	PushDelivery(appID, platform, outcome string)
	// PushRateLimited counts a publish refused with 429 or a delivery held back by the
	// app's rate limit.
	PushRateLimited(appID string)
}

// FailureObserver is told about every delivery that failed for good (the push webhook).
// It must not block.
type FailureObserver interface {
	PushDeliveryFailed(appID, publishID, deviceID, userID, platform, reason string, tokenRemoved bool)
}

// Presence tells the bridge whether a user has a live socket on a channel. *channels.Hub
// implements it.
type Presence interface {
	UserOnChannel(appID, channel, userID string) bool
}

// Options tune a Service. The zero value of each field is its documented default.
type Options struct {
	// Store keeps devices, interests and the queue. Default: a new Memory store.
	Store Store
	// Logger receives delivery problems. Default: none.
	Logger *zap.Logger
	// Now is the clock of schedules, backoff, leases and rate limits. Default time.Now.
	Now func() time.Time
	// Metrics counts publishes and deliveries. Default none.
	Metrics Metrics
	// Failures is told about failed deliveries. Default none.
	Failures FailureObserver
	// Presence answers the bridge's liveness checks. Default none: the bridge is off.
	Presence Presence
	// Concurrency caps the sends in flight at once. Default 64.
	Concurrency int
	// Providers replaces the providers built from an app's credentials (appID → platform →
	// provider), for tests and embedding. Default none.
	Providers map[string]map[Platform]Provider
	// Jitter returns a factor in [0.8, 1.2) applied to retry waits. Default random; tests
	// pass func() float64 { return 1 }.
	Jitter func() float64
	// PollInterval is how often the run loop looks for work queued by other nodes.
	// Default 1s.
	PollInterval time.Duration
	// Retention is how long a finished publish, its per-recipient results and receipts stay
	// readable (GET .../status) before the run loop deletes them. Default 7 days.
	Retention time.Duration
}

// DefaultRetention is how long finished publishes stay readable by default.
const DefaultRetention = 7 * 24 * time.Hour

// Service is pushwire's push notifications: the device and interest registry, publish
// acceptance, the planner that expands publishes into deliveries, the dispatcher that sends
// them, and the realtime bridge. Its methods are safe for concurrent use.
type Service struct {
	store       Store
	log         *zap.Logger
	now         func() time.Time
	metrics     Metrics
	failures    FailureObserver
	presence    Presence
	apps        map[string]*appCfg
	concurrency int
	jitter      func() float64
	poll        time.Duration
	retention   time.Duration
	lastPrune   time.Time

	pubCache sync.Map // app\x00publish → *Publish (payloads of publishes being delivered)

	wake    chan struct{}
	bridgeQ chan bridgeEvent
	stop    context.CancelFunc
	ctx     context.Context
	wg      sync.WaitGroup
	once    sync.Once
	started bool
	mu      sync.Mutex
}

// appCfg is one app's push settings.
type appCfg struct {
	id          string
	enabled     bool
	deliveries  *bucket
	publishes   *bucket
	initial     time.Duration
	maxBackoff  time.Duration
	retryFor    time.Duration
	maxAttempts int
	parse       ParseOptions
	providers   map[Platform]Provider
	bridge      config.PushBridge
}

// New builds the push service for apps (config defaults applied). It builds each app's
// providers from its credentials; bad credentials are an error naming the app and field.
func New(apps []config.App, o Options) (*Service, error) {
	s := &Service{store: o.Store, log: o.Logger, now: o.Now, metrics: o.Metrics, failures: o.Failures,
		presence: o.Presence, apps: map[string]*appCfg{}, concurrency: o.Concurrency, jitter: o.Jitter,
		poll: o.PollInterval, retention: o.Retention, wake: make(chan struct{}, 1), bridgeQ: make(chan bridgeEvent, 1024)}
	if s.store == nil {
		s.store = NewMemory()
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = nopMetrics{}
	}
	if s.concurrency <= 0 {
		s.concurrency = 64
	}
	if s.jitter == nil {
		s.jitter = randomJitter
	}
	if s.poll <= 0 {
		s.poll = time.Second
	}
	if s.retention <= 0 {
		s.retention = DefaultRetention
	}
	for _, a := range apps {
		p := a.Push
		c := &appCfg{id: a.ID, enabled: a.PushOn(), initial: p.RetryInitialBackoff.D(), maxBackoff: p.RetryMaxBackoff.D(),
			retryFor: p.RetryFor.D(), maxAttempts: p.MaxAttempts, bridge: p.Bridge,
			parse:     ParseOptions{AllowPrivateEndpoints: p.AllowPrivateEndpoints, AllowHTTPEndpoints: p.AllowPrivateEndpoints},
			providers: map[Platform]Provider{}}
		if c.initial <= 0 {
			c.initial = config.DefaultPushRetryInitialBackoff
		}
		if c.maxBackoff < c.initial {
			c.maxBackoff = max(c.initial, config.DefaultPushRetryMaxBackoff)
		}
		if c.retryFor <= 0 {
			c.retryFor = config.DefaultPushRetryFor
		}
		if p.RateLimitPerSecond > 0 {
			c.deliveries = newBucket(p.RateLimitPerSecond)
		}
		if p.PublishesPerSecond > 0 {
			c.publishes = newBucket(p.PublishesPerSecond)
		}
		if c.enabled {
			if err := buildProviders(c, p); err != nil {
				return nil, fmt.Errorf("push: app %s: %w", a.ID, err)
			}
		}
		for plat, pr := range o.Providers[a.ID] {
			c.providers[plat] = pr
		}
		s.apps[a.ID] = c
	}
	return s, nil
}

// buildProviders makes the providers an app has credentials for.
func buildProviders(c *appCfg, p config.AppPush) error {
	if x := p.APNs; x != nil {
		key := []byte(x.PrivateKey)
		if x.PrivateKeyFile != "" {
			b, err := os.ReadFile(x.PrivateKeyFile)
			if err != nil {
				return fmt.Errorf("push.apns.private_key_file: %w", err)
			}
			key = b
		}
		roots, err := loadRoots(x.CAFile)
		if err != nil {
			return fmt.Errorf("push.apns.ca_file: %w", err)
		}
		pr, err := NewAPNs(APNsOptions{TeamID: x.TeamID, KeyID: x.KeyID, Key: key, Topic: x.Topic, Production: x.Production, Endpoint: x.Endpoint, RootCAs: roots})
		if err != nil {
			return fmt.Errorf("push.apns: %w", err)
		}
		c.providers[APNs] = pr
	}
	if x := p.FCM; x != nil {
		sa := []byte(x.ServiceAccountJSON)
		if x.ServiceAccountFile != "" {
			b, err := os.ReadFile(x.ServiceAccountFile)
			if err != nil {
				return fmt.Errorf("push.fcm.service_account_file: %w", err)
			}
			sa = b
		}
		roots, err := loadRoots(x.CAFile)
		if err != nil {
			return fmt.Errorf("push.fcm.ca_file: %w", err)
		}
		pr, err := NewFCM(FCMOptions{ServiceAccountJSON: sa, ProjectID: x.ProjectID, Endpoint: x.Endpoint, RootCAs: roots})
		if err != nil {
			return fmt.Errorf("push.fcm: %w", err)
		}
		c.providers[FCM] = pr
	}
	if x := p.Web; x != nil {
		roots, err := loadRoots(x.CAFile)
		if err != nil {
			return fmt.Errorf("push.web.ca_file: %w", err)
		}
		pr, err := NewWebPush(WebPushOptions{VAPIDPublicKey: x.VAPIDPublicKey, VAPIDPrivateKey: x.VAPIDPrivateKey, Subject: x.Subject, RootCAs: roots})
		if err != nil {
			return fmt.Errorf("push.web: %w", err)
		}
		c.providers[Web] = pr
	}
	return nil
}

// loadRoots returns the system roots plus the PEM file's certificates (nil without a file).
func loadRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// app returns the settings of an app with push on.
func (s *Service) app(appID string) (*appCfg, *Error) {
	c := s.apps[appID]
	if c == nil {
		return nil, errf(NotFound, "unknown app %q", protoTrunc(appID))
	}
	if !c.enabled {
		return nil, errf(Disabled, "push notifications are not enabled for app %s (set apps[].push.enabled: true)", appID)
	}
	return c, nil
}

// Enabled reports whether the app has push on.
func (s *Service) Enabled(appID string) bool {
	c := s.apps[appID]
	return c != nil && c.enabled
}

// Caller is who makes a request: an Admin (a request signed with the app secret, Sockudo's
// push-admin) or a device holding its identity Token (push-subscribe).
type Caller struct {
	Admin bool
	Token string
}

// verifyDevice checks the caller may act on device d.
func (c Caller) verifyDevice(d *Device) *Error {
	if c.Admin {
		return nil
	}
	if err := CheckIdentityToken(c.Token); err != nil {
		return err
	}
	if !VerifyIdentityToken(c.Token, d.SecretHash) {
		return errf(Unauthorized, "invalid device identity token for device %q", protoTrunc(d.ID))
	}
	return nil
}

// Registration is the result of registering a device.
type Registration struct {
	// Change is inserted, updated or unchanged.
	Change string
	Device *Device
	// Token is the device identity token, set only when one was issued (first
	// registration, or rotation).
	Token string
}

// RegisterDevice creates or updates a device from a registration body. An admin may
// create devices (a token is issued) and rotate tokens; a device may only update itself,
// with its token, and may not change its user.
func (s *Service) RegisterDevice(ctx context.Context, appID string, body []byte, c Caller, rotate bool) (*Registration, *Error) {
	cfg, perr := s.app(appID)
	if perr != nil {
		return nil, perr
	}
	d, perr := ParseDevice(appID, body, cfg.parse)
	if perr != nil {
		return nil, perr
	}
	old, err := s.store.GetDevice(ctx, appID, d.ID)
	if err != nil && err != ErrNotFound {
		return nil, AsError(err)
	}
	reg := &Registration{Device: d}
	switch {
	case c.Admin && (old == nil || rotate):
		reg.Token, d.SecretHash = NewIdentityToken()
	case c.Admin:
		d.SecretHash = old.SecretHash
	case old == nil:
		return nil, errf(Forbidden, "device %q is not registered: a device can only update its own registration; register it first with a signed request", protoTrunc(d.ID))
	default:
		if perr := c.verifyDevice(old); perr != nil {
			return nil, perr
		}
		if rotate {
			return nil, errf(Forbidden, "rotating a device identity token needs a signed request")
		}
		if d.ClientID != old.ClientID {
			return nil, errf(Forbidden, "a device cannot change its clientId itself; do it with a signed request")
		}
		d.SecretHash = old.SecretHash
	}
	d.State, d.UpdatedAt = StateActive, s.now()
	switch {
	case old == nil:
		reg.Change = "inserted"
	case old.TokenHash() == d.TokenHash() && sameDevice(old, d):
		reg.Change = "unchanged"
		d.State, d.FailureCount, d.ErrorReason = old.State, old.FailureCount, old.ErrorReason
	default:
		reg.Change = "updated"
	}
	if _, err := s.store.PutDevice(ctx, d); err != nil {
		return nil, AsError(err)
	}
	return reg, nil
}

func sameDevice(a, b *Device) bool {
	return a.ClientID == b.ClientID && a.FormFactor == b.FormFactor && a.OS == b.OS && a.Timezone == b.Timezone &&
		a.Locale == b.Locale && string(a.Metadata) == string(b.Metadata) && a.SecretHash == b.SecretHash
}

// GetDevice returns a device the caller may see.
func (s *Service) GetDevice(ctx context.Context, appID, id string, c Caller) (*Device, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, perr
	}
	d, err := s.store.GetDevice(ctx, appID, id)
	if err != nil {
		if err == ErrNotFound {
			return nil, errf(NotFound, "device %q not found", protoTrunc(id))
		}
		return nil, AsError(err)
	}
	if perr := c.verifyDevice(d); perr != nil {
		return nil, perr
	}
	return d, nil
}

// ListDevices pages the app's devices (of clientID when set). It returns the page and the
// cursor of the next one ("" at the end).
func (s *Service) ListDevices(ctx context.Context, appID, clientID, cursor string, limit int) ([]*Device, string, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, "", perr
	}
	after, perr := DecodeCursor(appID, "devices", cursor)
	if perr != nil {
		return nil, "", perr
	}
	ds, err := s.store.ListDevices(ctx, appID, clientID, after, limit+1)
	if err != nil {
		return nil, "", AsError(err)
	}
	next := ""
	if len(ds) > limit {
		ds = ds[:limit]
		next = EncodeCursor(appID, "devices", ds[limit-1].ID)
	}
	return ds, next, nil
}

// DeleteDevice removes a device and its interests. A device may delete itself.
func (s *Service) DeleteDevice(ctx context.Context, appID, id string, c Caller) *Error {
	if _, perr := s.app(appID); perr != nil {
		return perr
	}
	if !c.Admin {
		if _, perr := s.GetDevice(ctx, appID, id, c); perr != nil {
			return perr
		}
	}
	if _, err := s.store.DeleteDevice(ctx, appID, id); err != nil {
		return AsError(err)
	}
	return nil
}

// DeleteDevicesOfClient removes every device of a user (Sockudo's removeWhere clientId).
func (s *Service) DeleteDevicesOfClient(ctx context.Context, appID, clientID string) (int, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return 0, perr
	}
	if perr := checkClientID(clientID, false); perr != nil {
		return 0, perr
	}
	n := 0
	for {
		ds, err := s.store.ListDevices(ctx, appID, clientID, "", 1000)
		if err != nil {
			return n, AsError(err)
		}
		if len(ds) == 0 {
			return n, nil
		}
		for _, d := range ds {
			if ok, err := s.store.DeleteDevice(ctx, appID, d.ID); err != nil {
				return n, AsError(err)
			} else if ok {
				n++
			}
		}
	}
}

// Subscribe adds an interest from a subscription body. A device may subscribe itself.
func (s *Service) Subscribe(ctx context.Context, appID string, body []byte, c Caller) (*Subscription, *Device, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, nil, perr
	}
	sub, perr := ParseSubscription(appID, body)
	if perr != nil {
		return nil, nil, perr
	}
	var dev *Device
	if sub.DeviceID != "" {
		d, perr := s.GetDevice(ctx, appID, sub.DeviceID, c)
		if perr != nil {
			return nil, nil, perr
		}
		if sub.ClientID != "" && sub.ClientID != d.ClientID {
			return nil, nil, errf(Invalid, "clientId %q is not the user of device %q", protoTrunc(sub.ClientID), protoTrunc(d.ID))
		}
		sub.ClientID = ""
		dev = d
	} else if !c.Admin {
		return nil, nil, errf(Forbidden, "a device can only subscribe itself (deviceId); subscribing a user needs a signed request")
	}
	if _, err := s.store.PutSubscription(ctx, *sub); err != nil {
		return nil, nil, AsError(err)
	}
	return sub, dev, nil
}

// ListSubscriptions pages interests. A device may list only its own (DeviceID).
func (s *Service) ListSubscriptions(ctx context.Context, appID string, f Filter, cursor string, limit int, c Caller) ([]Subscription, map[string]*Device, string, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, nil, "", perr
	}
	if perr := s.checkFilterCaller(ctx, appID, f, c, "list"); perr != nil {
		return nil, nil, "", perr
	}
	after, perr := DecodeCursor(appID, "subscriptions", cursor)
	if perr != nil {
		return nil, nil, "", perr
	}
	subs, err := s.store.ListSubscriptions(ctx, appID, f, after, limit+1)
	if err != nil {
		return nil, nil, "", AsError(err)
	}
	next := ""
	if len(subs) > limit {
		subs = subs[:limit]
		next = EncodeCursor(appID, "subscriptions", subs[limit-1].Position(f))
	}
	var ids []string
	for _, sb := range subs {
		if sb.DeviceID != "" {
			ids = append(ids, sb.DeviceID)
		}
	}
	devs := map[string]*Device{}
	if len(ids) > 0 {
		ds, err := s.store.GetDevices(ctx, appID, ids)
		if err != nil {
			return nil, nil, "", AsError(err)
		}
		for _, d := range ds {
			devs[d.ID] = d
		}
	}
	return subs, devs, next, nil
}

func (s *Service) checkFilterCaller(ctx context.Context, appID string, f Filter, c Caller, verb string) *Error {
	if c.Admin {
		return nil
	}
	if f.DeviceID == "" {
		return errf(Forbidden, "a device can only %s its own subscriptions: pass deviceId", verb)
	}
	_, perr := s.GetDevice(ctx, appID, f.DeviceID, c)
	return perr
}

// Unsubscribe removes interests: of a channel, a device or a user, or one of them on one
// channel. A device may remove only its own.
func (s *Service) Unsubscribe(ctx context.Context, appID string, f Filter, c Caller) (int, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return 0, perr
	}
	if f.Channel == "" && f.DeviceID == "" && f.ClientID == "" {
		return 0, errf(Invalid, "delete requires channel, deviceId or clientId")
	}
	if perr := s.checkFilterCaller(ctx, appID, f, c, "remove"); perr != nil {
		return 0, perr
	}
	n, err := s.store.DeleteSubscriptions(ctx, appID, f)
	if err != nil {
		return 0, AsError(err)
	}
	return n, nil
}

// ListChannels pages the channels that have interests.
func (s *Service) ListChannels(ctx context.Context, appID, cursor string, limit int) ([]string, string, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, "", perr
	}
	after, perr := DecodeCursor(appID, "channels", cursor)
	if perr != nil {
		return nil, "", perr
	}
	chs, err := s.store.ListChannels(ctx, appID, after, limit+1)
	if err != nil {
		return nil, "", AsError(err)
	}
	next := ""
	if len(chs) > limit {
		chs = chs[:limit]
		next = EncodeCursor(appID, "channels", chs[limit-1])
	}
	return chs, next, nil
}

// Publish accepts a publish: it checks the payload against every provider's limit, stores
// the publish (scheduled when NotBefore is ahead) and wakes the dispatcher. A publish id
// already used returns the existing publish (idempotent retries).
func (s *Service) Publish(ctx context.Context, appID string, r *Request) (*Publish, *Error) {
	cfg, perr := s.app(appID)
	if perr != nil {
		return nil, perr
	}
	if perr := CheckPayload(&r.Payload, r.Overrides); perr != nil {
		return nil, perr
	}
	now := s.now()
	if cfg.publishes != nil && !cfg.publishes.take(now) {
		s.metrics.PushRateLimited(appID)
		return nil, errf(RateLimited, "too many push publishes for app %s: retry later", appID)
	}
	if r.PublishID == "" {
		r.PublishID = newID()
	}
	p := &Publish{AppID: appID, ID: r.PublishID, Request: *r, State: PublishAccepted, CreatedAt: now, Due: now}
	if r.NotBefore.After(now) {
		p.State, p.Due = PublishScheduled, r.NotBefore
	}
	if p.Request.ExpiresAt.IsZero() {
		p.Request.ExpiresAt = p.Due.Add(cfg.retryFor)
	}
	stored, created, err := s.store.CreatePublish(ctx, p)
	if err != nil {
		return nil, AsError(err)
	}
	if created {
		s.metrics.PushPublished(appID)
		s.Wake()
	}
	return stored, nil
}

// Status returns a publish, a page of its per-recipient results and its receipts.
func (s *Service) Status(ctx context.Context, appID, id, cursor string, limit int) (*Publish, []*Delivery, string, []*DeliveryEvent, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, nil, "", nil, perr
	}
	p, err := s.store.GetPublish(ctx, appID, id)
	if err == ErrNotFound {
		return nil, nil, "", nil, errf(NotFound, "publish %q not found", protoTrunc(id))
	} else if err != nil {
		return nil, nil, "", nil, AsError(err)
	}
	kind := "deliveries:" + id
	after, perr := DecodeCursor(appID, kind, cursor)
	if perr != nil {
		return nil, nil, "", nil, perr
	}
	ds, err := s.store.ListDeliveries(ctx, appID, id, after, limit+1)
	if err != nil {
		return nil, nil, "", nil, AsError(err)
	}
	next := ""
	if len(ds) > limit {
		ds = ds[:limit]
		next = EncodeCursor(appID, kind, ds[limit-1].DeviceID)
	}
	evs, err := s.store.ListDeliveryEvents(ctx, appID, id, 100)
	if err != nil {
		return nil, nil, "", nil, AsError(err)
	}
	return p, ds, next, evs, nil
}

// Cancel cancels a scheduled publish (or one accepted but not yet planned).
func (s *Service) Cancel(ctx context.Context, appID, id string) (*Publish, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, perr
	}
	p, err := s.store.CancelPublish(ctx, appID, id)
	if err == ErrNotFound {
		return nil, errf(NotFound, "scheduled publish %q not found", protoTrunc(id))
	} else if err != nil {
		return nil, AsError(err)
	}
	if p.State != PublishCancelled {
		return p, errf(Conflict, "publish %q is %s: only a scheduled publish not yet dispatched can be cancelled", protoTrunc(id), p.State)
	}
	return p, nil
}

// AddDeliveryEvent stores a delivery receipt reported by the app.
func (s *Service) AddDeliveryEvent(ctx context.Context, appID string, body []byte) (*DeliveryEvent, *Error) {
	if _, perr := s.app(appID); perr != nil {
		return nil, perr
	}
	e, perr := ParseDeliveryEvent(appID, body, s.now())
	if perr != nil {
		return nil, perr
	}
	if err := s.store.AddDeliveryEvent(ctx, e); err != nil {
		return nil, AsError(err)
	}
	return e, nil
}

// Credential describes one provider of an app: whether it has credentials.
type Credential struct {
	Provider   string `json:"provider"`
	Configured bool   `json:"configured"`
}

// Credentials lists the app's providers and whether each is configured.
func (s *Service) Credentials(appID string) ([]Credential, *Error) {
	cfg, perr := s.app(appID)
	if perr != nil {
		return nil, perr
	}
	out := make([]Credential, 0, len(Platforms))
	for _, p := range Platforms {
		out = append(out, Credential{Provider: p.providerName(), Configured: cfg.providers[p] != nil})
	}
	return out, nil
}

// Wake tells the dispatcher new work is queued.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

type nopMetrics struct{}

func (nopMetrics) PushPublished(string)                {}
func (nopMetrics) PushDelivery(string, string, string) {}
func (nopMetrics) PushRateLimited(string)              {}
