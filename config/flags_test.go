package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// parse binds the flags on a fresh FlagSet and parses args.
func parse(t *testing.T, args ...string) (*Flags, error) {
	t.Helper()
	fs := flag.NewFlagSet("pushwire", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := BindFlags(fs)
	return f, fs.Parse(args)
}

func TestFlagNames(t *testing.T) {
	fs := flag.NewFlagSet("pushwire", flag.ContinueOnError)
	BindFlags(fs)
	var got []string
	fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
	want := []string{
		"activity-timeout", "cluster", "cluster-heartbeat", "cluster-node-timeout", "cluster-prefix", "config", "console", "console-listener", "console-path", "database-url", "drain-delay", "gc-percent", "history", "history-max-age",
		"history-max-messages", "history-request-burst", "history-requests-per-second", "host", "http-idle-timeout", "http-read-header-timeout", "http-read-timeout", "log-format", "log-level",
		"max-connections", "max-connections-per-ip-per-minute", "max-inbound-buffer-mb", "max-message-kb",
		"max-refused-requests", "max-request-body-kb", "max-resume-message-kb", "max-subscriptions-per-connection", "metrics-enabled", "metrics-host", "metrics-port", "min-procs", "nats-url", "pong-timeout",
		"port", "push-store", "redis-url", "replay-queue-limit", "resume-requests-per-minute", "resume-window", "server-history-reads-per-second", "server-resume-channels-per-second", "shutdown-timeout", "tls-cert-file", "tls-key-file", "token-refresh-grace", "trust-forwarded-for",
		"webhook-batch-interval", "webhook-batch-size", "webhook-queue-size", "webhook-retry-for",
		"webhook-timeout", "webhook-vacate-delay", "write-queue-kb", "write-queue-messages",
		"write-timeout", "ws-compression", "ws-compression-threshold", "ws-transport",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flags = %q\nwant %q", got, want)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "none",
			args: nil,
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, defaults()) {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
		{
			name: "every setting",
			args: []string{
				"--host", "0.0.0.0", "--port=7002", "-log-level", "error", "--log-format", "json",
				"--max-connections", "11", "--activity-timeout", "45", "--pong-timeout", "3s",
				"--max-message-kb", "12", "--write-queue-messages", "13", "--write-queue-kb", "14",
				"--write-timeout", "15s", "--shutdown-timeout", "16s", "--max-request-body-kb", "17",
			},
			check: func(t *testing.T, c *Config) {
				want := &Config{
					Host: "0.0.0.0", Port: 7002, LogLevel: "error", LogFormat: "json",
					MaxConnections: 11, ActivityTimeout: Duration(45 * time.Second),
					PongTimeout: Duration(3 * time.Second), MaxMessageKB: 12,
					WriteQueueMessages: 13, WriteQueueKB: 14,
					WriteTimeout: Duration(15 * time.Second), ShutdownTimeout: Duration(16 * time.Second),
					MaxRequestBodyKB: 17,
				}
				want.ApplyDefaults()
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "last occurrence wins",
			args: []string{"--port", "7000", "--port", "7001"},
			check: func(t *testing.T, c *Config) {
				if c.Port != 7001 {
					t.Errorf("port = %d, want 7001", c.Port)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parse(t, tt.args...)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			c, err := LoadWithFlags(f, nil)
			if err != nil {
				t.Fatalf("LoadWithFlags: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		parseErr string // error from fs.Parse
		loadErr  string // error from LoadWithFlags
	}{
		{name: "bad integer", args: []string{"--port", "x"}, parseErr: `invalid value "x" for flag -port: invalid integer "x"`},
		{name: "bad duration", args: []string{"--write-timeout", "x"}, parseErr: `for flag -write-timeout: invalid duration "x"`},
		{name: "unknown flag", args: []string{"--max-conections", "1"}, parseErr: "flag provided but not defined: -max-conections"},
		{name: "invalid value", args: []string{"--log-format", "xml"}, loadErr: `config: log_format: must be console or json, got "xml"`},
		{name: "missing file", args: []string{"--config", "/nonexistent/pushwire.yaml"}, loadErr: "/nonexistent/pushwire.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parse(t, tt.args...)
			if tt.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.parseErr) {
					t.Fatalf("Parse err = %v, want %q", err, tt.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, err := LoadWithFlags(f, nil); err == nil || !strings.Contains(err.Error(), tt.loadErr) {
				t.Fatalf("LoadWithFlags err = %v, want %q", err, tt.loadErr)
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	var nilFlags *Flags
	if p := nilFlags.ConfigPath(); p != "" {
		t.Errorf("nil ConfigPath = %q", p)
	}
	f, err := parse(t, "--config", "/etc/pushwire.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p := f.ConfigPath(); p != "/etc/pushwire.yaml" {
		t.Errorf("ConfigPath = %q", p)
	}
}

// TestPrecedence checks defaults < file < env < flags, setting by setting.
func TestPrecedence(t *testing.T) {
	path := writeFile(t, "host: file-host\nport: 7100\nlog_level: debug\nmax_message_kb: 100\n")
	f, err := parse(t, "--config", path, "--port", "7300")
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadWithFlags(f, env(map[string]string{
		"PUSHWIRE_PORT": "7200", "PUSHWIRE_LOG_LEVEL": "warn",
	}))
	if err != nil {
		t.Fatalf("LoadWithFlags: %v", err)
	}
	tests := []struct {
		field     string
		got, want any
	}{
		{"port (flag over env over file)", c.Port, 7300},
		{"log_level (env over file)", c.LogLevel, "warn"},
		{"host (file over default)", c.Host, "file-host"},
		{"max_message_kb (file over default)", c.MaxMessageKB, 100},
		{"write_queue_kb (default)", c.WriteQueueKB, DefaultWriteQueueKB},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
}

// TestFlagFixesEnv checks that validation runs after the flags: a flag may correct a bad
// environment value.
func TestFlagFixesEnv(t *testing.T) {
	f, err := parse(t, "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadWithFlags(f, env(map[string]string{"PUSHWIRE_LOG_LEVEL": "loud"}))
	if err != nil {
		t.Fatalf("LoadWithFlags: %v", err)
	}
	if c.LogLevel != "debug" {
		t.Errorf("log_level = %q", c.LogLevel)
	}
}

func TestLoadWithNilFlags(t *testing.T) {
	c, err := LoadWithFlags(nil, env(map[string]string{"PUSHWIRE_PORT": "7005"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7005 {
		t.Errorf("port = %d", c.Port)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	fs := flag.NewFlagSet("pushwire", flag.ContinueOnError)
	fs.SetOutput(&out)
	BindFlags(fs)
	if err := fs.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(--help) = %v, want ErrHelp", err)
	}
	help := out.String()
	var want []string
	want = append(want, "--config path")
	for _, o := range configOptions {
		want = append(want, "--"+flagName(o.key)+"\n", envName(o.key), usages[o.key])
		if o.typ.Kind() != reflect.Bool && o.typ.Kind() != reflect.Pointer {
			want[len(want)-3] = "--" + flagName(o.key) + " "
		}
	}
	for _, o := range appOptions {
		want = append(want, appEnvName(o.key))
	}
	want = append(want, "--port int", "--activity-timeout duration", "--host string")
	for _, w := range want {
		if !strings.Contains(help, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	if t.Failed() {
		t.Log(help)
	}
}

// TestUsageTables checks that every setting has a help line and that the default each line
// quotes is the real default.
func TestUsageTables(t *testing.T) {
	re := regexp.MustCompile(`\(default ([^)]*)\)$`)
	check := func(table map[string]string, opts []option, def reflect.Value) {
		t.Helper()
		if len(table) != len(opts) {
			t.Errorf("table has %d lines for %d options", len(table), len(opts))
		}
		for _, o := range opts {
			u, ok := table[o.key]
			if !ok {
				t.Errorf("no usage line for %s", o.key)
				continue
			}
			m := re.FindStringSubmatch(u)
			if m == nil {
				continue // e.g. id, key, secret
			}
			text := m[1]
			if text == "empty" {
				text = ""
			}
			v, err := parseValue(o.typ, text)
			if err != nil {
				t.Errorf("%s: default %q does not parse: %v", o.key, m[1], err)
				continue
			}
			got := def.FieldByIndex(o.index)
			if got.Kind() == reflect.Pointer && got.IsNil() {
				got = reflect.ValueOf(boolPtr(true)) // nil feature switches mean on
			}
			if !reflect.DeepEqual(v.Interface(), got.Interface()) {
				t.Errorf("%s: usage says default %q, real default is %v", o.key, m[1], got)
			}
		}
	}
	check(usages, configOptions, reflect.ValueOf(defaults()).Elem())
	app := App{}
	app.ApplyDefaults()
	check(appUsages, appOptions, reflect.ValueOf(&app).Elem())
}
