package load

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Layouts say which channels the subscribers join.
const (
	LayoutShared    = "shared"     // every connection on one channel
	LayoutOwn       = "own"        // every connection on its own channel
	LayoutOwnShared = "own+shared" // its own channel plus one shared channel
	LayoutRooms     = "rooms"      // groups of RoomSize connections, one channel per group
)

// Publish modes.
const (
	ModeAPI    = "api"    // signed POST /apps/{id}/events from Publishers goroutines
	ModeClient = "client" // client- events sent by the subscribers themselves
	ModeNone   = "none"   // nothing is published (idle memory, presence storm)
	ModeDelta  = "delta"  // two V2 subscribers, one with deltas: bytes received (delta.go)
)

// Config is one load run.
type Config struct {
	Scenario string // preset name, "" for none
	Label    string // name of the server under test, for the report

	URL      string // ws:// base URL, e.g. ws://127.0.0.1:6001
	HTTPURL  string // http:// base URL of the REST API; derived from URL when empty
	AppID    string
	Key      string
	Secret   string
	Protocol int // 7 or 2

	Subscribers    int     // N connections
	ConnectRate    float64 // new connections per second, across all shards
	ConnectWorkers int     // concurrent dials
	Layout         string
	ChannelType    string // public, private or presence
	Prefix         string // channel name prefix
	RoomSize       int    // connections per channel with LayoutRooms

	Mode        string  // api, client or none
	Publishers  int     // P HTTP publishers (ModeAPI)
	Batch       int     // events per request: 1 = POST /events, more = POST /batch_events (ModeAPI)
	Rate        float64 // events per second, all publishers together (ModeAPI) or per client (ModeClient)
	Ramp        []float64
	RampAuto    bool          // --ramp auto: search for the highest rate held (see NextRate)
	MaxPhasesN  int           // --max-phases: phases of an automatic ramp
	MaxLag      time.Duration // a phase holds its rate only if deliveries end within this of the last publish
	SharedEvery int           // with own+shared: every k-th publish goes to the shared channel
	Payload     int           // bytes of event data
	Duration    time.Duration
	Drain       time.Duration // max wait for in-flight deliveries after a phase
	Settle      time.Duration // idle wait after connecting, before the RSS reading
	Timeout     time.Duration // dial + handshake + subscribe timeout of one connection

	PID             int    // server process for VmRSS and CPU readings; 0 for none
	JSON            bool   // print the JSON report instead of the table
	JSONFile        string // also write the JSON report here
	MaxConnsPerProc int    // subscriber connections per process; more spawn worker processes
	Worker          bool   // internal: run as a worker process for the parent on stdin/stdout

	// --mode delta (delta.go)
	Stream         string // ticks or chat
	Messages       int    // events published
	DeltaAlgorithm string // fossil or xdelta3
	Format         string // json, messagepack or protobuf
	RandomIDs      bool   // publish with a random UUIDv4 message_id each (main's ids)

	ramp *string // raw flag values, resolved by finish
	host *string
	port *int
}

// Scenario is a preset: flag values applied unless the command line sets them.
type Scenario struct {
	Name  string
	Help  string
	Flags map[string]string
}

// Scenarios are the presets of issue 9.
var Scenarios = map[string]Scenario{
	"fanout": {Name: "fanout", Help: "5,000 subscribers on one channel; 100-byte events at 100/s, then a search (×2 while held, then bisection) for the highest rate held at 100% delivery",
		Flags: map[string]string{"n": "5000", "layout": LayoutShared, "mode": ModeAPI, "publishers": "4", "rate": "100", "ramp": "auto", "payload": "100", "duration": "10s", "connect-rate": "2000"}},
	"many-channels": {Name: "many-channels", Help: "5,000 connections, each on its own channel plus one shared channel; publishes spread over the channels (every 100th to the shared one)",
		Flags: map[string]string{"n": "5000", "layout": LayoutOwnShared, "mode": ModeAPI, "publishers": "8", "rate": "1000", "shared-every": "100", "payload": "100", "duration": "10s", "connect-rate": "2000"}},
	"fanout-latency": {Name: "fanout-latency", Help: "the fan-out at a fixed 10 events/s that both servers hold (50,000 deliveries/s): latency at equal offered load",
		Flags: map[string]string{"n": "5000", "layout": LayoutShared, "mode": ModeAPI, "publishers": "4", "rate": "10", "payload": "100", "duration": "10s", "connect-rate": "2000"}},
	"idle-memory": {Name: "idle-memory", Help: "10,000 idle connections, each subscribed to its own channel; server RSS per connection (give --pid)",
		Flags: map[string]string{"n": "10000", "layout": LayoutOwn, "mode": ModeNone, "settle": "10s", "duration": "0s", "connect-rate": "2000"}},
	"presence-storm": {Name: "presence-storm", Help: "2,000 clients joining one presence channel within 5 s; every client must learn every other member",
		Flags: map[string]string{"n": "2000", "layout": LayoutShared, "channel-type": "presence", "mode": ModeNone, "connect-rate": "400", "duration": "0s", "drain": "20s"}},
	"delta-ticks": {Name: "delta-ticks", Help: "issue 19: 100 ~200-byte price ticks to one channel; bytes received by a V2 subscriber with deltas vs one without (every delta rebuilt and checked)",
		Flags: map[string]string{"mode": ModeDelta, "stream": StreamTicks, "messages": "100", "protocol": "2"}},
	"delta-chat": {Name: "delta-chat", Help: "as delta-ticks with 100 unrelated chat lines, where deltas should be skipped",
		Flags: map[string]string{"mode": ModeDelta, "stream": StreamChat, "messages": "100", "protocol": "2"}},
	"chat": {Name: "chat", Help: "500 private rooms of 4 members; every member sends a 100-byte client event every 2 s to its room",
		Flags: map[string]string{"n": "2000", "layout": LayoutRooms, "room-size": "4", "channel-type": "private", "mode": ModeClient, "rate": "0.5", "payload": "100", "duration": "10s", "connect-rate": "1000"}},
}

// ScenarioNames lists the presets in a stable order.
func ScenarioNames() []string {
	names := make([]string, 0, len(Scenarios))
	for n := range Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func newFlagSet(c *Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pwload", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Scenario, "scenario", "", "preset: "+strings.Join(ScenarioNames(), ", ")+" (flags given explicitly override it)")
	fs.StringVar(&c.Label, "label", "server", "name of the server under test, for the report")
	fs.StringVar(&c.URL, "url", "", "WebSocket base URL, e.g. ws://127.0.0.1:6001 (default from --host and --port)")
	fs.StringVar(&c.HTTPURL, "http-url", "", "REST API base URL (default: the --url host over http://)")
	host := fs.String("host", "127.0.0.1", "server host, when --url is not given")
	port := fs.Int("port", 6001, "server port, when --url is not given")
	fs.StringVar(&c.AppID, "app-id", "app-id", "app id (REST API path)")
	fs.StringVar(&c.Key, "key", "app-key", "app key (WebSocket path, API auth_key, channel auth)")
	fs.StringVar(&c.Secret, "secret", "app-secret", "app secret (API signatures, channel auth)")
	fs.IntVar(&c.Protocol, "protocol", 7, "protocol: 7 (Pusher) or 2 (Sockudo V2, connects with echo_messages=false)")
	fs.IntVar(&c.Subscribers, "n", 100, "subscriber connections")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 1000, "new connections per second (all processes together)")
	fs.IntVar(&c.ConnectWorkers, "connect-workers", 64, "concurrent connection attempts per process")
	fs.StringVar(&c.Layout, "layout", LayoutShared, "channels: shared (one channel), own (one each), own+shared, rooms (--room-size per channel)")
	fs.StringVar(&c.ChannelType, "channel-type", "public", "public, private or presence channels (auth is signed with --secret)")
	fs.StringVar(&c.Prefix, "prefix", "bench", "channel name prefix")
	fs.IntVar(&c.RoomSize, "room-size", 4, "connections per channel with --layout rooms")
	fs.StringVar(&c.Mode, "mode", ModeAPI, "publishing: api (signed HTTP), client (client- events from the subscribers), none")
	fs.IntVar(&c.Publishers, "publishers", 4, "concurrent HTTP publishers (--mode api)")
	fs.IntVar(&c.Batch, "batch", 1, "events per API request: 1 sends POST /events, more send POST /batch_events (--mode api); --rate counts events")
	fs.Float64Var(&c.Rate, "rate", 100, "events per second: all publishers together (api), per connection (client)")
	ramp := fs.String("ramp", "", "further phases: rates (comma-separated, stopping after the first phase that does not hold), or auto (×2 while held, then bisect)")
	fs.IntVar(&c.MaxPhasesN, "max-phases", 8, "phases of --ramp auto, the first one included")
	fs.DurationVar(&c.MaxLag, "max-lag", time.Second, "a phase holds its rate only if its last delivery comes within this of its last publish")
	fs.IntVar(&c.SharedEvery, "shared-every", 100, "with --layout own+shared, every k-th publish goes to the shared channel")
	fs.IntVar(&c.Payload, "payload", 100, "bytes of event data (holds the publish timestamp)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "publishing time per phase")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "max wait after a phase for deliveries still in flight")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "idle wait after connecting, before reading the server RSS")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "timeout of one connection's dial, handshake and subscription")
	fs.IntVar(&c.PID, "pid", 0, "server process id: VmRSS and CPU from /proc/<pid> before and after connecting")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&c.JSONFile, "json-file", "", "also write the JSON report to this file")
	fs.IntVar(&c.MaxConnsPerProc, "max-conns-per-proc", 8000, "connections per process; more run in worker processes")
	fs.BoolVar(&c.Worker, "worker", false, "internal: run as a worker of another pwload")
	fs.StringVar(&c.Stream, "stream", StreamTicks, "--mode delta: ticks or chat")
	fs.IntVar(&c.Messages, "messages", 100, "--mode delta: events published")
	fs.StringVar(&c.DeltaAlgorithm, "delta-algorithm", "fossil", "--mode delta: fossil or xdelta3")
	fs.StringVar(&c.Format, "format", "json", "--mode delta: json, messagepack or protobuf")
	fs.BoolVar(&c.RandomIDs, "random-message-ids", false, "--mode delta: publish each event with its own random UUIDv4 message_id (to measure what server ids sharing a prefix save)")
	c.ramp, c.host, c.port = ramp, host, port
	return fs
}

// ParseArgs parses a command line into a Config: the scenario's preset first, then the flags
// given explicitly.
func ParseArgs(args []string, out io.Writer) (*Config, error) {
	c := &Config{}
	fs := newFlagSet(c, out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: pwload [flags]\n\nA Pusher protocol 7 (and V2) load generator. Scenarios:\n")
		for _, n := range ScenarioNames() {
			fmt.Fprintf(out, "  %-15s %s\n", n, Scenarios[n].Help)
		}
		fmt.Fprintf(out, "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("pwload: unexpected argument %q", fs.Arg(0))
	}
	if c.Scenario != "" {
		sc, ok := Scenarios[c.Scenario]
		if !ok {
			return nil, fmt.Errorf("pwload: unknown scenario %q (have %s)", c.Scenario, strings.Join(ScenarioNames(), ", "))
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		names := make([]string, 0, len(sc.Flags))
		for n := range sc.Flags {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if !set[n] {
				if err := fs.Set(n, sc.Flags[n]); err != nil {
					return nil, fmt.Errorf("pwload: scenario %s: -%s: %v", c.Scenario, n, err)
				}
			}
		}
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// finish derives URLs and the ramp and validates the whole config.
func (c *Config) finish() error {
	if c.URL == "" {
		c.URL = "ws://" + net.JoinHostPort(*c.host, strconv.Itoa(*c.port))
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "ws" || u.Host == "" {
		return fmt.Errorf("pwload: --url must be ws://host:port, got %q", c.URL)
	}
	if c.HTTPURL == "" {
		c.HTTPURL = "http://" + u.Host
	}
	c.Ramp = nil
	c.RampAuto = false
	if s := strings.TrimSpace(*c.ramp); s == "auto" {
		c.RampAuto = true
	} else if s != "" {
		for _, f := range strings.Split(s, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || r <= 0 {
				return fmt.Errorf("pwload: --ramp: bad rate %q", f)
			}
			c.Ramp = append(c.Ramp, r)
		}
	}
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("pwload: "+format, a...))
		}
	}
	check(c.Protocol == 7 || c.Protocol == 2, "--protocol must be 7 or 2")
	check(c.Subscribers > 0, "--n must be positive")
	check(c.ConnectRate > 0, "--connect-rate must be positive")
	check(c.ConnectWorkers > 0, "--connect-workers must be positive")
	check(c.Layout == LayoutShared || c.Layout == LayoutOwn || c.Layout == LayoutOwnShared || c.Layout == LayoutRooms, "unknown --layout %q", c.Layout)
	check(c.ChannelType == "public" || c.ChannelType == "private" || c.ChannelType == "presence", "unknown --channel-type %q", c.ChannelType)
	check(c.Mode == ModeAPI || c.Mode == ModeClient || c.Mode == ModeNone || c.Mode == ModeDelta, "unknown --mode %q", c.Mode)
	check(c.Mode != ModeDelta || (c.Stream == StreamTicks || c.Stream == StreamChat) && c.Messages > 0 &&
		(c.DeltaAlgorithm == "fossil" || c.DeltaAlgorithm == "xdelta3") && (c.Format == "json" || c.Format == "messagepack" || c.Format == "protobuf"),
		"--mode delta needs --stream ticks|chat, --messages > 0, --delta-algorithm fossil|xdelta3, --format json|messagepack|protobuf")
	check(c.Mode != ModeClient || c.ChannelType != "public", "client events need --channel-type private or presence")
	check(c.Mode != ModeAPI || c.Publishers > 0, "--publishers must be positive")
	check(c.Batch >= 1, "--batch must be at least 1")
	check(c.Mode == ModeNone || c.Rate > 0, "--rate must be positive")
	check(c.RoomSize > 0, "--room-size must be positive")
	check(c.SharedEvery > 0, "--shared-every must be positive")
	check(c.Payload >= 0 && c.Payload <= 1<<20, "--payload must be 0..1048576")
	check(c.Duration >= 0 && c.Drain >= 0 && c.Settle >= 0 && c.Timeout > 0, "durations must not be negative")
	check(c.MaxConnsPerProc > 0, "--max-conns-per-proc must be positive")
	check((len(c.Ramp) == 0 && !c.RampAuto) || c.Mode != ModeNone, "--ramp needs a publishing --mode")
	check(c.MaxPhasesN > 0 && c.MaxPhasesN <= MaxPhases, "--max-phases must be 1..%d", MaxPhases)
	check(c.MaxLag > 0, "--max-lag must be positive")
	check(c.Prefix != "" && !strings.ContainsAny(c.Prefix, "\"\\ "), "bad --prefix")
	return errors.Join(errs...)
}

// Rates are the publish rates of the run's phases: --rate, then the --ramp steps (with
// --ramp auto, only the first; NextRate gives the others).
func (c *Config) Rates() []float64 {
	if c.Mode == ModeNone {
		return nil
	}
	return append([]float64{c.Rate}, c.Ramp...)
}

// NextRate picks the next rate of an automatic ramp from the rates held and not held so far
// (0 and +Inf when none): double the highest held until one fails, halve the lowest failed
// until one holds, then bisect. It returns 0 when the bracket is within 10%.
func NextRate(last float64, lastHeld bool, held, failed float64) float64 {
	switch {
	case lastHeld && failed == 0:
		return last * 2
	case held == 0:
		return failed / 2
	case failed/held <= 1.1:
		return 0
	}
	return (held + failed) / 2
}

// channelName is the name of channel i of the layout (i = -1 is the shared channel).
func (c *Config) channelName(i int) string {
	p := c.Prefix
	switch c.ChannelType {
	case "private":
		p = "private-" + p
	case "presence":
		p = "presence-" + p
	}
	if i < 0 {
		return p + "-shared"
	}
	return p + "-" + strconv.Itoa(i)
}

// Channels returns the channels connection i subscribes to, as indexes into the layout's
// channel table (see ChannelCount and ChannelName).
func (c *Config) Channels(i int) []int {
	switch c.Layout {
	case LayoutOwn:
		return []int{i + 1}
	case LayoutOwnShared:
		return []int{i + 1, 0}
	case LayoutRooms:
		return []int{i/c.RoomSize + 1}
	}
	return []int{0}
}

// ChannelCount is the size of the channel table: index 0 is the shared channel, 1.. are the
// per-connection or per-room channels.
func (c *Config) ChannelCount() int {
	switch c.Layout {
	case LayoutOwn, LayoutOwnShared:
		return c.Subscribers + 1
	case LayoutRooms:
		return (c.Subscribers+c.RoomSize-1)/c.RoomSize + 1
	}
	return 1
}

// ChannelName is the name of table entry i.
func (c *Config) ChannelName(i int) string {
	if i == 0 {
		return c.channelName(-1)
	}
	return c.channelName(i - 1)
}

// publishChannel is the channel of the k-th API publish of a phase.
func (c *Config) publishChannel(k int) int {
	switch c.Layout {
	case LayoutOwn:
		return k%c.Subscribers + 1
	case LayoutOwnShared:
		if k%c.SharedEvery == c.SharedEvery-1 {
			return 0
		}
		return k%c.Subscribers + 1
	case LayoutRooms:
		return k%(c.ChannelCount()-1) + 1
	}
	return 0
}
