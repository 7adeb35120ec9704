package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/replication"
)

// RedisOptions configures NewRedis. Every zero field means its documented default.
type RedisOptions struct {
	// URL is a redis:// or rediss:// URL as understood by redis.ParseURL (address, password,
	// database, TLS). It wins over Addr.
	URL string
	// Addr is the server's host:port, used when URL is empty. Default "127.0.0.1:6379".
	Addr string
	// Prefix starts every pub/sub channel name: app channels are "{Prefix}:{app}".
	// Default DefaultPrefix. Nodes of one cluster must share it.
	Prefix string
	// NodeID identifies this node. Default: random.
	NodeID string
	// Logger receives connection state changes. Default: none.
	Logger *zap.Logger
	// HealthInterval is how long the subscription may stay silent before it is pinged; a
	// ping unanswered for another interval drops and redials the connection. Default 5s.
	HealthInterval time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between resubscribe attempts, which
	// doubles from ReconnectMin up to ReconnectMax. Defaults 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// DialTimeout bounds connecting to Redis. Default 2s.
	DialTimeout time.Duration
	// IOTimeout bounds each read and write of a command (Publish), when ctx allows longer.
	// Default 3s.
	IOTimeout time.Duration
}

// Redis is a replication.Broker over Redis pub/sub. Publish uses go-redis's connection pool,
// without retries (a retried PUBLISH may arrive twice); delivery uses one dedicated
// subscription connection, kept up by a goroutine that redials forever. See the package doc.
type Redis struct {
	client  *redis.Client
	node    string
	prefix  string
	pattern string
	log     *zap.Logger
	opts    RedisOptions

	healthy atomic.Bool

	mu      sync.Mutex
	ps      *redis.PubSub // the current subscription; nil between attempts
	started bool          // Start was called (and has not failed)
	running bool          // the subscription goroutine was launched
	closed  bool
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the subscription goroutine has exited
}

var _ replication.Broker = (*Redis)(nil)

// NewRedis connects to Redis and checks it answers PING within ctx. Reconnecting later is
// automatic; only this first connection must succeed.
func NewRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.NodeID == "" {
		o.NodeID = newNodeID()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 5 * time.Second
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 100 * time.Millisecond
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 5 * time.Second
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 3 * time.Second
	}
	var ro *redis.Options
	if o.URL != "" {
		var err error
		if ro, err = redis.ParseURL(o.URL); err != nil {
			return nil, fmt.Errorf("cluster: redis url: %w", err)
		}
	} else {
		ro = &redis.Options{Addr: o.Addr}
		if ro.Addr == "" {
			ro.Addr = "127.0.0.1:6379"
		}
	}
	ro.ClientName = "pushwire-" + o.NodeID
	ro.MaxRetries = -1 // never retry: a retried PUBLISH can be delivered twice
	ro.DialTimeout = o.DialTimeout
	ro.DialerRetries = 1
	ro.ReadTimeout = o.IOTimeout
	ro.WriteTimeout = o.IOTimeout
	ro.ContextTimeoutEnabled = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	r := &Redis{
		client:  redis.NewClient(ro),
		node:    o.NodeID,
		prefix:  o.Prefix,
		pattern: globEscape(o.Prefix) + ":*",
		log:     o.Logger.With(zap.String("broker", "redis"), zap.String("node", o.NodeID)),
		opts:    o,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		_ = r.client.Close()
		return nil, fmt.Errorf("cluster: redis %s: ping: %w", ro.Addr, err)
	}
	r.healthy.Store(true)
	return r, nil
}

// globEscape escapes the Redis glob metacharacters in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\^`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// NodeID returns this node's id.
func (r *Redis) NodeID() string { return r.node }

// channel returns the pub/sub channel of appID.
func (r *Redis) channel(appID string) string { return r.prefix + ":" + appToken(appID) }

// Publish sends env to the other nodes with PUBLISH. It returns an error, and the envelope
// may be lost, when Redis cannot be reached within ctx (and the dial and I/O timeouts).
func (r *Redis) Publish(ctx context.Context, appID string, env []byte) error {
	if err := checkAppID(appID); err != nil {
		return err
	}
	if r.isClosed() {
		return fmt.Errorf("cluster: redis publish: %w", ErrClosed)
	}
	if err := r.client.Publish(ctx, r.channel(appID), encodeWhole(r.node, env)).Err(); err != nil {
		return fmt.Errorf("cluster: redis publish to app %q: %w", appID, err)
	}
	return nil
}

func (r *Redis) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Start subscribes (PSUBSCRIBE "{prefix}:*"), waits within ctx for Redis to confirm it, then
// delivers other nodes' envelopes to handle from one goroutine until Close, resubscribing
// after any connection loss. ctx only bounds the first subscription.
func (r *Redis) Start(ctx context.Context, handle func(appID, fromNode string, env []byte)) error {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return fmt.Errorf("cluster: redis start: %w", ErrClosed)
	case r.started:
		r.mu.Unlock()
		return errors.New("cluster: redis start: already started")
	}
	r.started = true
	r.mu.Unlock()

	ps, err := r.subscribe(ctx)
	if err != nil {
		r.healthy.Store(false)
		r.mu.Lock()
		r.started = false
		r.mu.Unlock()
		return fmt.Errorf("cluster: redis start: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = ps.Close()
		return fmt.Errorf("cluster: redis start: %w", ErrClosed)
	}
	r.running = true
	go r.run(ps, handle)
	return nil
}

// subscribe opens a subscription connection and waits for Redis to confirm the pattern.
// On success the subscription becomes r.ps and the broker healthy.
func (r *Redis) subscribe(ctx context.Context) (*redis.PubSub, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.DialTimeout+r.opts.IOTimeout)
	defer cancel()
	ps := r.client.PSubscribe(ctx) // no pattern yet, so the error is not lost
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = ps.Close()
		return nil, ErrClosed
	}
	r.ps = ps
	r.mu.Unlock()
	fail := func(err error) (*redis.PubSub, error) {
		r.mu.Lock()
		if r.ps == ps {
			r.ps = nil
		}
		r.mu.Unlock()
		_ = ps.Close()
		return nil, err
	}
	if err := ps.PSubscribe(ctx, r.pattern); err != nil {
		return fail(fmt.Errorf("psubscribe %q: %w", r.pattern, err))
	}
	deadline, _ := ctx.Deadline()
	for {
		msg, err := ps.ReceiveTimeout(ctx, time.Until(deadline))
		if err != nil {
			return fail(fmt.Errorf("psubscribe %q: confirmation: %w", r.pattern, err))
		}
		if s, ok := msg.(*redis.Subscription); ok && s.Kind == "psubscribe" && s.Channel == r.pattern {
			r.healthy.Store(true)
			return ps, nil
		}
	}
}

// run delivers envelopes from ps and, whenever the connection fails, redials with backoff
// until it is subscribed again, until Close.
func (r *Redis) run(ps *redis.PubSub, handle func(appID, fromNode string, env []byte)) {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		err := r.receive(ctx, ps, handle)
		r.healthy.Store(false)
		r.mu.Lock()
		if r.ps == ps {
			r.ps = nil
		}
		r.mu.Unlock()
		_ = ps.Close()
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("cluster: redis subscription lost; resubscribing", zap.Error(err))
		for attempt := 0; ; attempt++ {
			select {
			case <-r.stop:
				return
			case <-time.After(backoff(attempt, r.opts.ReconnectMin, r.opts.ReconnectMax)):
			}
			if ps, err = r.subscribe(ctx); err == nil {
				r.log.Info("cluster: redis subscription restored", zap.Int("attempts", attempt+1))
				break
			}
			if ctx.Err() != nil {
				return
			}
			if attempt == 0 || attempt%20 == 19 {
				r.log.Warn("cluster: redis resubscribe failed", zap.Int("attempt", attempt+1), zap.Error(err))
			}
		}
	}
}

// receive reads ps until its connection fails or ctx ends, handing envelopes to handle. A
// silent connection is pinged every HealthInterval; a ping with no reply for a whole
// interval counts as a failure.
func (r *Redis) receive(ctx context.Context, ps *redis.PubSub, handle func(appID, fromNode string, env []byte)) error {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, r.opts.HealthInterval)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return fmt.Errorf("receive: %w", err)
			}
			if pinged {
				return fmt.Errorf("no reply to ping within %s", r.opts.HealthInterval)
			}
			if err := ps.Ping(ctx); err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			r.deliver(m, handle)
		case *redis.Subscription:
			if m.Kind == "punsubscribe" {
				return fmt.Errorf("unsubscribed from %q", m.Channel)
			}
		}
	}
}

// deliver decodes one pub/sub message and hands it to handle unless it is this node's own.
func (r *Redis) deliver(m *redis.Message, handle func(appID, fromNode string, env []byte)) {
	tok, ok := strings.CutPrefix(m.Channel, r.prefix+":")
	if !ok {
		return
	}
	app, err := appFromToken(tok)
	if err != nil {
		r.log.Warn("cluster: redis: dropped message on bad channel", zap.String("channel", m.Channel), zap.Error(err))
		return
	}
	f, err := decodeFrame([]byte(m.Payload))
	if err != nil || f.kind != kindWhole {
		r.log.Warn("cluster: redis: dropped malformed frame", zap.String("channel", m.Channel), zap.Error(err))
		return
	}
	if f.node == r.node {
		return
	}
	handle(app, f.node, f.body)
}

// Healthy reports whether the subscription is confirmed and its connection up. Before Start
// it reports whether NewRedis reached the server.
func (r *Redis) Healthy() bool {
	return r.healthy.Load() && !r.isClosed()
}

// Close stops delivery, waiting for an envelope being handled (so it must not be called from
// the handler), and closes the connections. Closing twice is harmless.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	running := r.running
	ps := r.ps
	close(r.stop)
	r.mu.Unlock()
	r.healthy.Store(false)
	if ps != nil {
		_ = ps.Close() // unblocks a pending read
	}
	if running {
		<-r.done
	}
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("cluster: redis close: %w", err)
	}
	return nil
}
