package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pushwire/pushwire/cluster"
	"github.com/pushwire/pushwire/cluster/clustertest"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/replication"
)

func newRedis(t testing.TB, o cluster.RedisOptions) *cluster.Redis {
	t.Helper()
	r, err := cluster.NewRedis(testkit.Context(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestRedisConformance(t *testing.T) {
	addr := testkit.RedisAddr(t)
	clustertest.Run(t, func(t *testing.T) replication.Broker {
		return newRedis(t, cluster.RedisOptions{Addr: addr, Prefix: "pwtest:" + clustertest.ClusterID(t)})
	})
}

func TestRedisURLAndUnreachable(t *testing.T) {
	addr := testkit.RedisAddr(t)
	r := newRedis(t, cluster.RedisOptions{URL: "redis://" + addr + "/0", Prefix: "pwtest:" + clustertest.ClusterID(t)})
	if !r.Healthy() {
		t.Error("not healthy after connecting")
	}
	if _, err := cluster.NewRedis(context.Background(), cluster.RedisOptions{URL: "http://nope"}); err == nil {
		t.Error("NewRedis accepted an http URL")
	}
	start := time.Now()
	_, err := cluster.NewRedis(context.Background(), cluster.RedisOptions{Addr: "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))})
	if err == nil {
		t.Fatal("NewRedis succeeded against a closed port")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("NewRedis took %s to fail", d)
	}
}

// TestRedisServerRestart: the Redis server dies and comes back; the nodes notice, Publish
// fails fast meanwhile, and delivery resumes by itself.
func TestRedisServerRestart(t *testing.T) {
	port := testkit.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv := testkit.StartRedisServer(t, port)
	opts := cluster.RedisOptions{
		Addr: addr, Prefix: "pwtest:" + clustertest.ClusterID(t),
		HealthInterval: 500 * time.Millisecond, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
		DialTimeout: time.Second, IOTimeout: time.Second,
	}
	testBrokerRestart(t,
		newRedis(t, opts), newRedis(t, opts),
		func() { srv.Kill(t) },
		func() { srv = testkit.StartRedisServer(t, port) })
}

// testBrokerRestart drives a fault test on two nodes of one cluster: kill stops the broker
// server, restart brings it back on the same address.
func testBrokerRestart(t *testing.T, a, b replication.Broker, kill, restart func()) {
	recA, recB := clustertest.NewRecorder(t), clustertest.NewRecorder(t)
	for _, x := range []struct {
		n replication.Broker
		r *clustertest.Recorder
	}{{a, recA}, {b, recB}} {
		if err := x.n.Start(testkit.Context(t, 10*time.Second), x.r.Handle); err != nil {
			t.Fatal(err)
		}
	}
	healthy := func() bool { return a.Healthy() && b.Healthy() }
	testkit.WaitFor(t, 10*time.Second, "healthy", healthy)
	mustPublish(t, a, "before")
	recB.WaitLen(t, 1)

	kill()
	testkit.WaitFor(t, 20*time.Second, "both nodes unhealthy after the server died", func() bool { return !a.Healthy() && !b.Healthy() })
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		err := a.Publish(ctx, "app-1", []byte("lost"))
		cancel()
		if err == nil {
			t.Fatalf("publish %d: succeeded while the server is down", i)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("publish %d: took %s to fail (ctx allowed 1s): %v", i, d, err)
		}
		if errors.Is(err, cluster.ErrClosed) {
			t.Fatalf("publish %d: %v", i, err)
		}
	}

	restart()
	testkit.WaitFor(t, 20*time.Second, "both nodes healthy after the server came back", healthy)
	mustPublish(t, a, "after-a")
	mustPublish(t, b, "after-b")
	recB.WaitLen(t, 2)
	recA.WaitLen(t, 1)
	if got := recB.Got(); string(got[1].Env) != "after-a" || got[1].From != a.NodeID() {
		t.Errorf("node b got %q from %s after the restart, want after-a from %s", got[1].Env, got[1].From, a.NodeID())
	}
	if got := recA.Got(); string(got[0].Env) != "after-b" {
		t.Errorf("node a got %q after the restart, want after-b", got[0].Env)
	}
}

func mustPublish(t *testing.T, b replication.Broker, env string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Publish(ctx, "app-1", []byte(env)); err != nil {
		t.Fatalf("Publish %q: %v", env, err)
	}
}

// TestRedisServerFrozen: the Redis server stops answering without closing its connections
// (SIGSTOP), then wakes up (SIGCONT): the health ping notices, Publish is bounded by ctx,
// and delivery resumes by itself.
func TestRedisServerFrozen(t *testing.T) {
	port := testkit.FreePort(t)
	srv := testkit.StartRedisServer(t, port)
	opts := cluster.RedisOptions{
		Addr: "127.0.0.1:" + strconv.Itoa(port), Prefix: "pwtest:" + clustertest.ClusterID(t),
		HealthInterval: 300 * time.Millisecond, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
		DialTimeout: time.Second, IOTimeout: time.Second,
	}
	testBrokerRestart(t, newRedis(t, opts), newRedis(t, opts), func() { srv.Signal(t, syscall.SIGSTOP) }, func() { srv.Signal(t, syscall.SIGCONT) })
}

// TestRedisHubs: hubs joined through Redis behave as one server.
func TestRedisHubs(t *testing.T) {
	addr := testkit.RedisAddr(t)
	clustertest.RunHubs(t, func(t *testing.T) replication.Broker {
		return newRedis(t, cluster.RedisOptions{Addr: addr, Prefix: "pwtest:" + clustertest.ClusterID(t)})
	})
}
