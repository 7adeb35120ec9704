package cluster_test

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/cluster"
	"github.com/pushwire/pushwire/cluster/clustertest"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/replication"
)

// BenchmarkAtoB measures envelopes from node A to node B of one cluster, for each broker:
//
//   - burst: A publishes back to back (at most `window` envelopes in flight, so a broker
//     that drops under overload shows up as a stall, not a hang); reports msgs/s and the
//     one-way latency percentiles under that load.
//   - burst16: the same from 16 goroutines of A at once (no order between them), which is
//     what lets Redis, whose Publish waits for the server's reply, go beyond one round trip
//     per envelope.
//   - paced: A publishes one envelope and waits for B to get it; reports one-way latency
//     with no queueing.
//
// Envelopes are 256 bytes: a send timestamp and padding.
func BenchmarkAtoB(b *testing.B) {
	brokers := []struct {
		name string
		pair func(b *testing.B) (replication.Broker, replication.Broker)
	}{
		{"local", func(b *testing.B) (replication.Broker, replication.Broker) {
			bus := cluster.NewLocalBus()
			return cluster.NewLocal(bus, ""), cluster.NewLocal(bus, "")
		}},
		{"redis", func(b *testing.B) (replication.Broker, replication.Broker) {
			o := cluster.RedisOptions{Addr: testkit.RedisAddr(b), Prefix: "pwbench:" + clustertest.ClusterID(b)}
			return newRedis(b, o), newRedis(b, o)
		}},
		{"nats", func(b *testing.B) (replication.Broker, replication.Broker) {
			o := cluster.NATSOptions{URL: testkit.NATSURL(b), Prefix: "pwbench." + clustertest.ClusterID(b)}
			return newNATS(b, o), newNATS(b, o)
		}},
	}
	for _, br := range brokers {
		b.Run(br.name+"/burst", func(b *testing.B) { benchAtoB(b, br.pair, 10000, 1) })
		b.Run(br.name+"/burst16", func(b *testing.B) { benchAtoB(b, br.pair, 10000, 16) })
		b.Run(br.name+"/paced", func(b *testing.B) { benchAtoB(b, br.pair, 1, 1) })
	}
}

func benchAtoB(b *testing.B, pair func(*testing.B) (replication.Broker, replication.Broker), window, publishers int) {
	a, r := pair(b)
	b.Cleanup(func() { _ = a.Close(); _ = r.Close() })
	var (
		mu   sync.Mutex
		cond = sync.NewCond(&mu)
		got  int
		lat  = make([]time.Duration, 0, b.N)
	)
	handle := func(_, _ string, env []byte) {
		d := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(env)))
		mu.Lock()
		got++
		lat = append(lat, d)
		cond.Broadcast()
		mu.Unlock()
	}
	ctx := context.Background()
	if err := a.Start(ctx, func(string, string, []byte) {}); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(ctx, handle); err != nil {
		b.Fatal(err)
	}
	// waitFor waits until B has n envelopes, failing after 30s without progress.
	waitFor := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		for got < n {
			before := got
			t := time.AfterFunc(30*time.Second, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
			cond.Wait()
			t.Stop()
			if got == before {
				b.Fatalf("stalled: B has %d envelopes, want %d", got, n)
			}
		}
	}
	b.SetBytes(256)
	b.ResetTimer()
	start := time.Now()
	var (
		wg   sync.WaitGroup
		next = make(chan int, publishers)
	)
	go func() {
		defer close(next)
		for i := range b.N {
			if i >= window {
				waitFor(i - window + 1)
			}
			next <- i
		}
	}()
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := make([]byte, 256)
			for range next {
				binary.BigEndian.PutUint64(env, uint64(time.Now().UnixNano()))
				if err := a.Publish(ctx, "app-1", env); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	waitFor(b.N)
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)*50/100], lat[len(lat)*99/100]
	mu.Unlock()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}
