// Command pushwire runs a Pusher Channels protocol 7 compatible realtime server: WebSocket
// connections on /app/{key} and the signed REST API on /apps/{id}/..., on one port.
//
// Run `pushwire --help` for every option; options also come from a YAML file (--config)
// and PUSHWIRE_* environment variables.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/console"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/httpapi"
	"github.com/pushwire/pushwire/internal/bytebudget"
	"github.com/pushwire/pushwire/metrics"
	"github.com/pushwire/pushwire/server"
	"github.com/pushwire/pushwire/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(runToken(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// run parses options, serves until ctx ends, shuts down gracefully and returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pushwire", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.LoadWithFlags(flags, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "pushwire:", err)
		return 1
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "pushwire:", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	setGCPercent(cfg.GCPercent, log)
	cpus := setMinProcs(cfg.MinProcs, os.LookupEnv, runtime.GOMAXPROCS, log)
	if err := serve(ctx, cfg, cpus, log); err != nil {
		log.Error("pushwire stopped", zap.Error(err))
		return 1
	}
	return 0
}

// setGCPercent applies gc_percent unless GOGC is set in the environment (which wins) or
// gc_percent is -1.
func setGCPercent(pct int, log *zap.Logger) {
	if _, set := os.LookupEnv("GOGC"); set || pct <= 0 {
		return
	}
	debug.SetGCPercent(pct)
	log.Debug("gc target", zap.Int("gc_percent", pct))
}

// setMinProcs raises GOMAXPROCS (through procs, runtime.GOMAXPROCS) to min unless the
// GOMAXPROCS environment variable is set (which wins), and returns the CPUs Go chose: what the
// server sizes its paces and pools by. With one P the garbage collector's mark worker shares
// it with everything else and, to reach its quarter of the CPU, holds it for 10–60 ms at a
// time while a large heap (100,000 subscriptions) is marked: every delivery waits that long.
// With a second P it has a dedicated worker on its own thread, and the kernel interleaves
// that thread with the serving one in slices of a millisecond or so (bench/RESULTS.md,
// branch storm17).
func setMinProcs(min int, lookup func(string) (string, bool), procs func(int) int, log *zap.Logger) int {
	cpus := procs(0)
	if _, set := lookup("GOMAXPROCS"); set || cpus >= min {
		return cpus
	}
	procs(min)
	log.Debug("gomaxprocs raised", zap.Int("cpus", cpus), zap.Int("gomaxprocs", min))
	return cpus
}

// serve wires the hub, the WebSocket gateway and the REST API on one listener.
func serve(ctx context.Context, cfg *config.Config, cpus int, log *zap.Logger) error {
	m := metrics.New()
	var tap channels.Tap // stays a nil interface without the console
	var con *console.Console
	if cfg.Console {
		con = console.New(cfg.Apps, console.Options{Path: cfg.ConsolePath, Logger: log.Named("console")})
		tap = con
	}
	wh := webhook.New(cfg.Apps, webhook.Options{
		QueueSize:     cfg.WebhookQueueSize,
		BatchSize:     cfg.WebhookBatchSize,
		BatchInterval: cfg.WebhookBatchInterval.D(),
		Timeout:       cfg.WebhookTimeout.D(),
		RetryFor:      cfg.WebhookRetryFor.D(),
		VacateDelay:   cfg.WebhookVacateDelay.D(),
		Logger:        log.Named("webhook"),
		Metrics:       m,
		Tap:           tap,
	})
	hist, closeHistory, err := openHistory(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeHistory()
	presence := presenceHistory(cfg, hist, log)
	hub := channels.New(cfg.Apps, channels.Options{
		Logger:            log.Named("channels"),
		Observer:          wh,
		TokenRefreshGrace: cfg.TokenRefreshGrace.D(),
		ResumeWindow:      cfg.ResumeWindow.D(),
		ReplayQueueLimit:  cfg.ReplayQueueLimit,
		HistoryMaxAge:     cfg.HistoryMaxAge.D(),
		History:           hist,
		PresenceRecorder:  presence,
		OnHistoryError:    m.HistoryError,
		DeltaEncoder:      delta.Encode,
		Tap:               tap,
	})
	ann := annotations.Attach(hub, annotationStore(hist), annotations.Options{Logger: log.Named("annotations"), Observer: wh})
	if con != nil {
		con.SetHub(hub)
	}
	idem, leaveCluster, err := startCluster(ctx, cfg, hub, m.Registry(), log)
	if err != nil {
		return err
	}
	defer leaveCluster() // after the sockets closed, so their presence leaves reach the others
	wh.SetChecker(webhook.HubChecker(hub))
	wh.Start()
	inbound := bytebudget.New(int64(cfg.MaxInboundBufferMB) << 20) // shared by the transports and the HTTP API
	ws := server.New(hub, server.Options{
		InboundBudget:      inbound,
		Logger:             log.Named("ws"),
		ActivityTimeout:    cfg.ActivityTimeout.D(),
		PongTimeout:        cfg.PongTimeout.D(),
		MaxMessageBytes:    cfg.MaxMessageKB << 10,
		WriteQueueMessages: cfg.WriteQueueMessages,
		WriteQueueBytes:    cfg.WriteQueueKB << 10,
		WriteTimeout:       cfg.WriteTimeout.D(),
		MaxConnections:     cfg.MaxConnections,

		Transport:                    server.Transport(cfg.WSTransport),
		Compression:                  compressionMode(cfg.WSCompression),
		CompressionThreshold:         cfg.WSCompressionThreshold,
		MaxConnectionsPerIPPerMinute: cfg.MaxConnectionsPerIPPerMinute,
		TrustForwardedFor:            cfg.TrustForwardedFor,
		Metrics:                      m,
		Tap:                          tap,

		HistoryRequestsPerSecond: cfg.HistoryRequestsPerSecond, HistoryRequestBurst: cfg.HistoryRequestBurst,
		ResumeRequestsPerMinute: cfg.ResumeRequestsPerMinute, MaxSubscriptionsPerConnection: cfg.MaxSubscriptionsPerConnection,
		MaxResumeMessageBytes: cfg.MaxResumeMessageKB << 10, MaxRefusedRequests: cfg.MaxRefusedRequests,
		ServerHistoryReadsPerSecond: cfg.ServerHistoryReadsPerSecond, ServerResumeChannelsPerSecond: cfg.ServerResumeChannelsPerSecond,
		CPUs: cpus,
	})
	appIDs := make([]string, len(cfg.Apps))
	for i, a := range cfg.Apps {
		appIDs[i] = a.ID
	}
	m.InitApps(appIDs...)
	m.InitRefusals(server.RefusalReasons()...)
	m.InitRoutes(httpapi.RoutePatterns()...)
	m.WatchInbound(inbound.Used, inbound.Refusals, inbound.Limit())
	pushSvc, stopPush, err := startPush(ctx, cfg, hub, wh, m, log)
	if err != nil {
		return err
	}
	apiOpts := httpapi.Options{
		PresenceHistory: presence,
		Annotations:     ann,
		Logger:          log.Named("http"),
		MaxBodyBytes:    int64(cfg.MaxRequestBodyKB) << 10,
		Metrics:         m,
		Ready:           ws.Ready,
		Idempotency:     idem,
		Tap:             tap,
		ConsoleAuth:     consoleAuth(con),
		HistoryBackend:  cfg.History,
		InboundBudget:   inbound,
	}
	pushOptions(&apiOpts, pushSvc)
	api := httpapi.New(hub, apiOpts)
	mux := http.NewServeMux()
	mux.Handle("/app/", ws)
	mux.Handle("/", api)
	if con != nil && cfg.ConsoleListener == "main" {
		mountConsole(mux, con)
	}

	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout.D(), ReadTimeout: cfg.HTTPReadTimeout.D(),
		IdleTimeout: cfg.HTTPIdleTimeout.D(), ErrorLog: zap.NewStdLog(log.Named("http"))}
	scheme := "ws"
	if cfg.TLSCertFile != "" {
		// Load once now so a bad certificate fails at start with a clear message.
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls_cert_file/tls_key_file: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "wss"
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var msrv *http.Server
	if cfg.MetricsOn() {
		maddr := net.JoinHostPort(cfg.MetricsHost, strconv.Itoa(cfg.MetricsPort))
		mln, err := net.Listen("tcp", maddr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("metrics listener on %s: %w", maddr, err)
		}
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", m.Handler())
		if con != nil && cfg.ConsoleListener == "metrics" {
			mountConsole(mmux, con)
			log.Info("console", zap.String("url", "http://"+mln.Addr().String()+con.Path()+"/"))
		}
		msrv = &http.Server{Handler: mmux, ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout.D(), IdleTimeout: cfg.HTTPIdleTimeout.D()}
		go func() { errc <- msrv.Serve(mln) }()
		log.Info("metrics listening", zap.String("url", "http://"+mln.Addr().String()+"/metrics"))
	}
	for _, a := range cfg.Apps {
		log.Info("app", zap.String("id", a.ID), zap.String("key", a.Key), zap.Bool("enabled", a.IsEnabled()))
	}
	if con != nil && cfg.ConsoleListener == "main" {
		log.Info("console", zap.String("url", "http"+strings.TrimPrefix(scheme, "ws")+"://"+ln.Addr().String()+con.Path()+"/"))
	}
	log.Info("pushwire listening", zap.String("addr", ln.Addr().String()),
		zap.String("websocket", scheme+"://"+ln.Addr().String()+"/app/{key}"), zap.String("transport", string(ws.Transport())))

	var failure error // a transport that stopped working: shut down, then exit with it
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case err := <-ws.Failed():
		failure = fmt.Errorf("websocket transport: %w", err)
	case <-ctx.Done():
	}
	// Graceful shutdown: report not ready, give load balancers drain_delay to notice, then
	// close every socket with 4200 (clients reconnect elsewhere) and drain HTTP.
	log.Info("shutting down", zap.Duration("drain_delay", cfg.DrainDelay.D()), zap.Duration("timeout", cfg.ShutdownTimeout.D()))
	ws.SetDraining(true)
	if d := cfg.DrainDelay.D(); d > 0 {
		time.Sleep(d)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	if con != nil {
		con.Close() // ends the console's event streams, which would hold the HTTP shutdown
	}
	errs := []error{failure, ws.Shutdown(sctx), srv.Shutdown(sctx), stopPush(sctx)}
	// Sockets are closed: store the presence events their leaves made.
	errs = append(errs, presence.Flush(sctx))
	// Sockets are closed: deliver the webhooks they caused (vacated, member_removed) too.
	errs = append(errs, wh.Close(sctx))
	if msrv != nil {
		errs = append(errs, msrv.Shutdown(sctx))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func newLogger(cfg *config.Config) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if cfg.LogFormat == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	return zc.Build()
}

// compressionMode maps ws_compression to coder/websocket's mode.
func compressionMode(s string) websocket.CompressionMode {
	switch s {
	case "context_takeover":
		return websocket.CompressionContextTakeover
	case "no_context_takeover":
		return websocket.CompressionNoContextTakeover
	}
	return websocket.CompressionDisabled
}

// mountConsole serves the debug console at its path on mux.
func mountConsole(mux *http.ServeMux, con *console.Console) {
	mux.Handle(con.Path(), con.Handler())
	mux.Handle(con.Path()+"/", con.Handler())
}

// consoleAuth is the console's credential check for httpapi, nil without the console.
func consoleAuth(con *console.Console) func(*http.Request) (string, bool) {
	if con == nil {
		return nil
	}
	return con.Authenticate
}
