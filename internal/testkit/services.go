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

// postgresServerURL is the admin URL of the test Postgres server.
func postgresServerURL() string {
	if u := os.Getenv("PUSHWIRE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ensurePostgres starts the machine's Postgres cluster when 127.0.0.1:5432 is not answering.
func ensurePostgres() error {
	pgOnce.Do(func() {
		if os.Getenv("PUSHWIRE_TEST_DATABASE_URL") != "" || reachable("127.0.0.1:5432") {
			return
		}
		versions, _ := filepath.Glob("/etc/postgresql/*")
		if len(versions) == 0 {
			pgErr = fmt.Errorf("testkit: no Postgres on 127.0.0.1:5432 and no Debian cluster to start (apt-get install postgresql)")
			return
		}
		out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", filepath.Base(versions[0]), "main", "start").CombinedOutput()
		if err != nil {
			pgErr = fmt.Errorf("testkit: starting Postgres: %v: %s", err, out)
			return
		}
		for range 50 {
			if reachable("127.0.0.1:5432") {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		pgErr = fmt.Errorf("testkit: Postgres did not come up on 127.0.0.1:5432")
	})
	return pgErr
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
