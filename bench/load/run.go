package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Report is the outcome of one run.
type Report struct {
	Label    string    `json:"label"`
	Scenario string    `json:"scenario,omitempty"`
	Started  time.Time `json:"started"`
	Cores    int       `json:"cores"`
	Settings Settings  `json:"settings"`

	Connect  ConnectResult   `json:"connect"`
	Memory   *MemoryResult   `json:"memory,omitempty"`
	Presence *PresenceResult `json:"presence,omitempty"`
	Phases   []PhaseResult   `json:"phases,omitempty"`
	// Best is the highest-rate phase held at 100% delivery (nil if none was).
	Best *PhaseResult `json:"best,omitempty"`

	Disconnects  int64          `json:"disconnects"`
	ServerErrors int64          `json:"server_errors"`
	CloseCodes   map[string]int `json:"close_codes,omitempty"`
	Errors       []string       `json:"error_samples,omitempty"`

	// OtherCPUPct is the CPU that processes other than the server and the load tool used
	// during the run, in percent of one core: work that competed with the measurement.
	OtherCPUPct      float64 `json:"other_cpu_pct"`
	ToolCPUSeconds   float64 `json:"tool_cpu_seconds"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	WallSeconds      float64 `json:"wall_seconds"`
}

// Settings echo the run's parameters.
type Settings struct {
	URL         string    `json:"url"`
	Protocol    int       `json:"protocol"`
	Subscribers int       `json:"subscribers"`
	ConnectRate float64   `json:"connect_rate"`
	Layout      string    `json:"layout"`
	ChannelType string    `json:"channel_type"`
	Channels    int       `json:"channels"`
	Mode        string    `json:"mode"`
	Publishers  int       `json:"publishers,omitempty"`
	Rates       []float64 `json:"rates,omitempty"`
	Payload     int       `json:"payload_bytes"`
	Duration    float64   `json:"phase_seconds"`
	Processes   int       `json:"processes"`
}

// ConnectResult is the connection stage.
type ConnectResult struct {
	Attempted       int     `json:"attempted"`
	Connected       int     `json:"connected"`
	ConnectErrors   int64   `json:"connect_errors"`
	SubscribeErrors int64   `json:"subscribe_errors"`
	Seconds         float64 `json:"seconds"`
	Handshake       Summary `json:"handshake"`
	Subscribe       Summary `json:"subscribe"`
}

// MemoryResult is the server's resident memory around the connection stage.
type MemoryResult struct {
	PID          int     `json:"pid"`
	BeforeKB     int64   `json:"before_kb"`
	AfterKB      int64   `json:"after_kb"` // connected and settled, before publishing
	EndKB        int64   `json:"end_kb"`
	PerConnBytes float64 `json:"per_conn_bytes"`
}

// PresenceResult checks that every member learnt of every other.
type PresenceResult struct {
	Members       int     `json:"members"`        // subscribed connections
	Expected      int64   `json:"expected_known"` // members × (members − 1)
	Known         int64   `json:"known"`
	Lost          int64   `json:"lost"`
	MemberAdded   int64   `json:"member_added"`
	MemberRemoved int64   `json:"member_removed"`
	Latency       Summary `json:"member_added_latency"`
	Seconds       float64 `json:"settle_seconds"`
}

// PhaseResult is one publishing phase.
type PhaseResult struct {
	Phase            int      `json:"phase"`
	Rate             float64  `json:"rate"` // target events/s (api: all publishers; client: per connection)
	Published        int64    `json:"published"`
	PublishErrors    int64    `json:"publish_errors"`
	PublishRate      float64  `json:"publish_rate"` // events/s accepted
	Expected         int64    `json:"expected"`
	Received         int64    `json:"received"`
	DeliveredPct     float64  `json:"delivered_pct"`
	DeliveriesPerSec float64  `json:"deliveries_per_sec"`
	Latency          Summary  `json:"latency"`
	PublishHTTP      *Summary `json:"publish_http,omitempty"`
	Disconnects      int64    `json:"disconnects"`
	LagSeconds       float64  `json:"lag_seconds"`              // last delivery after the last publish
	ServerCPUPct     float64  `json:"server_cpu_pct,omitempty"` // of one core, while publishing and draining
	OtherCPUPct      float64  `json:"other_cpu_pct"`            // CPU of other processes (see Report)
	OK               bool     `json:"ok"`                       // 100% delivered, no publish error, no disconnect, rate held
	Note             string   `json:"note,omitempty"`
}

// Run executes cfg against a server and reports.
func Run(ctx context.Context, cfg *Config, progress func(string)) (*Report, error) {
	if progress == nil {
		progress = func(string) {}
	}
	start := time.Now()
	rep := &Report{Label: cfg.Label, Scenario: cfg.Scenario, Started: start.UTC(), Cores: runtime.NumCPU()}
	rep.Settings = Settings{URL: cfg.URL, Protocol: cfg.Protocol, Subscribers: cfg.Subscribers, ConnectRate: cfg.ConnectRate,
		Layout: cfg.Layout, ChannelType: cfg.ChannelType, Channels: cfg.ChannelCount(), Mode: cfg.Mode, Rates: cfg.Rates(),
		Payload: cfg.Payload, Duration: cfg.Duration.Seconds()}
	if cfg.Mode == ModeAPI {
		rep.Settings.Publishers = cfg.Publishers
	}
	var mem *MemoryResult
	var cpu0 time.Duration
	if cfg.PID > 0 {
		kb, err := ReadRSS(cfg.PID)
		if err != nil {
			return nil, fmt.Errorf("pwload: --pid: %w", err)
		}
		mem = &MemoryResult{PID: cfg.PID, BeforeKB: kb}
		cpu0, _ = ReadCPU(cfg.PID)
	}

	shards, err := startShards(cfg)
	if err != nil {
		return nil, err
	}
	rep.Settings.Processes = 1
	if _, remote := shards[0].(*remoteShard); remote {
		rep.Settings.Processes = len(shards) + 1
	}
	defer func() {
		for _, s := range shards {
			_ = s.Close()
		}
	}()

	pids := ourPIDs(cfg, shards)
	runCPU := sampleCPU(pids)
	progress(fmt.Sprintf("connecting %d subscribers at %.0f/s", cfg.Subscribers, cfg.ConnectRate))
	if err := eachShard(shards, func(s shardHandle) error { return s.Connect(ctx) }); err != nil {
		return nil, err
	}
	st, err := gather(shards, 0)
	if err != nil {
		return nil, err
	}
	rep.Connect = ConnectResult{Attempted: st.Attempted, Connected: st.Connected, ConnectErrors: st.ConnectErrors,
		SubscribeErrors: st.SubscribeErrors, Seconds: st.ConnectSeconds, Handshake: st.Handshake.Summarize(), Subscribe: st.Subscribe.Summarize()}
	progress(fmt.Sprintf("connected %d/%d in %.1fs (%d connect errors, %d subscribe errors)", st.Connected, st.Attempted, st.ConnectSeconds, st.ConnectErrors, st.SubscribeErrors))

	if cfg.ChannelType == "presence" {
		t0 := time.Now()
		members := st.Subs[0]
		want := int64(members) * int64(members-1)
		st, err = waitFor(ctx, shards, 0, cfg.Drain, func(s ShardStats) int64 { return s.Members }, want)
		if err != nil {
			return nil, err
		}
		rep.Presence = &PresenceResult{Members: members, Expected: want, Known: st.Members, Lost: max(want-st.Members, 0),
			MemberAdded: st.MemberAdded, MemberRemoved: st.MemberRemoved, Latency: st.MemberLatency.Summarize(), Seconds: time.Since(t0).Seconds()}
	}

	if cfg.Settle > 0 {
		progress(fmt.Sprintf("settling %s", cfg.Settle))
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if mem != nil {
		if mem.AfterKB, err = ReadRSS(cfg.PID); err != nil {
			return nil, err
		}
		if st.Connected > 0 {
			mem.PerConnBytes = float64(mem.AfterKB-mem.BeforeKB) * 1024 / float64(st.Connected)
		}
		rep.Memory = mem
		progress(fmt.Sprintf("server RSS %d → %d KiB: %.0f bytes per connection", mem.BeforeKB, mem.AfterKB, mem.PerConnBytes))
	}

	var pub *publisher
	if cfg.Mode == ModeAPI {
		pub = newPublisher(cfg)
	}
	disc := st.Disconnects
	rates := cfg.Rates()
	var held, failed float64 // automatic ramp bracket; 0 = none yet
phases:
	for p := 0; p < len(rates) && p < MaxPhases; p++ {
		rate := rates[p]
		pr, err := runPhase(ctx, cfg, shards, pub, p, rate, st.Subs, pids, progress)
		if err != nil {
			return nil, err
		}
		pr.Disconnects -= disc
		disc += pr.Disconnects
		if pr.Disconnects > 0 {
			pr.OK = false
			pr.Note = strings.TrimSpace(pr.Note + fmt.Sprintf(" %d disconnects", pr.Disconnects))
		}
		rep.Phases = append(rep.Phases, *pr)
		if pr.OK {
			best := *pr
			if rep.Best == nil || best.DeliveriesPerSec >= rep.Best.DeliveriesPerSec {
				rep.Best = &best
			}
			held = max(held, rate)
		} else if failed == 0 || rate < failed {
			failed = rate
		}
		switch {
		case cfg.RampAuto:
			if disc > 0 {
				progress("connections were lost: the search stops")
				break phases
			}
			if len(rates) < cfg.MaxPhasesN {
				if next := NextRate(rate, pr.OK, held, failed); next > 0 {
					rates = append(rates, next)
				}
			}
		case !pr.OK && len(rates) > 1:
			progress(fmt.Sprintf("phase %d (%g/s) did not hold: the ramp stops", p, rate))
			break phases
		}
	}

	st, err = gather(shards, 0)
	if err != nil {
		return nil, err
	}
	rep.Disconnects, rep.ServerErrors, rep.CloseCodes, rep.Errors = st.Disconnects, st.ServerErrors, st.CloseCodes, st.Errors
	rep.OtherCPUPct = otherCPUPct(runCPU, sampleCPU(pids), rep.Cores)
	if mem != nil {
		mem.EndKB, _ = ReadRSS(cfg.PID)
		if cpu1, err := ReadCPU(cfg.PID); err == nil {
			rep.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
		}
	}
	for _, s := range shards {
		_ = s.Close()
	}
	shards = nil
	rep.ToolCPUSeconds = selfCPU().Seconds()
	rep.WallSeconds = time.Since(start).Seconds()
	return rep, nil
}

func runPhase(ctx context.Context, cfg *Config, shards []shardHandle, pub *publisher, p int, rate float64, subs map[int]int, pids []int, progress func(string)) (*PhaseResult, error) {
	progress(fmt.Sprintf("phase %d: %s at %g/s for %s", p, cfg.Mode, rate, cfg.Duration))
	cpuStart := sampleCPU(pids)
	var cpu0 time.Duration
	if cfg.PID > 0 {
		cpu0, _ = ReadCPU(cfg.PID)
	}
	t0 := time.Now()
	pr := &PhaseResult{Phase: p, Rate: rate}
	var expected int64
	var pubSeconds float64
	switch cfg.Mode {
	case ModeAPI:
		res := pub.run(ctx, p, rate, cfg.Duration)
		pr.Published, pr.PublishErrors, pubSeconds = res.Accepted, res.Errors, res.Seconds
		h := res.HTTP.Summarize()
		pr.PublishHTTP = &h
		for ch, n := range res.PerChan {
			expected += int64(subs[ch]) * n
		}
		if len(res.ErrorText) > 0 {
			pr.Note = res.ErrorText[0]
		}
	case ModeClient:
		if err := eachShard(shards, func(s shardHandle) error { return s.ClientPhase(ctx, p, rate, cfg.Duration) }); err != nil {
			return nil, err
		}
		pubSeconds = time.Since(t0).Seconds()
	}
	pubSeconds = max(pubSeconds, 1e-9)
	count := func(s ShardStats) int64 { return s.Phases[p].Received }
	var st ShardStats
	var err error
	if cfg.Mode == ModeClient {
		// The expectation comes from the shards' send counts.
		if st, err = gather(shards, p+1); err != nil {
			return nil, err
		}
		for ch, n := range st.Phases[p].ClientSent {
			pr.Published += n
			expected += int64(max(subs[ch]-1, 0)) * n
		}
	}
	st, err = waitFor(ctx, shards, p+1, cfg.Drain, count, expected)
	if err != nil {
		return nil, err
	}
	ph := st.Phases[p]
	pr.Expected, pr.Received = expected, ph.Received
	if expected > 0 {
		pr.DeliveredPct = 100 * float64(ph.Received) / float64(expected)
	}
	span := pubSeconds
	if ph.LastRecv > 0 {
		span = max(span, float64(ph.LastRecv-t0.UnixNano())/1e9)
	}
	pr.DeliveriesPerSec = float64(ph.Received) / span
	pr.PublishRate = float64(pr.Published) / pubSeconds
	pr.Latency = ph.Latency.Summarize()
	pr.Disconnects = st.Disconnects
	if cfg.PID > 0 {
		if cpu1, err := ReadCPU(cfg.PID); err == nil {
			pr.ServerCPUPct = 100 * (cpu1 - cpu0).Seconds() / time.Since(t0).Seconds()
		}
	}
	pr.OtherCPUPct = otherCPUPct(cpuStart, sampleCPU(pids), runtime.NumCPU())
	pr.OK = expected > 0 && ph.Received == expected && pr.PublishErrors == 0
	if cfg.Mode == ModeAPI && pr.PublishRate < 0.95*rate {
		pr.OK = false
		pr.Note = strings.TrimSpace(pr.Note + fmt.Sprintf(" publishers reached %.1f/s of %g/s", pr.PublishRate, rate))
	}
	if ph.LastRecv > 0 {
		pr.LagSeconds = max(float64(ph.LastRecv-t0.UnixNano())/1e9-pubSeconds, 0)
		if pr.LagSeconds > cfg.MaxLag.Seconds() {
			pr.OK = false
			pr.Note = strings.TrimSpace(pr.Note + fmt.Sprintf(" deliveries ended %.1fs after the last publish", pr.LagSeconds))
		}
	}
	progress(fmt.Sprintf("phase %d: %d/%d delivered (%.3f%%), %.0f deliveries/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms; other processes %.0f%% CPU",
		p, ph.Received, expected, pr.DeliveredPct, pr.DeliveriesPerSec, pr.Latency.P50, pr.Latency.P99, pr.Latency.Max, pr.OtherCPUPct))
	return pr, nil
}

// waitFor polls the shards until value(stats) reaches want, stops changing for 2 s, or limit
// passes.
func waitFor(ctx context.Context, shards []shardHandle, n int, limit time.Duration, value func(ShardStats) int64, want int64) (ShardStats, error) {
	deadline := time.Now().Add(limit)
	var last int64 = -1
	lastChange := time.Now()
	for {
		st, err := gather(shards, n)
		if err != nil {
			return st, err
		}
		v := value(st)
		if v >= want || time.Now().After(deadline) {
			return st, nil
		}
		if v != last {
			last, lastChange = v, time.Now()
		} else if time.Since(lastChange) > 2*time.Second {
			return st, nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// ourPIDs are the processes whose CPU is part of the measurement: the server (when known),
// this process and its workers.
func ourPIDs(cfg *Config, shards []shardHandle) []int {
	pids := []int{os.Getpid()}
	if cfg.PID > 0 {
		pids = append(pids, cfg.PID)
	}
	for _, s := range shards {
		if r, ok := s.(*remoteShard); ok {
			pids = append(pids, r.cmd.Process.Pid)
		}
	}
	return pids
}

func startShards(cfg *Config) ([]shardHandle, error) {
	n := cfg.Subscribers
	k := (n + cfg.MaxConnsPerProc - 1) / cfg.MaxConnsPerProc
	if k <= 1 {
		return []shardHandle{localShard{NewShard(cfg, 0, n, cfg.ConnectRate)}}, nil
	}
	per := (n + k - 1) / k
	if cfg.Layout == LayoutRooms { // keep rooms within one process
		per = (per + cfg.RoomSize - 1) / cfg.RoomSize * cfg.RoomSize
	}
	var shards []shardHandle
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		r, err := startRemote(workerSpec{Config: cfg, Lo: lo, Hi: hi, Rate: cfg.ConnectRate * float64(hi-lo) / float64(n)})
		if err != nil {
			for _, s := range shards {
				_ = s.Close()
			}
			return nil, err
		}
		shards = append(shards, r)
	}
	return shards, nil
}

func eachShard(shards []shardHandle, f func(shardHandle) error) error {
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(s)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// gather merges the stats of every shard (the first n phases).
func gather(shards []shardHandle, n int) (ShardStats, error) {
	all := make([]ShardStats, len(shards))
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			all[i], errs[i] = s.Stats(n)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return ShardStats{}, err
	}
	return MergeStats(all, n), nil
}

// MergeStats adds shard statistics together.
func MergeStats(all []ShardStats, n int) ShardStats {
	out := ShardStats{CloseCodes: map[string]int{}, Subs: map[int]int{}, Phases: make([]PhaseShard, n)}
	for _, s := range all {
		out.Attempted += s.Attempted
		out.Connected += s.Connected
		out.ConnectErrors += s.ConnectErrors
		out.SubscribeErrors += s.SubscribeErrors
		out.Disconnects += s.Disconnects
		out.ServerErrors += s.ServerErrors
		out.ConnectSeconds = max(out.ConnectSeconds, s.ConnectSeconds)
		for k, v := range s.CloseCodes {
			out.CloseCodes[k] += v
		}
		for _, e := range s.Errors {
			if len(out.Errors) < 10 {
				out.Errors = append(out.Errors, e)
			}
		}
		out.Handshake.Merge(s.Handshake)
		out.Subscribe.Merge(s.Subscribe)
		for k, v := range s.Subs {
			out.Subs[k] += v
		}
		for p := range min(n, len(s.Phases)) {
			ph, o := &out.Phases[p], s.Phases[p]
			ph.Received += o.Received
			ph.LastRecv = max(ph.LastRecv, o.LastRecv)
			ph.Latency.Merge(o.Latency)
			for k, v := range o.ClientSent {
				if ph.ClientSent == nil {
					ph.ClientSent = map[int]int64{}
				}
				ph.ClientSent[k] += v
			}
		}
		out.Members += s.Members
		out.MemberAdded += s.MemberAdded
		out.MemberRemoved += s.MemberRemoved
		out.MemberLatency.Merge(s.MemberLatency)
		out.Unknown += s.Unknown
	}
	return out
}
