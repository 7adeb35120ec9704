package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/cluster"
	"github.com/pushwire/pushwire/cluster/clustertest"
	"github.com/pushwire/pushwire/internal/testkit"
)

// idempotency is httpapi.Idempotency (not imported: cluster must not depend on httpapi).
type idempotency interface {
	Claim(ctx context.Context, appID, key string, ttl time.Duration) ([]byte, bool, bool, error)
	Complete(ctx context.Context, appID, key string, answer []byte, ttl time.Duration) error
	Release(ctx context.Context, appID, key string) error
	Close() error
}

// TestIdempotencyStores: two nodes' stores share keys: one claim wins, the answer comes
// back to the other, a released key can be claimed again, apps are separate, keys expire.
func TestIdempotencyStores(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T, prefix string) idempotency
	}{
		{"redis", func(t *testing.T, prefix string) idempotency {
			s, err := cluster.NewRedisIdempotency(testkit.Context(t, 10*time.Second), "redis://"+testkit.RedisAddr(t)+"/0", prefix)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"nats", func(t *testing.T, prefix string) idempotency {
			s, err := cluster.NewNATSIdempotency(testkit.Context(t, 10*time.Second), testkit.NATSURL(t), prefix, time.Minute)
			if err != nil {
				t.Skipf("JetStream not available on the test NATS server: %v", err)
			}
			t.Cleanup(func() { testkit.DeleteNATSBucket(t, testkit.NATSURL(t), prefix+"_idempotency") })
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("pwtest%s%d", clustertest.ClusterID(t), time.Now().UnixNano()) // fresh keys on every run
			a, b := tc.open(t, prefix), tc.open(t, prefix)
			defer a.Close()
			defer b.Close()
			ctx := testkit.Context(t, 20*time.Second)
			const ttl = 10 * time.Second
			// Concurrent claims of one key: exactly one wins.
			var wins atomic.Int32
			var wg sync.WaitGroup
			for _, s := range []idempotency{a, b, a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, _, ok, err := s.Claim(ctx, "app 1", "k:1", ttl); err != nil {
						t.Error(err)
					} else if ok {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d claims won, want 1", wins.Load())
			}
			if err := a.Complete(ctx, "app 1", "k:1", []byte(`{"ok":true}`), ttl); err != nil {
				t.Fatal(err)
			}
			answer, done, claimed, err := b.Claim(ctx, "app 1", "k:1", ttl)
			if err != nil || !done || claimed || string(answer) != `{"ok":true}` {
				t.Fatalf("after Complete: %q done=%v claimed=%v err=%v", answer, done, claimed, err)
			}
			if err := b.Release(ctx, "app 1", "k:1"); err != nil { // never drops an answer
				t.Fatal(err)
			}
			if _, done, _, _ := a.Claim(ctx, "app 1", "k:1", ttl); !done {
				t.Fatal("Release dropped a stored answer")
			}
			// Another app has its own keys; a released claim can be claimed again.
			if _, _, ok, _ := a.Claim(ctx, "app 2", "k:1", ttl); !ok {
				t.Fatal("app 2 could not claim a key app 1 holds")
			}
			if err := a.Release(ctx, "app 2", "k:1"); err != nil {
				t.Fatal(err)
			}
			if _, _, ok, _ := b.Claim(ctx, "app 2", "k:1", ttl); !ok {
				t.Fatal("released key not claimable")
			}
			// A claim expires after its TTL.
			if _, _, ok, _ := a.Claim(ctx, "app 3", "short", 300*time.Millisecond); !ok {
				t.Fatal("claim failed")
			}
			testkit.WaitFor(t, 10*time.Second, "expired claim taken over", func() bool {
				_, _, ok, _ := b.Claim(ctx, "app 3", "short", ttl)
				return ok
			})
		})
	}
}
