package load

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// WriteTable prints a report for people.
func WriteTable(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	s := r.Settings
	fmt.Fprintf(tw, "server\t%s\n", r.Label)
	if r.Scenario != "" {
		fmt.Fprintf(tw, "scenario\t%s\n", r.Scenario)
	}
	fmt.Fprintf(tw, "setup\t%d subscribers, %s layout (%d channels, %s), protocol %d, %d cores, %d load process(es)\n",
		s.Subscribers, s.Layout, s.Channels, s.ChannelType, s.Protocol, r.Cores, s.Processes)
	c := r.Connect
	fmt.Fprintf(tw, "connect\t%d/%d connected in %.2fs at %.0f/s; %d connect errors, %d subscribe errors\n",
		c.Connected, c.Attempted, c.Seconds, s.ConnectRate, c.ConnectErrors, c.SubscribeErrors)
	fmt.Fprintf(tw, "handshake\tp50 %.2f ms, p99 %.2f ms, max %.2f ms\n", c.Handshake.P50, c.Handshake.P99, c.Handshake.Max)
	fmt.Fprintf(tw, "subscribe\tp50 %.2f ms, p99 %.2f ms, max %.2f ms\n", c.Subscribe.P50, c.Subscribe.P99, c.Subscribe.Max)
	if m := r.Memory; m != nil {
		fmt.Fprintf(tw, "server RSS\t%d KiB before, %d KiB connected (+%d KiB), %d KiB at the end: %.0f bytes per connection\n",
			m.BeforeKB, m.AfterKB, m.AfterKB-m.BeforeKB, m.EndKB, m.PerConnBytes)
	}
	if p := r.Presence; p != nil {
		fmt.Fprintf(tw, "presence\t%d members; %d/%d member pairs known, %d lost; %d member_added, %d member_removed; settled in %.1fs\n",
			p.Members, p.Known, p.Expected, p.Lost, p.MemberAdded, p.MemberRemoved, p.Seconds)
		fmt.Fprintf(tw, "member_added latency\tp50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.Max)
	}
	fmt.Fprintf(tw, "disconnects\t%d %s; %d server error frames\n", r.Disconnects, codes(r.CloseCodes), r.ServerErrors)
	fmt.Fprintf(tw, "cpu\tload tool %.1fs, server %.1fs, wall %.1fs; other processes %.0f%% of a core during the run\n", r.ToolCPUSeconds, r.ServerCPUSeconds, r.WallSeconds, r.OtherCPUPct)
	tw.Flush()
	if len(r.Phases) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "phase\trate/s\tpublished\tpub/s\texpected\treceived\tdelivered %%\tdeliveries/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tsrv cpu %%\tother %%\tok\t\n")
		for _, p := range r.Phases {
			fmt.Fprintf(tw, "%d\t%g\t%d\t%.0f\t%d\t%d\t%.3f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%v\t\n",
				p.Phase, p.Rate, p.Published, p.PublishRate, p.Expected, p.Received, p.DeliveredPct, p.DeliveriesPerSec,
				p.Latency.P50, p.Latency.P90, p.Latency.P99, p.Latency.Max, p.ServerCPUPct, p.OtherCPUPct, p.OK)
		}
		tw.Flush()
		for _, p := range r.Phases {
			if p.Note != "" {
				fmt.Fprintf(w, "phase %d: %s\n", p.Phase, p.Note)
			}
		}
		if r.Best != nil {
			fmt.Fprintf(w, "best at 100%% delivery: %g/s → %.0f deliveries/s, p99 %.2f ms\n", r.Best.Rate, r.Best.DeliveriesPerSec, r.Best.Latency.P99)
		} else {
			fmt.Fprintln(w, "no phase reached 100% delivery")
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error sample: %s\n", e)
	}
}

func codes(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Main is the pwload command; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv(WorkerEnv) != "" || (len(args) == 1 && args[0] == "--worker") {
		if err := RunWorker(ctx, os.Stdin, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == "compare" {
		return compareMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "abuse" {
		return abuseMain(args[1:], stdout, stderr)
	}
	cfg, err := ParseArgs(args, stderr)
	if err != nil {
		if err.Error() == "flag: help requested" {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	progress := func(s string) { fmt.Fprintf(stderr, "%s pwload: %s\n", time.Now().Format("15:04:05.000"), s) }
	if cfg.Mode == ModeDelta {
		rep, err := RunDelta(ctx, cfg, progress)
		if rep != nil {
			js, _ := json.MarshalIndent(rep, "", "  ")
			if cfg.JSONFile != "" {
				_ = os.WriteFile(cfg.JSONFile, append(js, '\n'), 0o644)
			}
			if cfg.JSON {
				fmt.Fprintln(stdout, string(js))
			} else {
				WriteDeltaTable(stdout, rep)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	rep, err := Run(ctx, cfg, progress)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if cfg.JSONFile != "" {
		if err := os.WriteFile(cfg.JSONFile, append(js, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if cfg.JSON {
		fmt.Fprintln(stdout, string(js))
	} else {
		WriteTable(stdout, rep)
	}
	return 0
}

// compareMain is `pwload compare --dir D`: the markdown comparison of the JSON reports in D.
func compareMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pwload compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory of --json-file reports")
	ours := fs.String("ours", "pushwire", "label of our server")
	peer := fs.String("peer", "soketi", "label of the peer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	reports, err := ReadReports(*dir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(reports) == 0 {
		fmt.Fprintf(stderr, "pwload compare: no reports in %s\n", *dir)
		return 1
	}
	WriteComparison(stdout, reports, *ours, *peer)
	return 0
}
