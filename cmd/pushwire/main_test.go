package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("port: 6001\nmax_conections: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help lists options", []string{"--help"}, 0, "--activity-timeout"},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined: -nope"},
		{"misspelt config key names the field", []string{"--config", badYAML}, 1, "max_conections"},
		{"bad value names the field", []string{"--port", "70000"}, 1, "port: must be between 1 and 65535"},
		{"missing tls key names the field", []string{"--tls-cert-file", "x.pem"}, 1, "tls_cert_file"},
		{"unreadable certificate", []string{"--port", "65011", "--log-level", "error", "--tls-cert-file", "/nonexistent.pem", "--tls-key-file", "/nonexistent.key"}, 1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a run that gets as far as serving stops at once
			if got := run(ctx, tc.args, &out); got != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", got, tc.code, out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out.String())
			}
		})
	}
}

func TestSetMinProcs(t *testing.T) {
	cases := []struct {
		name       string
		min, found int
		env        bool
		wantProcs  int // GOMAXPROCS afterwards
	}{
		{"one CPU gets a second P for the collector", 2, 1, false, 2},
		{"enough CPUs: untouched", 2, 4, false, 4},
		{"min_procs 1 keeps Go's choice", 1, 1, false, 1},
		{"GOMAXPROCS in the environment wins", 2, 1, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			procs := tc.found
			setProcs := func(n int) int {
				prev := procs
				if n > 0 {
					procs = n
				}
				return prev
			}
			lookup := func(k string) (string, bool) { return "1", tc.env && k == "GOMAXPROCS" }
			cpus := setMinProcs(tc.min, lookup, setProcs, zap.NewNop())
			if cpus != tc.found {
				t.Errorf("CPUs for sizing = %d, want %d (what Go chose)", cpus, tc.found)
			}
			if procs != tc.wantProcs {
				t.Errorf("GOMAXPROCS = %d, want %d", procs, tc.wantProcs)
			}
		})
	}
}
