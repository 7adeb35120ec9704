package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
