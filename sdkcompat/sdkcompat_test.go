// Package sdkcompat runs real third-party Pusher SDKs against the real pushwire binary:
// the Node suites in test/ (pusher-js, the official `pusher` Node server SDK and
// laravel-echo, versions pinned in package-lock.json) and, in Go, the official
// github.com/pusher/pusher-http-go/v5 server SDK observed through raw WebSocket clients.
package sdkcompat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
)

// nodeSuiteTimeout bounds the whole `node --test` run; the suites normally take well under
// a minute, each wait inside them is bounded by 5 s and each test by 20 s.
const nodeSuiteTimeout = 4 * time.Minute

// npmInstallTimeout bounds `npm ci` on a machine without node_modules.
const npmInstallTimeout = 5 * time.Minute

// TestNodeSDKs runs every Node suite (node --test test/*.test.{js,mjs}) against a pushwire server on
// 127.0.0.1:6001 with the default app, streaming the spec reporter's output to the test log.
func TestNodeSDKs(t *testing.T) {
	t.Parallel()
	dir := sdkDir(t)
	node := requireNode(t)
	ensureNodeModules(t, dir)

	srv := testkit.Start(t, testkit.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), nodeSuiteTimeout)
	defer cancel()
	files := testFiles(t, dir)
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PUSHWIRE_HOST=127.0.0.1",
		"PUSHWIRE_PORT="+strconv.Itoa(srv.Port),
		"PUSHWIRE_APP_ID="+testkit.AppID,
		"PUSHWIRE_APP_KEY="+testkit.AppKey,
		"PUSHWIRE_APP_SECRET="+testkit.AppSecret,
		"NO_COLOR=1",
	)
	// node --test runs each file in a child process: kill the whole group on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second

	start := time.Now()
	err := runStreaming(t, cmd, "node")
	t.Logf("node --test finished in %s", time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("node --test did not finish within %s", nodeSuiteTimeout)
	}
	if err != nil {
		t.Logf("last lines of the pushwire log:\n%s", tail(srv.Output(), 80))
		t.Fatalf("node --test failed: %v (see the output above)", err)
	}
}

// testFiles lists the suites (test/*.test.js and test/*.test.mjs) relative to dir. They are
// named explicitly because `node --test <dir>` means different things across Node versions.
func testFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"test/*.test.js", "test/*.test.mjs"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			rel, _ := filepath.Rel(dir, f)
			files = append(files, rel)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no test files under %s/test", dir)
	}
	sort.Strings(files)
	return files
}

// sdkDir is this package's directory (sdkcompat/), wherever go test runs from.
func sdkDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate sdkcompat directory")
	}
	return filepath.Dir(file)
}

// requireNode returns the node executable, failing (not skipping) when it is missing or
// older than Node 20: the SDK suites are part of `make test`.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: the sdkcompat suites need Node.js 20+ with npm (install nodejs, then run `make deps`): %v", err)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	m := regexp.MustCompile(`^v(\d+)\.`).FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("cannot parse node version %q", v)
	}
	if major, _ := strconv.Atoi(m[1]); major < 20 {
		t.Fatalf("node %s is too old: the sdkcompat suites need Node.js 20+", v)
	}
	return node
}

// ensureNodeModules installs the pinned packages with `npm ci` when node_modules is missing
// or older than package-lock.json / package.json (npm writes node_modules/.package-lock.json
// last, so its mtime marks a complete install). Without a lock file it runs `npm install`.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	stamp := filepath.Join(dir, "node_modules", ".package-lock.json")
	lock := filepath.Join(dir, "package-lock.json")
	manifest := filepath.Join(dir, "package.json")
	if fresh(stamp, lock, manifest) {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("node_modules is missing or stale in %s and npm is not on PATH: %v", dir, err)
	}
	args := []string{"ci", "--no-audit", "--no-fund"}
	if _, err := os.Stat(lock); errors.Is(err, os.ErrNotExist) {
		args = []string{"install", "--no-audit", "--no-fund"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmInstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	t.Logf("node_modules missing or stale: running npm %s in %s", strings.Join(args, " "), dir)
	if err := runStreaming(t, cmd, "npm"); err != nil {
		t.Fatalf("npm %s failed: %v", args[0], err)
	}
	if !fresh(stamp, lock, manifest) {
		t.Fatalf("npm %s finished but %s is still missing or older than package-lock.json", args[0], stamp)
	}
}

// fresh reports whether stamp exists and is not older than any of the files that exist.
func fresh(stamp string, files ...string) bool {
	st, err := os.Stat(stamp)
	if err != nil {
		return false
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err == nil && fi.ModTime().After(st.ModTime()) {
			return false
		}
	}
	return true
}

// runStreaming runs cmd, logging each line of its combined output as it arrives.
func runStreaming(t *testing.T, cmd *exec.Cmd, prefix string) error {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			t.Logf("%s| %s", prefix, sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	_ = pw.Close()
	<-done
	return err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
