package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pushwire/pushwire/cluster"
	"github.com/pushwire/pushwire/cluster/clustertest"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/replication"
)

func newNATS(t testing.TB, o cluster.NATSOptions) *cluster.NATS {
	t.Helper()
	n, err := cluster.NewNATS(testkit.Context(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func TestNATSConformance(t *testing.T) {
	url := testkit.NATSURL(t)
	clustertest.Run(t, func(t *testing.T) replication.Broker {
		return newNATS(t, cluster.NATSOptions{URL: url, Prefix: "pwtest." + clustertest.ClusterID(t)})
	})
}

func TestNATSBadOptions(t *testing.T) {
	for _, p := range []string{"a.*", "a..b", "with space", ">", "."} {
		if _, err := cluster.NewNATS(context.Background(), cluster.NATSOptions{URL: testkit.NATSURL(t), Prefix: p}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	start := time.Now()
	_, err := cluster.NewNATS(context.Background(), cluster.NATSOptions{URL: "nats://127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))})
	if err == nil {
		t.Fatal("NewNATS succeeded against a closed port")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("NewNATS took %s to fail", d)
	}
}

// A small server max_payload makes every envelope travel in fragments.
func TestNATSFragments(t *testing.T) {
	port := testkit.FreePort(t)
	p := strconv.Itoa(port)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("max_payload: 4096\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.StartNATSServer(t, port, "-c", conf)
	o := cluster.NATSOptions{URL: "nats://127.0.0.1:" + p, Prefix: "pwtest." + clustertest.ClusterID(t)}
	clustertest.Run(t, func(t *testing.T) replication.Broker {
		o := o
		o.Prefix += "." + clustertest.ClusterID(t)
		return newNATS(t, o)
	})
}

// TestNATSServerRestart: the NATS server dies and comes back; the nodes notice, Publish fails
// fast meanwhile, and delivery resumes by itself.
func TestNATSServerRestart(t *testing.T) {
	port := testkit.FreePort(t)
	p := strconv.Itoa(port)
	start := func() *testkit.Process { return testkit.StartNATSServer(t, port) }
	srv := start()
	opts := cluster.NATSOptions{
		URL: "nats://127.0.0.1:" + p, Prefix: "pwtest." + clustertest.ClusterID(t),
		ReconnectWait: 50 * time.Millisecond, PingInterval: 500 * time.Millisecond, DialTimeout: time.Second,
	}
	testBrokerRestart(t, newNATS(t, opts), newNATS(t, opts), func() { srv.Kill(t) }, func() { srv = start() })
}

// TestNATSServerFrozen: the NATS server stops answering without closing its connections
// (SIGSTOP), then wakes up (SIGCONT): client pings notice, Publish fails fast, and delivery
// resumes by itself.
func TestNATSServerFrozen(t *testing.T) {
	port := testkit.FreePort(t)
	p := strconv.Itoa(port)
	srv := testkit.StartNATSServer(t, port)
	opts := cluster.NATSOptions{
		URL: "nats://127.0.0.1:" + p, Prefix: "pwtest." + clustertest.ClusterID(t),
		ReconnectWait: 50 * time.Millisecond, PingInterval: 300 * time.Millisecond, DialTimeout: time.Second,
	}
	testBrokerRestart(t, newNATS(t, opts), newNATS(t, opts), func() { srv.Signal(t, syscall.SIGSTOP) }, func() { srv.Signal(t, syscall.SIGCONT) })
}

// TestNATSHubs: hubs joined through NATS behave as one server.
func TestNATSHubs(t *testing.T) {
	url := testkit.NATSURL(t)
	clustertest.RunHubs(t, func(t *testing.T) replication.Broker {
		return newNATS(t, cluster.NATSOptions{URL: url, Prefix: "pwtest." + clustertest.ClusterID(t)})
	})
}
