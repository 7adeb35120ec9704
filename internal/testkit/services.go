package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Real services for integration tests: PostgreSQL, Redis and NATS on their standard local
// ports. When one is not running the helper starts it (as the machine's init would), so the
// tests never skip.

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
	cfg, err := pgx.ParseConfig(postgresServerURL())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
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
