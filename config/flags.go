package config

import (
	"flag"
	"fmt"
	"reflect"
	"strings"
)

// usages is the one-line help of every top-level setting, keyed by YAML key, each with its
// default. A test checks that every setting has a line and that the defaults are true.
var usages = map[string]string{
	"host":                              "interface the WebSocket and REST listener binds (default 127.0.0.1)",
	"port":                              "WebSocket and REST port (default 6001)",
	"log_level":                         "log level: debug, info, warn or error (default info)",
	"log_format":                        "log format: console or json (default console)",
	"max_connections":                   "max open WebSocket connections on this node, 0 = unlimited (default 0)",
	"activity_timeout":                  "client silence before the server sends pusher:ping (default 120s)",
	"pong_timeout":                      "wait for any frame after a ping before closing with 4201 (default 30s)",
	"max_message_kb":                    "max inbound WebSocket message size in KB, 1009 over it (default 64)",
	"max_resume_message_kb":             "max sockudo:resume message in KB (one frame names every channel resumed), 0 = 0.5 KB per channel a connection may hold (default 0)",
	"max_refused_requests":              "refused requests (4301, 4100) per connection, a burst refilled one a second; past it close 4301, -1 = never (default 50)",
	"write_queue_messages":              "max frames queued for one connection (default 1024)",
	"write_queue_kb":                    "max KB queued for one connection before closing it with 4100 (default 8192)",
	"write_timeout":                     "max time for one socket write before disconnecting the client (default 10s)",
	"shutdown_timeout":                  "max time for a graceful shutdown (default 10s)",
	"max_request_body_kb":               "max HTTP API request body in KB, 413 over it (default 10240)",
	"max_inbound_buffer_mb":             "server-wide cap in MB on bytes held for HTTP bodies and WebSocket frames still arriving (default 64)",
	"http_read_header_timeout":          "max time to read an HTTP request's headers (default 10s)",
	"http_read_timeout":                 "max time to read a whole HTTP request, body included; 408 and close past it (default 30s)",
	"http_idle_timeout":                 "close a keep-alive HTTP connection idle this long (default 2m0s)",
	"drain_delay":                       "on SIGTERM, report not ready this long before closing sockets (default 0s)",
	"tls_cert_file":                     "PEM certificate for wss:// and https://, with tls_key_file (default empty)",
	"tls_key_file":                      "PEM private key for wss:// and https://, with tls_cert_file (default empty)",
	"metrics_enabled":                   "serve Prometheus metrics on metrics_host:metrics_port (default true)",
	"metrics_host":                      "interface of the metrics listener (default 127.0.0.1)",
	"metrics_port":                      "port of the metrics listener, GET /metrics (default 9601)",
	"console":                           "serve the debug console; each app signs in with its console_token or secret (default false)",
	"console_listener":                  "where the debug console is served: metrics (the metrics listener) or main (default metrics)",
	"console_path":                      "URL path of the debug console (default /console)",
	"max_connections_per_ip_per_minute": "new WebSocket connections per client IP per minute, 4100 over it, 0 = unlimited; 600 suits production (default 0)",
	"history_requests_per_second":       "per-connection history reads (channel_history, rewind) per second, 4301 over it, -1 = unlimited (default 10)",
	"history_request_burst":             "per-connection burst of history reads (default 50)",
	"server_history_reads_per_second":   "history reads per second of all connections together, 4301 over it, 0 = 100 per CPU, -1 = unlimited (default 0)",
	"server_resume_channels_per_second": "channels of sockudo:resume work per second of all connections together (resumes wait, not refused), 0 = 1000 per CPU, -1 = unpaced (default 0)",
	"resume_requests_per_minute":        "per-connection sockudo:resume requests per minute, 4301 over it, -1 = unlimited (default 10)",
	"max_subscriptions_per_connection":  "channels one connection may be subscribed to, 4100 over it, -1 = unlimited (default 1000)",
	"trust_forwarded_for":               "take the client IP from X-Forwarded-For, only behind your own proxy (default false)",
	"webhook_queue_size":                "webhook events waiting per endpoint; more are dropped and counted (default 10000)",
	"webhook_batch_size":                "max events in one webhook request (default 100)",
	"webhook_batch_interval":            "how long webhook events gather before a request (default 50ms)",
	"webhook_timeout":                   "max time for one webhook request (default 10s)",
	"webhook_retry_for":                 "how long a failing webhook is retried with backoff (default 5m)",
	"webhook_vacate_delay":              "wait and re-check before channel_vacated / member_removed (default 3s)",
	"ws_compression":                    "permessage-deflate: no_context_takeover, context_takeover or disabled (default no_context_takeover)",
	"ws_compression_threshold":          "smallest WebSocket message compressed, in bytes (default 512)",
	"ws_transport":                      "WebSocket implementation: auto (epoll where it can), std (coder/websocket) or epoll (default auto)",
	"gc_percent":                        "Go GC target (GOGC) unless GOGC is set; -1 = Go's default 100 (default 50)",
	"min_procs":                         "fewest Go Ps (GOMAXPROCS) unless GOMAXPROCS is set: 2 gives the GC's mark worker its own thread on a one-core server; 1 = Go's choice (default 2)",
	"history":                           "message store of channels with history: memory or postgres (default memory)",
	"database_url":                      "Postgres URL of the postgres history store (default empty)",
	"history_max_messages":              "messages kept per channel, 0 = the store's default: 1000 memory, 10000 postgres (default 0)",
	"history_max_age":                   "stored messages older than this are dropped (default 24h)",
	"push_store":                        "push devices, interests and queue: memory or postgres (default memory)",
	"token_refresh_grace":               "time a V2 client has to refresh an expired capability token before close 4009 (default 30s)",
	"resume_window":                     "time a V2 client's resume positions wait for the subscribes of their channels (default 30s)",
	"replay_queue_limit":                "live frames queued per subscription while its rewind or resume reads history; past it that replay fails (default 10000)",
	"cluster":                           "run as one node of a cluster through a broker: local, redis or nats (default local)",
	"redis_url":                         "redis:// URL of the redis cluster broker and shared idempotency store (default empty)",
	"nats_url":                          "nats:// URL of the nats cluster broker (default empty)",
	"cluster_node_timeout":              "silence after which the other nodes drop a node's presence members (default 15s)",
	"cluster_heartbeat":                 "how often a node announces itself to the cluster (default 3s)",
	"cluster_prefix":                    "broker channel/subject prefix shared by the nodes of one cluster (default pushwire)",
}

// appUsages is the one-line help of the app fields settable as PUSHWIRE_APP_* variables.
var appUsages = map[string]string{
	"id":                               "app id (required with key and secret)",
	"key":                              "app key (required with id and secret)",
	"secret":                           "app secret (required with id and key)",
	"enabled":                          "accept connections (default true)",
	"console_token":                    "credential of the app's debug console sign-in, empty = the app secret (default empty)",
	"enable_client_messages":           "allow client- events (default true)",
	"enable_user_authentication":       "allow pusher:signin (default true)",
	"enable_watchlist_events":          "send watchlist events (default true)",
	"subscription_count_events":        "send pusher_internal:subscription_count on count changes (default false)",
	"max_backend_events_per_second":    "HTTP API events per second for the app, 429 over it, 0 = unlimited (default 0)",
	"user_authentication_timeout":      "close unauthenticated sockets after this, 0 = never (default 0)",
	"allowed_origins":                  "comma-separated allowed Origin values, empty = any (default empty)",
	"max_connections":                  "max open sockets of the app, 0 = unlimited (default 0)",
	"max_client_events_per_second":     "client events per second per connection (default 10)",
	"terminate_on_client_event_limit":  "close with 4301 over the client-event rate (default false)",
	"max_presence_members_per_channel": "max users in one presence channel (default 100)",
	"max_presence_member_size_kb":      "max user_info size in KB (default 2)",
	"max_channel_name_length":          "max channel name length in bytes (default 200)",
	"max_event_name_length":            "max event name length in bytes (default 200)",
	"max_event_payload_kb":             "max event data size in KB (default 100)",
	"max_event_channels_at_once":       "max channels of one HTTP publish (default 100)",
	"max_event_batch_size":             "max events of one batch_events request (default 10)",
	"cache_ttl":                        "how long a cache channel keeps its last event (default 30m)",
	"enable_history":                   "give channels serials and store their messages (default true)",
	"history_channels":                 "comma-separated channel-name prefixes that keep history, empty = all (default empty)",
	"enable_versioned_messages":        "make HTTP publishes to history channels mutable messages, on for the built-in app (default false)",
	"versioned_channels":               "comma-separated channel-name prefixes with mutable messages, empty = all history channels (default empty)",
	"enable_delta_compression":         "let V2 clients opt in to delta frames (default true)",
	"delta_full_interval":              "most consecutive delta frames before a full one (default 100)",
	"delta_positions":                  "put message_id, stream_id and serial on delta frames, so clients track recovery positions on every message (default false)",
	"idempotency_ttl":                  "how long an HTTP publish idempotency key is remembered (default 120s)",

	// V2 wildcard subscription limits.
	"max_wildcard_subscriptions_per_connection": "max wildcard subscriptions (ticker:*) of one V2 socket (default 16)",
	"max_wildcard_patterns":                     "max distinct wildcard patterns subscribed in the app (default 10000)",
}

// Flags holds the command-line options registered by BindFlags.
type Flags struct {
	fs         *flag.FlagSet
	configPath string
	settings   []*settingFlag          // in Config field order
	byName     map[string]*settingFlag // by flag name
}

// settingFlag is the flag.Value of one top-level setting. It keeps the raw text; Set
// checks it parses so that a bad value fails fs.Parse with the flag's name.
type settingFlag struct {
	opt option
	raw string
}

// String returns the text given on the command line ("" when unset).
func (s *settingFlag) String() string {
	if s == nil {
		return ""
	}
	return s.raw
}

// Set checks and stores the flag's text.
func (s *settingFlag) Set(v string) error {
	if _, err := parseValue(s.opt.typ, v); err != nil {
		return err
	}
	s.raw = v
	return nil
}

// IsBoolFlag lets a boolean setting be given as a bare --flag.
func (s *settingFlag) IsBoolFlag() bool {
	return s != nil && s.opt.typ != nil && isBoolType(s.opt.typ)
}

// isBoolType reports whether t is bool or *bool.
func isBoolType(t reflect.Type) bool {
	return t.Kind() == reflect.Bool || (t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool)
}

// typeName names the flag's argument in --help.
func (s *settingFlag) typeName() string {
	switch {
	case s.opt.typ == durationType:
		return "duration"
	case isBoolType(s.opt.typ):
		return ""
	case s.opt.typ.Kind() == reflect.Slice:
		return "list"
	default:
		return s.opt.typ.Kind().String()
	}
}

// flagName is the flag of a YAML key: max_connections becomes max-connections.
func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// BindFlags registers --config and one flag per top-level setting of Config (named after
// its YAML key with dashes: --max-connections) on fs, and sets fs.Usage to a help text that
// lists every flag with its default and environment variable.
func BindFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, byName: map[string]*settingFlag{}}
	fs.StringVar(&f.configPath, "config", "",
		"YAML configuration file; ${VAR} and ${VAR:-default} in it are expanded from the environment")
	for _, o := range configOptions {
		s := &settingFlag{opt: o}
		name := flagName(o.key)
		usage, ok := usages[o.key]
		if !ok {
			usage = "see the " + o.key + " setting"
		}
		fs.Var(s, name, usage+"; env "+envName(o.key))
		f.settings = append(f.settings, s)
		f.byName[name] = s
	}
	fs.Usage = f.usage
	return f
}

// usage prints the --help text to the flag set's output.
func (f *Flags) usage() {
	w := f.fs.Output()
	name := f.fs.Name()
	fmt.Fprintf(w, "Usage: %s [flags]\n\n", name)
	fmt.Fprintf(w, "Settings come from, lowest precedence first: built-in defaults, the YAML file\n")
	fmt.Fprintf(w, "given by --config, %s* environment variables, then these flags.\n\n", EnvPrefix)
	fmt.Fprintf(w, "Flags:\n")
	printFlag := func(fl *flag.Flag, typ string) {
		fmt.Fprintf(w, "  --%s", fl.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", typ)
		}
		fmt.Fprintf(w, "\n    \t%s\n", fl.Usage)
	}
	if fl := f.fs.Lookup("config"); fl != nil {
		printFlag(fl, "path")
	}
	for _, s := range f.settings {
		if fl := f.fs.Lookup(flagName(s.opt.key)); fl != nil {
			printFlag(fl, s.typeName())
		}
	}
	fmt.Fprintf(w, "\nApps are listed in the YAML file. Setting %sID, %sKEY and %sSECRET\n",
		appEnvPrefix, appEnvPrefix, appEnvPrefix)
	fmt.Fprintf(w, "(all three) replaces them with one app, whose other fields come from:\n")
	width := 0
	for _, o := range appOptions {
		width = max(width, len(appEnvName(o.key)))
	}
	for _, o := range appOptions {
		fmt.Fprintf(w, "  %-*s  %s\n", width, appEnvName(o.key), appUsages[o.key])
	}
}

// ConfigPath returns the --config value ("" when not given).
func (f *Flags) ConfigPath() string {
	if f == nil {
		return ""
	}
	return f.configPath
}

// Apply sets on c only the settings whose flags were given on the command line, so a flag
// overrides the file and the environment while an absent flag changes nothing.
func (f *Flags) Apply(c *Config) error {
	if f == nil || f.fs == nil {
		return nil
	}
	cv := reflect.ValueOf(c).Elem()
	var errs []string
	f.fs.Visit(func(fl *flag.Flag) {
		s, ok := f.byName[fl.Name]
		if !ok {
			return
		}
		v, err := parseValue(s.opt.typ, s.raw)
		if err != nil {
			errs = append(errs, fmt.Sprintf("--%s: %v", fl.Name, err))
			return
		}
		cv.FieldByIndex(s.opt.index).Set(v)
	})
	if len(errs) > 0 {
		return fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// LoadWithFlags loads the file named by --config and the environment like Load, then applies
// the flags given on the command line, then ApplyDefaults and Validate. A nil f means no
// flags; a nil lookupEnv means no environment.
func LoadWithFlags(f *Flags, lookupEnv func(string) (string, bool)) (*Config, error) {
	path := f.ConfigPath()
	c, err := loadSources(LoadOptions{Path: path, LookupEnv: lookupEnv})
	if err != nil {
		return nil, err
	}
	if err := f.Apply(c); err != nil {
		return nil, err
	}
	if err := finish(c, path); err != nil {
		return nil, err
	}
	return c, nil
}
