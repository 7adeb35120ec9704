package load

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// AbuseConfig is `pwload abuse`: a canary channel's publish-to-delivery latency and the
// server's RSS while clients without the app secret try to make the server hold memory or
// stall a channel (issue 16), one attack per phase, beside a quiet phase.
type AbuseConfig struct {
	URL, HTTPURL       string
	AppID, Key, Secret string
	PID                int

	CanarySubs int           // subscribers of the canary channel
	CanaryRate float64       // canary publishes per second (signed API)
	Phase      time.Duration // measuring time per phase
	Warmup     time.Duration // attack running before the measurement starts
	Phases     []string      // which phases, in order

	SlowBodies     int     // connections declaring a 10 MiB body and never sending it
	PinnedFrames   int     // WebSocket connections sending a header declaring 1 MiB and 10 bytes
	HistorySocks   int     // V2 connections flooding channel_history
	HistoryRate    float64 // channel_history requests per second per connection
	SubscribeSocks int     // connections subscribing as fast as they can
	SubscribeEach  int     // subscriptions each of them asks for
	ResumeSocks    int     // V2 connections resuming ResumeChannels channels in a loop
	ResumeChannels int     // channels each resume names (all subscribed, all with history)
	AttackCPUs     string  // taskset CPU list of the attack process ("" = the load tool's)
	AttackNice     int     // nice increment of the attack process
	JSONFile       string
	AttackOnly     string // internal: run this phase's attack until stdin closes, print its counts
	args           []string
}

// attackCounts is what an attack process reports when it ends.
type attackCounts struct {
	Opened, Refused, Ops int64
	Sample               string
}

// attackMain runs one attack until stdin closes, then prints its counts as JSON.
func attackMain(ctx context.Context, c *AbuseConfig, stdout io.Writer) int {
	actx, cancel := context.WithCancel(ctx)
	at := &attack{}
	switch c.AttackOnly {
	case "slow-bodies":
		at.slowBodies(actx, c)
	case "pinned-frames":
		at.pinnedFrames(actx, c)
	case "history-flood":
		at.historyFlood(actx, c)
	case "subscribe-flood":
		at.subscribeFlood(actx, c)
	case "resume-storm":
		at.resumeStorm(actx, c)
	}
	fmt.Fprintln(stdout, "started")
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	at.wait()
	out := attackCounts{Opened: at.opened.Load(), Refused: at.refused.Load(), Ops: at.ops.Load()}
	out.Sample, _ = at.sample.Load().(string)
	_ = json.NewEncoder(stdout).Encode(out)
	return 0
}

// startAttack runs phase's attack in a child pwload (so the attackers' goroutines do not
// delay the canary's readers); stop ends it and returns its counts.
func startAttack(c *AbuseConfig, phase string) (stop func() attackCounts, err error) {
	argv := append(append([]string{os.Args[0], "abuse"}, c.args...), "--attack-only", phase)
	if c.AttackCPUs != "" {
		argv = append([]string{"taskset", "-c", c.AttackCPUs}, argv...)
	}
	if c.AttackNice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(c.AttackNice)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(out)
	line := make([]byte, len("started\n"))
	if _, err := io.ReadFull(out, line); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("attack %s: %w", phase, err)
	}
	return func() attackCounts {
		in.Close()
		var ac attackCounts
		_ = dec.Decode(&ac)
		_ = cmd.Wait()
		return ac
	}, nil
}

// AbusePhases are the phases `pwload abuse` knows.
var AbusePhases = []string{"quiet", "pinned-frames", "history-flood", "subscribe-flood", "slow-bodies", "resume-storm"}

// AbusePhase is one phase's result.
type AbusePhase struct {
	Name      string  `json:"name"`
	Attackers int     `json:"attackers"`          // attack connections opened
	Refused   int64   `json:"refused"`            // error frames / HTTP errors / closes the attackers got
	AttackOps int64   `json:"attack_ops"`         // requests or frames the attackers sent
	Published int64   `json:"canary_published"`   // canary publishes accepted
	Delivered int64   `json:"canary_delivered"`   // canary deliveries received
	Expected  int64   `json:"canary_expected"`    // published × subscribers
	Canary    Summary `json:"canary_latency"`     // publish → delivery
	RSSMaxMB  float64 `json:"server_rss_max_mb"`  // VmRSS peak while the phase ran
	RSSEndMB  float64 `json:"server_rss_end_mb"`  // VmRSS when it ended
	CPUPct    float64 `json:"server_cpu_pct"`     // server CPU time while measuring, % of one core
	Dropped   int     `json:"canary_disconnects"` // canary subscribers that lost their connection
	Note      string  `json:"note,omitempty"`
}

func abuseMain(args []string, stdout, stderr io.Writer) int {
	var c AbuseConfig
	fs := flag.NewFlagSet("pwload abuse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "server host")
	port := fs.Int("port", 6001, "server port")
	fs.StringVar(&c.AppID, "app-id", "app-id", "app id (the canary's publisher signs with --secret)")
	fs.StringVar(&c.Key, "key", "app-key", "app key")
	fs.StringVar(&c.Secret, "secret", "app-secret", "app secret (canary publisher only: the attackers never use it)")
	fs.IntVar(&c.PID, "pid", 0, "server process id, for its VmRSS")
	fs.IntVar(&c.CanarySubs, "canary-subs", 20, "canary channel subscribers")
	fs.Float64Var(&c.CanaryRate, "canary-rate", 50, "canary publishes per second")
	fs.DurationVar(&c.Phase, "phase", 10*time.Second, "measuring time per phase")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "attack time before measuring")
	phases := fs.String("phases", strings.Join(AbusePhases, ","), "phases, in order: "+strings.Join(AbusePhases, ", "))
	fs.IntVar(&c.SlowBodies, "slow-bodies", 200, "HTTP connections declaring a 10 MiB body, sending 1 KB of it")
	fs.IntVar(&c.PinnedFrames, "pinned-frames", 2000, "WebSocket connections sending a header declaring 1 MiB and 10 bytes of it")
	fs.IntVar(&c.HistorySocks, "history-socks", 100, "V2 connections flooding channel_history on a busy channel")
	fs.Float64Var(&c.HistoryRate, "history-rate", 30, "channel_history requests per second per connection")
	fs.IntVar(&c.SubscribeSocks, "subscribe-socks", 10, "connections subscribing as fast as they can")
	fs.IntVar(&c.SubscribeEach, "subscribe-each", 10000, "subscriptions each of them asks for")
	fs.IntVar(&c.ResumeSocks, "resume-socks", 100, "V2 connections each resuming --resume-channels channels in a loop")
	fs.IntVar(&c.ResumeChannels, "resume-channels", 1000, "channels each resume names (subscribed first; each has one message of history)")
	fs.StringVar(&c.AttackCPUs, "attack-cpus", "", "taskset CPU list for the attack process (default: the load tool's own)")
	fs.IntVar(&c.AttackNice, "attack-nice", 10, "nice increment of the attack process, so its goroutines yield the load tool's CPU to the canary's readers")
	fs.StringVar(&c.JSONFile, "json-file", "", "also write the JSON report here")
	fs.StringVar(&c.AttackOnly, "attack-only", "", "internal: run one phase's attack in this process (the canary's process starts it)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	c.URL = fmt.Sprintf("ws://%s", net.JoinHostPort(*host, strconv.Itoa(*port)))
	c.HTTPURL = "http://" + strings.TrimPrefix(c.URL, "ws://")
	for _, p := range strings.Split(*phases, ",") {
		if !contains(AbusePhases, p) {
			fmt.Fprintf(stderr, "pwload abuse: unknown phase %q\n", p)
			return 2
		}
		c.Phases = append(c.Phases, p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.AttackOnly != "" {
		return attackMain(ctx, &c, stdout)
	}
	c.args = args
	progress := func(s string) { fmt.Fprintf(stderr, "%s pwload abuse: %s\n", time.Now().Format("15:04:05.000"), s) }
	res, err := RunAbuse(ctx, &c, progress)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if c.JSONFile != "" {
		js, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(c.JSONFile, append(js, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	WriteAbuseTable(stdout, res)
	return 0
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// WriteAbuseTable prints the phases as a markdown table, each p99 beside the quiet one.
func WriteAbuseTable(w io.Writer, res []AbusePhase) {
	var quiet float64
	for _, p := range res {
		if p.Name == "quiet" {
			quiet = p.Canary.P99
		}
	}
	fmt.Fprintln(w, "| phase | attackers | attack ops | refusals | canary delivered | canary p50 ms | canary p99 ms | p99 ÷ quiet | canary max ms | server RSS max MB | server CPU % |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range res {
		ratio := "—"
		if quiet > 0 {
			ratio = fmt.Sprintf("%.2f×", p.Canary.P99/quiet)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d/%d | %.2f | %.2f | %s | %.1f | %.0f | %.1f |\n", p.Name, p.Attackers, p.AttackOps, p.Refused,
			p.Delivered, p.Expected, p.Canary.P50, p.Canary.P99, ratio, p.Canary.Max, p.RSSMaxMB, p.CPUPct)
	}
}

// RunAbuse runs the phases: canary subscribers stay connected throughout; each phase starts
// its attack, lets it warm up, then measures the canary while it goes on, and stops it.
func RunAbuse(ctx context.Context, c *AbuseConfig, progress func(string)) ([]AbusePhase, error) {
	can, err := newCanary(ctx, c)
	if err != nil {
		return nil, err
	}
	defer can.close()
	var out []AbusePhase
	for i, name := range c.Phases {
		actx, cancel := context.WithCancel(ctx)
		progress("phase " + name + ": starting the attack")
		stopAttack := func() attackCounts { return attackCounts{} }
		if name != "quiet" {
			switch name {
			case "history-flood":
				fillHistory(ctx, c, can.pub)
			case "resume-storm":
				fillStorm(ctx, c, can.pub)
			}
			if stopAttack, err = startAttack(c, name); err != nil {
				cancel()
				return out, err
			}
		}
		select {
		case <-time.After(c.Warmup):
		case <-ctx.Done():
		}
		progress(fmt.Sprintf("phase %s: measuring the canary for %s", name, c.Phase))
		rssMax := int64(0)
		rssDone := make(chan struct{})
		go func() {
			defer close(rssDone)
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				if c.PID > 0 {
					if kb, err := ReadRSS(c.PID); err == nil && kb > rssMax {
						rssMax = kb
					}
				}
				select {
				case <-t.C:
				case <-actx.Done():
					return
				}
			}
		}()
		cpu0, _ := ReadCPU(c.PID)
		t0 := time.Now()
		r := can.measure(ctx, i, c.CanaryRate, c.Phase)
		if cpu1, err := ReadCPU(c.PID); err == nil && c.PID > 0 {
			r.CPUPct = 100 * float64(cpu1-cpu0) / float64(time.Since(t0))
		}
		var rssEnd int64
		if c.PID > 0 {
			rssEnd, _ = ReadRSS(c.PID)
		}
		cancel()
		<-rssDone
		ac := stopAttack()
		r.Name = name
		r.Attackers = int(ac.Opened)
		r.Refused = ac.Refused
		r.AttackOps = ac.Ops
		if ac.Sample != "" {
			r.Note = "first refusal: " + ac.Sample
		}
		r.RSSMaxMB, r.RSSEndMB = float64(rssMax)/1024, float64(rssEnd)/1024
		out = append(out, r)
		progress(fmt.Sprintf("phase %s: canary p99 %.2f ms, %d/%d delivered, server RSS max %.0f MB; %s", name, r.Canary.P99, r.Delivered, r.Expected, r.RSSMaxMB, r.Note))
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		select { // let the server notice the attackers left
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
	}
	return out, nil
}

// canary is a channel with subscribers and a publisher that measure publish → delivery.
type canary struct {
	c       *AbuseConfig
	conns   []*wsConn
	pub     *http.Client
	phase   atomic.Int64
	hist    atomic.Pointer[Histogram]
	got     atomic.Int64
	dropped atomic.Int64
	wg      sync.WaitGroup
}

const canaryChannel = "abuse-canary"

func newCanary(ctx context.Context, c *AbuseConfig) (*canary, error) {
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	can := &canary{c: c, pub: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	can.hist.Store(&Histogram{})
	can.phase.Store(-1)
	for range c.CanarySubs {
		ws, err := subscribed(ctx, c, 7, canaryChannel)
		if err != nil {
			can.close()
			return nil, fmt.Errorf("canary subscriber: %w", err)
		}
		can.conns = append(can.conns, ws)
		can.wg.Add(1)
		go func() {
			defer can.wg.Done()
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					can.dropped.Add(1)
					return
				}
				ts, phase, _, ok := DecodePayload(msg)
				if !ok || int64(phase) != can.phase.Load() {
					continue
				}
				can.hist.Load().Record(time.Duration(time.Now().UnixNano() - ts))
				can.got.Add(1)
			}
		}()
	}
	return can, nil
}

// measure publishes to the canary at rate for d and reports what its subscribers saw.
func (can *canary) measure(ctx context.Context, phase int, rate float64, d time.Duration) AbusePhase {
	h := &Histogram{}
	can.hist.Store(h)
	can.got.Store(0)
	can.phase.Store(int64(phase))
	dropped0 := can.dropped.Load()
	var accepted atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	end := time.Now().Add(d)
	for seq := 0; time.Now().Before(end) && ctx.Err() == nil; seq++ {
		wg.Add(1)
		go func(seq int) {
			defer wg.Done()
			req, err := SignedEventRequest(ctx, can.c.HTTPURL, can.c.AppID, can.c.Key, can.c.Secret, canaryChannel, "tick",
				EncodePayload(time.Now().UnixNano(), phase, seq, 100), time.Now())
			if err != nil {
				return
			}
			resp, err := can.pub.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				accepted.Add(1)
			}
		}(seq)
		time.Sleep(interval)
	}
	wg.Wait()
	want := accepted.Load() * int64(len(can.conns))
	for deadline := time.Now().Add(5 * time.Second); can.got.Load() < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	can.phase.Store(-1)
	return AbusePhase{Published: accepted.Load(), Delivered: can.got.Load(), Expected: want,
		Canary: h.Snapshot().Summarize(), Dropped: int(can.dropped.Load() - dropped0)}
}

func (can *canary) close() {
	for _, ws := range can.conns {
		_ = ws.Close(1000)
	}
	can.wg.Wait()
}

// subscribed opens a connection (protocol 7 or 2) and subscribes it to channel.
func subscribed(ctx context.Context, c *AbuseConfig, version int, channel string) (*wsConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, err := dialWS(dctx, wsURL(c.URL, c.Key, version), 4096)
	if err != nil {
		return nil, err
	}
	if _, _, err := ws.ReadMessage(); err != nil { // connection_established
		ws.nc.Close()
		return nil, err
	}
	if channel == "" {
		return ws, nil
	}
	prefix := systemPrefix(version)
	if err := ws.WriteText([]byte(`{"event":"` + prefix + `:subscribe","data":{"channel":"` + channel + `"}}`)); err != nil {
		ws.nc.Close()
		return nil, err
	}
	_ = ws.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			ws.nc.Close()
			return nil, err
		}
		if strings.Contains(string(msg), "subscription_succeeded") {
			_ = ws.nc.SetReadDeadline(time.Time{})
			return ws, nil
		}
	}
}

// attack is one phase's attackers; they stop when their context ends.
type attack struct {
	wg      sync.WaitGroup
	opened  atomic.Int64
	refused atomic.Int64
	ops     atomic.Int64
	sample  atomic.Value // the first error frame an attacker got
}

func (a *attack) wait() { a.wg.Wait() }

// hold keeps nc open until ctx ends, counting a close from the server as a refusal.
func (a *attack) hold(ctx context.Context, nc net.Conn) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		go func() {
			<-ctx.Done()
			nc.Close()
		}()
		b := make([]byte, 512)
		for {
			if _, err := nc.Read(b); err != nil {
				if ctx.Err() == nil {
					a.refused.Add(1)
				}
				return
			}
		}
	}()
}

// slowBodies: signed-looking POSTs (public key, app id, current timestamp, a made-up
// signature) declaring 10 MiB bodies, of which 1 KB is sent; the rest never comes.
func (a *attack) slowBodies(ctx context.Context, c *AbuseConfig) {
	addr := strings.TrimPrefix(c.HTTPURL, "http://")
	for range c.SlowBodies {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			a.refused.Add(1)
			continue
		}
		sum := md5.Sum(nil)
		q := url.Values{"auth_key": {c.Key}, "auth_timestamp": {strconv.FormatInt(time.Now().Unix(), 10)},
			"auth_version": {"1.0"}, "body_md5": {hex.EncodeToString(sum[:])}, "auth_signature": {strings.Repeat("0", 64)}}
		req := "POST /apps/" + c.AppID + "/events?" + q.Encode() + " HTTP/1.1\r\nHost: " + addr +
			"\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n" + `{"name":"x","channel":"y","data":"` + strings.Repeat("z", 1000)
		if _, err := io.WriteString(nc, req); err != nil {
			nc.Close()
			a.refused.Add(1)
			continue
		}
		a.opened.Add(1)
		a.ops.Add(1)
		a.hold(ctx, nc)
	}
}

// pinnedFrames: WebSocket connections that send the header of a 1 MiB frame and 10 bytes of
// it, then nothing.
func (a *attack) pinnedFrames(ctx context.Context, c *AbuseConfig) {
	var hdr [14]byte
	hdr[0], hdr[1] = 0x81, 0x80|127
	hdr[7] = 0x10 // 1 MiB: 0x100000, big-endian in bytes 2..9
	frame := append(hdr[:], make([]byte, 10)...)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for range c.PinnedFrames {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ws, err := subscribed(ctx, c, 7, "")
			if err != nil {
				a.refused.Add(1)
				return
			}
			if _, err := ws.nc.Write(frame); err != nil {
				ws.nc.Close()
				a.refused.Add(1)
				return
			}
			a.opened.Add(1)
			a.ops.Add(1)
			a.hold(ctx, ws.nc)
		}()
	}
	wg.Wait()
}

// historyFlood: V2 connections subscribed to a busy public channel, each asking for its
// history (100 messages a page) at HistoryRate per second, reading and dropping the answers.
const busyChannel = "abuse-history"

// fillHistory makes the history flood's channel busy: 200 messages of 100 bytes (published
// with the secret, as any backend would; the attackers only read).
func fillHistory(ctx context.Context, c *AbuseConfig, pub *http.Client) {
	for i := range 200 {
		req, err := SignedEventRequest(ctx, c.HTTPURL, c.AppID, c.Key, c.Secret, busyChannel, "e", EncodePayload(0, 0, i, 100), time.Now())
		if err == nil {
			if resp, err := pub.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
}

func (a *attack) historyFlood(ctx context.Context, c *AbuseConfig) {
	const busy = busyChannel
	ask := []byte(`{"event":"sockudo:channel_history","channel":"` + busy + `","data":{"channel":"` + busy + `","limit":100,"direction":"newest_first"}}`)
	for range c.HistorySocks {
		ws, err := subscribed(ctx, c, 2, busy)
		if err != nil {
			a.refused.Add(1)
			continue
		}
		a.opened.Add(1)
		a.drain(ctx, ws)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			t := time.NewTicker(time.Duration(float64(time.Second) / c.HistoryRate))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if ws.WriteText(ask) != nil {
					return
				}
				a.ops.Add(1)
			}
		}()
	}
}

// subscribeFlood: connections that ask for SubscribeEach subscriptions each, as fast as the
// socket takes them.
func (a *attack) subscribeFlood(ctx context.Context, c *AbuseConfig) {
	for s := range c.SubscribeSocks {
		ws, err := subscribed(ctx, c, 7, "")
		if err != nil {
			a.refused.Add(1)
			continue
		}
		a.opened.Add(1)
		a.drain(ctx, ws)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for k := 0; k < c.SubscribeEach && ctx.Err() == nil; k++ {
				if ws.WriteText([]byte(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"flood-%d-%d"}}`, s, k))) != nil {
					return
				}
				a.ops.Add(1)
			}
		}()
	}
}

// drain reads and drops what the server sends an attacker, counting error frames as
// refusals, until ctx ends.
func (a *attack) drain(ctx context.Context, ws *wsConn) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		go func() {
			<-ctx.Done()
			ws.nc.Close()
		}()
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if strings.Contains(string(msg), `:error"`) {
				if a.refused.Add(1) == 1 {
					a.sample.Store(string(msg[:min(len(msg), 200)]))
				}
			}
		}
	}()
}

// resumeStorm: V2 connections each subscribed to the ResumeChannels storm channels (one
// message of history each), each sending sockudo:resume for all of them from one message
// back (so every channel the server accepts replays one message) in a closed loop: the next
// resume goes as soon as the last one is answered (resume_success or an error frame).
func (a *attack) resumeStorm(ctx context.Context, c *AbuseConfig) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for range c.ResumeSocks {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			a.resumeClient(ctx, c)
		}()
	}
	wg.Wait()
}

// stormChannel is the i-th channel of the resume storm.
func stormChannel(i int) string { return "abuse-storm-" + strconv.Itoa(i) }

// fillStorm publishes one message to each storm channel (batches of 10, with the secret), so
// each has a stream and a position to resume from.
func fillStorm(ctx context.Context, c *AbuseConfig, pub *http.Client) {
	for lo := 0; lo < c.ResumeChannels; lo += 10 {
		var chs, data []string
		for i := lo; i < min(lo+10, c.ResumeChannels); i++ {
			chs = append(chs, stormChannel(i))
			data = append(data, EncodePayload(0, 0, i, 100))
		}
		req, err := SignedBatchRequest(ctx, c.HTTPURL, c.AppID, c.Key, c.Secret, chs, "e", data, time.Now())
		if err == nil {
			if resp, err := pub.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
}

// stormAck is what a storm client reads of a V2 subscription_succeeded frame.
type stormAck struct {
	Event    string `json:"event"`
	Channel  string `json:"channel"`
	StreamID string `json:"stream_id"`
	Serial   uint64 `json:"serial"`
}

// resumeClient subscribes one storm connection, then resumes in a loop until ctx ends.
func (a *attack) resumeClient(ctx context.Context, c *AbuseConfig) {
	ws, err := subscribed(ctx, c, 2, "")
	if err != nil {
		a.refused.Add(1)
		return
	}
	for i := range c.ResumeChannels {
		if ws.WriteText([]byte(`{"event":"sockudo:subscribe","data":{"channel":"`+stormChannel(i)+`"}}`)) != nil {
			ws.nc.Close()
			a.refused.Add(1)
			return
		}
	}
	type pos struct {
		StreamID string `json:"stream_id"`
		Serial   uint64 `json:"serial"`
	}
	positions := make(map[string]pos, c.ResumeChannels)
	_ = ws.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	for len(positions) < c.ResumeChannels {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			ws.nc.Close()
			a.refused.Add(1)
			return
		}
		if !strings.Contains(string(msg), "subscription_succeeded") {
			continue
		}
		var ack stormAck
		if json.Unmarshal(msg, &ack) != nil || ack.Channel == "" {
			continue
		}
		positions[ack.Channel] = pos{ack.StreamID, max(ack.Serial, 1) - 1}
	}
	_ = ws.nc.SetReadDeadline(time.Time{})
	frames := resumeFrames(positions, resumeFrameBytes)
	a.opened.Add(1)
	answered := make(chan struct{}, 1)
	a.wg.Add(2)
	go func() { // reader: every resume_success or error frame answers the last resume
		defer a.wg.Done()
		go func() {
			<-ctx.Done()
			ws.nc.Close()
		}()
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				close(answered)
				return
			}
			s := string(frameEvent(msg))
			switch {
			case strings.HasSuffix(s, ":error"):
				if a.refused.Add(1) == 1 {
					a.sample.Store(string(msg[:min(len(msg), 200)]))
				}
			case strings.HasSuffix(s, "resume_success"):
			default:
				continue
			}
			select {
			case answered <- struct{}{}:
			default:
			}
		}
	}()
	go func() { // writer: the next resume once the last is answered (or 5 s passed)
		defer a.wg.Done()
		for k := 0; ctx.Err() == nil; k++ {
			if ws.WriteText(frames[k%len(frames)]) != nil {
				return
			}
			a.ops.Add(1)
			select {
			case _, ok := <-answered:
				if !ok {
					return
				}
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return
			}
		}
	}()
}

// resumeFrameBytes keeps a storm client's resume frames under the server's default message
// limit (64 KiB): 1,000 positions with stream ids take about 70 KB, so they go in two frames.
const resumeFrameBytes = 60 << 10

// resumeFrames splits positions (channel → {stream_id, serial}) into sockudo:resume frames
// of at most limit bytes each, in channel order.
func resumeFrames[P any](positions map[string]P, limit int) [][]byte {
	names := make([]string, 0, len(positions))
	for ch := range positions {
		names = append(names, ch)
	}
	sort.Strings(names)
	const head, tail = `{"event":"sockudo:resume","data":{"channel_positions":{`, `}}}`
	var out [][]byte
	cur := []byte(head)
	for _, ch := range names {
		k, _ := json.Marshal(ch)
		v, _ := json.Marshal(positions[ch])
		entry := append(append(k, ':'), v...)
		if len(cur) > len(head) && len(cur)+1+len(entry)+len(tail) > limit {
			out = append(out, append(cur, tail...))
			cur = []byte(head)
		}
		if len(cur) > len(head) {
			cur = append(cur, ',')
		}
		cur = append(cur, entry...)
	}
	return append(out, append(cur, tail...))
}
