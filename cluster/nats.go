package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/replication"
)

// NATSOptions configures NewNATS. Every zero field means its documented default.
type NATSOptions struct {
	// URL is the server URL, or a comma-separated list of them. Default nats.DefaultURL
	// (nats://127.0.0.1:4222).
	URL string
	// Prefix starts every subject: app subjects are "{Prefix}.{app}". It is one or more
	// dot-separated tokens without wildcards or whitespace. Default DefaultPrefix. Nodes of
	// one cluster must share it.
	Prefix string
	// NodeID identifies this node. Default: random.
	NodeID string
	// Logger receives connection state changes. Default: none.
	Logger *zap.Logger
	// ReconnectWait is the pause between reconnect attempts (nats.go adds jitter). Default
	// 500ms. Attempts never stop.
	ReconnectWait time.Duration
	// PingInterval is how often the client pings the server; two unanswered pings mark the
	// connection lost. Default 5s.
	PingInterval time.Duration
	// DialTimeout bounds connecting to a server. Default 2s.
	DialTimeout time.Duration
	// WriteTimeout bounds a write blocked on the server's socket. Default 3s.
	WriteTimeout time.Duration
	// Extra holds further nats.go options (credentials, TLS, ...), applied before pushwire's
	// own (reconnect forever, no reconnect buffer, no echo, the timeouts above).
	Extra []nats.Option
}

// NATS is a replication.Broker over NATS core pub/sub (no JetStream): one connection per
// node, one wildcard subscription "{prefix}.>", nats.go's reconnect loop set to retry
// forever. Envelopes larger than the server's max_payload travel as fragments. See the
// package doc.
type NATS struct {
	nc     *nats.Conn
	node   string
	prefix string
	log    *zap.Logger
	opts   NATSOptions

	// subReady is true while the subscription is known to be registered on the server
	// connected to: set by a flush after Start and after each reconnect, cleared on
	// disconnect. gen orders those events so a late flush cannot undo a disconnect.
	stateMu  sync.Mutex
	gen      uint64
	subReady bool

	pubMu sync.Mutex // keeps one envelope's fragments together
	seq   uint64     // fragmented envelopes published, under pubMu

	mu      sync.Mutex
	started bool
	running bool
	closed  bool
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the delivery goroutine has exited

	closedFlag atomic.Bool
}

var _ replication.Broker = (*NATS)(nil)

// NewNATS connects to NATS within ctx (and DialTimeout). Reconnecting later is automatic and
// never gives up; only this first connection must succeed.
func NewNATS(ctx context.Context, o NATSOptions) (*NATS, error) {
	if o.URL == "" {
		o.URL = nats.DefaultURL
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := checkSubjectPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.NodeID == "" {
		o.NodeID = newNodeID()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 500 * time.Millisecond
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 3 * time.Second
	}
	n := &NATS{
		node:   o.NodeID,
		prefix: o.Prefix,
		log:    o.Logger.With(zap.String("broker", "nats"), zap.String("node", o.NodeID)),
		opts:   o,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	dial := o.DialTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < dial {
		dial = time.Until(d)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cluster: nats connect: %w", err)
	}
	opts := append(append([]nats.Option(nil), o.Extra...),
		nats.Name("pushwire-"+o.NodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(o.ReconnectWait),
		nats.ReconnectBufSize(-1), // fail publishes while disconnected instead of queueing them
		nats.NoEcho(),
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(2),
		nats.Timeout(dial),
		nats.FlusherTimeout(o.WriteTimeout),
		nats.DisconnectErrHandler(n.onDisconnect),
		nats.ReconnectHandler(n.onReconnect),
		nats.ClosedHandler(func(*nats.Conn) { n.log.Debug("cluster: nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			n.log.Warn("cluster: nats async error", zap.Error(err))
		}),
	)
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: nats connect %s: %w", o.URL, err)
	}
	n.nc = nc
	return n, nil
}

// checkSubjectPrefix rejects prefixes that are not plain NATS subject tokens.
func checkSubjectPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("cluster: nats prefix %q: want dot-separated tokens without wildcards or whitespace", p)
		}
	}
	return nil
}

func (n *NATS) onDisconnect(_ *nats.Conn, err error) {
	n.stateMu.Lock()
	n.gen++
	n.subReady = false
	n.stateMu.Unlock()
	if !n.closedFlag.Load() {
		n.log.Warn("cluster: nats disconnected; reconnecting", zap.Error(err))
	}
}

func (n *NATS) onReconnect(nc *nats.Conn) {
	n.log.Info("cluster: nats reconnected", zap.String("server", nc.ConnectedUrlRedacted()))
	n.stateMu.Lock()
	n.gen++
	gen := n.gen
	n.stateMu.Unlock()
	go n.confirm(gen)
}

// confirm flushes (a PING/PONG round trip, so the server has processed the resent
// subscription) and marks the subscription ready unless the connection changed meanwhile.
func (n *NATS) confirm(gen uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.DialTimeout+n.opts.WriteTimeout)
	defer cancel()
	if err := n.nc.FlushWithContext(ctx); err != nil {
		n.log.Warn("cluster: nats flush after reconnect failed", zap.Error(err))
		return
	}
	n.stateMu.Lock()
	if n.gen == gen {
		n.subReady = true
	}
	n.stateMu.Unlock()
}

// NodeID returns this node's id.
func (n *NATS) NodeID() string { return n.node }

// subject returns the subject of appID.
func (n *NATS) subject(appID string) string { return n.prefix + "." + appToken(appID) }

// Publish sends env to the other nodes. It fails at once while the connection is down
// (there is no reconnect buffer); the envelope may then be lost.
func (n *NATS) Publish(ctx context.Context, appID string, env []byte) error {
	if err := checkAppID(appID); err != nil {
		return err
	}
	if n.closedFlag.Load() {
		return fmt.Errorf("cluster: nats publish: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cluster: nats publish: %w", err)
	}
	subj := n.subject(appID)
	limit := int(n.nc.MaxPayload())
	if limit <= 0 {
		limit = 1 << 20
	}
	head := 1 + binary.MaxVarintLen64 + len(n.node)
	if head+len(env) <= limit {
		if err := n.nc.Publish(subj, encodeWhole(n.node, env)); err != nil {
			return fmt.Errorf("cluster: nats publish to app %q: %w", appID, err)
		}
		return nil
	}
	chunk := limit - head - 3*binary.MaxVarintLen64
	if chunk < 1024 {
		return fmt.Errorf("cluster: nats publish to app %q: server max_payload %d too small", appID, limit)
	}
	count := (len(env) + chunk - 1) / chunk
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	n.seq++
	buf := make([]byte, 0, head+3*binary.MaxVarintLen64+chunk)
	for i := 0; i < count; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cluster: nats publish to app %q: fragment %d of %d: %w", appID, i, count, err)
		}
		b := appendHeader(buf[:0], kindFragment, n.node)
		b = binary.AppendUvarint(b, n.seq)
		b = binary.AppendUvarint(b, uint64(i))
		b = binary.AppendUvarint(b, uint64(count))
		b = append(b, env[i*chunk:min((i+1)*chunk, len(env))]...)
		if err := n.nc.Publish(subj, b); err != nil {
			return fmt.Errorf("cluster: nats publish to app %q: fragment %d of %d: %w", appID, i, count, err)
		}
	}
	return nil
}

// Start subscribes to "{prefix}.>", waits within ctx (and DialTimeout) for the server to
// register it, then delivers other nodes' envelopes to handle from one goroutine until
// Close. nats.go resubscribes after reconnecting. ctx only bounds the subscription.
func (n *NATS) Start(ctx context.Context, handle func(appID, fromNode string, env []byte)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return fmt.Errorf("cluster: nats start: %w", ErrClosed)
	case n.started:
		return errors.New("cluster: nats start: already started")
	}
	subj := n.prefix + ".>"
	sub, err := n.nc.SubscribeSync(subj)
	if err != nil {
		return fmt.Errorf("cluster: nats start: subscribe %q: %w", subj, err)
	}
	n.stateMu.Lock()
	gen := n.gen
	n.stateMu.Unlock()
	fctx, cancel := context.WithTimeout(ctx, n.opts.DialTimeout+n.opts.WriteTimeout)
	defer cancel()
	if err := n.nc.FlushWithContext(fctx); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("cluster: nats start: subscribe %q: flush: %w", subj, err)
	}
	n.stateMu.Lock()
	if n.gen == gen {
		n.subReady = true
	}
	n.stateMu.Unlock()
	n.started, n.running = true, true
	go n.run(sub, handle)
	return nil
}

// run hands the subscription's messages to handle until Close.
func (n *NATS) run(sub *nats.Subscription, handle func(appID, fromNode string, env []byte)) {
	defer close(n.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	asm := reassembler{parts: make(map[string]*partial)}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.log.Warn("cluster: nats: envelopes dropped: handler too slow", zap.Error(err))
				continue
			}
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
				n.log.Error("cluster: nats: subscription ended", zap.Error(err))
				return
			}
			n.log.Warn("cluster: nats: receive", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		n.deliver(&asm, msg, handle)
	}
}

// deliver decodes one message (reassembling fragments) and hands complete envelopes from
// other nodes to handle.
func (n *NATS) deliver(asm *reassembler, msg *nats.Msg, handle func(appID, fromNode string, env []byte)) {
	tok, ok := strings.CutPrefix(msg.Subject, n.prefix+".")
	if !ok {
		return
	}
	app, err := appFromToken(tok)
	if err != nil {
		n.log.Warn("cluster: nats: dropped message on bad subject", zap.String("subject", msg.Subject), zap.Error(err))
		return
	}
	f, err := decodeFrame(msg.Data)
	if err != nil {
		n.log.Warn("cluster: nats: dropped malformed frame", zap.String("subject", msg.Subject), zap.Error(err))
		return
	}
	if f.node == n.node {
		return
	}
	if f.kind == kindWhole {
		handle(app, f.node, f.body) // msg.Data is ours: nats.go allocates it per message
		return
	}
	env, complete, lost := asm.add(f, time.Now())
	if lost {
		n.log.Warn("cluster: nats: dropped an envelope with missing fragments", zap.String("from", f.node))
	}
	if complete {
		handle(app, f.node, env)
	}
}

// Healthy reports whether the connection is up and, once started, the subscription is
// registered on the server.
func (n *NATS) Healthy() bool {
	if n.closedFlag.Load() || !n.nc.IsConnected() {
		return false
	}
	n.mu.Lock()
	started := n.started
	n.mu.Unlock()
	if !started {
		return true
	}
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	return n.subReady
}

// Close stops delivery, waiting for an envelope being handled (so it must not be called from
// the handler), and closes the connection. Closing twice is harmless.
func (n *NATS) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.closedFlag.Store(true)
	running := n.running
	close(n.stop)
	n.mu.Unlock()
	if running {
		<-n.done
	}
	n.nc.Close()
	return nil
}

// reassembler joins fragmented envelopes, one in progress per sending node.
type reassembler struct {
	parts map[string]*partial
	swept time.Time
}

type partial struct {
	seq, next, count uint64
	buf              []byte
	at               time.Time
}

// maxReassembled bounds a reassembled envelope.
const maxReassembled = 256 << 20

// add takes one fragment. It returns the envelope when f completes one, and lost when an
// envelope in progress from f's node was abandoned (a fragment went missing).
func (a *reassembler) add(f frame, now time.Time) (env []byte, complete, lost bool) {
	if now.Sub(a.swept) > time.Minute { // forget envelopes of nodes that died mid-publish
		for k, p := range a.parts {
			if now.Sub(p.at) > time.Minute {
				delete(a.parts, k)
			}
		}
		a.swept = now
	}
	p := a.parts[f.node]
	if f.index == 0 {
		lost = p != nil
		p = &partial{seq: f.seq, count: f.count, buf: make([]byte, 0, min(f.count*uint64(len(f.body)), maxReassembled))}
		a.parts[f.node] = p
	} else if p == nil || p.seq != f.seq || p.next != f.index || p.count != f.count {
		delete(a.parts, f.node)
		return nil, false, true
	}
	if len(p.buf)+len(f.body) > maxReassembled {
		delete(a.parts, f.node)
		return nil, false, true
	}
	p.buf = append(p.buf, f.body...)
	p.next++
	p.at = now
	if p.next == p.count {
		delete(a.parts, f.node)
		return p.buf, true, lost
	}
	return nil, false, lost
}
