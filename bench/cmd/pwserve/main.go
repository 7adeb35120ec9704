// Command pwserve is a profiling harness: the pushwire hub, WebSocket gateway and REST API
// wired as cmd/pushwire wires them (same flags, environment and YAML, metrics included;
// no webhooks or history), plus net/http/pprof on --pprof-addr. Drive it with pwload and
// read profiles with
//
//	go tool pprof -top -seconds 10 http://127.0.0.1:6060/debug/pprof/profile
//
// --cpuprofile and --memprofile write profiles of the whole run instead (on SIGINT/SIGTERM).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // the profiling endpoints on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/httpapi"
	"github.com/pushwire/pushwire/metrics"
	"github.com/pushwire/pushwire/server"
)

func main() {
	fs := flag.NewFlagSet("pwserve", flag.ContinueOnError)
	pprofAddr := fs.String("pprof-addr", "127.0.0.1:6060", "address of the net/http/pprof listener")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file at exit")
	memRate := fs.Int("memprofilerate", runtime.MemProfileRate, "runtime.MemProfileRate: bytes between sampled allocations (1 = every one)")
	flags := config.BindFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	runtime.MemProfileRate = *memRate
	cfg, err := config.LoadWithFlags(flags, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pwserve:", err)
		os.Exit(1)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pwserve:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "pwserve:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "pwserve:", err)
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err == nil {
			runtime.GC()
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
}

func serve(ctx context.Context, cfg *config.Config, pprofAddr string) error {
	log := zap.NewNop()
	m := metrics.New()
	hub := channels.New(cfg.Apps, channels.Options{Logger: log, TokenRefreshGrace: cfg.TokenRefreshGrace.D()})
	ws := server.New(hub, server.Options{
		Logger:             log,
		ActivityTimeout:    cfg.ActivityTimeout.D(),
		PongTimeout:        cfg.PongTimeout.D(),
		MaxMessageBytes:    cfg.MaxMessageKB << 10,
		WriteQueueMessages: cfg.WriteQueueMessages,
		WriteQueueBytes:    cfg.WriteQueueKB << 10,
		WriteTimeout:       cfg.WriteTimeout.D(),
		MaxConnections:     cfg.MaxConnections,
		Metrics:            m,
	})
	api := httpapi.New(hub, httpapi.Options{Logger: log, MaxBodyBytes: int64(cfg.MaxRequestBodyKB) << 10, Metrics: m, Ready: ws.Ready})
	mux := http.NewServeMux()
	mux.Handle("/app/", ws)
	mux.Handle("/", api)
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	pln, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	psrv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- psrv.Serve(pln) }()
	fmt.Fprintf(os.Stderr, "pwserve: pushwire on %s, pprof on http://%s/debug/pprof/\n", ln.Addr(), pln.Addr())
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, ws.Shutdown(sctx), srv.Shutdown(sctx), psrv.Shutdown(sctx))
}
