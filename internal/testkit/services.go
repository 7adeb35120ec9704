package testkit

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Real services for integration tests: PostgreSQL, Redis and NATS on their standard local
// ports, each overridable by an environment variable (PUSHWIRE_TEST_DATABASE_URL,
// PUSHWIRE_TEST_REDIS_ADDR, PUSHWIRE_TEST_NATS_URL). When one is not running the helper
// starts it (as the machine's init would), so the tests never skip: Redis and NATS are left
// running like the machine's services, a throwaway Postgres cluster is stopped by
// StopServices.

var (
	pgOnce sync.Once
	pgErr  error
)

// pgAdminURL is the admin URL of the test Postgres server: PUSHWIRE_TEST_DATABASE_URL, the
// machine's server on 127.0.0.1:5432, or a throwaway cluster this process started.
var pgAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func postgresServerURL() string {
	if u := os.Getenv("PUSHWIRE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return pgAdminURL
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ensurePostgres makes a Postgres server available: the configured one, the machine's on
// 127.0.0.1:5432 (started with pg_ctlcluster when it is down), or else a throwaway cluster
// made with initdb in a temporary directory on a free port (PUSHWIRE_TEST_PG_THROWAWAY=1
// forces that), stopped when the test process exits.
func ensurePostgres() error {
	pgOnce.Do(func() {
		if os.Getenv("PUSHWIRE_TEST_DATABASE_URL") != "" {
			return
		}
		if os.Getenv("PUSHWIRE_TEST_PG_THROWAWAY") == "" {
			if reachable("127.0.0.1:5432") {
				return
			}
			if versions, _ := filepath.Glob("/etc/postgresql/*"); len(versions) > 0 {
				_ = exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", filepath.Base(versions[0]), "main", "start").Run()
				for range 50 {
					if reachable("127.0.0.1:5432") {
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}
		pgErr = startThrowawayPostgres()
	})
	return pgErr
}

// startThrowawayPostgres runs initdb and pg_ctl from Debian's packages (as the postgres user
// when running as root, since Postgres refuses to run as root).
func startThrowawayPostgres() error {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return fmt.Errorf("testkit: no Postgres reachable and no initdb to start one (apt-get install postgresql)")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "pushwire-pg-")
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	run := func(args ...string) *exec.Cmd {
		if os.Geteuid() == 0 {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
		return exec.Command(args[0], args[1:]...)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("testkit: chown %s: %v: %s", dir, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		return fmt.Errorf("testkit: initdb: %v: %s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if out, err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		return fmt.Errorf("testkit: pg_ctl start: %v: %s", err, out)
	}
	pgAdminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	throwawayStop = func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop").Run()
		_ = os.RemoveAll(dir)
	}
	return nil
}

// throwawayStop stops a throwaway cluster; StopServices calls it.
var throwawayStop = func() {}

// StopServices stops what this process started (a throwaway Postgres). Call it from TestMain
// after m.Run; without it the cluster is left to the OS temp directory.
func StopServices() { throwawayStop() }

// Cleanup is StopServices plus the removal of the binary Binary built (some 35 MB per test
// process otherwise left in the temp directory). Main calls it after the tests.
func Cleanup() {
	StopServices()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// Main runs the tests, then Cleanup, and exits with their code: a package's TestMain is
// `func TestMain(m *testing.M) { testkit.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// PostgresURL returns the URL of a fresh, empty database on the test Postgres server,
// dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	if err := ensurePostgres(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, postgresServerURL())
	if err != nil {
		t.Fatalf("testkit: connect to Postgres: %v", err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "pw_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testkit: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, postgresServerURL()); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	u, err := withDatabase(postgresServerURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// withDatabase returns the server URL (or keyword/value DSN) with its database replaced,
// keeping the user, password and parameters.
func withDatabase(server, db string) (string, error) {
	if !strings.Contains(server, "://") {
		return server + " dbname=" + db, nil
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("testkit: database url: %w", err)
	}
	u.Path, u.RawPath = "/"+db, ""
	return u.String(), nil
}

// DropPostgresDatabase force-drops a database made by PostgresURL (to simulate losing it).
func DropPostgresDatabase(t testing.TB, url string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, postgresServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
}

var (
	redisOnce sync.Once
	redisErr  error
	natsOnce  sync.Once
	natsErr   error
)

// RedisAddr returns the host:port of the test Redis: PUSHWIRE_TEST_REDIS_ADDR or
// 127.0.0.1:6379. When nothing answers PING there it starts redis-server (daemonized, no
// persistence) on that address. Tests share the server: use keys or prefixes of their own.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("PUSHWIRE_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	redisOnce.Do(func() { redisErr = ensureRedis(addr) })
	if redisErr != nil {
		t.Fatal(redisErr)
	}
	return addr
}

// redisUp reports whether a Redis server answers PING at addr.
func redisUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func ensureRedis(addr string) error {
	if redisUp(addr) {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("testkit: redis address %q: %w", addr, err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("testkit: no Redis at %s and no redis-server to start one (apt-get install redis-server)", addr)
	}
	out, err := exec.Command(bin, "--daemonize", "yes", "--bind", host, "--port", port, "--save", "", "--appendonly", "no").CombinedOutput()
	if err != nil {
		return fmt.Errorf("testkit: start redis-server: %v: %s", err, out)
	}
	if !waitUntil(10*time.Second, func() bool { return redisUp(addr) }) {
		return fmt.Errorf("testkit: started redis-server on %s but it does not answer PING", addr)
	}
	return nil
}

// NATSURL returns the URL of the test NATS server (JetStream enabled): PUSHWIRE_TEST_NATS_URL
// or nats://127.0.0.1:4222. When no NATS server answers there it starts
// nats-server -js in the background (detached, logging to a file in the temp directory).
func NATSURL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("PUSHWIRE_TEST_NATS_URL")
	if raw == "" {
		raw = "nats://127.0.0.1:4222"
	}
	natsOnce.Do(func() { natsErr = ensureNATS(raw) })
	if natsErr != nil {
		t.Fatal(natsErr)
	}
	return raw
}

// natsUp reports whether a NATS server greets with INFO at addr.
func natsUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

func ensureNATS(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("testkit: NATS url %q: %v", raw, err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "4222")
	}
	if natsUp(addr) {
		return nil
	}
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		return fmt.Errorf("testkit: no NATS at %s and no nats-server to start one (apt-get install nats-server)", addr)
	}
	host, port, _ := net.SplitHostPort(addr)
	log, err := os.Create(filepath.Join(os.TempDir(), "pushwire-nats-"+port+".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(bin, "-a", host, "-p", port, "-js")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the test process, like a service
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testkit: start nats-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	up := waitUntil(10*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
			return natsUp(addr)
		}
	})
	if !up || !natsUp(addr) {
		return fmt.Errorf("testkit: started nats-server on %s but it does not answer (log: %s)", addr, log.Name())
	}
	return nil
}

// waitUntil polls ok every 50ms until it holds or d has passed.
func waitUntil(d time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// DeleteNATSBucket removes a JetStream key-value bucket a test made (a missing bucket is
// fine); failures are logged, not fatal, as this runs in cleanups.
func DeleteNATSBucket(t testing.TB, url, bucket string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Logf("testkit: delete bucket %s: %v", bucket, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		err = js.DeleteKeyValue(context.Background(), bucket)
	}
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Logf("testkit: delete bucket %s: %v", bucket, err)
	}
}
