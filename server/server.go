package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/internal/bytebudget"
	"github.com/pushwire/pushwire/protocol"
)

// Options tune a Server. The zero value gives the documented defaults.
type Options struct {
	// Logger receives connection logs. Default: no logging.
	Logger *zap.Logger
	// ActivityTimeout is announced to clients and is the silence after which the server
	// pings. Default 120s.
	ActivityTimeout time.Duration
	// PongTimeout is how long the server waits for any frame after its ping. Default 30s.
	PongTimeout time.Duration
	// MaxMessageBytes caps one inbound message: a frame whose header declares more (or a
	// fragment taking its message past it) closes the connection with 1009 before its
	// payload is read. A protocol 2 connection's sockudo:resume may be up to
	// MaxResumeMessageBytes. Default 64 KiB.
	MaxMessageBytes int
	// MaxResumeMessageBytes caps a protocol 2 connection's sockudo:resume message, which
	// names every channel the client resumes in one frame (sockudo-js, sockudo_flutter and the
	// other Sockudo clients send one frame for all of them): a message of up to this size is
	// read whole and, unless it is a resume, closes the connection with 1009. Default
	// ResumeBytesPerChannel × the channels one resume may name (MaxSubscriptionsPerConnection,
	// at most channels.MaxResumeChannels), and never less than MaxMessageBytes.
	MaxResumeMessageBytes int
	// MaxRefusedRequests is how many requests one connection may have refused (error 4301:
	// history, resume and client-event rates; 4100: the subscription cap, a full channel) as a
	// token bucket refilled at one a second: the refusal past it closes the connection with
	// 4301 "Too many refused requests", which Pusher and Sockudo clients do not reconnect
	// from (as Sockudo's terminate_on_limit). A socket that keeps asking after being refused
	// costs the server a parse and an answer each time; this bounds it. Default
	// DefaultMaxRefusedRequests; negative never closes.
	MaxRefusedRequests int
	// WriteQueueMessages caps the frames queued for one connection. Default 1024.
	WriteQueueMessages int
	// WriteQueueBytes caps the bytes queued for one connection. Default 8 MiB.
	WriteQueueBytes int
	// WriteTimeout bounds one socket write. Default 10s.
	WriteTimeout time.Duration
	// MaxConnections caps this node's connections (4100 over it); 0 is unlimited.
	MaxConnections int
	// MaxConnectionsPerIPPerMinute caps new connections from one client address (one IPv6
	// /64) as a token bucket: a burst of this many, refilled at this many per minute. An
	// upgrade over it gets error 4100 "Too many connections from your address" and close
	// 4100, so clients back off and retry. 0 is unlimited.
	MaxConnectionsPerIPPerMinute int
	// TrustForwardedFor takes the client address from the first X-Forwarded-For entry
	// (only behind a proxy you control). Default: the peer address.
	TrustForwardedFor bool
	// Metrics receives connection and message counters. Default: none.
	Metrics Metrics
	// Tap gets connections, disconnections, error frames and slow-consumer closes of the
	// apps someone watches (the debug console). Default none.
	Tap channels.Tap
	// Now is the clock of the per-address limiter and the per-connection request limits.
	// Default time.Now.
	Now func() time.Time
	// Compression negotiates permessage-deflate with clients that offer it. Default
	// (zero) disabled.
	Compression websocket.CompressionMode
	// CompressionThreshold is the smallest message compressed. Default: coder/websocket's
	// (512 bytes without context takeover).
	CompressionThreshold int
	// Transport picks the WebSocket implementation. Default TransportAuto.
	Transport Transport
	// HistoryRequestsPerSecond and HistoryRequestBurst bound each connection's history reads
	// (channel_history requests, subscriptions with rewind) as a token bucket; one over it
	// gets error 4301 (a subscription with rewind fails with a subscription_error) and the
	// connection stays. Defaults DefaultHistoryRequestsPerSecond and
	// DefaultHistoryRequestBurst; a negative rate is unlimited.
	HistoryRequestsPerSecond int
	HistoryRequestBurst      int
	// ServerHistoryReadsPerSecond bounds the history reads of all connections together (a
	// token bucket with a burst of one second's worth): past it a request gets 4301 "Server
	// busy", so many sockets each within their own rate cannot take the CPUs from the
	// fan-out. Default DefaultServerHistoryReadsPerCPU × CPUs; negative is unlimited.
	ServerHistoryReadsPerSecond int
	// ResumeRequestsPerMinute bounds each connection's sockudo:resume requests (a burst of
	// as many); one over it gets error 4301. Default DefaultResumeRequestsPerMinute;
	// negative is unlimited.
	ResumeRequestsPerMinute int
	// ServerResumeChannelsPerSecond paces the channels every connection's resumes work on,
	// together (pace.go): past a short burst, a resume waits before each further channel
	// until the rate allows it, so a storm of resumes queues on its own connections instead
	// of taking the CPU from other channels' fan-out. Default
	// DefaultServerResumeChannelsPerCPU × CPUs; negative is unpaced.
	ServerResumeChannelsPerSecond int
	// CPUs is what the defaults above and the server's pools are sized by (…PerCPU × CPUs).
	// Default runtime.GOMAXPROCS; cmd/pushwire passes the value Go chose before it raises
	// GOMAXPROCS to its floor (config min_procs), so a second P for the garbage collector
	// does not double the paces.
	CPUs int
	// AfterFunc schedules f after d: the waits of the resume pacer. Default time.AfterFunc;
	// tests pass a clock they move by hand (with Now from the same clock).
	AfterFunc func(d time.Duration, f func()) channels.Timer
	// MaxSubscriptionsPerConnection caps the channels one connection is subscribed to; a new
	// subscription over it fails with 4100 (subscription_error LimitReached). Default
	// DefaultMaxSubscriptionsPerConnection; negative is unlimited.
	MaxSubscriptionsPerConnection int
	// InboundBudget is the server-wide cap on bytes held for messages still arriving (shared
	// with the HTTP API's bodies). The epoll transport reserves every byte of buffer it holds
	// for a message not yet complete; a message that would pass the cap fails the connection
	// with close 1013 (Try Again Later), which clients answer by reconnecting, rather than
	// waiting: bytes pinned by a stalled sender would otherwise stall honest ones. nil:
	// unlimited.
	InboundBudget *bytebudget.Budget

	// pollSys replaces the netpoller's system calls (tests inject failures). nil: the kernel.
	pollSys *epollSys
}

// Transport is the WebSocket implementation under the connections.
type Transport string

// Transports.
const (
	// TransportAuto serves plain (non-TLS) connections on TransportEpoll where the platform
	// has it (Linux), unless they agree permessage-deflate with context takeover; everything
	// else is on TransportStd.
	TransportAuto Transport = "auto"
	// TransportStd serves every connection on coder/websocket: a reader goroutine and
	// bufio buffers per connection.
	TransportStd Transport = "std"
	// TransportEpoll is pushwire's event-driven transport: no goroutine and no buffer per
	// idle connection, queued messages written by shared flushers, permessage-deflate
	// without context takeover. TLS connections and those agreeing context takeover still
	// use coder/websocket.
	TransportEpoll Transport = "epoll"
)

func (o *Options) applyDefaults() {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.ActivityTimeout <= 0 {
		o.ActivityTimeout = 120 * time.Second
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = 30 * time.Second
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 64 << 10
	}
	if o.WriteQueueMessages <= 0 {
		o.WriteQueueMessages = 1024
	}
	if o.WriteQueueBytes <= 0 {
		o.WriteQueueBytes = 8 << 20
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == "" {
		o.Transport = TransportAuto
	}
	if o.HistoryRequestsPerSecond == 0 {
		o.HistoryRequestsPerSecond = DefaultHistoryRequestsPerSecond
	}
	if o.HistoryRequestBurst <= 0 {
		o.HistoryRequestBurst = DefaultHistoryRequestBurst
	}
	if o.CPUs <= 0 {
		o.CPUs = runtime.GOMAXPROCS(0)
	}
	if o.ServerHistoryReadsPerSecond == 0 {
		o.ServerHistoryReadsPerSecond = DefaultServerHistoryReadsPerCPU * o.CPUs
	}
	if o.ServerResumeChannelsPerSecond == 0 {
		o.ServerResumeChannelsPerSecond = DefaultServerResumeChannelsPerCPU * o.CPUs
	}
	if o.AfterFunc == nil {
		o.AfterFunc = func(d time.Duration, f func()) channels.Timer { return time.AfterFunc(d, f) }
	}
	if o.ResumeRequestsPerMinute == 0 {
		o.ResumeRequestsPerMinute = DefaultResumeRequestsPerMinute
	}
	if o.MaxSubscriptionsPerConnection == 0 {
		o.MaxSubscriptionsPerConnection = DefaultMaxSubscriptionsPerConnection
	}
	if o.MaxResumeMessageBytes <= 0 {
		o.MaxResumeMessageBytes = DefaultMaxResumeMessageBytes(o.MaxSubscriptionsPerConnection)
	}
	o.MaxResumeMessageBytes = max(o.MaxResumeMessageBytes, o.MaxMessageBytes)
	if o.MaxRefusedRequests == 0 {
		o.MaxRefusedRequests = DefaultMaxRefusedRequests
	}
}

// Server accepts WebSocket connections and serves them against a channels hub.
type Server struct {
	hub     *channels.Hub
	opts    Options
	log     *zap.Logger
	metrics Metrics
	limiter *ipLimiter // nil when unlimited
	// historySlots bounds the history reads (channel_history, rewind, resume) running at
	// once, server-wide: a connection's read side waits for a slot (limits.go).
	historySlots chan struct{}
	historyRate  sharedBucket // Options.ServerHistoryReadsPerSecond
	resumePace   pacer        // Options.ServerResumeChannelsPerSecond
	poll         *netpoller   // nil when every connection uses coder/websocket
	flush        *flusher     // writes pollWire connections' queues; nil with poll
	// goroutines owns every goroutine the server starts (goGroup); Shutdown joins them.
	goroutines goGroup
	// failed receives the error that stopped the epoll transport (Failed).
	failed chan error

	mu       sync.Mutex
	conns    map[*conn]struct{}
	closing  bool
	count    atomic.Int64
	wg       sync.WaitGroup
	activity int // activity timeout in whole seconds, as announced
	draining atomic.Bool
}

// New builds a server for hub.
func New(hub *channels.Hub, opts Options) *Server {
	opts.applyDefaults()
	secs := int(opts.ActivityTimeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	s := &Server{hub: hub, opts: opts, log: opts.Logger, metrics: opts.Metrics, conns: map[*conn]struct{}{}, activity: secs,
		historySlots: make(chan struct{}, max(1, opts.CPUs/2)), failed: make(chan error, 1)}
	if opts.MaxConnectionsPerIPPerMinute > 0 {
		s.limiter = newIPLimiter(opts.MaxConnectionsPerIPPerMinute, opts.Now)
	}
	if opts.Transport != TransportStd {
		p, err := newNetpollerWith(opts.pollSys, pollHooks{spawn: s.goroutines.Go, waitErr: s.pollWaitFailed, fatal: s.pollGaveUp})
		switch {
		case err == nil:
			s.poll, s.flush = p, newFlusher(opts.CPUs, s.goroutines.Go)
		case opts.Transport == TransportEpoll:
			s.log.Warn("ws_transport epoll is not available here: using std", zap.Error(err))
		}
	}
	return s
}

// pollWaitFailed logs and counts a failed epoll_wait; the netpoller retries it.
func (s *Server) pollWaitFailed(err error, failures int) {
	s.log.Error("epoll transport: waiting for readiness failed; retrying", zap.Error(err), zap.Int("failures_in_a_row", failures))
	s.metrics.PollError()
}

// pollGaveUp reports the netpoller's end on Failed: its connections are no longer read.
func (s *Server) pollGaveUp(err error) {
	s.log.Error("epoll transport failed: connections on it are no longer read; the server must shut down", zap.Error(err))
	select {
	case s.failed <- err:
	default:
	}
}

// Failed receives an error if the epoll transport stops working (its netpoller failed
// pollMaxFailures times in a row, each failure logged and counted by Metrics.PollError):
// the connections on it are no longer read, so the process should shut down (Shutdown)
// and exit with the error, for its supervisor to restart it. Nothing arrives otherwise.
func (s *Server) Failed() <-chan error { return s.failed }

// Transport reports the transport plain connections get: TransportEpoll or TransportStd.
func (s *Server) Transport() Transport {
	if s.poll != nil {
		return TransportEpoll
	}
	return TransportStd
}

// Connections returns the number of open WebSocket connections.
func (s *Server) Connections() int { return int(s.count.Load()) }

// SetDraining marks the node as draining (or not): it keeps serving, but Draining reports
// true so a readiness probe can take it out of the load balancer before Shutdown.
func (s *Server) SetDraining(draining bool) { s.draining.Store(draining) }

// Draining reports whether SetDraining(true) or Shutdown was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// Ready reports whether a readiness probe should route new clients here: the opposite of
// Draining. It suits httpapi.Options.Ready.
func (s *Server) Ready() bool { return !s.Draining() }

// ServeHTTP handles GET /app/{key}: it upgrades the request and serves the connection until
// it ends. It is meant to be mounted at /app/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, "/app/")
	if !ok || key == "" || strings.Contains(key, "/") {
		http.Error(w, "pushwire: WebSocket endpoint is /app/{app_key}", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "pushwire: /app/{app_key} expects a WebSocket upgrade (Pusher protocol 7)", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	c := &conn{srv: s, version: protocol.ParseVersion(q.Get("protocol")), socketID: protocol.NewSocketID()}
	params, bad := parseConnParams(c.version, q)
	if bad != "" {
		http.Error(w, "pushwire: "+bad, http.StatusBadRequest)
		return
	}
	c.enc = params.wire
	c.init()
	if err := s.upgrade(w, r, c); err != nil {
		s.log.Debug("websocket upgrade failed", zap.Error(err), zap.String("remote", r.RemoteAddr))
		return
	}
	c.remote = r.RemoteAddr

	if !s.register(c) {
		c.refuse(&protocol.Error{Code: protocol.CodeReconnect, Message: "Server is shutting down"}, reasonShutdown)
		return
	}
	served := false
	defer func() {
		if !served {
			s.unregister(c) // refused; a served connection unregisters in conn.end
		}
	}()
	if s.limiter != nil && !s.limiter.allow(clientKey(r, s.opts.TrustForwardedFor)) {
		c.refuse(&protocol.Error{Code: protocol.CodeOverCapacity, Message: "Too many connections from your address"}, reasonIPRateLimited)
		return
	}
	if s.opts.MaxConnections > 0 && s.count.Load() > int64(s.opts.MaxConnections) {
		c.refuse(&protocol.Error{Code: protocol.CodeOverCapacity, Message: "Over capacity"}, reasonOverCapacity)
		return
	}
	app, ok := s.hub.AppByKey(key)
	if ok && !app.OriginAllowed(r.Header.Get("Origin")) {
		c.refuse(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "Origin not allowed"}, reasonAppRefused)
		return
	}
	// Set before Connect publishes c to the hub, so Send may read it from any goroutine.
	c.appID = app.ID
	opts := channels.ConnOptions{Echo: params.echo, AppendFull: params.appendFull, Wire: params.wire, RollupWindow: params.rollup,
		Pace: c.paceResume}
	if params.token != "" {
		// Checked before connection_established (ws-protocol §3.3); a V1 URL cannot use one.
		if !ok {
			c.refuse(protocol.Errorf(protocol.CodeAppNotFound, "App key %s does not exist", protocol.Truncate(key, 64)), reasonAppRefused)
			return
		}
		if c.version != protocol.V2 {
			c.refuse(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "Authentication error: capability tokens need a protocol=2 connection"}, reasonAuthFailed)
			return
		}
		claims, perr := protocol.ParseCapabilityToken(params.token, app.Key, app.Secret, s.opts.Now())
		if perr != nil {
			c.refuse(perr, reasonAuthFailed)
			return
		}
		opts.Token = claims
	}
	hc, perr := s.hub.ConnectWith(key, c, opts)
	if perr != nil {
		reason := reasonAppRefused
		if perr.Code == protocol.CodeUnauthorized {
			reason = reasonAuthFailed
		}
		c.refuse(perr, reason)
		return
	}
	c.hc = hc
	s.metrics.Connected(c.appID)
	c.record(channels.Activity{Kind: channels.ActConnected, Detail: "protocol " + versionName(c.version).String() + " from " + c.remote})
	served = true
	c.serve(r.Context())
}

// upgrade completes the WebSocket handshake on the transport r gets (pollable) and sets
// c.wire (and c.pw on the epoll transport). A failed upgrade has had its HTTP answer.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, c *conn) error {
	offered, acceptable := deflateOffer(r.Header)
	if s.pollable(r, offered) {
		pw, err := s.acceptPoll(w, r, c, acceptable && s.opts.Compression == websocket.CompressionNoContextTakeover)
		if err != nil {
			return err
		}
		c.wire, c.pw = pw, pw
		return nil
	}
	guard := &frameGuard{}
	ws, err := websocket.Accept(&guardedWriter{ResponseWriter: w, guard: guard}, r, &websocket.AcceptOptions{
		InsecureSkipVerify:   true, // origins are checked per app below, with a Pusher error code
		CompressionMode:      s.opts.Compression,
		CompressionThreshold: s.opts.CompressionThreshold,
		OnPingReceived: func(context.Context, []byte) bool {
			c.touch()
			return true
		},
	})
	if err != nil {
		return err
	}
	guard.limit = int64(c.maxMessage())
	ws.SetReadLimit(int64(c.maxMessage()))
	c.wire = &stdWire{ws: ws, c: c, writeStart: &c.writeStart, guard: guard}
	return nil
}

// register records a connection unless the server is shutting down.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.count.Add(1)
	s.wg.Add(1)
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.count.Add(-1)
	s.wg.Done()
}

// Shutdown marks the node draining, refuses new connections, closes every open one with 4200
// so clients reconnect (to another node), and waits until ctx is done for the connections to
// end and then for every goroutine the server started to exit (the netpoller and its
// callbacks, the flushers, writers, the goroutines ending connections): when it returns nil,
// none is left. (The goroutines net/http runs ServeHTTP on belong to the http.Server: shut
// it down too.) When ctx ends first, the connections still open are dropped and the error
// says what was left; the goroutines still running then are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(&protocol.Error{Code: protocol.CodeReconnect, Message: "Server is shutting down"}, reasonShutdown)
	}
	done := make(chan struct{})
	s.goroutines.Go(func() {
		s.wg.Wait()
		close(done)
	})
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.wire.closeNow()
		}
		s.mu.Unlock()
		// The netpoller and the flushers keep running: the dropped connections still need
		// them to end.
		return errors.Join(errors.New("server: shutdown: connections still open"), ctx.Err())
	}
	if s.poll != nil { // every connection is gone: so are the netpoller and the flushers
		s.poll.close()
		s.flush.close()
	}
	if err := s.goroutines.wait(ctx); err != nil {
		return fmt.Errorf("server: shutdown: goroutines still running: %w", err)
	}
	return nil
}
