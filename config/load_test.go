package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// env returns a LookupEnv over a fixed map.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeFile writes a config file named pushwire.yaml in a temp dir and returns its path.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pushwire.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// defaults returns the configuration with nothing set.
func defaults() *Config {
	c := &Config{}
	c.ApplyDefaults()
	return c
}

func boolPtr(b bool) *bool { return &b }

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "empty file gives defaults",
			yaml: "",
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, defaults()) {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
		{
			name: "comments only gives defaults",
			yaml: "# nothing\n# here\n",
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, defaults()) {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
		{
			name: "top-level values",
			yaml: "host: 0.0.0.0\nport: 7000\nlog_level: debug\nlog_format: json\n" +
				"max_connections: 5\nactivity_timeout: 60\npong_timeout: 5s\nmax_message_kb: 8\n" +
				"write_queue_messages: 16\nwrite_queue_kb: 32\nwrite_timeout: 1m\n" +
				"shutdown_timeout: 2s\nmax_request_body_kb: 100\n",
			check: func(t *testing.T, c *Config) {
				want := &Config{
					Host: "0.0.0.0", Port: 7000, LogLevel: "debug", LogFormat: "json",
					MaxConnections: 5, ActivityTimeout: Duration(time.Minute),
					PongTimeout: Duration(5 * time.Second), MaxMessageKB: 8,
					WriteQueueMessages: 16, WriteQueueKB: 32, WriteTimeout: Duration(time.Minute),
					ShutdownTimeout: Duration(2 * time.Second), MaxRequestBodyKB: 100,
				}
				want.ApplyDefaults()
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "apps with features and limits",
			yaml: `apps:
  - id: a1
    key: k1
    secret: s1
    enabled: false
    enable_client_messages: false
    allowed_origins: [https://a.example, "*"]
    max_connections: 3
    cache_ttl: 90
  - {id: a2, key: k2, secret: s2}
`,
			check: func(t *testing.T, c *Config) {
				if len(c.Apps) != 2 {
					t.Fatalf("apps = %d, want 2", len(c.Apps))
				}
				a := c.Apps[0]
				if a.IsEnabled() || a.ClientMessages() || !a.UserAuthentication() {
					t.Errorf("features = %v %v %v", a.IsEnabled(), a.ClientMessages(), a.UserAuthentication())
				}
				if !reflect.DeepEqual(a.AllowedOrigins, []string{"https://a.example", "*"}) {
					t.Errorf("allowed_origins = %q", a.AllowedOrigins)
				}
				if a.MaxConnections != 3 || a.CacheTTL.D() != 90*time.Second {
					t.Errorf("limits = %d %s", a.MaxConnections, a.CacheTTL)
				}
				if a.MaxEventBatchSize != DefaultMaxEventBatchSize {
					t.Errorf("default limit not applied: %d", a.MaxEventBatchSize)
				}
				if b := c.Apps[1]; b.ID != "a2" || !b.IsEnabled() {
					t.Errorf("apps[1] = %+v", b)
				}
			},
		},
		{
			name: "anchors and merge keys",
			yaml: `apps:
  - &base
    id: a1
    key: k1
    secret: s1
    max_connections: 7
  - <<: *base
    id: a2
    key: k2
`,
			check: func(t *testing.T, c *Config) {
				if b := c.Apps[1]; b.ID != "a2" || b.Secret != "s1" || b.MaxConnections != 7 {
					t.Errorf("apps[1] = %+v", b)
				}
			},
		},
		{
			name: "null values mean default",
			yaml: "port:\nactivity_timeout: ~\napps:\n",
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, defaults()) {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(LoadOptions{Path: writeFile(t, tt.yaml)})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadNoFile(t *testing.T) {
	c, err := Load(LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(c, defaults()) {
		t.Errorf("got %+v, want defaults", c)
	}
	if len(c.Apps) != 1 || c.Apps[0].Key != "app-key" {
		t.Errorf("apps = %+v, want the default app", c.Apps)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // substrings of the error, after "config: <path>: "
	}{
		{
			name: "unknown top-level field",
			yaml: "host: 0.0.0.0\nport: 6001\nlog_level: info\nmax_conections: 5\n",
			want: []string{"line 4: field max_conections not found"},
		},
		{
			name: "unknown app field",
			yaml: "apps:\n  - id: a\n    key: k\n    secrte: s\n",
			want: []string{"line 4: field apps[0].secrte not found"},
		},
		{
			name: "wrong type int",
			yaml: "port: abc\n",
			want: []string{"line 1: port: cannot unmarshal !!str `abc` into int"},
		},
		{
			name: "wrong type duration",
			yaml: "log_level: info\npong_timeout: soon\n",
			want: []string{"line 2: pong_timeout:", `invalid duration "soon"`},
		},
		{
			name: "wrong type app bool",
			yaml: "apps:\n  - id: a\n    key: k\n    secret: s\n    enabled: maybe\n",
			want: []string{"line 5: apps[0].enabled: cannot unmarshal"},
		},
		{
			name: "scalar for list",
			yaml: "apps:\n  - id: a\n    key: k\n    secret: s\n    allowed_origins: https://a\n",
			want: []string{`line 5: apps[0].allowed_origins: expected a list, got "https://a"`},
		},
		{
			name: "mapping for scalar",
			yaml: "host:\n  name: x\n",
			want: []string{"line 2: host: cannot unmarshal !!map into string"},
		},
		{
			name: "apps not a list",
			yaml: "apps:\n  id: a\n",
			want: []string{"line 2: apps: expected a list, got a mapping"},
		},
		{
			name: "several errors at once",
			yaml: "port: x\nhots: y\n",
			want: []string{"line 1: port:", "line 2: field hots not found"},
		},
		{
			name: "duplicate key",
			yaml: "port: 1\nport: 2\n",
			want: []string{"line 2: port: already set at line 1"},
		},
		{
			name: "syntax error",
			yaml: "port: 1\n  host: x\n",
			want: []string{"line 2: mapping values are not allowed"},
		},
		{
			name: "top level not a mapping",
			yaml: "- port: 1\n",
			want: []string{"line 1: the top level must be a mapping of settings, got a list"},
		},
		{
			name: "two documents",
			yaml: "port: 1\n---\nport: 2\n",
			want: []string{"line 2: only one YAML document is allowed"},
		},
		{
			name: "duplicate app key",
			yaml: "apps:\n  - {id: a, key: k, secret: s}\n  - {id: b, key: k, secret: t}\n",
			want: []string{`apps[1].key: duplicate of apps[0].key "k"`},
		},
		{
			name: "duplicate app id",
			yaml: "apps:\n  - {id: a, key: k, secret: s}\n  - {id: a, key: l, secret: t}\n",
			want: []string{`apps[1].id: duplicate of apps[0].id "a"`},
		},
		{
			name: "missing secret",
			yaml: "apps:\n  - id: a\n    key: k\n",
			want: []string{"apps[0].secret: is required"},
		},
		{
			name: "invalid value",
			yaml: "port: 70000\nlog_format: xml\n",
			want: []string{"port: must be between 1 and 65535, got 70000", `log_format: must be console or json, got "xml"`},
		},
		{
			name: "console without its listener",
			yaml: "console: true\nmetrics_enabled: false\n",
			want: []string{"console_listener: is metrics but metrics_enabled is false"},
		},
		{
			name: "console listener and path",
			yaml: "console_listener: side\nconsole_path: /apps/console\n",
			want: []string{`console_listener: must be metrics or main, got "side"`, `console_path: must be a path such as /console`},
		},
		{
			name: "console path shape",
			yaml: "console_path: console/\n",
			want: []string{`got "console/"`},
		},
		{
			name: "unset variable",
			yaml: "apps:\n  - id: a\n    key: k\n    secret: ${APP_SECRET}\n",
			want: []string{"line 4: environment variable APP_SECRET is not set"},
		},
		{
			name: "invalid variable name",
			yaml: "host: ${1X}\n",
			want: []string{"line 1: invalid variable name in ${1X}"},
		},
		{
			name: "unterminated variable",
			yaml: "host: ${HOST\n",
			env:  map[string]string{"HOST": "x"},
			want: []string{`line 1: unterminated "${HOST" (want ${VAR} or ${VAR:-default})`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.yaml)
			c, err := Load(LoadOptions{Path: path, LookupEnv: env(tt.env)})
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", c)
			}
			msg := err.Error()
			if prefix := "config: " + path + ": "; !strings.HasPrefix(msg, prefix) {
				t.Errorf("error %q does not start with %q", msg, prefix)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "config.Config") || strings.Contains(msg, " yaml: ") {
				t.Errorf("error %q leaks yaml.v3 internals", msg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(LoadOptions{Path: path})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{"HOST": "10.0.0.1", "EMPTY": "", "PORT": "7000"}
	tests := []struct {
		name, in, want string
		wantErr        string
	}{
		{name: "no references", in: "host: x\n", want: "host: x\n"},
		{name: "set variable", in: "host: ${HOST}\n", want: "host: 10.0.0.1\n"},
		{name: "two on a line", in: "x: ${HOST}:${PORT}\n", want: "x: 10.0.0.1:7000\n"},
		{name: "default unused", in: "port: ${PORT:-6001}", want: "port: 7000"},
		{name: "default for unset", in: "port: ${NOPE:-6001}", want: "port: 6001"},
		{name: "default for empty", in: "h: ${EMPTY:-d}", want: "h: d"},
		{name: "empty default", in: "h: '${NOPE:-}'", want: "h: ''"},
		{name: "empty without default", in: "h: '${EMPTY}'", want: "h: ''"},
		{name: "default with spaces and colon", in: "h: ${NOPE:-a b:c}", want: "h: a b:c"},
		{name: "escape", in: "s: $${HOST}", want: "s: ${HOST}"},
		{name: "lone dollar", in: "s: a$b$", want: "s: a$b$"},
		{name: "comment line untouched", in: "  # use ${UNSET}\nh: ${HOST}\n", want: "  # use ${UNSET}\nh: 10.0.0.1\n"},
		{name: "unset", in: "a: 1\nh: ${UNSET}\n", wantErr: "line 2: environment variable UNSET is not set"},
		{name: "bad name", in: "h: ${A-B}", wantErr: "line 1: invalid variable name in ${A-B}"},
		{name: "empty name", in: "h: ${}", wantErr: "line 1: invalid variable name"},
		{name: "unterminated", in: "h: ${HOST", wantErr: `line 1: unterminated "${HOST"`},
		{name: "errors on several lines", in: "a: ${X}\nb: ${Y}\n", wantErr: "line 1: environment variable X is not set (use ${X:-default} to give a default); line 2: environment variable Y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := interpolate(tt.in, env(vars))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("interpolate: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInterpolateNilLookup(t *testing.T) {
	got, err := interpolate("a: ${X:-d}\n", nil)
	if err != nil || got != "a: d\n" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := interpolate("a: ${X}\n", nil); err == nil {
		t.Error("unset ${X} with nil lookup: want an error")
	}
}

func TestLoadInterpolatedFile(t *testing.T) {
	path := writeFile(t, "port: ${PORT:-6002}\napps:\n  - id: a\n    key: ${KEY}\n    secret: \"${SECRET}\"\n")
	c, err := Load(LoadOptions{Path: path, LookupEnv: env(map[string]string{"KEY": "k", "SECRET": "s#1"})})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Port != 6002 || c.Apps[0].Key != "k" || c.Apps[0].Secret != "s#1" {
		t.Errorf("got port %d app %+v", c.Port, c.Apps[0])
	}
}

func TestEnvNames(t *testing.T) {
	want := []string{
		"PUSHWIRE_HOST", "PUSHWIRE_PORT", "PUSHWIRE_LOG_LEVEL", "PUSHWIRE_LOG_FORMAT",
		"PUSHWIRE_MAX_CONNECTIONS", "PUSHWIRE_ACTIVITY_TIMEOUT", "PUSHWIRE_PONG_TIMEOUT",
		"PUSHWIRE_MAX_MESSAGE_KB", "PUSHWIRE_MAX_RESUME_MESSAGE_KB", "PUSHWIRE_MAX_REFUSED_REQUESTS", "PUSHWIRE_WRITE_QUEUE_MESSAGES", "PUSHWIRE_WRITE_QUEUE_KB",
		"PUSHWIRE_WRITE_TIMEOUT", "PUSHWIRE_SHUTDOWN_TIMEOUT", "PUSHWIRE_MAX_REQUEST_BODY_KB", "PUSHWIRE_MAX_INBOUND_BUFFER_MB",
		"PUSHWIRE_HTTP_READ_HEADER_TIMEOUT", "PUSHWIRE_HTTP_READ_TIMEOUT", "PUSHWIRE_HTTP_IDLE_TIMEOUT",
		"PUSHWIRE_DRAIN_DELAY", "PUSHWIRE_TLS_CERT_FILE", "PUSHWIRE_TLS_KEY_FILE",
		"PUSHWIRE_METRICS_ENABLED", "PUSHWIRE_METRICS_HOST", "PUSHWIRE_METRICS_PORT",
		"PUSHWIRE_CONSOLE", "PUSHWIRE_CONSOLE_LISTENER", "PUSHWIRE_CONSOLE_PATH",
		"PUSHWIRE_MAX_CONNECTIONS_PER_IP_PER_MINUTE", "PUSHWIRE_HISTORY_REQUESTS_PER_SECOND", "PUSHWIRE_HISTORY_REQUEST_BURST", "PUSHWIRE_SERVER_HISTORY_READS_PER_SECOND", "PUSHWIRE_SERVER_RESUME_CHANNELS_PER_SECOND", "PUSHWIRE_RESUME_REQUESTS_PER_MINUTE", "PUSHWIRE_MAX_SUBSCRIPTIONS_PER_CONNECTION", "PUSHWIRE_TRUST_FORWARDED_FOR",
		"PUSHWIRE_WEBHOOK_QUEUE_SIZE", "PUSHWIRE_WEBHOOK_BATCH_SIZE", "PUSHWIRE_WEBHOOK_BATCH_INTERVAL",
		"PUSHWIRE_WEBHOOK_TIMEOUT", "PUSHWIRE_WEBHOOK_RETRY_FOR", "PUSHWIRE_WEBHOOK_VACATE_DELAY",
		"PUSHWIRE_WS_COMPRESSION", "PUSHWIRE_WS_COMPRESSION_THRESHOLD", "PUSHWIRE_WS_TRANSPORT", "PUSHWIRE_GC_PERCENT", "PUSHWIRE_MIN_PROCS",
		"PUSHWIRE_HISTORY", "PUSHWIRE_DATABASE_URL", "PUSHWIRE_HISTORY_MAX_MESSAGES", "PUSHWIRE_HISTORY_MAX_AGE",
		"PUSHWIRE_TOKEN_REFRESH_GRACE", "PUSHWIRE_RESUME_WINDOW", "PUSHWIRE_REPLAY_QUEUE_LIMIT",
		"PUSHWIRE_CLUSTER", "PUSHWIRE_REDIS_URL", "PUSHWIRE_NATS_URL", "PUSHWIRE_CLUSTER_NODE_TIMEOUT",
		"PUSHWIRE_CLUSTER_HEARTBEAT", "PUSHWIRE_CLUSTER_PREFIX", "PUSHWIRE_PUSH_STORE",
	}
	var got []string
	for _, o := range configOptions {
		got = append(got, envName(o.key))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env vars = %q\nwant %q", got, want)
	}
	// Every App field is reachable from the environment, and no name collides.
	seen := map[string]bool{}
	for _, n := range got {
		seen[n] = true
	}
	// Every App field but the webhooks list, the delta conflation map, the push settings and
	// the presence-history settings (file only) is reachable from the environment.
	if n := len(appOptions); n != reflect.TypeFor[App]().NumField()-4 {
		t.Errorf("%d app options for %d App fields", n, reflect.TypeFor[App]().NumField())
	}
	for _, o := range appOptions {
		n := appEnvName(o.key)
		if seen[n] {
			t.Errorf("%s collides with a top-level variable", n)
		}
		seen[n] = true
	}
}

func TestEnv(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "every top-level variable",
			env: map[string]string{
				"PUSHWIRE_HOST": "0.0.0.0", "PUSHWIRE_PORT": "7001", "PUSHWIRE_LOG_LEVEL": "warn",
				"PUSHWIRE_LOG_FORMAT": "json", "PUSHWIRE_MAX_CONNECTIONS": "9",
				"PUSHWIRE_ACTIVITY_TIMEOUT": "30", "PUSHWIRE_PONG_TIMEOUT": "1m",
				"PUSHWIRE_MAX_MESSAGE_KB": "1", "PUSHWIRE_WRITE_QUEUE_MESSAGES": "2",
				"PUSHWIRE_WRITE_QUEUE_KB": "3", "PUSHWIRE_WRITE_TIMEOUT": "4s",
				"PUSHWIRE_SHUTDOWN_TIMEOUT": "5s", "PUSHWIRE_MAX_REQUEST_BODY_KB": "6",
			},
			check: func(t *testing.T, c *Config) {
				want := &Config{
					Host: "0.0.0.0", Port: 7001, LogLevel: "warn", LogFormat: "json",
					MaxConnections: 9, ActivityTimeout: Duration(30 * time.Second),
					PongTimeout: Duration(time.Minute), MaxMessageKB: 1, WriteQueueMessages: 2,
					WriteQueueKB: 3, WriteTimeout: Duration(4 * time.Second),
					ShutdownTimeout: Duration(5 * time.Second), MaxRequestBodyKB: 6,
				}
				want.ApplyDefaults()
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "empty variables are ignored",
			env:  map[string]string{"PUSHWIRE_PORT": "", "PUSHWIRE_APP_ID": ""},
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, defaults()) {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
		{
			name: "unrelated variables are ignored",
			env:  map[string]string{"PORT": "1", "PUSHWIRE_APPS": "x", "PUSHWIRE_CONFIG": "x"},
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, defaults()) {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
		{
			name: "app trio",
			env: map[string]string{
				"PUSHWIRE_APP_ID": "demo-app", "PUSHWIRE_APP_KEY": "demo-key",
				"PUSHWIRE_APP_SECRET": "demo-secret",
			},
			check: func(t *testing.T, c *Config) {
				want := App{ID: "demo-app", Key: "demo-key", Secret: "demo-secret"}
				want.ApplyDefaults()
				if len(c.Apps) != 1 || !reflect.DeepEqual(c.Apps[0], want) {
					t.Errorf("apps = %+v, want [%+v]", c.Apps, want)
				}
			},
		},
		{
			name: "app with every kind of field",
			env: map[string]string{
				"PUSHWIRE_APP_ID": "i", "PUSHWIRE_APP_KEY": "k", "PUSHWIRE_APP_SECRET": "s",
				"PUSHWIRE_APP_ENABLED":                         "0",
				"PUSHWIRE_APP_ENABLE_CLIENT_MESSAGES":          "FALSE",
				"PUSHWIRE_APP_ENABLE_USER_AUTHENTICATION":      "1",
				"PUSHWIRE_APP_ENABLE_WATCHLIST_EVENTS":         "true",
				"PUSHWIRE_APP_USER_AUTHENTICATION_TIMEOUT":     "15s",
				"PUSHWIRE_APP_ALLOWED_ORIGINS":                 " https://a.example , https://b.example,, ",
				"PUSHWIRE_APP_MAX_CONNECTIONS":                 "50",
				"PUSHWIRE_APP_MAX_CLIENT_EVENTS_PER_SECOND":    "20",
				"PUSHWIRE_APP_TERMINATE_ON_CLIENT_EVENT_LIMIT": "true",
				"PUSHWIRE_APP_MAX_EVENT_PAYLOAD_KB":            "10",
				"PUSHWIRE_APP_CACHE_TTL":                       "1h",
			},
			check: func(t *testing.T, c *Config) {
				want := App{
					ID: "i", Key: "k", Secret: "s", Enabled: boolPtr(false),
					EnableClientMessages: boolPtr(false), EnableUserAuthentication: boolPtr(true),
					EnableWatchlistEvents:     boolPtr(true),
					UserAuthenticationTimeout: Duration(15 * time.Second),
					AllowedOrigins:            []string{"https://a.example", "https://b.example"},
					MaxConnections:            50, MaxClientEventsPerSecond: 20,
					TerminateOnClientEventLimit: true, MaxEventPayloadKB: 10,
					CacheTTL: Duration(time.Hour),
				}
				want.ApplyDefaults()
				if len(c.Apps) != 1 || !reflect.DeepEqual(c.Apps[0], want) {
					t.Errorf("apps = %+v\nwant [%+v]", c.Apps, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(LoadOptions{LookupEnv: env(tt.env)})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestEnvReplacesFileApps(t *testing.T) {
	path := writeFile(t, "apps:\n  - {id: a, key: k, secret: s}\n  - {id: b, key: l, secret: t}\n")
	c, err := Load(LoadOptions{Path: path, LookupEnv: env(map[string]string{
		"PUSHWIRE_APP_ID": "e", "PUSHWIRE_APP_KEY": "ek", "PUSHWIRE_APP_SECRET": "es",
	})})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.Apps) != 1 || c.Apps[0].ID != "e" || c.Apps[0].Key != "ek" {
		t.Errorf("apps = %+v, want only the env app", c.Apps)
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{
			name: "bad integer",
			env:  map[string]string{"PUSHWIRE_PORT": "x"},
			want: []string{`config: PUSHWIRE_PORT: invalid integer "x"`},
		},
		{
			name: "integer overflow",
			env:  map[string]string{"PUSHWIRE_MAX_CONNECTIONS": "99999999999999999999"},
			want: []string{`PUSHWIRE_MAX_CONNECTIONS: invalid integer "99999999999999999999"`},
		},
		{
			name: "bad duration",
			env:  map[string]string{"PUSHWIRE_ACTIVITY_TIMEOUT": "soon"},
			want: []string{`PUSHWIRE_ACTIVITY_TIMEOUT: invalid duration "soon"`},
		},
		{
			name: "several bad values",
			env:  map[string]string{"PUSHWIRE_PORT": "x", "PUSHWIRE_WRITE_TIMEOUT": "y"},
			want: []string{`PUSHWIRE_PORT: invalid integer "x"; PUSHWIRE_WRITE_TIMEOUT: invalid duration "y"`},
		},
		{
			name: "invalid value",
			env:  map[string]string{"PUSHWIRE_LOG_LEVEL": "loud"},
			want: []string{`config: log_level: must be debug, info, warn or error, got "loud"`},
		},
		{
			name: "bad app boolean",
			env: map[string]string{
				"PUSHWIRE_APP_ID": "i", "PUSHWIRE_APP_KEY": "k", "PUSHWIRE_APP_SECRET": "s",
				"PUSHWIRE_APP_ENABLE_CLIENT_MESSAGES": "yes",
			},
			want: []string{`PUSHWIRE_APP_ENABLE_CLIENT_MESSAGES: invalid boolean "yes" (use true, false, 1 or 0)`},
		},
		{
			name: "bad app integer",
			env: map[string]string{
				"PUSHWIRE_APP_ID": "i", "PUSHWIRE_APP_KEY": "k", "PUSHWIRE_APP_SECRET": "s",
				"PUSHWIRE_APP_MAX_CONNECTIONS": "many",
			},
			want: []string{`PUSHWIRE_APP_MAX_CONNECTIONS: invalid integer "many"`},
		},
		{
			name: "missing secret",
			env:  map[string]string{"PUSHWIRE_APP_ID": "i", "PUSHWIRE_APP_KEY": "k"},
			want: []string{"missing PUSHWIRE_APP_SECRET:", "(set: PUSHWIRE_APP_ID, PUSHWIRE_APP_KEY)"},
		},
		{
			name: "only id",
			env:  map[string]string{"PUSHWIRE_APP_ID": "i"},
			want: []string{"missing PUSHWIRE_APP_KEY, PUSHWIRE_APP_SECRET:"},
		},
		{
			name: "app field without credentials",
			env:  map[string]string{"PUSHWIRE_APP_MAX_CONNECTIONS": "5"},
			want: []string{"missing PUSHWIRE_APP_ID, PUSHWIRE_APP_KEY, PUSHWIRE_APP_SECRET:", "(set: PUSHWIRE_APP_MAX_CONNECTIONS)"},
		},
		{
			name: "invalid env app",
			env: map[string]string{
				"PUSHWIRE_APP_ID": "i", "PUSHWIRE_APP_KEY": "bad key", "PUSHWIRE_APP_SECRET": "s",
			},
			want: []string{"apps[0].key: must not contain"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(LoadOptions{LookupEnv: env(tt.env)})
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestExampleFile keeps pushwire.example.yaml true: it loads and validates, it lists every
// setting and every App field, and its top-level values are the defaults.
func TestExampleFile(t *testing.T) {
	const path = "../pushwire.example.yaml"
	c, err := Load(LoadOptions{Path: path})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.Apps) != 2 {
		t.Fatalf("apps = %d, want 2", len(c.Apps))
	}
	dev := DefaultApp()
	dev.ApplyDefaults()
	if !reflect.DeepEqual(c.Apps[0], dev) {
		t.Errorf("apps[0] = %+v, want the default app %+v", c.Apps[0], dev)
	}

	// The values as written, before defaults, must equal the defaults.
	raw, err := loadSources(LoadOptions{Path: path})
	if err != nil {
		t.Fatalf("loadSources: %v", err)
	}
	got, want := reflect.ValueOf(raw).Elem(), reflect.ValueOf(defaults()).Elem()
	for _, o := range configOptions {
		g, w := got.FieldByIndex(o.index).Interface(), want.FieldByIndex(o.index).Interface()
		if b, ok := g.(*bool); ok && b != nil && *b && w.(*bool) == nil {
			continue // optional booleans default to true: written out as true
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %v in the example, default is %v", o.key, g, w)
		}
	}

	// Every key is written out.
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Top  map[string]any   `yaml:",inline"`
		Apps []map[string]any `yaml:"apps"`
	}
	if err := yaml.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		if k := yamlKey(f); k != "" && k != "apps" {
			if _, ok := doc.Top[k]; !ok {
				t.Errorf("example file lacks %s", k)
			}
		}
	}
	for _, o := range appOptions {
		if _, ok := doc.Apps[1][o.key]; !ok {
			t.Errorf("example apps[1] lacks %s", o.key)
		}
	}

	// Every setting has a one-line comment right above it.
	lines := strings.Split(string(text), "\n")
	key := regexp.MustCompile(`^\s*(?:- )?([a-z_]+):`)
	for i, l := range lines {
		if m := key.FindStringSubmatch(l); m != nil && i > 0 {
			if prev := strings.TrimSpace(lines[i-1]); !strings.HasPrefix(prev, "#") &&
				!strings.HasPrefix(strings.TrimSpace(l), "- ") && m[1] != "id" && m[1] != "key" && m[1] != "secret" {
				t.Errorf("line %d: %s has no comment above it", i+1, m[1])
			}
		}
	}
}
